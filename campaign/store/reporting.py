"""What the invariant check and the wave report read: streamed, Core rows, few columns.

A national wave has a few hundred thousand attempts: these are read once, in
order, never all held, and never as ORM objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlmodel import Session

from campaign.model import ATTEMPT, NURSE, OUTCOME, PATIENT, RECIPIENT, TASK, THEME, WAVE
from campaign.states import TERMINAL_TASK_STATUSES, OutcomeCode, TaskKind, WaveStatus

_TERMINAL = tuple(s.value for s in TERMINAL_TASK_STATUSES)


def wave_patients(wave_id: int) -> Select[tuple[int]]:
    return select(TASK.c.patient_id).where(TASK.c.wave_id == wave_id)


def _callback_attempt_number() -> ColumnElement[int]:
    """The attempt's rank in its task, for callback tasks only (0 otherwise): the first dial
    of a callback is the one the rules let through the gap and the daily cap."""
    earlier = ATTEMPT.alias("earlier")
    rank = (
        select(func.count())
        .where(
            earlier.c.task_id == ATTEMPT.c.task_id,
            or_(
                earlier.c.started_at < ATTEMPT.c.started_at,
                and_(earlier.c.started_at == ATTEMPT.c.started_at, earlier.c.id <= ATTEMPT.c.id),
            ),
        )
        .scalar_subquery()
    )
    return case((TASK.c.kind == TaskKind.callback.value, rank), else_=0).label("task_attempt")


def invariant_attempt_rows(session: Session, wave_id: int | None, margin: timedelta) -> Iterator[Any]:
    """Every attempt to check, ordered by patient then start, with the patient's place and status.

    With a wave, the wave's patients' attempts from `margin` before its first
    attempt to its last, so an earlier call of another wave or a callback
    still counts against the wave's dials. Rows are plain tuples:
    (id, patient, started, ended, state, result, task kind, task's attempt
    rank (callbacks), wave, outcome id, département, zone, preferred start and
    end, status, consent, suspended until, enrolled on).
    """
    scope: list[ColumnElement[bool]] = []
    if wave_id is not None:
        first, last = session.execute(
            select(func.min(ATTEMPT.c.started_at), func.max(ATTEMPT.c.started_at))
            .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
            .where(TASK.c.wave_id == wave_id)
        ).one()
        if first is None:
            return iter(())
        scope = [
            ATTEMPT.c.patient_id.in_(wave_patients(wave_id)),
            ATTEMPT.c.started_at >= first - margin,
            ATTEMPT.c.started_at <= last,
        ]
    q = (
        select(
            ATTEMPT.c.id,
            ATTEMPT.c.patient_id,
            ATTEMPT.c.started_at,
            ATTEMPT.c.ended_at,
            ATTEMPT.c.state,
            ATTEMPT.c.result,
            TASK.c.kind,
            _callback_attempt_number(),
            TASK.c.wave_id,
            OUTCOME.c.id.label("outcome_id"),
            PATIENT.c.departement,
            PATIENT.c.timezone,
            PATIENT.c.preferred_start,
            PATIENT.c.preferred_end,
            PATIENT.c.status,
            PATIENT.c.consent,
            PATIENT.c.suspended_until,
            PATIENT.c.enrolled_on,
        )
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .join(PATIENT, PATIENT.c.id == ATTEMPT.c.patient_id)
        .outerjoin(OUTCOME, OUTCOME.c.attempt_id == ATTEMPT.c.id)
        .where(*scope)
        .order_by(ATTEMPT.c.patient_id, ATTEMPT.c.started_at, ATTEMPT.c.id)
    )
    return _streamed(session, q)


def opt_out_times(session: Session, wave_id: int | None) -> dict[int, datetime]:
    """Each patient's first opt-out, as recorded by the nurse (of the wave's patients, or all)."""
    scope = [] if wave_id is None else [OUTCOME.c.patient_id.in_(wave_patients(wave_id))]
    q = (
        select(OUTCOME.c.patient_id, func.min(OUTCOME.c.recorded_at))
        .where(OUTCOME.c.code == OutcomeCode.opted_out.value, *scope)
        .group_by(OUTCOME.c.patient_id)
    )
    return {pid: at for pid, at in session.execute(q).all()}


def suspension_times(session: Session, wave_id: int | None) -> dict[int, datetime]:
    """Each patient's latest `hospitalised` outcome: when the suspension they are under now was
    recorded (of the wave's patients, or all)."""
    scope = [] if wave_id is None else [OUTCOME.c.patient_id.in_(wave_patients(wave_id))]
    q = (
        select(OUTCOME.c.patient_id, func.max(OUTCOME.c.recorded_at))
        .where(OUTCOME.c.code == OutcomeCode.hospitalised.value, *scope)
        .group_by(OUTCOME.c.patient_id)
    )
    return {pid: at for pid, at in session.execute(q).all()}


def open_tasks(session: Session, wave_id: int | None, limit: int) -> tuple[int, list[int]]:
    """Tasks not in a terminal state (of the wave, or of every done or cancelled wave): how many,
    and the first `limit` ids."""
    cond: list[ColumnElement[bool]] = [TASK.c.status.not_in(_TERMINAL)]
    if wave_id is not None:
        cond.append(TASK.c.wave_id == wave_id)
    else:
        closed = select(WAVE.c.id).where(
            WAVE.c.status.in_((WaveStatus.done.value, WaveStatus.cancelled.value))
        )
        cond.append(TASK.c.wave_id.in_(closed))
    count = int(session.execute(select(func.count()).select_from(TASK).where(*cond)).scalar_one())
    ids = [
        tid
        for (tid,) in session.execute(select(TASK.c.id).where(*cond).order_by(TASK.c.id).limit(limit)).all()
    ]
    return count, ids


def _streamed(session: Session, q: Select[Any]) -> Iterator[Any]:
    """Core rows (no ORM bookkeeping), fetched by batches: a national wave is never all held."""
    return iter(session.connection().execute(q.execution_options(yield_per=10000)))


def report_tasks(session: Session, wave_id: int) -> Iterator[Any]:
    """(task id, patient, kind, tier, status, patient's référent, the time its first call had been
    planned at when work ahead made it earlier) of every task of the wave."""
    return _streamed(
        session,
        select(
            TASK.c.id,
            TASK.c.patient_id,
            TASK.c.kind,
            TASK.c.tier,
            TASK.c.status,
            PATIENT.c.referent_nurse_id,
            TASK.c.ahead_of,
        )
        .join(PATIENT, PATIENT.c.id == TASK.c.patient_id)
        .where(TASK.c.wave_id == wave_id),
    )


def report_attempts(session: Session, wave_id: int) -> Iterator[Any]:
    """(task, nurse, result, started, answered, ended, zone, outcome code, outcome's nurse, task kind)
    of the wave's attempts, oldest first."""
    return _streamed(
        session,
        select(
            ATTEMPT.c.task_id,
            ATTEMPT.c.nurse_id,
            ATTEMPT.c.result,
            ATTEMPT.c.started_at,
            ATTEMPT.c.answered_at,
            ATTEMPT.c.ended_at,
            PATIENT.c.timezone,
            OUTCOME.c.code.label("outcome_code"),
            OUTCOME.c.nurse_id.label("outcome_nurse_id"),
            TASK.c.kind,
        )
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .join(PATIENT, PATIENT.c.id == ATTEMPT.c.patient_id)
        .outerjoin(OUTCOME, OUTCOME.c.attempt_id == ATTEMPT.c.id)
        .where(TASK.c.wave_id == wave_id)
        .order_by(ATTEMPT.c.started_at, ATTEMPT.c.id),
    )


def nurse_shift_rows(session: Session, nurse_ids: Sequence[int]) -> list[Any]:
    """(id, code, shifts, timezone) of these nurses."""
    if not nurse_ids:
        return []
    return list(
        session.execute(
            select(NURSE.c.id, NURSE.c.code, NURSE.c.shifts, NURSE.c.timezone).where(
                NURSE.c.id.in_(list(nurse_ids))
            )
        ).all()
    )


def next_contact_counts(session: Session, mailing_id: int) -> list[tuple[date | None, int]]:
    """How many of the mailing's recipients have each next contact date."""
    rows = session.execute(
        select(PATIENT.c.next_contact_on, func.count())
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
        .group_by(PATIENT.c.next_contact_on)
    ).all()
    return [(day, int(n)) for day, n in rows]


def recipient_count(session: Session, mailing_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(RECIPIENT).where(RECIPIENT.c.mailing_id == mailing_id)
        ).scalar_one()
    )


def theme_label(session: Session, code: str) -> str | None:
    return session.execute(select(THEME.c.label).where(THEME.c.code == code)).scalar_one_or_none()


def recipient_outcomes(session: Session, mailing_id: int) -> Iterator[Any]:
    """(patient, tier, why planning left them out or None) of the mailing's recipients."""
    return _streamed(
        session,
        select(PATIENT.c.id, PATIENT.c.tier, RECIPIENT.c.plan_note)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
        .order_by(PATIENT.c.id),
    )


def recipient_numbers(session: Session, mailing_id: int) -> Iterator[Any]:
    """(patient, member id, phone, other phone) of the mailing's recipients: for a simulator's
    ground truth, which knows patients by these; never for a log or a report."""
    return _streamed(
        session,
        select(PATIENT.c.id, PATIENT.c.member_id, PATIENT.c.phone, PATIENT.c.phone_alt)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
        .order_by(PATIENT.c.id),
    )
