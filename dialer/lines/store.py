"""Queries on the dialer's line tables: every one lives here.

Which events move a line forward is decided in memory by the dialer that
placed the call (dialer/lines/tracker.py); these queries store what it knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from dialer.events import CallEvent, CallEventKind, LineState
from dialer.lines.model import CallLine, CallLineEvent

LINE = CallLine.__table__  # type: ignore[attr-defined]
LINE_EVENT = CallLineEvent.__table__  # type: ignore[attr-defined]
_ENDED_RANK = LineState.ended.rank


@dataclass(frozen=True, slots=True)
class LineRecord:
    """A line as its dialer knows it now."""

    attempt_id: int
    furthest: LineState
    over: bool
    cause: int | None
    detail: str | None
    call_id: str | None


def open_lines(
    session: Session, opened: Sequence[tuple[int, int]], backend: str, worker: str, now: datetime
) -> None:
    """A line per (attempt, nurse) about to be dialed, in one round trip."""
    if not opened:
        return
    session.execute(
        insert(LINE),
        [
            {
                "attempt_id": attempt_id,
                "backend": backend,
                "nurse_id": nurse_id,
                "worker": worker,
                "state": LineState.dialing.value,
                "rank": 0,
                "opened_at": now,
                "updated_at": now,
            }
            for attempt_id, nurse_id in opened
        ],
    )


_RECORD = (
    update(LINE)
    .where(LINE.c.attempt_id == bindparam("l_id"))
    .values(
        state=bindparam("l_state"),
        rank=bindparam("l_rank"),
        cause=bindparam("l_cause"),
        detail=bindparam("l_detail"),
        call_id=bindparam("l_call_id"),
        updated_at=bindparam("l_at", type_=LINE.c.updated_at.type),
    )
)


def record_lines(session: Session, records: Sequence[LineRecord], now: datetime) -> None:
    """Lines as their dialer knows them, in one round trip. `state` is the furthest state reached
    before any end; `rank` is 5 once the call is over, so the furthest state is never lost."""
    if not records:
        return
    session.execute(
        _RECORD,
        [
            {
                "l_id": r.attempt_id,
                "l_state": r.furthest.value,
                "l_rank": _ENDED_RANK if r.over else r.furthest.rank,
                "l_cause": r.cause,
                "l_detail": r.detail[:64] if r.detail else None,
                "l_call_id": r.call_id,
                "l_at": now,
            }
            for r in records
        ],
    )


def lines_of(session: Session, attempt_ids: Sequence[int]) -> dict[int, CallLine]:
    if not attempt_ids:
        return {}
    rows = session.execute(select(CallLine).where(LINE.c.attempt_id.in_(list(attempt_ids)))).scalars()
    return {r.attempt_id: r for r in rows}


def orphan_lines(session: Session, worker: str | None) -> list[CallLine]:
    """Lines not over of a worker (None: any), with a call id: what a crash may leave on the switch."""
    q = select(CallLine).where(LINE.c.rank < _ENDED_RANK, LINE.c.call_id.is_not(None))
    if worker is not None:
        q = q.where(LINE.c.worker == worker)
    return list(session.execute(q).scalars())


def end_lines(session: Session, attempt_ids: Sequence[int], now: datetime) -> None:
    """Lines closed by reconciliation: their calls were hung up, their attempts closed."""
    if attempt_ids:
        session.execute(
            update(LINE)
            .where(LINE.c.attempt_id.in_(list(attempt_ids)), LINE.c.rank < _ENDED_RANK)
            .values(rank=_ENDED_RANK, updated_at=now)
        )


def forward_events(session: Session, worker: str, events: Sequence[CallEvent]) -> None:
    """Events that reached this process for calls another worker owns: stored for their owner."""
    if not events:
        return
    session.execute(
        insert(LINE_EVENT),
        [
            {
                "worker": worker,
                "attempt_id": e.attempt_id,
                "kind": e.kind.value,
                "at": e.at,
                "cause": e.cause,
                "detail": e.detail,
                "voicemail_left": e.voicemail_left,
                "call_id": e.call_id,
            }
            for e in events
        ],
    )


def events_for_worker(session: Session, worker: str, limit: int = 500) -> list[CallEvent]:
    """Events other processes stored for this worker's calls, oldest first; taken (deleted) as read."""
    rows = session.execute(
        select(LINE_EVENT).where(LINE_EVENT.c.worker == worker).order_by(LINE_EVENT.c.id).limit(limit)
    ).all()
    if not rows:
        return []
    session.execute(delete(LINE_EVENT).where(LINE_EVENT.c.id.in_([r.id for r in rows])))
    return [
        CallEvent(r.attempt_id, CallEventKind(r.kind), r.at, r.cause, r.detail, r.voicemail_left, r.call_id)
        for r in rows
    ]
