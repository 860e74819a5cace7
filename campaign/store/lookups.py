"""What the explanations and the supervisor's listings read: a patient by member id, the
tasks around them, why planning left them out, who has no number left, a wave's backlog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from campaign.member_ids import canonical_member_id
from campaign.model import ATTEMPT, MAILING, NURSE, OUTCOME, PATIENT, RECIPIENT, TASK, WAVE, Patient
from campaign.states import EnrolmentStatus, OutcomeCode, TaskStatus
from campaign.store.base import PATIENT_RULE_COLUMNS, dialable_numbers


def patient_by_member_id(session: Session, member_id: str) -> Patient | None:
    wanted = canonical_member_id(member_id)
    found = session.execute(select(Patient).where(PATIENT.c.member_id == wanted)).scalars().first()
    if found is None and wanted != member_id:
        # a file imported before ids were normalised keeps them as typed
        found = session.execute(select(Patient).where(PATIENT.c.member_id == member_id)).scalars().first()
    return found


def nurse_code(session: Session, nurse_id: int | None) -> str | None:
    if nurse_id is None:
        return None
    return session.execute(select(NURSE.c.code).where(NURSE.c.id == nurse_id)).scalar_one_or_none()


def recent_tasks(session: Session, patient_id: int, limit: int = 10) -> list[Any]:
    """The patient's latest tasks with their wave's status and plan time, newest first."""
    return list(
        session.execute(
            select(
                TASK.c.id,
                TASK.c.kind,
                TASK.c.status,
                TASK.c.wave_id,
                TASK.c.attempts,
                TASK.c.not_before,
                TASK.c.deadline,
                TASK.c.planned_day,
                TASK.c.best_band,
                TASK.c.answer_p,
                TASK.c.ahead_of,
                WAVE.c.status.label("wave_status"),
                WAVE.c.plan_after,
            )
            .outerjoin(WAVE, WAVE.c.id == TASK.c.wave_id)
            .where(TASK.c.patient_id == patient_id)
            .order_by(TASK.c.id.desc())
            .limit(limit)
        ).all()
    )


def last_attempt_result(session: Session, task_id: int) -> tuple[bool, str | None]:
    """(the task has attempts, the latest one's result)."""
    row = session.execute(
        select(ATTEMPT.c.result)
        .where(ATTEMPT.c.task_id == task_id)
        .order_by(ATTEMPT.c.started_at.desc())
        .limit(1)
    ).first()
    return (False, None) if row is None else (True, row.result)


def recipient_note(session: Session, patient_id: int) -> Any | None:
    """The latest mailing that left the patient out, with why (plan_note, id, theme_code)."""
    return session.execute(
        select(RECIPIENT.c.plan_note, MAILING.c.id, MAILING.c.theme_code)
        .join(MAILING, MAILING.c.id == RECIPIENT.c.mailing_id)
        .where(RECIPIENT.c.patient_id == patient_id, RECIPIENT.c.plan_note.is_not(None))
        .order_by(MAILING.c.id.desc())
        .limit(1)
    ).first()


def patients_without_number(session: Session, mailing_id: int | None = None) -> list[Any]:
    """Enrolled or suspended patients whose every number is flagged wrong (of one mailing's
    recipients, or all), with their rule data and member id, by member id.

    Only patients with a flagged number can be in that state, and they are few:
    the numbers are compared here rather than in JSON SQL that differs by backend.
    """
    q = select(*PATIENT_RULE_COLUMNS, PATIENT.c.member_id).where(
        func.json_array_length(PATIENT.c.flagged_numbers) > 0,
        PATIENT.c.status.in_([EnrolmentStatus.enrolled, EnrolmentStatus.suspended]),
    )
    if mailing_id is not None:
        q = q.where(
            PATIENT.c.id.in_(select(RECIPIENT.c.patient_id).where(RECIPIENT.c.mailing_id == mailing_id))
        )
    return [
        r
        for r in session.execute(q.order_by(PATIENT.c.member_id)).all()
        if not dialable_numbers(r.phone, r.phone_alt, r.flagged_numbers)
    ]


def wrong_number_since(session: Session, patient_ids: Sequence[int]) -> dict[int, datetime]:
    """When each patient's latest wrong-number outcome was recorded."""
    if not patient_ids:
        return {}
    rows = session.execute(
        select(OUTCOME.c.patient_id, func.max(OUTCOME.c.recorded_at))
        .where(OUTCOME.c.code == OutcomeCode.wrong_number, OUTCOME.c.patient_id.in_(list(patient_ids)))
        .group_by(OUTCOME.c.patient_id)
    ).all()
    return {pid: at for pid, at in rows}


def wave_backlog(
    session: Session, wave_id: int, now: datetime, sample: int = 500
) -> tuple[int, datetime | None, list[int]]:
    """A running wave's pending tasks: how many are due now, when the next later one is due,
    and the patients of up to `sample` due ones."""
    pending = (TASK.c.wave_id == wave_id, TASK.c.status == TaskStatus.pending)
    due_now = session.execute(select(func.count()).where(*pending, TASK.c.not_before <= now)).scalar_one()
    nxt = session.execute(
        select(func.min(TASK.c.not_before)).where(*pending, TASK.c.not_before > now)
    ).scalar_one()
    patients = [
        pid
        for (pid,) in session.execute(
            select(TASK.c.patient_id).where(*pending, TASK.c.not_before <= now).limit(sample)
        ).all()
    ]
    return int(due_now), nxt, patients
