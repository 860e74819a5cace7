"""Every query of the programme's tables lives here.

Functions take an open Session and never commit: `services` opens and closes
the transaction. Hot paths use Core statements and select only the columns they
need, so a 100,000-patient wave does not load 100,000 ORM objects.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from campaign import calendar as cal
from campaign.model import (
    ATTEMPT,
    NURSE,
    PATIENT,
    RECIPIENT,
    TASK,
    WAVE,
    AuditEvent,
    Nurse,
    Wave,
)
from campaign.policy import NurseLevel, Tier
from campaign.rules import DialHistory, PatientState
from campaign.states import (
    TERMINAL_TASK_STATUSES,
    AttemptState,
    EnrolmentStatus,
    TaskKind,
    TaskStatus,
    WaveStatus,
)

OPEN_TASK_STATUSES = (TaskStatus.pending.value, TaskStatus.in_progress.value)
TERMINAL = tuple(s.value for s in TERMINAL_TASK_STATUSES)

PATIENT_RULE_COLUMNS = (
    PATIENT.c.id,
    PATIENT.c.status,
    PATIENT.c.tier,
    PATIENT.c.departement,
    PATIENT.c.timezone,
    PATIENT.c.preferred_start,
    PATIENT.c.preferred_end,
    PATIENT.c.consent,
    PATIENT.c.suspended_until,
    PATIENT.c.phone,
    PATIENT.c.phone_alt,
    PATIENT.c.flagged_numbers,
    PATIENT.c.next_contact_on,
    PATIENT.c.referent_nurse_id,
    PATIENT.c.pathologies,
)


def one_of(session: Session, column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN (ids)` for a batch of ids; on PostgreSQL `column = ANY(:ids)`.

    An IN list is a new statement text for every batch size: compiled,
    converted and planned again each time. One array parameter keeps the text
    the same whatever the count, so the dialer's hot statements are compiled
    once and run as prepared statements.
    """
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def dialable_numbers(phone: str, phone_alt: str | None, flagged: Sequence[str] | None) -> list[str]:
    bad = set(flagged or ())
    return [n for n in (phone, phone_alt) if n and n not in bad]


_STATUSES = {s.value: s for s in EnrolmentStatus}
_TIERS = {t.value: t for t in Tier}


def patient_state_from_row(row: Any) -> PatientState:
    """Planning calls this once per recipient (a million for a national wave): the enums
    are looked up in a dict (the Enum call is several times slower; an unknown value
    still raises its ValueError), and the numbers are only compared when some are flagged.
    """
    flagged, phone, alt = row.flagged_numbers, row.phone, row.phone_alt
    return PatientState(
        status=_STATUSES.get(row.status) or EnrolmentStatus(row.status),
        tier=_TIERS.get(row.tier) or Tier(row.tier),
        place=cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end),
        consent=bool(row.consent),
        suspended_until=row.suspended_until,
        dialable_numbers=(
            len(dialable_numbers(phone, alt, flagged)) if flagged else (1 if phone else 0) + (1 if alt else 0)
        ),
        next_contact_on=row.next_contact_on,
    )


def patient_rule_row(session: Session, patient_id: int) -> Any:
    return session.execute(select(*PATIENT_RULE_COLUMNS).where(PATIENT.c.id == patient_id)).one()


HISTORY_LOOKBACK = timedelta(days=2)  # covers the local day of `at` and the day before it


def dial_history(
    session: Session, patient_id: int, at: datetime, place: cal.Place, *, full: bool = False
) -> DialHistory:
    """From the stored attempts, so every dialer process sees the same history.

    Looks back one day (enough for the minimum gap and the daily cap); `full`
    also finds an older last dial, for explanations.
    """
    rows = session.execute(
        select(ATTEMPT.c.started_at, ATTEMPT.c.state).where(
            ATTEMPT.c.patient_id == patient_id, ATTEMPT.c.started_at >= at - HISTORY_LOOKBACK
        )
    ).all()
    history = history_from_attempts([(r.started_at, r.state) for r in rows], at, place)
    if history.last_dial_at is None and full:
        last = session.execute(
            select(func.max(ATTEMPT.c.started_at)).where(ATTEMPT.c.patient_id == patient_id)
        ).scalar_one_or_none()
        history = DialHistory(history.in_call, last, history.dials_on_day)
    return history


