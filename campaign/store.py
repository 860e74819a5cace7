"""Every query of the programme's tables lives here.

Functions take an open Session and never commit: `services` opens and closes
the transaction. Hot paths use Core statements and select only the columns they
need, so a 100,000-patient wave does not load 100,000 ORM objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlmodel import Session, col

from campaign import calendar as cal
from campaign.model import (
    AuditEvent,
    CallAttempt,
    CallTask,
    MailingRecipient,
    Nurse,
    Patient,
    Wave,
    pathologies_from_text,
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
    Patient.id,
    Patient.status,
    Patient.tier,
    Patient.departement,
    Patient.timezone,
    Patient.preferred_start,
    Patient.preferred_end,
    Patient.consent,
    Patient.suspended_until,
    Patient.phone,
    Patient.phone_alt,
    Patient.flagged_numbers,
    Patient.next_contact_on,
    Patient.referent_nurse_id,
    Patient.pathologies,
)


def dialable_numbers(phone: str, phone_alt: str | None, flagged: Sequence[str] | None) -> list[str]:
    bad = set(flagged or ())
    return [n for n in (phone, phone_alt) if n and n not in bad]


def patient_state_from_row(row: Any) -> PatientState:
    return PatientState(
        status=EnrolmentStatus(row.status),
        tier=Tier(row.tier),
        place=cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end),
        consent=bool(row.consent),
        suspended_until=row.suspended_until,
        dialable_numbers=len(dialable_numbers(row.phone, row.phone_alt, row.flagged_numbers)),
        next_contact_on=row.next_contact_on,
    )


def patient_rule_row(session: Session, patient_id: int) -> Any:
    return session.execute(select(*PATIENT_RULE_COLUMNS).where(Patient.id == patient_id)).one()


def dial_history(session: Session, patient_id: int, at: datetime, place: cal.Place) -> DialHistory:
    """From the stored attempts, so every dialer process sees the same history."""
    day = cal.local_date(at, place)
    day_start = cal.at_local(day, time(0), place.timezone)
    day_end = cal.at_local(day + timedelta(days=1), time(0), place.timezone)
    since = min(day_start, at - timedelta(days=1))
    rows = session.execute(
        select(CallAttempt.started_at, CallAttempt.state)
        .where(CallAttempt.patient_id == patient_id, CallAttempt.started_at >= since)
    ).all()
    in_call = any(r.state == AttemptState.in_flight for r in rows)
    last = max((r.started_at for r in rows), default=None)
    if last is None:
        last = session.execute(
            select(func.max(CallAttempt.started_at)).where(CallAttempt.patient_id == patient_id)
        ).scalar_one_or_none()
    on_day = sum(1 for r in rows if day_start <= r.started_at < day_end)
    return DialHistory(in_call=in_call, last_dial_at=last, dials_on_day=on_day)


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
        q = q.where(col(Nurse.active).is_(True))
    out = []
    for n in session.exec(q).all():  # type: ignore[call-overload]
        n = n[0] if isinstance(n, tuple) else n
        shifts = tuple(
            (int(s["weekday"]), time.fromisoformat(s["start"]), time.fromisoformat(s["end"]))
            for s in n.shifts
        )
        out.append(
            NurseInfo(
                id=n.id, code=n.code, level=NurseLevel(n.level), skills=frozenset(n.skills),
                shifts=shifts, timezone=n.timezone,
            )
        )
    return out


# ------------------------------------------------------------------ segments and waves


def segment_patient_ids(session: Session, clauses: dict[str, list[str]]) -> list[int]:
    q = select(Patient.id).where(Patient.status.in_([EnrolmentStatus.enrolled, EnrolmentStatus.suspended]))  # type: ignore[attr-defined]
    if pats := clauses.get("pathology"):
        q = q.where(or_(*[col(Patient.pathologies).like(f"%|{p}|%") for p in pats]))
    if tiers := clauses.get("tier"):
        q = q.where(col(Patient.tier).in_(tiers))
    if deps := clauses.get("departement"):
        q = q.where(col(Patient.departement).in_(deps))
    return [r for (r,) in session.execute(q.order_by(Patient.id)).all()]


def recipients_rows(session: Session, mailing_id: int) -> list[Any]:
    return list(
        session.execute(
            select(*PATIENT_RULE_COLUMNS)
            .join(MailingRecipient, col(MailingRecipient.patient_id) == Patient.id)
            .where(MailingRecipient.mailing_id == mailing_id)
        ).all()
    )


def open_task_patients(session: Session, exclude_wave_id: int | None) -> set[int]:
    q = select(CallTask.patient_id).where(col(CallTask.status).in_(OPEN_TASK_STATUSES))
    if exclude_wave_id is not None:
        q = q.where(or_(col(CallTask.wave_id).is_(None), CallTask.wave_id != exclude_wave_id))
    return {r for (r,) in session.execute(q).all()}


def wave_task_counts_since(session: Session, since: datetime, exclude_wave_id: int) -> dict[int, int]:
    rows = session.execute(
        select(CallTask.patient_id, func.count())
        .where(
            CallTask.kind == TaskKind.wave,
            CallTask.created_at >= since,
            CallTask.wave_id != exclude_wave_id,
            CallTask.status != TaskStatus.cancelled,
        )
        .group_by(CallTask.patient_id)
    ).all()
    return {pid: n for pid, n in rows}


def delete_pending_wave_tasks(session: Session, wave_id: int) -> None:
    session.execute(
        CallTask.__table__.delete().where(  # type: ignore[attr-defined]
            CallTask.__table__.c.wave_id == wave_id,  # type: ignore[attr-defined]
            CallTask.__table__.c.status == TaskStatus.pending.value,  # type: ignore[attr-defined]
            CallTask.__table__.c.attempts == 0,  # type: ignore[attr-defined]
        )
    )


def insert_tasks(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    batch: list[dict[str, Any]] = []
    n = 0
    for r in rows:
        batch.append(r)
        if len(batch) >= 2000:
            session.execute(insert(CallTask), batch)
            n += len(batch)
            batch = []
    if batch:
        session.execute(insert(CallTask), batch)
        n += len(batch)
    return n


def cancel_open_tasks(session: Session, *, wave_id: int | None = None, patient_id: int | None = None,
                      now: datetime, reason: str, only_pending: bool = False) -> int:
    statuses = (TaskStatus.pending.value,) if only_pending else OPEN_TASK_STATUSES
    q = update(CallTask).where(col(CallTask.status).in_(statuses))
    if wave_id is not None:
        q = q.where(CallTask.wave_id == wave_id)
    if patient_id is not None:
        q = q.where(CallTask.patient_id == patient_id)
    res = session.execute(
        q.values(status=TaskStatus.cancelled, closed_at=now, close_reason=reason, claimed_by=None)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def task_status_counts(session: Session, wave_id: int) -> dict[str, int]:
    rows = session.execute(
        select(CallTask.status, func.count()).where(CallTask.wave_id == wave_id).group_by(CallTask.status)
    ).all()
    return {s: n for s, n in rows}


# ------------------------------------------------------------------ the dialer's queries

DIALABLE_WAVE = or_(
    col(CallTask.wave_id).is_(None),
    col(CallTask.wave_id).in_(select(Wave.id).where(Wave.status == WaveStatus.running)),
)


def dialable_candidates(session: Session, until: datetime, exclude: set[int] | None = None,
                        limit: int = 50_000) -> list[Any]:
    """Pending tasks of running waves (and callbacks) due before `until`, with the patient's rule data."""
    q = (
        select(
            CallTask.id.label("task_id"),  # type: ignore[union-attr]
            CallTask.kind,
            CallTask.tier.label("task_tier"),  # type: ignore[attr-defined]
            CallTask.priority,
            CallTask.not_before,
            CallTask.deadline,
            CallTask.assigned_nurse_id,
            CallTask.theme_code,
            CallTask.wave_id,
            CallTask.attempts,
            *PATIENT_RULE_COLUMNS,
        )
        .join(Patient, col(Patient.id) == CallTask.patient_id)
        .where(CallTask.status == TaskStatus.pending, CallTask.not_before <= until, DIALABLE_WAVE)
        .order_by(CallTask.not_before)
        .limit(limit)
    )
    rows = session.execute(q).all()
    if exclude:
        rows = [r for r in rows if r.task_id not in exclude]
    return rows


