"""Queries on stored presence, nurse commands and waiting inbound callers: every one lives here.

The dialer process that owns a nurse writes her presence (batched into the
transactions it opens anyway) and takes her commands; any process reads the
board and writes commands.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from campaign.model import NURSE, PATIENT, pathologies_from_text
from campaign.store.base import one_of
from dialer.inbound.model import InboundCall
from dialer.presence import NurseStatus
from dialer.staff.model import NurseCommand, NursePresence

PRESENCE = NursePresence.__table__  # type: ignore[attr-defined]
COMMAND = NurseCommand.__table__  # type: ignore[attr-defined]
INBOUND = InboundCall.__table__  # type: ignore[attr-defined]


# ------------------------------------------------------------------ presence


@dataclass(frozen=True, slots=True)
class PresenceView:
    """A nurse as a board or her console shows her."""

    nurse_id: int
    code: str
    display_name: str
    level: str
    skills: tuple[str, ...]
    status: NurseStatus
    reason: str | None  # a pause's reason (config [web.pause_reasons])
    since: datetime | None  # when she entered this status (None: never seen by a dialer)
    attempt_id: int | None  # her current call
    patient_id: int | None  # that call's patient: the only file she may open
    call_state: str | None  # dialing, ringing, connected, ended, patient_hung_up
    worker: str | None  # the dialer process that owns her
    version: int  # bumped on every change


_VIEW_COLUMNS = (
    NURSE.c.id,
    NURSE.c.code,
    NURSE.c.display_name,
    NURSE.c.level,
    NURSE.c.skills,
    PRESENCE.c.status,
    PRESENCE.c.reason,
    PRESENCE.c.since,
    PRESENCE.c.attempt_id,
    PRESENCE.c.patient_id,
    PRESENCE.c.call_state,
    PRESENCE.c.worker,
    PRESENCE.c.version,
)


def _view(r: Any) -> PresenceView:
    return PresenceView(
        nurse_id=r.id,
        code=r.code,
        display_name=r.display_name,
        level=r.level,
        skills=tuple(r.skills or ()),
        status=NurseStatus(r.status or NurseStatus.offline),
        reason=r.reason,
        since=r.since,
        attempt_id=r.attempt_id,
        patient_id=r.patient_id,
        call_state=r.call_state,
        worker=r.worker,
        version=r.version or 0,
    )


def presence_of(s: Session, nurse_id: int) -> PresenceView | None:
    """Her presence (offline when no dialer has seen her yet); None if no such nurse."""
    q = (
        select(*_VIEW_COLUMNS)
        .outerjoin(PRESENCE, PRESENCE.c.nurse_id == NURSE.c.id)
        .where(NURSE.c.id == nurse_id)
    )
    row = s.execute(q).first()
    return None if row is None else _view(row)


def presence_board(s: Session) -> list[PresenceView]:
    """Every active nurse, by code; one without a row yet is offline."""
    q = (
        select(*_VIEW_COLUMNS)
        .outerjoin(PRESENCE, PRESENCE.c.nurse_id == NURSE.c.id)
        .where(NURSE.c.active.is_(True))
        .order_by(NURSE.c.code)
    )
    return [_view(r) for r in s.execute(q).all()]


def presence_of_many(s: Session, nurse_ids: Collection[int]) -> list[PresenceView]:
    """These nurses' presence, the active ones only (what the board reads again after their changes)."""
    if not nurse_ids:
        return []
    q = (
        select(*_VIEW_COLUMNS)
        .outerjoin(PRESENCE, PRESENCE.c.nurse_id == NURSE.c.id)
        .where(NURSE.c.id.in_(sorted(nurse_ids)), NURSE.c.active.is_(True))
    )
    return [_view(r) for r in s.execute(q).all()]


def ready_board(s: Session) -> list[PresenceView]:
    """Active nurses their owners stored ready with no call: whom the inbound line may offer a call."""
    q = (
        select(*_VIEW_COLUMNS)
        .join(PRESENCE, PRESENCE.c.nurse_id == NURSE.c.id)
        .where(
            NURSE.c.active.is_(True),
            PRESENCE.c.status == NurseStatus.ready.value,
            PRESENCE.c.attempt_id.is_(None),
        )
        .order_by(NURSE.c.code)
    )
    return [_view(r) for r in s.execute(q).all()]


@dataclass(frozen=True, slots=True)
class PresenceRow:
    """What the owning dialer stores of a nurse now."""

    nurse_id: int
    status: NurseStatus
    reason: str | None
    since: datetime
    attempt_id: int | None
    patient_id: int | None
    call_state: str | None

    def same(self, other: PresenceRow | None) -> bool:
        """Nothing a reader sees changed (a few microseconds of `since` are not a change)."""
        return other is not None and (
            self.status,
            self.reason,
            self.attempt_id,
            self.patient_id,
            self.call_state,
        ) == (other.status, other.reason, other.attempt_id, other.patient_id, other.call_state)


def _upsert(dialect: str) -> Any:
    ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(PRESENCE)
    return ins.on_conflict_do_update(
        index_elements=[PRESENCE.c.nurse_id],
        set_={
            "status": ins.excluded.status,
            "reason": ins.excluded.reason,
            "since": ins.excluded.since,
            "worker": ins.excluded.worker,
            "attempt_id": ins.excluded.attempt_id,
            "patient_id": ins.excluded.patient_id,
            "call_state": ins.excluded.call_state,
            "version": PRESENCE.c.version + 1,
            "updated_at": ins.excluded.updated_at,
        },
    )