def dial_histories(session: Session, places: dict[int, cal.Place], at: datetime) -> dict[int, DialHistory]:
    """`dial_history` of many patients in one query (a dialer's batch of claims)."""
    if not places:
        return {}
    attempts = session.execute(
        select(ATTEMPT.c.patient_id, ATTEMPT.c.started_at, ATTEMPT.c.state).where(
            one_of(session, ATTEMPT.c.patient_id, places), ATTEMPT.c.started_at >= at - HISTORY_LOOKBACK
        )
    ).all()
    return _histories(attempts, places, at)


def _histories(
    attempts: Iterable[tuple[int, datetime, str]], places: dict[int, cal.Place], at: datetime
) -> dict[int, DialHistory]:
    """Per patient of `places`, the history its (patient, started_at, state) attempts give."""
    by_patient: dict[int, list[tuple[datetime, str]]] = {pid: [] for pid in places}
    for pid, started_at, state in attempts:
        if pid in by_patient:
            by_patient[pid].append((started_at, state))
    return {pid: history_from_attempts(rows, at, places[pid]) for pid, rows in by_patient.items()}


def history_from_attempts(
    rows: Sequence[tuple[datetime, str]], at: datetime, place: cal.Place
) -> DialHistory:
    """Minimum gap and daily cap look back one day and over the patient's local day."""
    day = cal.local_date(at, place)
    day_start = cal.at_local(day, time(0), place.timezone)
    day_end = cal.at_local(day + timedelta(days=1), time(0), place.timezone)
    since = min(day_start, at - timedelta(days=1))
    recent = [(started, state) for started, state in rows if started >= since]
    return DialHistory(
        in_call=any(state == AttemptState.in_flight for _, state in recent),
        last_dial_at=max((started for started, _ in recent), default=None),
        dials_on_day=sum(1 for started, _ in recent if day_start <= started < day_end),
    )


# ------------------------------------------------------------------ nurses


@dataclass(frozen=True, slots=True)
class NurseInfo:
    id: int
    code: str
    level: NurseLevel
    skills: frozenset[str]
    shifts: tuple[tuple[int, time, time], ...]
    timezone: str


def nurses(session: Session, active_only: bool = True) -> list[NurseInfo]:
    q = select(Nurse)
    if active_only:
        q = q.where(NURSE.c.active.is_(True))
    out = []
    for n in session.execute(q).scalars().all():
        shifts = tuple(
            (int(s["weekday"]), time.fromisoformat(s["start"]), time.fromisoformat(s["end"]))
            for s in n.shifts
        )
        out.append(
            NurseInfo(
                id=n.id,
                code=n.code,
                level=NurseLevel(n.level),
                skills=frozenset(n.skills),
                shifts=shifts,
                timezone=n.timezone,
            )
        )
    return out


# ------------------------------------------------------------------ segments and waves


def segment_query(clauses: dict[str, list[str]]) -> Select[tuple[int]]:
    """The ids of the patients a mailing's segment selects (enrolled or suspended)."""
    q = select(PATIENT.c.id).where(
        PATIENT.c.status.in_([EnrolmentStatus.enrolled, EnrolmentStatus.suspended])
    )
    if pats := clauses.get("pathology"):
        q = q.where(or_(*[PATIENT.c.pathologies.like(f"%|{p}|%") for p in pats]))
    if tiers := clauses.get("tier"):
        q = q.where(PATIENT.c.tier.in_(tiers))
    if deps := clauses.get("departement"):
        q = q.where(PATIENT.c.departement.in_(deps))
    return q


