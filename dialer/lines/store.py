"""Queries on the dialer's line tables: every one lives here.

Lines only move forward (`LineState.rank`): an event repeated, or arriving
after a later one, changes nothing and is not handed on, so providers that
retry callbacks and switches that reorder events cannot record a call twice.
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
class LineUpdate:
    """An event that moved its line forward, and the furthest state the line reached before any end."""

    event: CallEvent
    furthest: LineState


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


_ADVANCE = (
    update(LINE)
    .where(LINE.c.attempt_id == bindparam("a_id"))
    .values(
        state=bindparam("a_state"),
        rank=bindparam("a_rank"),
        cause=bindparam("a_cause"),
        detail=bindparam("a_detail"),
        call_id=bindparam("a_call_id"),
        updated_at=bindparam("a_at", type_=LINE.c.updated_at.type),
    )
)


def advance(session: Session, events: Sequence[CallEvent], now: datetime) -> list[LineUpdate]:
    """Record events on their lines; those that moved a line forward, in order.

    An event for an attempt with no line (unknown to carecall, or from another
    deployment) is left out: the caller logs it. The `ended` state is kept
    apart (rank 5) so the furthest state before the end is still known.
    """
    if not events:
        return []
    ids = sorted({e.attempt_id for e in events})
    rows = {
        r.attempt_id: r
        for r in session.execute(
            select(LINE.c.attempt_id, LINE.c.state, LINE.c.rank, LINE.c.cause, LINE.c.detail, LINE.c.call_id)
            .where(LINE.c.attempt_id.in_(ids))
        ).all()
    }
    current: dict[int, dict[str, object]] = {
        a: {
            "state": LineState(r.state),
            "rank": r.rank,
            "cause": r.cause,
            "detail": r.detail,
            "call_id": r.call_id,
            "changed": False,
        }
        for a, r in rows.items()
    }
    moved: list[LineUpdate] = []
    for e in events:
        line = current.get(e.attempt_id)
        if line is None:
            continue
        if e.call_id and not line["call_id"]:
            line["call_id"], line["changed"] = e.call_id, True
        rank = int(line["rank"])  # type: ignore[call-overload]
        if rank >= _ENDED_RANK:
            continue  # over: a late or repeated event says nothing new
        state = line["state"]
        assert isinstance(state, LineState)
        if e.kind == CallEventKind.ended:
            line["rank"], line["cause"] = _ENDED_RANK, e.cause
            if e.detail:
                line["detail"] = e.detail
            line["changed"] = True
            moved.append(LineUpdate(e, state))
            continue
        target = LineState(e.kind.value)
        if target.rank <= rank:
            continue
        line["state"], line["rank"], line["changed"] = target, target.rank, True
        if e.detail:
            line["detail"] = e.detail
        moved.append(LineUpdate(e, target))
    changed = [(a, line) for a, line in current.items() if line["changed"]]
    if changed:
        session.execute(
            _ADVANCE,
            [
                {
                    "a_id": a,
                    "a_state": LineState(line["state"]).value,  # type: ignore[arg-type]
                    "a_rank": line["rank"],
                    "a_cause": line["cause"],
                    "a_detail": line["detail"],
                    "a_call_id": line["call_id"],
                    "a_at": now,
                }
                for a, line in changed
            ],
        )
    return moved


def lines_of(session: Session, attempt_ids: Sequence[int]) -> dict[int, CallLine]:
    if not attempt_ids:
        return {}
    rows = session.exec(select(CallLine).where(CallLine.attempt_id.in_(attempt_ids)))  # type: ignore[call-overload, attr-defined]
    return {r.attempt_id: r for r in rows.scalars()} if hasattr(rows, "scalars") else {r.attempt_id: r for r in rows}


def line_of_call(session: Session, backend: str, call_id: str) -> CallLine | None:
    """The line of a backend's call id (a webhook that names only its CallSid, say)."""
    row = session.execute(
        select(CallLine).where(CallLine.backend == backend, CallLine.call_id == call_id)  # type: ignore[arg-type]
    ).first()
    return row[0] if row else None


def orphan_lines(session: Session, worker: str | None) -> list[CallLine]:
    """Lines not over of a worker (all workers: None), with a call id: what a crash may leave on the switch."""
    q = select(CallLine).where(CallLine.rank < _ENDED_RANK, CallLine.call_id.is_not(None))  # type: ignore[union-attr]
    if worker is not None:
        q = q.where(CallLine.worker == worker)  # type: ignore[arg-type]
    return [r[0] for r in session.execute(q).all()]


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
        CallEvent(
            r.attempt_id, CallEventKind(r.kind), r.at, r.cause, r.detail, r.voicemail_left, r.call_id
        )
        for r in rows
    ]
