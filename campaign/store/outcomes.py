"""What an outcome writes: the answered attempts with their patients locked, the
outcome rows, the patients' next contact, callbacks and messages to physicians."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from campaign.model import ATTEMPT, NURSE, OUTCOME, PATIENT, TASK, PhysicianMessage
from campaign.policy import CALLBACK_PRIORITY
from campaign.states import AttemptResult, AttemptState, TaskKind, TaskStatus
from campaign.store.base import PATIENT_RULE_COLUMNS, one_of


def outcome_rows(session: Session, attempt_ids: Sequence[int]) -> dict[int, Any]:
    """Answered attempts with their task and patient, the patients locked in id order (PostgreSQL)."""
    if not attempt_ids:
        return {}
    rows = session.execute(
        select(
            ATTEMPT.c.id.label("attempt_id"),
            ATTEMPT.c.task_id,
            ATTEMPT.c.number,
            ATTEMPT.c.started_at,
            TASK.c.deadline,
            TASK.c.attempts.label("task_attempts"),
            TASK.c.kind.label("task_kind"),
            TASK.c.wave_id,
            TASK.c.tier.label("task_tier"),
            TASK.c.theme_code,
            PATIENT.c.last_contact_at,
            PATIENT.c.birth_date,  # the cohort of best time to call (an age band), never shown
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
        suspended_until=bindparam("p_suspended_until"),
    )
)


def update_patients_after_outcome(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany; each row carries every column an outcome may change (the others as read, locked)."""
    if rows:
        session.execute(_PATIENT_AFTER_OUTCOME, list(rows))


def flag_numbers(session: Session, numbers: Sequence[tuple[int, str]], now: datetime) -> None:
    """(patient, number) pairs: those numbers are flagged wrong on those patients' files, so nothing
    dials them again (rare: a number the network says is no one's). The rows are locked before the
    lists are read (PostgreSQL), so a flag another transaction adds meanwhile is kept, not overwritten."""
    if not numbers:
        return
    wanted: dict[int, set[str]] = {}
    for patient_id, number in numbers:
        wanted.setdefault(patient_id, set()).add(number)
    rows = session.execute(
        select(PATIENT.c.id, PATIENT.c.flagged_numbers)
        .where(one_of(session, PATIENT.c.id, sorted(wanted)))
        .order_by(PATIENT.c.id)  # one lock order for every flagger: no deadlock between two
        .with_for_update()
    ).all()
    session.execute(
        update(PATIENT)
        .where(PATIENT.c.id == bindparam("pid"))
        .values(flagged_numbers=bindparam("flagged"), updated_at=bindparam("now")),
        [
            {"pid": pid, "flagged": sorted({*(flagged or ()), *wanted[pid]}), "now": now}
            for pid, flagged in rows
        ],
    )


def complete_answered_attempts(session: Session, attempt_ids: Sequence[int], now: datetime) -> None:
    """The answered calls whose outcome is being stored are over."""
    session.execute(
        update(ATTEMPT)
        .where(one_of(session, ATTEMPT.c.id, attempt_ids))
        .values(ended_at=now, state=AttemptState.completed, result=AttemptResult.answered)
    )


def insert_outcomes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Outcome rows (dicts of outcome columns), one executemany."""
    if rows:
        session.execute(OUTCOME.insert(), list(rows))


def insert_callback_task(
    session: Session, row: Any, at: datetime, deadline: datetime, nurse_id: int | None, now: datetime
) -> int:
    """A callback task for the patient of an outcome row (`outcome_rows`), promised by `nurse_id`."""
    return int(
        session.execute(
            TASK.insert()
            .values(
                wave_id=row.wave_id,
                patient_id=row.id,
                kind=TaskKind.callback,
                status=TaskStatus.pending,
                tier=row.task_tier,
                priority=CALLBACK_PRIORITY,
                not_before=at,
                deadline=deadline,
                assigned_nurse_id=nurse_id,
                theme_code=row.theme_code,
                attempts=0,
                created_at=now,
            )
            .returning(TASK.c.id)
        ).scalar_one()
    )


def escalation_context(session: Session, patient_id: int, nurse_id: int | None) -> tuple[Any, str | None]:
    """What a message to the physician names: the patient's physician, member id and zone; the nurse."""
    patient = session.execute(
        select(PATIENT.c.physician_id, PATIENT.c.member_id, PATIENT.c.timezone).where(
            PATIENT.c.id == patient_id
        )
    ).one()
    nurse_code = None
    if nurse_id is not None:
        nurse_code = session.execute(select(NURSE.c.code).where(NURSE.c.id == nurse_id)).scalar_one_or_none()
    return patient, nurse_code


def add_physician_message(
    session: Session, physician_id: int | None, patient_id: int, kind: str, body: str, now: datetime
) -> None:
    session.add(
        PhysicianMessage(
            physician_id=physician_id, patient_id=patient_id, kind=kind, body=body, created_at=now
        )
    )