def add_recipients(session: Session, mailing_id: int, clauses: dict[str, list[str]]) -> int:
    """The segment's patients become the mailing's recipients; returns how many.

    One INSERT … SELECT: a national mailing (a million patients) never travels
    through Python.
    """
    ids = segment_query(clauses).add_columns(literal(mailing_id).label("mailing_id"))
    res = session.execute(
        insert(RECIPIENT).from_select(["patient_id", "mailing_id"], ids.order_by(PATIENT.c.id)),
        # SQLAlchemy reports an INSERT's row count only when asked (-1 otherwise)
        execution_options={"preserve_rowcount": True},
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def recipients_rows(session: Session, mailing_id: int) -> Iterator[Any]:
    """The recipients' rule data (PATIENT_RULE_COLUMNS), streamed.

    A national mailing has a million recipients: rows come in batches from a
    server-side cursor and are never all held. An empty flagged_numbers comes
    back as None (no JSON to decode for the patients, nearly all, with none).
    """
    flagged = case(
        (func.json_array_length(PATIENT.c.flagged_numbers) == 0, null()),
        else_=PATIENT.c.flagged_numbers,
    ).label("flagged_numbers")
    columns = [flagged if c.name == "flagged_numbers" else c for c in PATIENT_RULE_COLUMNS]
    yield from session.execute(
        select(*columns)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id),
        execution_options={"yield_per": 20_000},
    )


def open_task_patients(session: Session, exclude_wave_id: int | None) -> set[int]:
    q = select(TASK.c.patient_id).where(TASK.c.status.in_(OPEN_TASK_STATUSES))
    if exclude_wave_id is not None:
        q = q.where(or_(TASK.c.wave_id.is_(None), TASK.c.wave_id != exclude_wave_id))
    return {r for (r,) in session.execute(q).all()}


def wave_task_counts_since(session: Session, since: datetime, exclude_wave_id: int) -> dict[int, int]:
    rows = session.execute(
        select(TASK.c.patient_id, func.count())
        .where(
            TASK.c.kind == TaskKind.wave,
            TASK.c.created_at >= since,
            TASK.c.wave_id != exclude_wave_id,
            TASK.c.status != TaskStatus.cancelled,
        )
        .group_by(TASK.c.patient_id)
    ).all()
    return {pid: n for pid, n in rows}


def delete_pending_wave_tasks(session: Session, wave_id: int) -> None:
    session.execute(
        TASK.delete().where(
            TASK.c.wave_id == wave_id,
            TASK.c.status == TaskStatus.pending.value,
            TASK.c.attempts == 0,
        )
    )


def set_plan_notes(session: Session, mailing_id: int, notes: dict[int, str]) -> None:
    """Why planning left each of these recipients out; cleared for the others."""
    table = RECIPIENT
    session.execute(
        update(table)
        .where(table.c.mailing_id == mailing_id, table.c.plan_note.is_not(None))
        .values(plan_note=None)
    )
    if notes:
        session.execute(
            update(table)
            .where(table.c.mailing_id == mailing_id, table.c.patient_id == bindparam("pid"))
            .values(plan_note=bindparam("note")),
            [{"pid": pid, "note": note} for pid, note in notes.items()],
        )


