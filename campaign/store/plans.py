"""Segments, recipients and the writes of a wave's plan; the waves' own rows."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, insert, literal, null, or_, select, update
from sqlmodel import Session

from campaign.model import ATTEMPT, PATIENT, RECIPIENT, TASK, WAVE, Mailing, ThemeRow, Wave
from campaign.states import EnrolmentStatus, TaskKind, TaskStatus, WaveStatus
from campaign.store.base import OPEN_TASK_STATUSES, PATIENT_RULE_COLUMNS

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


def recipients_rows(session: Session, mailing_id: int, note: str | None = None) -> Iterator[Any]:
    """The recipients' rule data (PATIENT_RULE_COLUMNS), streamed; only those planning left out
    with this plan note, if given.

    A national mailing has a million recipients: rows come in batches from a
    server-side cursor and are never all held. An empty flagged_numbers comes
    back as None (no JSON to decode for the patients, nearly all, with none).
    """
    flagged = case(
        (func.json_array_length(PATIENT.c.flagged_numbers) == 0, null()),
        else_=PATIENT.c.flagged_numbers,
    ).label("flagged_numbers")
    columns = [flagged if c.name == "flagged_numbers" else c for c in PATIENT_RULE_COLUMNS]
    q = (
        select(*columns)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
    )
    if note is not None:
        q = q.where(RECIPIENT.c.plan_note == note)
    yield from session.execute(q, execution_options={"yield_per": 20_000})


def open_task_patients(session: Session, exclude_wave_id: int | None) -> set[int]:
    q = select(TASK.c.patient_id).where(TASK.c.status.in_(OPEN_TASK_STATUSES))
    if exclude_wave_id is not None:
        q = q.where(or_(TASK.c.wave_id.is_(None), TASK.c.wave_id != exclude_wave_id))
    return {r for (r,) in session.execute(q).all()}


def wave_task_counts_since(session: Session, since: datetime, exclude_wave_id: int) -> dict[int, int]:
    """Contacts per patient since `since` for the cap per period: wave tasks of other waves, and
    incoming calls that stood in for none (one that did is its wave task's contact, counted once)."""
    rows = session.execute(
        select(TASK.c.patient_id, func.count())
        .where(
            or_(
                and_(TASK.c.kind == TaskKind.wave, TASK.c.wave_id != exclude_wave_id),
                and_(TASK.c.kind == TaskKind.incoming, TASK.c.wave_id.is_(None)),
            ),
            TASK.c.created_at >= since,
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


def clear_plan_notes(session: Session, mailing_id: int, patient_ids: Iterable[int]) -> None:
    """These recipients are no longer left out (a top-up planned them)."""
    ids = list(patient_ids)
    for i in range(0, len(ids), 1_000):
        session.execute(
            update(RECIPIENT)
            .where(RECIPIENT.c.mailing_id == mailing_id, RECIPIENT.c.patient_id.in_(ids[i : i + 1_000]))
            .values(plan_note=None)
        )


def pending_attempts_due(session: Session, wave_id: int, until: datetime) -> list[tuple[str, int, datetime]]:
    """(tier, attempts made, due at) of the wave's pending tasks due before `until`: the calls its
    nurses have to make by then."""
    rows = session.execute(
        select(TASK.c.tier, TASK.c.attempts, TASK.c.not_before).where(
            TASK.c.wave_id == wave_id, TASK.c.status == TaskStatus.pending, TASK.c.not_before < until
        )
    ).all()
    return [(str(t), int(a), nb) for t, a, nb in rows]


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
    "best_band": "int4",
    "answer_p": "float8",
    "ahead_of": "timestamptz",
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


def waves_with_status(session: Session, *statuses: WaveStatus) -> list[Wave]:
    return list(session.execute(select(Wave).where(WAVE.c.status.in_(statuses))).scalars())


def open_task_count(session: Session, wave_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).where(TASK.c.wave_id == wave_id, TASK.c.status.in_(OPEN_TASK_STATUSES))
        ).scalar_one()
    )


def sync_themes(session: Session, themes: Iterable[tuple[str, str, str]]) -> None:
    """(code, label, stored pathologies) of each configured theme, inserted or updated."""
    for code, label, pathologies in themes:
        row = session.get(ThemeRow, code)
        if row is None:
            session.add(ThemeRow(code=code, label=label, pathologies=pathologies))
        else:
            row.label, row.pathologies = label, pathologies


def add_mailing(
    session: Session, theme_code: str, segment: str, sent_on: date, arrives_on: date, now: datetime
) -> Mailing:
    mailing = Mailing(
        theme_code=theme_code, segment=segment, sent_on=sent_on, arrives_on=arrives_on, created_at=now
    )
    session.add(mailing)
    session.flush()
    return mailing


def add_wave(
    session: Session, mailing_id: int, plan_after: datetime, start: date, end: date, deadline: datetime
) -> Wave:
    wave = Wave(
        mailing_id=mailing_id,
        status=WaveStatus.scheduled,
        plan_after=plan_after,
        window_start=start,
        window_end=end,
        deadline=deadline,
    )
    session.add(wave)
    session.flush()
    return wave


def wave_row(session: Session, wave_id: int) -> Wave | None:
    return session.get(Wave, wave_id)


def mailing_row(session: Session, mailing_id: int) -> Mailing | None:
    return session.get(Mailing, mailing_id)


def wave_attempts_between(
    session: Session, wave_id: int, start: datetime, end: datetime
) -> list[tuple[int, str, datetime, datetime]]:
    """(task, tier, started, ended) of the wave's ended first-call and retry attempts that started in
    [start, end), oldest first: what a morning top-up measures the day before's same-day retries on."""
    rows = session.execute(
        select(ATTEMPT.c.task_id, TASK.c.tier, ATTEMPT.c.started_at, ATTEMPT.c.ended_at)
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .where(
            TASK.c.wave_id == wave_id,
            TASK.c.kind == TaskKind.wave,
            ATTEMPT.c.started_at >= start,
            ATTEMPT.c.started_at < end,
            ATTEMPT.c.ended_at.is_not(None),
        )
        .order_by(ATTEMPT.c.started_at, ATTEMPT.c.id)
    ).all()
    return [(int(t), str(tier), st, en) for t, tier, st, en in rows]
