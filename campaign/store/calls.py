"""After the dial: attempt results, what a retry decision reads, releases of tasks,
leases, and the reconciliation of calls a crashed dialer left in flight."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlmodel import Session

from campaign.model import ATTEMPT, PATIENT, TASK, WAVE
from campaign.states import TERMINAL_TASK_STATUSES, AttemptResult, AttemptState, TaskKind, TaskStatus
from campaign.store.base import PATIENT_RULE_COLUMNS, one_of


def attempt_starts(
    session: Session, task_ids: Sequence[int], patient_ids: Iterable[int], since: datetime
) -> tuple[dict[int, list[datetime]], dict[int, list[datetime]]]:
    """Start times, oldest first, of each task's attempts and of each patient's attempts since
    `since` whatever the task: what a retry decision reads (time of day, daily cap), in one query."""
    patients = sorted(set(patient_ids))
    by_task: dict[int, list[datetime]] = {t: [] for t in task_ids}
    by_patient: dict[int, list[datetime]] = {p: [] for p in patients}
    if not task_ids and not patients:
        return by_task, by_patient
    rows = session.execute(
        select(ATTEMPT.c.task_id, ATTEMPT.c.patient_id, ATTEMPT.c.started_at)
        .where(
            or_(
                one_of(session, ATTEMPT.c.task_id, task_ids),
                and_(one_of(session, ATTEMPT.c.patient_id, patients), ATTEMPT.c.started_at >= since),
            )
        )
        .order_by(ATTEMPT.c.started_at)
    ).all()
    for task_id, patient_id, started_at in rows:
        if task_id in by_task:
            by_task[task_id].append(started_at)
        if patient_id in by_patient and started_at >= since:
            by_patient[patient_id].append(started_at)
    return by_task, by_patient


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
            PATIENT.c.birth_date,  # the cohort of best time to call (an age band), never shown
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
    # best time to call: the band the task is placed in and its estimate (None: cleared)
    best_band: int | None = None
    answer_p: float | None = None


_RELEASE = (
    update(TASK)
    .where(TASK.c.id == bindparam("r_id"))
    .values(
        status=bindparam("r_status"),
        not_before=func.coalesce(bindparam("r_not_before", type_=TASK.c.not_before.type), TASK.c.not_before),
        closed_at=bindparam("r_closed_at", type_=TASK.c.closed_at.type),
        close_reason=bindparam("r_reason"),
        attempts=TASK.c.attempts - bindparam("r_undo"),
        best_band=bindparam("r_band", type_=TASK.c.best_band.type),
        answer_p=bindparam("r_p", type_=TASK.c.answer_p.type),
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
                "r_band": r.best_band,
                "r_p": r.answer_p,
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


def mark_attempts_answered(session: Session, attempt_ids: Sequence[int], now: datetime) -> list[Any]:
    """Answered, of these attempts, those still in flight; returns their (id, task_id)."""
    return list(
        session.execute(
            update(ATTEMPT)
            .where(one_of(session, ATTEMPT.c.id, attempt_ids), ATTEMPT.c.state == AttemptState.in_flight)
            .values(result=AttemptResult.answered, answered_at=now)
            .returning(ATTEMPT.c.id, ATTEMPT.c.task_id)
        ).all()
    )


def complete_attempts(
    session: Session, attempt_ids: Sequence[int], result: AttemptResult, voicemail_left: bool, now: datetime
) -> list[Any]:
    """Ended with `result`, of these attempts, those still in flight; returns their
    (id, task_id, patient_id, started_at, number).

    An attempt no longer in flight was reconciled meanwhile: its result is not
    overwritten.
    """
    return list(
        session.execute(
            update(ATTEMPT)
            .where(one_of(session, ATTEMPT.c.id, attempt_ids), ATTEMPT.c.state == AttemptState.in_flight)
            .values(result=result, ended_at=now, state=AttemptState.completed, voicemail_left=voicemail_left)
            .returning(
                ATTEMPT.c.id, ATTEMPT.c.task_id, ATTEMPT.c.patient_id, ATTEMPT.c.started_at, ATTEMPT.c.number
            )
        ).all()
    )


def task_statuses(session: Session, task_ids: Sequence[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    rows = session.execute(select(TASK.c.id, TASK.c.status).where(one_of(session, TASK.c.id, task_ids)))
    return {int(i): status for i, status in rows.all()}


def free_undialed_claims(session: Session, now: datetime, worker: str | None, expired_leases: bool) -> None:
    """Tasks claimed with no attempt in flight go back to pending (of `worker`, or whose lease ran out).

    Claim and attempt share a transaction, so this finds only tasks edited by hand. An incoming
    task is never put back: pending, it would be dialed.
    """
    session.execute(
        update(TASK)
        .where(
            TASK.c.status == TaskStatus.in_progress,
            TASK.c.kind != TaskKind.incoming.value,
            TASK.c.id.not_in(select(ATTEMPT.c.task_id).where(ATTEMPT.c.state == AttemptState.in_flight)),
            *([TASK.c.claimed_by == worker] if worker else []),
            *([TASK.c.lease_until < now] if expired_leases else []),
        )
        .values(status=TaskStatus.pending, claimed_by=None, lease_until=None)
    )


def postpone_pending(session: Session, task_id: int, not_before: datetime) -> None:
    """A pending task waits until `not_before`; a task claimed or closed meanwhile is left alone."""
    session.execute(
        update(TASK)
        .where(TASK.c.id == task_id, TASK.c.status == TaskStatus.pending)
        .values(not_before=not_before)
    )
