"""What the supervisor's live board reads, many times a minute: the waves under way, their tasks and
reach per tier, the queue of due tasks, the patients abandoned (answered while no nurse was there).

Aggregates only, in SQL, over indexed columns: a push to twenty boards costs a few GROUP BYs, never
a row per task in Python. Imported by name (`from campaign.store import progress`), like the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from campaign.model import ATTEMPT, MAILING, OUTCOME, PATIENT, RECIPIENT, TASK, WAVE
from campaign.states import AttemptResult, OutcomeCode, TaskKind, TaskStatus, WaveStatus
from campaign.store.dialing import DIALABLE_WAVE

# a patient is reached when a nurse had the conversation the wave is for (as in the wave report)
REACHED = (OutcomeCode.reached.value, OutcomeCode.escalation.value)
LIVE_STATUSES = (WaveStatus.planned.value, WaveStatus.running.value, WaveStatus.paused.value)


@dataclass(frozen=True)
class WaveRow:
    id: int
    mailing_id: int
    theme_code: str
    status: str
    window_start: date
    window_end: date
    launched_at: datetime | None
    closed_at: datetime | None


def board_waves(session: Session, closed_since: datetime) -> list[WaveRow]:
    """The waves a board follows: planned, running or paused, and those closed since `closed_since`
    (so a supervisor sees a wave finish), newest first."""
    q = (
        select(
            WAVE.c.id,
            WAVE.c.mailing_id,
            MAILING.c.theme_code,
            WAVE.c.status,
            WAVE.c.window_start,
            WAVE.c.window_end,
            WAVE.c.launched_at,
            WAVE.c.closed_at,
        )
        .join(MAILING, MAILING.c.id == WAVE.c.mailing_id)
        .where(or_(WAVE.c.status.in_(LIVE_STATUSES), WAVE.c.closed_at >= closed_since))
        .order_by(WAVE.c.id.desc())
    )
    return [WaveRow(*r) for r in session.execute(q).all()]


def task_tallies(session: Session, wave_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], int]]:
    """Per wave, how many of its tasks (every kind: callbacks too) are in each (tier, status)."""
    out: dict[int, dict[tuple[str, str], int]] = {w: {} for w in wave_ids}
    if not wave_ids:
        return out
    q = (
        select(TASK.c.wave_id, TASK.c.tier, TASK.c.status, func.count())
        .where(TASK.c.wave_id.in_(list(wave_ids)))
        .group_by(TASK.c.wave_id, TASK.c.tier, TASK.c.status)
    )
    for wave_id, tier, status, n in session.execute(q).all():
        out[wave_id][(tier, status)] = int(n)
    return out


def wave_patients_by_tier(session: Session, wave_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per wave and tier, the patients in the wave: one wave task each."""
    out: dict[int, dict[str, int]] = {w: {} for w in wave_ids}
    if not wave_ids:
        return out
    q = (
        select(TASK.c.wave_id, TASK.c.tier, func.count())
        .where(TASK.c.wave_id.in_(list(wave_ids)), TASK.c.kind == TaskKind.wave.value)
        .group_by(TASK.c.wave_id, TASK.c.tier)
    )
    for wave_id, tier, n in session.execute(q).all():
        out[wave_id][tier] = int(n)
    return out


def reached_by_tier(session: Session, wave_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per wave and tier, the distinct patients a nurse reached on any task of the wave (callbacks
    included); a patient counts in the tier of their wave task, as in the wave report."""
    out: dict[int, dict[str, int]] = {w: {} for w in wave_ids}
    if not wave_ids:
        return out
    any_task = TASK.alias("any_task")
    wave_task = TASK.alias("wave_task")
    q = (
        select(any_task.c.wave_id, wave_task.c.tier, func.count(OUTCOME.c.patient_id.distinct()))
        .select_from(OUTCOME)
        .join(any_task, any_task.c.id == OUTCOME.c.task_id)
        .join(
            wave_task,
            (wave_task.c.wave_id == any_task.c.wave_id)
            & (wave_task.c.patient_id == OUTCOME.c.patient_id)
            & (wave_task.c.kind == TaskKind.wave.value),
        )
        .where(any_task.c.wave_id.in_(list(wave_ids)), OUTCOME.c.code.in_(REACHED))
        .group_by(any_task.c.wave_id, wave_task.c.tier)
    )
    for wave_id, tier, n in session.execute(q).all():
        out[wave_id][tier] = int(n)
    return out


def queue_depth(session: Session, now: datetime) -> int:
    """Pending tasks the dialer may take now: due, window not over, of a running wave or of none."""
    q = (
        select(func.count())
        .select_from(TASK)
        .where(
            TASK.c.status == TaskStatus.pending.value,
            TASK.c.not_before <= now,
            TASK.c.deadline > now,
            DIALABLE_WAVE,
        )
    )
    return int(session.execute(q).scalar_one())


def abandoned_since(session: Session, since: datetime) -> tuple[int, int]:
    """(attempts, distinct patients) answered by a person while no nurse was on the line, since
    `since`: each heard the apology instead of a nurse. Zero is what the dialer promises."""
    q = select(func.count(), func.count(ATTEMPT.c.patient_id.distinct())).where(
        ATTEMPT.c.result == AttemptResult.no_nurse.value, ATTEMPT.c.started_at >= since
    )
    attempts, patients = session.execute(q).one()
    return int(attempts), int(patients)


def left_out(session: Session, mailing_id: int, limit: int) -> tuple[int, list[Any]]:
    """The mailing's recipients planning left out of the wave, with why: how many, and the first
    `limit` (member id, tier, note) by member id."""
    cond = (RECIPIENT.c.mailing_id == mailing_id, RECIPIENT.c.plan_note.is_not(None))
    count = session.execute(select(func.count()).select_from(RECIPIENT).where(*cond)).scalar_one()
    rows = session.execute(
        select(PATIENT.c.member_id, PATIENT.c.tier, RECIPIENT.c.plan_note)
        .join(PATIENT, PATIENT.c.id == RECIPIENT.c.patient_id)
        .where(*cond)
        .order_by(PATIENT.c.member_id)
        .limit(limit)
    ).all()
    return int(count), list(rows)


def attempts_by_wave(session: Session, wave_ids: Sequence[int]) -> dict[int, int]:
    """Per wave, the calls placed for its tasks so far."""
    out = dict.fromkeys(wave_ids, 0)
    if not wave_ids:
        return out
    q = (
        select(TASK.c.wave_id, func.count())
        .select_from(ATTEMPT)
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .where(TASK.c.wave_id.in_(list(wave_ids)))
        .group_by(TASK.c.wave_id)
    )
    for wave_id, n in session.execute(q).all():
        out[wave_id] = int(n)
    return out
