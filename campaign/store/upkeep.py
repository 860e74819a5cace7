"""Upkeep: tasks past their window, and the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update
from sqlmodel import Session

from campaign.model import TASK, AuditEvent
from campaign.states import TaskStatus


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


def audit(
    session: Session, at: datetime, actor: str, action: str, patient_id: int | None = None, detail: str = ""
) -> None:
    session.add(AuditEvent(at=at, actor=actor, action=action, patient_id=patient_id, detail=detail))