def insert_tasks(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert call tasks (dicts of call_task columns, all with the same keys); returns how many.

    A national wave plans a million tasks. On PostgreSQL (psycopg) they go through
    one binary COPY in the session's transaction, about as fast as PostgreSQL
    writes rows at all; elsewhere, executemany in batches. `rows` is consumed as
    it comes (a generator is never all held). A column a row leaves out gets its
    model default, as an INSERT would give it.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and bind.dialect.driver == "psycopg":
        return _copy_tasks(session, rows)
    batch: list[dict[str, Any]] = []
    n = 0
    for r in rows:
        batch.append(r)
        if len(batch) >= 2000:
            session.execute(insert(TASK), batch)
            n += len(batch)
            batch = []
    if batch:
        session.execute(insert(TASK), batch)
        n += len(batch)
    return n


# binary COPY: psycopg dumps each value by the column's type (a naive datetime is refused,
# as UTCDateTime refuses it on the INSERT path)
_TASK_COPY_TYPES = {
    "wave_id": "int4",
    "patient_id": "int4",
    "kind": "text",
    "status": "text",
    "tier": "text",
    "priority": "int4",
    "planned_day": "date",
    "not_before": "timestamptz",
    "deadline": "timestamptz",
    "assigned_nurse_id": "int4",
    "theme_code": "text",
    "attempts": "int4",
    "claimed_by": "text",
    "lease_until": "timestamptz",
    "created_at": "timestamptz",
    "closed_at": "timestamptz",
    "close_reason": "text",
}
assert set(_TASK_COPY_TYPES) == {c.name for c in TASK.columns} - {"id"}
_TASK_DEFAULTS = {
    c.name: c.default.arg
    for c in TASK.columns
    if c.name != "id" and c.default is not None and c.default.is_scalar and c.default.arg is not None
}


def _copy_tasks(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return 0
    given = tuple(first)
    unknown = set(given) - set(_TASK_COPY_TYPES)
    if unknown:
        raise ValueError(f"insert_tasks: call_task has no column {sorted(unknown)[0]!r}")
    defaults = {c: v for c, v in _TASK_DEFAULTS.items() if c not in first}
    columns = (*given, *defaults)
    extra = tuple(defaults.values())
    get = operator.itemgetter(*given)
    one = len(given) == 1
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    n = 0
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY call_task ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([_TASK_COPY_TYPES[c] for c in columns])
        write = copy.write_row
        for r in itertools.chain((first,), it):
            if len(r) != len(given):
                raise ValueError(f"insert_tasks: every row needs the same keys, {list(given)}")
            write(((get(r),) if one else get(r)) + extra)
            n += 1
    return n


def cancel_open_tasks(
    session: Session,
    *,
    wave_id: int | None = None,
    patient_id: int | None = None,
    now: datetime,
    reason: str,
    only_pending: bool = False,
) -> int:
    statuses = (TaskStatus.pending.value,) if only_pending else OPEN_TASK_STATUSES
    q = update(TASK).where(TASK.c.status.in_(statuses))
    if wave_id is not None:
        q = q.where(TASK.c.wave_id == wave_id)
    if patient_id is not None:
        q = q.where(TASK.c.patient_id == patient_id)
    res = session.execute(
        q.values(status=TaskStatus.cancelled, closed_at=now, close_reason=reason, claimed_by=None)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def task_status_counts(session: Session, wave_id: int) -> dict[str, int]:
    rows = session.execute(
        select(TASK.c.status, func.count()).where(TASK.c.wave_id == wave_id).group_by(TASK.c.status)
    ).all()
    return {s: n for s, n in rows}


# ------------------------------------------------------------------ the dialer's queries

DIALABLE_WAVE = or_(
    TASK.c.wave_id.is_(None),
    TASK.c.wave_id.in_(select(WAVE.c.id).where(WAVE.c.status == WaveStatus.running)),
)


def dialable_page(
    session: Session, until: datetime, after: tuple[datetime, int] | None, limit: int
) -> list[tuple[datetime, int]]:
    """(not_before, id) of pending dialable tasks due before `until`, in that order after `after`.

    Ids only, so a dialer can sweep the due tasks page by page and read in
    full only the ones it does not hold yet.
    """
    q = select(TASK.c.not_before, TASK.c.id).where(
        TASK.c.status == TaskStatus.pending, TASK.c.not_before <= until, DIALABLE_WAVE
    )
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
    "AND not_before <= %(now)s AND (wave_id IS NULL OR wave_id IN "
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
    dialer's queue is not claimed before its time.
    """
    if not task_ids:
        return [], {}
    if session.get_bind().dialect.name == "postgresql":
        return _claim_tasks_pg(session, task_ids, worker, now, lease)
    free = select(TASK.c.id).where(
        TASK.c.id.in_(list(task_ids)),
        TASK.c.status == TaskStatus.pending,
        TASK.c.not_before <= now,
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
    return rows, dial_histories(session, {r.id: _place(r) for r in rows}, now)


def _place(row: Any) -> cal.Place:
    return cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end)


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
    return rows, _histories(attempts, {r.id: _place(r) for r in rows}, now)


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


def attempt_starts(session: Session, task_ids: Sequence[int]) -> dict[int, list[datetime]]:
    """Each task's attempt start times, oldest first."""
    out: dict[int, list[datetime]] = {t: [] for t in task_ids}
    if task_ids:
        for task_id, started_at in session.execute(
            select(ATTEMPT.c.task_id, ATTEMPT.c.started_at)
            .where(one_of(session, ATTEMPT.c.task_id, task_ids))
            .order_by(ATTEMPT.c.task_id, ATTEMPT.c.started_at)
        ).all():
            out[task_id].append(started_at)
    return out


def tasks_with_patients(session: Session, task_ids: Sequence[int]) -> dict[int, Any]:
    """Tasks with their wave's status and their patients' rule data, in one query (hot path)."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(
            TASK.c.id.label("task_id"),
            TASK.c.kind,
            TASK.c.attempts,
            TASK.c.tier.label("task_tier"),
            TASK.c.deadline,
            TASK.c.wave_id,
            WAVE.c.status.label("wave_status"),
            *PATIENT_RULE_COLUMNS,
        )
        .join(PATIENT, PATIENT.c.id == TASK.c.patient_id)
        .outerjoin(WAVE, WAVE.c.id == TASK.c.wave_id)
        .where(one_of(session, TASK.c.id, task_ids))
    ).all()
    return {r.task_id: r for r in rows}


@dataclass(frozen=True, slots=True)
class Release:
    """A task handed back: pending again (maybe later), or closed."""

    task_id: int
    status: TaskStatus = TaskStatus.pending
    not_before: datetime | None = None  # None: unchanged
    reason: str | None = None  # why it closed
    undo_attempt: bool = False  # the claim counted an attempt that was never dialed


_RELEASE = (
    update(TASK)
    .where(TASK.c.id == bindparam("r_id"))
    .values(
        status=bindparam("r_status"),
        not_before=func.coalesce(bindparam("r_not_before", type_=TASK.c.not_before.type), TASK.c.not_before),
        closed_at=bindparam("r_closed_at", type_=TASK.c.closed_at.type),
        close_reason=bindparam("r_reason"),
        attempts=TASK.c.attempts - bindparam("r_undo"),
        claimed_by=None,
        lease_until=None,
    )
)


def release_tasks(session: Session, releases: Sequence[Release], now: datetime | None) -> None:
    """Many releases in one round trip (executemany)."""
    if not releases:
        return
    session.execute(
        _RELEASE,
        [
            {
                "r_id": r.task_id,
                "r_status": r.status.value,
                "r_not_before": r.not_before,
                "r_closed_at": now if r.status in TERMINAL_TASK_STATUSES else None,
                "r_reason": r.reason if r.status in TERMINAL_TASK_STATUSES else None,
                "r_undo": 1 if r.undo_attempt else 0,
            }
            for r in releases
        ],
    )


def release_task(
    session: Session,
    task_id: int,
    *,
    not_before: datetime | None = None,
    status: TaskStatus = TaskStatus.pending,
    now: datetime | None = None,
    reason: str | None = None,
    undo_attempt: bool = False,
) -> None:
    release_tasks(session, [Release(task_id, status, not_before, reason, undo_attempt)], now)


def outcome_rows(session: Session, attempt_ids: Sequence[int]) -> dict[int, Any]:
    """Answered attempts with their task and patient, the patients locked in id order (PostgreSQL)."""
    if not attempt_ids:
        return {}
    rows = session.execute(
        select(
            ATTEMPT.c.id.label("attempt_id"),
            ATTEMPT.c.task_id,
            ATTEMPT.c.number,
            TASK.c.deadline,
            TASK.c.wave_id,
            TASK.c.tier.label("task_tier"),
            TASK.c.theme_code,
            PATIENT.c.last_contact_at,
            *PATIENT_RULE_COLUMNS,
        )
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .join(PATIENT, PATIENT.c.id == ATTEMPT.c.patient_id)
        .where(one_of(session, ATTEMPT.c.id, attempt_ids))
        .order_by(PATIENT.c.id)
        .with_for_update(of=PATIENT)
    ).all()
    return {r.attempt_id: r for r in rows}


_PATIENT_AFTER_OUTCOME = (
    update(PATIENT)
    .where(PATIENT.c.id == bindparam("p_id"))
    .values(
        updated_at=bindparam("p_updated_at"),
        last_contact_at=bindparam("p_last_contact_at"),
        next_contact_on=bindparam("p_next_contact_on"),
        flagged_numbers=bindparam("p_flagged_numbers"),
        status=bindparam("p_status"),
    )
)


def update_patients_after_outcome(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany; each row carries every column an outcome may change (the others as read, locked)."""
    if rows:
        session.execute(_PATIENT_AFTER_OUTCOME, list(rows))


def in_flight_attempts(
    session: Session, worker: str | None = None, lease_expired_at: datetime | None = None
) -> list[Any]:
    """Attempts still in flight: of one worker, or those whose task's lease ran out."""
    q = select(ATTEMPT.c.id, ATTEMPT.c.task_id, ATTEMPT.c.patient_id, ATTEMPT.c.started_at).where(
        ATTEMPT.c.state == AttemptState.in_flight
    )
    if worker is not None:
        q = q.where(ATTEMPT.c.worker == worker)
    if lease_expired_at is not None:
        q = q.join(TASK, TASK.c.id == ATTEMPT.c.task_id).where(TASK.c.lease_until < lease_expired_at)
    return list(session.execute(q).all())


def renew_task_leases(session: Session, task_ids: Sequence[int], until: datetime) -> None:
    if task_ids:
        session.execute(update(TASK).where(one_of(session, TASK.c.id, task_ids)).values(lease_until=until))


def renew_worker_leases(session: Session, worker: str, until: datetime) -> None:
    session.execute(
        update(TASK)
        .where(TASK.c.claimed_by == worker, TASK.c.status == TaskStatus.in_progress)
        .values(lease_until=until)
    )


def expire_due_tasks(session: Session, now: datetime) -> tuple[int, int, set[int]]:
    """Pending tasks past their deadline: expired if never tried, else unreachable.

    Returns the two counts and the patients concerned.
    """
    base = and_(TASK.c.status == TaskStatus.pending, TASK.c.deadline <= now)
    patients = {pid for (pid,) in session.execute(select(TASK.c.patient_id).where(base)).all()}
    if not patients:
        return 0, 0, patients
    a = session.execute(
        update(TASK)
        .where(base, TASK.c.attempts == 0)
        .values(status=TaskStatus.expired, closed_at=now, close_reason="wave window ended before any attempt")
    ).rowcount  # type: ignore[attr-defined]
    b = session.execute(
        update(TASK)
        .where(base, TASK.c.attempts > 0)
        .values(status=TaskStatus.unreachable, closed_at=now, close_reason="wave window ended")
    ).rowcount  # type: ignore[attr-defined]
    return int(a), int(b), patients


def patients_without_future_contact(session: Session, ids: Iterable[int], day: date) -> list[Any]:
    """Of these patients, those with no next contact date from `day` on."""
    out: list[Any] = []
    ids = list(ids)
    for i in range(0, len(ids), 900):
        out.extend(
            session.execute(
                select(*PATIENT_RULE_COLUMNS).where(
                    PATIENT.c.id.in_(ids[i : i + 900]),
                    or_(PATIENT.c.next_contact_on.is_(None), PATIENT.c.next_contact_on < day),
                    PATIENT.c.status.in_([EnrolmentStatus.enrolled, EnrolmentStatus.suspended]),
                )
            ).all()
        )
    return out


def set_next_contact(session: Session, values: dict[int, date]) -> None:
    if values:
        session.execute(
            update(PATIENT).where(PATIENT.c.id == bindparam("pid")).values(next_contact_on=bindparam("day")),
            [{"pid": pid, "day": day} for pid, day in values.items()],
        )


def waves_with_status(session: Session, *statuses: WaveStatus) -> list[Wave]:
    return list(session.execute(select(Wave).where(WAVE.c.status.in_(statuses))).scalars())


def open_task_count(session: Session, wave_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).where(TASK.c.wave_id == wave_id, TASK.c.status.in_(OPEN_TASK_STATUSES))
        ).scalar_one()
    )


def audit(
    session: Session, at: datetime, actor: str, action: str, patient_id: int | None = None, detail: str = ""
) -> None:
    session.add(AuditEvent(at=at, actor=actor, action=action, patient_id=patient_id, detail=detail))