def claim_task(session: Session, task_id: int, worker: str, now: datetime, lease: timedelta) -> bool:
    """Atomic: only one worker turns a pending task of a running wave into in_progress."""
    res = session.execute(
        update(CallTask)
        .where(CallTask.id == task_id, CallTask.status == TaskStatus.pending, DIALABLE_WAVE)
        .values(
            status=TaskStatus.in_progress,
            claimed_by=worker,
            lease_until=now + lease,
            attempts=CallTask.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def insert_attempt(session: Session, **values: Any) -> int:
    res = session.execute(insert(CallAttempt).values(**values).returning(CallAttempt.id))  # type: ignore[arg-type]
    return int(res.scalar_one())


def attempt_starts(session: Session, task_id: int) -> list[datetime]:
    return [
        r for (r,) in session.execute(
            select(CallAttempt.started_at).where(CallAttempt.task_id == task_id).order_by(CallAttempt.started_at)
        ).all()
    ]


def release_task(session: Session, task_id: int, *, not_before: datetime | None = None,
                 status: TaskStatus = TaskStatus.pending, now: datetime | None = None,
                 reason: str | None = None, undo_attempt: bool = False) -> None:
    values: dict[str, Any] = {"status": status, "claimed_by": None, "lease_until": None}
    if not_before is not None:
        values["not_before"] = not_before
    if status in TERMINAL_TASK_STATUSES:
        values["closed_at"] = now
        values["close_reason"] = reason
    if undo_attempt:
        values["attempts"] = CallTask.attempts - 1
    session.execute(update(CallTask).where(CallTask.id == task_id).values(**values))


def in_flight_attempts(session: Session, worker: str | None = None) -> list[Any]:
    q = select(CallAttempt.id, CallAttempt.task_id, CallAttempt.patient_id, CallAttempt.started_at).where(
        CallAttempt.state == AttemptState.in_flight
    )
    if worker is not None:
        q = q.where(CallAttempt.worker == worker)
    return list(session.execute(q).all())


def expire_due_tasks(session: Session, now: datetime) -> tuple[int, int]:
    """Pending tasks past their deadline: expired if never tried, else unreachable."""
    base = and_(CallTask.status == TaskStatus.pending, CallTask.deadline <= now)
    a = session.execute(
        update(CallTask).where(base, CallTask.attempts == 0).values(
            status=TaskStatus.expired, closed_at=now, close_reason="wave window ended before any attempt"
        )
    ).rowcount  # type: ignore[attr-defined]
    b = session.execute(
        update(CallTask).where(base, CallTask.attempts > 0).values(
            status=TaskStatus.unreachable, closed_at=now, close_reason="wave window ended"
        )
    ).rowcount  # type: ignore[attr-defined]
    return int(a), int(b)


def waves_with_status(session: Session, *statuses: WaveStatus) -> list[Wave]:
    return list(session.exec(select(Wave).where(col(Wave.status).in_(statuses))).scalars())  # type: ignore[call-overload]


def open_task_count(session: Session, wave_id: int) -> int:
    return int(session.execute(
        select(func.count()).where(CallTask.wave_id == wave_id, col(CallTask.status).in_(OPEN_TASK_STATUSES))
    ).scalar_one())


def audit(session: Session, at: datetime, actor: str, action: str, patient_id: int | None = None,
          detail: str = "") -> None:
    session.add(AuditEvent(at=at, actor=actor, action=action, patient_id=patient_id, detail=detail))


def pathologies(row: Any) -> list[str]:
    return pathologies_from_text(row.pathologies)


def date_or_none(value: Any) -> date | None:
    return value if isinstance(value, date) else None
