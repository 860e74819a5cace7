"""What a call the patient placed writes: the incoming task and its answered attempt, the
callback request the inbound line leaves, and the open tasks an incoming outcome settles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from campaign.model import ATTEMPT, PATIENT, TASK
from campaign.states import AttemptResult, AttemptState, TaskKind, TaskStatus
from campaign.store.base import OPEN_TASK_STATUSES


def lock_patient(session: Session, patient_id: int) -> Any:
    """(id, tier, phone, phone_alt) of the patient, row locked (PostgreSQL) as an outcome locks it."""
    return session.execute(
        select(PATIENT.c.id, PATIENT.c.tier, PATIENT.c.phone, PATIENT.c.phone_alt)
        .where(PATIENT.c.id == patient_id)
        .with_for_update()
    ).one_or_none()


def pending_wave_task(session: Session, patient_id: int, theme_code: str | None) -> Any:
    """The patient's pending wave task (of that theme, if one is given) an incoming call stands in
    for: (wave_id, theme_code, deadline); the one whose window ends first; None if none."""
    q = select(TASK.c.wave_id, TASK.c.theme_code, TASK.c.deadline).where(
        TASK.c.patient_id == patient_id,
        TASK.c.kind == TaskKind.wave.value,
        TASK.c.status == TaskStatus.pending.value,
    )
    if theme_code is not None:
        q = q.where(TASK.c.theme_code == theme_code)
    return session.execute(q.order_by(TASK.c.deadline, TASK.c.id).limit(1)).one_or_none()


def insert_incoming(
    session: Session,
    *,
    patient_id: int,
    nurse_id: int,
    tier: str,
    number: str,
    wave_id: int | None,
    theme_code: str | None,
    deadline: datetime,
    worker: str,
    lease_until: datetime,
    now: datetime,
) -> tuple[int, int]:
    """The incoming task, in progress under `worker`'s lease, and its attempt, answered by the nurse
    now and in flight until her outcome (the unique in-flight index refuses it if the patient is on
    another call). Returns (task id, attempt id)."""
    task_id = session.execute(
        TASK.insert()
        .values(
            wave_id=wave_id,
            patient_id=patient_id,
            kind=TaskKind.incoming.value,
            status=TaskStatus.in_progress.value,
            tier=tier,
            priority=0,
            not_before=now,
            deadline=deadline,
            assigned_nurse_id=nurse_id,
            theme_code=theme_code,
            attempts=1,
            claimed_by=worker,
            lease_until=lease_until,
            created_at=now,
        )
        .returning(TASK.c.id)
    ).scalar_one()
    attempt_id = session.execute(
        ATTEMPT.insert()
        .values(
            task_id=task_id,
            patient_id=patient_id,
            nurse_id=nurse_id,
            number=number,
            state=AttemptState.in_flight.value,
            result=AttemptResult.answered.value,
            started_at=now,
            answered_at=now,
            worker=worker,
            voicemail_left=False,
        )
        .returning(ATTEMPT.c.id)
    ).scalar_one()
    return int(task_id), int(attempt_id)


def insert_request_callback(
    session: Session,
    patient_id: int,
    tier: str,
    at: datetime,
    deadline: datetime,
    priority: int,
    now: datetime,
) -> int:
    """A pending callback request (TaskKind.inbound), due `at`, for any qualified nurse."""
    return int(
        session.execute(
            TASK.insert()
            .values(
                wave_id=None,
                patient_id=patient_id,
                kind=TaskKind.inbound.value,
                status=TaskStatus.pending.value,
                tier=tier,
                priority=priority,
                not_before=at,
                deadline=deadline,
                theme_code=None,
                attempts=0,
                created_at=now,
            )
            .returning(TASK.c.id)
        ).scalar_one()
    )


def pending_request(session: Session, patient_id: int) -> Any:
    """(id, not_before, priority) of the patient's pending callback request, if any."""
    return session.execute(
        select(TASK.c.id, TASK.c.not_before, TASK.c.priority)
        .where(
            TASK.c.patient_id == patient_id,
            TASK.c.kind == TaskKind.inbound.value,
            TASK.c.status == TaskStatus.pending.value,
        )
        .order_by(TASK.c.not_before, TASK.c.id)
        .limit(1)
    ).one_or_none()


def bring_forward(session: Session, task_id: int, not_before: datetime, priority: int) -> None:
    session.execute(
        update(TASK)
        .where(TASK.c.id == task_id, TASK.c.status == TaskStatus.pending.value)
        .values(not_before=not_before, priority=priority)
    )


def patient_open_tasks(session: Session, patient_id: int) -> list[Any]:
    """(id, kind, status, theme_code) of the patient's open tasks, by id."""
    return list(
        session.execute(
            select(TASK.c.id, TASK.c.kind, TASK.c.status, TASK.c.theme_code)
            .where(TASK.c.patient_id == patient_id, TASK.c.status.in_(OPEN_TASK_STATUSES))
            .order_by(TASK.c.id)
        ).all()
    )