# built once: building an upsert (its `excluded` columns) costs more than running it on SQLite
_UPSERT = {"postgresql": _upsert("postgresql"), "sqlite": _upsert("sqlite")}


def write_presence(s: Session, rows: Sequence[PresenceRow], worker: str, now: datetime) -> None:
    """Her row, inserted or updated with its version bumped, for each nurse: one statement."""
    if not rows:
        return
    conn = s.connection()  # a Core statement: the session's own execute adds nothing but its overhead
    conn.execute(
        _UPSERT[conn.dialect.name],
        [
            {
                "nurse_id": r.nurse_id,
                "status": r.status.value,
                "reason": r.reason,
                "since": r.since,
                "worker": worker,
                "attempt_id": r.attempt_id,
                "patient_id": r.patient_id,
                "call_state": r.call_state,
                "version": 1,
                "updated_at": now,
            }
            for r in rows
        ],
    )


def stored_presence(s: Session, nurse_ids: Sequence[int]) -> dict[int, NursePresence]:
    """The rows a previous run of the owner left (a restart restores its console nurses)."""
    if not nurse_ids:
        return {}
    rows = s.execute(select(NursePresence).where(one_of(s, PRESENCE.c.nurse_id, nurse_ids))).scalars()
    return {r.nurse_id: r for r in rows}


# ------------------------------------------------------------------ commands


def add_command(s: Session, nurse_id: int, kind: str, payload: dict[str, Any], now: datetime) -> int:
    """A command for her owner, stored; returns its id."""
    row = s.execute(
        insert(COMMAND)
        .values(nurse_id=nurse_id, kind=kind, payload=payload, created_at=now)
        .returning(COMMAND.c.id)
    ).scalar_one()
    return int(row)


def command_result(s: Session, command_id: int) -> tuple[int, str | None] | None:
    """(its nurse, its result: None while no owner has taken it); None if there is no such command."""
    row = s.execute(select(COMMAND.c.nurse_id, COMMAND.c.result).where(COMMAND.c.id == command_id)).first()
    return None if row is None else (row.nurse_id, row.result)


@dataclass(frozen=True, slots=True)
class PendingCommand:
    id: int
    nurse_id: int
    kind: str
    payload: dict[str, Any]


def pending_commands(s: Session, share: tuple[int, int], limit: int = 200) -> list[PendingCommand]:
    """Commands no owner has taken for the nurses of this share (nurse id modulo n = k), oldest first."""
    k, n = share
    q = select(COMMAND.c.id, COMMAND.c.nurse_id, COMMAND.c.kind, COMMAND.c.payload).where(
        COMMAND.c.taken_at.is_(None)
    )
    if n > 1:
        q = q.where(COMMAND.c.nurse_id % n == k)
    rows = s.execute(q.order_by(COMMAND.c.id).limit(limit)).all()
    return [PendingCommand(r.id, r.nurse_id, r.kind, dict(r.payload or {})) for r in rows]


_TAKE = (
    update(COMMAND)
    .where(COMMAND.c.id == bindparam("c_id"), COMMAND.c.taken_at.is_(None))
    .values(
        taken_at=bindparam("c_at", type_=COMMAND.c.taken_at.type),
        taken_by=bindparam("c_by"),
        result=bindparam("c_result"),
    )
)


def take_commands(s: Session, results: Sequence[tuple[int, str]], worker: str, now: datetime) -> None:
    """Commands taken, each with its result ("ok", or why it was refused), in one round trip."""
    if results:
        s.execute(
            _TAKE,
            [{"c_id": i, "c_at": now, "c_by": worker, "c_result": r[:128]} for i, r in results],
        )


# ------------------------------------------------------------------ inbound callers


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A caller on the inbound line waiting for a nurse; tier and pathologies unknown if unidentified."""

    inbound_call_id: int
    patient_id: int | None
    tier: str | None
    pathologies: tuple[str, ...]


def waiting_callers(s: Session) -> list[WaitingCaller]:
    """Callers in state "waiting": while one waits, no nurse qualified for them gets an outbound call."""
    q = (
        select(INBOUND.c.id, INBOUND.c.patient_id, PATIENT.c.tier, PATIENT.c.pathologies)
        .outerjoin(PATIENT, PATIENT.c.id == INBOUND.c.patient_id)
        .where(INBOUND.c.state == "waiting")
        .order_by(INBOUND.c.id)
    )
    return [
        WaitingCaller(r.id, r.patient_id, r.tier, tuple(pathologies_from_text(r.pathologies or "")))
        for r in s.execute(q).all()
    ]


def has_account(s: Session, nurse_ids: Sequence[int]) -> set[int]:
    """Of these nurses, those with an active account of role nurse: their console drives them."""
    from dialer.accounts.model import UserAccount

    if not nurse_ids:
        return set()
    table = UserAccount.__table__  # type: ignore[attr-defined]
    q = select(table.c.nurse_id).where(
        table.c.role == "nurse", table.c.active.is_(True), one_of(s, table.c.nurse_id, nurse_ids)
    )
    return {int(r) for (r,) in s.execute(q).all()}


def count_pending(s: Session) -> int:
    return int(
        s.execute(select(func.count()).select_from(COMMAND).where(COMMAND.c.taken_at.is_(None))).scalar_one()
    )


def task_routing(s: Session, task_id: int) -> Any:
    """A task, whatever its status, with what routing needs of its patient (an inbound call's task)."""
    from campaign.model import TASK
    from campaign.store.dialing import DIALABLE_COLUMNS

    q = select(*DIALABLE_COLUMNS).join(PATIENT, PATIENT.c.id == TASK.c.patient_id).where(TASK.c.id == task_id)
    return s.execute(q).one()
