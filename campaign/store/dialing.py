"""The dialer's hot path: dialable pages, claims, attempts, releases, leases.

Where a statement has a PostgreSQL form (raw psycopg, pipelined, array parameters) and
a SQLAlchemy form for SQLite, both sit side by side in the same function, and
tests/integration/test_store_contract.py holds both to the same expectations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import Integer, String, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from campaign.model import ATTEMPT, PATIENT, TASK, WAVE
from campaign.rules import DialHistory
from campaign.states import AttemptState, TaskKind, TaskStatus, WaveStatus
from campaign.store.base import PATIENT_RULE_COLUMNS, one_of, place_of
from campaign.store.patients import HISTORY_LOOKBACK, dial_histories, histories_by_patient

# ------------------------------------------------------------------ the dialer's queries

DIALABLE_WAVE = or_(
    TASK.c.wave_id.is_(None),
    TASK.c.wave_id.in_(select(WAVE.c.id).where(WAVE.c.status == WaveStatus.running)),
)


def dialable_page(
    session: Session,
    until: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
    *,
    now: datetime | None = None,
) -> list[tuple[datetime, int]]:
    """(not_before, id) of pending dialable tasks due before `until`, in that order after `after`.

    Ids only, so a dialer can sweep the due tasks page by page and read in
    full only the ones it does not hold yet. With `now`, tasks whose window
    has ended are left out: no claim may take them (`claim_tasks`), the
    upkeep job closes them.
    """
    q = select(TASK.c.not_before, TASK.c.id).where(
        TASK.c.status == TaskStatus.pending, TASK.c.not_before <= until, DIALABLE_WAVE
    )
    if now is not None:
        q = q.where(TASK.c.deadline > now)
    if after is not None:
        nb, task_id = after
        q = q.where(TASK.c.not_before >= nb, or_(TASK.c.not_before > nb, TASK.c.id > task_id))
    q = q.order_by(TASK.c.not_before, TASK.c.id).limit(limit)
    return [(nb, int(i)) for nb, i in session.execute(q).all()]


# what a dialer's queue needs to route a task; the rules' data is read again at claim
DIALABLE_COLUMNS = (
    TASK.c.id.label("task_id"),
    TASK.c.kind,
    TASK.c.tier.label("task_tier"),
    TASK.c.priority,
    TASK.c.not_before,
    TASK.c.assigned_nurse_id,
    TASK.c.theme_code,
    TASK.c.answer_p,
    PATIENT.c.id,
    PATIENT.c.departement,
    PATIENT.c.timezone,
    PATIENT.c.preferred_start,
    PATIENT.c.preferred_end,
    PATIENT.c.referent_nurse_id,
    PATIENT.c.pathologies,
)


def dialable_rows(session: Session, task_ids: Sequence[int], chunk: int = 1_000) -> list[Any]:
    """These tasks, if still pending and dialable, with what routing needs of their patients."""
    rows: list[Any] = []
    ids = list(task_ids)
    for i in range(0, len(ids), chunk):
        q = (
            select(*DIALABLE_COLUMNS)
            .join(PATIENT, PATIENT.c.id == TASK.c.patient_id)
            .where(
                one_of(session, TASK.c.id, ids[i : i + chunk]),
                TASK.c.status == TaskStatus.pending,
                DIALABLE_WAVE,
            )
        )
        rows.extend(session.execute(q).all())
    return rows


def first_calls_ahead(
    session: Session,
    tiers: Sequence[str],
    now: datetime,
    until: datetime,
    limit: int,
    *,
    opened_by: date,
) -> list[Any]:
    """First calls of running waves planned after `now` until `until`: highest priority, earliest first.

    What a nurse with nothing due may bring forward (dialer/ahead.py): a task
    never dialed yet, so no retry spacing or best-time choice made on its
    answers is undone. Only of waves whose window has opened by `opened_by`
    (a date: the caller checks each patient's own local date against the
    row's `window_start`), so no one is called before the letter is there.
    Rows as `dialable_rows` gives them, with `window_start`, for routing.
    """
    q = (
        select(*DIALABLE_COLUMNS, WAVE.c.window_start)
        .join(PATIENT, PATIENT.c.id == TASK.c.patient_id)
        .join(WAVE, WAVE.c.id == TASK.c.wave_id)
        .where(
            WAVE.c.window_start <= opened_by,
            TASK.c.status == TaskStatus.pending,
            TASK.c.not_before > now,
            TASK.c.not_before <= until,
            TASK.c.deadline > now,
            TASK.c.kind == TaskKind.wave,
            TASK.c.attempts == 0,
            TASK.c.tier.in_(list(tiers)),
            WAVE.c.status == WaveStatus.running,
        )
        .order_by(TASK.c.priority.desc(), TASK.c.not_before, TASK.c.id)
        .limit(limit)
    )
    return list(session.execute(q).all())


def move_first_calls_to_now(session: Session, task_ids: Sequence[int], now: datetime) -> list[int]:
    """These first calls due now, if they are still pending, undialed and not due yet; the ids moved.

    Guarded in the statement itself: a task another process claimed, or
    brought forward, since it was read is left as it is. The best-time band
    that placed it no longer does (`patient why` would show a stale
    placement): cleared; the time it was planned at is kept (`ahead_of`).
    """
    if not task_ids:
        return []
    moved = session.execute(
        update(TASK)
        .where(
            TASK.c.id.in_(list(task_ids)),
            TASK.c.status == TaskStatus.pending,
            TASK.c.attempts == 0,
            TASK.c.not_before > now,
        )
        .values(not_before=now, best_band=None, ahead_of=TASK.c.not_before)
        .returning(TASK.c.id)
    ).scalars()
    return sorted(int(i) for i in moved)


CLAIM_COLUMNS = (
    TASK.c.id.label("task_id"),
    TASK.c.kind,
    TASK.c.attempts,
    TASK.c.tier.label("task_tier"),
    *PATIENT_RULE_COLUMNS,
)


_CLAIM = (
    "UPDATE call_task SET status = %(in_progress)s, claimed_by = %(worker)s, "
    "lease_until = %(lease_until)s, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM call_task WHERE id = ANY(%(task_ids)s) AND status = %(pending)s "
    "AND not_before <= %(now)s AND deadline > %(now)s AND (wave_id IS NULL OR wave_id IN "
    "(SELECT id FROM wave WHERE status = %(running)s)) FOR UPDATE SKIP LOCKED) AND status = %(pending)s "
    "RETURNING id, kind, attempts, tier, patient_id"
)
_CLAIM_AND_LOCK_PG = (
    f"WITH claimed AS ({_CLAIM}) "
    "SELECT c.id AS task_id, c.kind, c.attempts, c.tier AS task_tier, "
    + ", ".join(f"p.{c.name}" for c in PATIENT_RULE_COLUMNS)
    + " FROM claimed c JOIN patient p ON p.id = c.patient_id ORDER BY p.id, c.id FOR UPDATE OF p"
)
# read after the claim's locks are held: a statement of its own, so its snapshot sees every
# attempt committed by whoever held a patient's lock before
_HISTORIES_PG = (
    "SELECT patient_id, started_at, state FROM call_attempt WHERE started_at >= %(since)s AND patient_id IN "
    "(SELECT patient_id FROM call_task WHERE id = ANY(%(task_ids)s))"
)


def claim_tasks(
    session: Session, task_ids: Sequence[int], worker: str, now: datetime, lease: timedelta
) -> tuple[list[Any], dict[int, DialHistory]]:
    """Of `task_ids`, the pending tasks of running waves that are due become this worker's (atomic per task).

    Returns the claimed tasks with their patients' rule data, the patients
    locked (the lock serialises claims on one patient across dialer
    processes), and each claimed patient's dial history read once the locks
    are held. On PostgreSQL each task row is locked with SKIP LOCKED (a task
    another process is claiming at this instant is left to it, never waited
    for), patients are locked in id order (two processes never wait on each
    other in a cycle), and claim and history go to the server together: one
    round trip of a nurse's wait. SQLite has one writer. A stale id from a
    dialer's queue is not claimed before its time, nor once its wave's window
    has ended (the deadline: no attempt starts after it; the upkeep job closes
    the task).
    """
    if not task_ids:
        return [], {}
    if session.get_bind().dialect.name == "postgresql":
        return _claim_tasks_pg(session, task_ids, worker, now, lease)
    free = select(TASK.c.id).where(
        TASK.c.id.in_(list(task_ids)),
        TASK.c.status == TaskStatus.pending,
        TASK.c.not_before <= now,
        TASK.c.deadline > now,
        DIALABLE_WAVE,
    )
    claimed = session.execute(
        update(TASK)
        .where(TASK.c.id.in_(free), TASK.c.status == TaskStatus.pending)
        .values(
            status=TaskStatus.in_progress,
            claimed_by=worker,
            lease_until=now + lease,
            attempts=TASK.c.attempts + 1,
        )
        .returning(TASK.c.id)
    ).scalars()
    ids = sorted(int(i) for i in claimed)
    if not ids:
        return [], {}
    rows = list(
        session.execute(
            select(*CLAIM_COLUMNS)
            .join(PATIENT, PATIENT.c.id == TASK.c.patient_id)
            .where(TASK.c.id.in_(ids))
            .order_by(PATIENT.c.id, TASK.c.id)
        ).all()
    )
    return rows, dial_histories(session, {r.id: place_of(r) for r in rows}, now)


def _claim_tasks_pg(
    session: Session, task_ids: Sequence[int], worker: str, now: datetime, lease: timedelta
) -> tuple[list[Any], dict[int, DialHistory]]:
    """Raw psycopg, pipelined: the hot path of every dialer process, in one round trip.

    Fixed statement texts with array parameters, prepared on the server;
    rows come back as named tuples, as the rules read them.
    """
    conn = session.connection().connection.driver_connection
    assert conn is not None, "a live psycopg connection"
    ids = list(task_ids)
    params = {
        "task_ids": ids,
        "worker": worker,
        "now": now,
        "lease_until": now + lease,
        "pending": TaskStatus.pending.value,
        "in_progress": TaskStatus.in_progress.value,
        "running": WaveStatus.running.value,
    }
    with conn.pipeline():
        claim = conn.cursor(row_factory=namedtuple_row)
        claim.execute(_CLAIM_AND_LOCK_PG, params, prepare=True)
        history = conn.cursor()
        history.execute(_HISTORIES_PG, {"since": now - HISTORY_LOOKBACK, "task_ids": ids}, prepare=True)
        rows = claim.fetchall()
        attempts = history.fetchall()
    return rows, histories_by_patient(attempts, {r.id: place_of(r) for r in rows}, now)


# the attempts of a batch of claims in one statement whose text does not depend on the batch size
_INSERT_ATTEMPTS_PG = text(
    "INSERT INTO call_attempt (task_id, patient_id, nurse_id, number, state, started_at, worker, "
    "voicemail_left) "
    "SELECT u.task_id, u.patient_id, u.nurse_id, u.number, :state, :started_at, :worker, false "
    "FROM unnest(:task_ids, :patient_ids, :nurse_ids, :numbers) AS u(task_id, patient_id, nurse_id, number) "
    "RETURNING id, task_id"
).bindparams(
    bindparam("task_ids", type_=ARRAY(Integer)),
    bindparam("patient_ids", type_=ARRAY(Integer)),
    bindparam("nurse_ids", type_=ARRAY(Integer)),
    bindparam("numbers", type_=ARRAY(String)),
    bindparam("started_at", type_=ATTEMPT.c.started_at.type),
)


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """An attempt about to be dialed: at most one per task in a batch."""

    task_id: int
    patient_id: int
    nurse_id: int | None
    number: str


def insert_attempts(
    session: Session, starts: Sequence[AttemptStart], started_at: datetime, worker: str
) -> list[int]:
    """In flight, in one statement for the batch; ids come back in the order of `starts`."""
    if not starts:
        return []
    if session.get_bind().dialect.name == "postgresql":
        res = session.execute(
            _INSERT_ATTEMPTS_PG,
            {
                "task_ids": [a.task_id for a in starts],
                "patient_ids": [a.patient_id for a in starts],
                "nurse_ids": [a.nurse_id for a in starts],
                "numbers": [a.number for a in starts],
                "state": AttemptState.in_flight.value,
                "started_at": started_at,
                "worker": worker,
            },
        )
        by_task = {int(task_id): int(attempt_id) for attempt_id, task_id in res.all()}
        return [by_task[a.task_id] for a in starts]
    res = session.execute(
        insert(ATTEMPT).returning(ATTEMPT.c.id, sort_by_parameter_order=True),
        [
            {
                "task_id": a.task_id,
                "patient_id": a.patient_id,
                "nurse_id": a.nurse_id,
                "number": a.number,
                "state": AttemptState.in_flight,
                "started_at": started_at,
                "worker": worker,
            }
            for a in starts
        ],
    )
    return [int(i) for i in res.scalars()]
