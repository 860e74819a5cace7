"""After an unanswered attempt: when to try again (spacing, daily cap, varied time of day, best
time to call), or why the task closes.

Pure, like the whole of `campaign.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from campaign import besttime
from campaign import calendar as cal
from campaign.besttime import band_label
from campaign.policy import Policy
from campaign.rules.dial import NOON, PatientState
from campaign.states import AttemptResult, TaskStatus


@dataclass(frozen=True, slots=True)
class TaskState:
    attempts: int  # attempts made, including the one just ended
    deadline: datetime
    attempt_starts: tuple[datetime, ...] = ()  # this task's attempts' start times (UTC)
    # the patient's dials of any task from the day before the attempt on: the daily cap
    # counts them all, not only this task's
    patient_starts: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """After an unanswered attempt: try again at `next_at`, or close the task."""

    close: TaskStatus | None
    next_at: datetime | None
    reason: str
    estimate: besttime.Estimate | None = None  # best time: the estimate that placed the retry


NO_NUMBER_LEFT = "no number in service left: the patient's file needs a new number"


def _spacing(result: AttemptResult, policy: Policy) -> timedelta:
    r = policy.retry
    minutes = {
        AttemptResult.busy: r.busy_minutes,
        AttemptResult.failed: r.failed_minutes,
        AttemptResult.number_not_in_service: r.failed_minutes,  # then another of the patient's numbers
        AttemptResult.machine: r.machine_minutes,
        AttemptResult.no_answer: r.unanswered_minutes,
        AttemptResult.interrupted: r.min_gap_minutes,
        # the patient was there and heard the apology: call again as soon as the gap allows
        AttemptResult.no_nurse: r.min_gap_minutes,
    }.get(result, r.unanswered_minutes)
    return timedelta(minutes=max(minutes, r.min_gap_minutes))


def _is_morning(instant: datetime, zone: str) -> bool:
    return cal.local_time_of(instant, zone).time() < NOON


def after_attempt(
    result: AttemptResult,
    ended_at: datetime,
    task: TaskState,
    patient: PatientState,
    policy: Policy,
    model: besttime.AnswerModel | None = None,
) -> RetryDecision:
    """Retry spacing, attempt cap, varied time of day, inside the wave's window.

    With `model` (best time to call), the retry goes to the slot of highest
    estimated answer probability among those the same spacing, caps and windows
    allow; where no slot beats the varied time of day, that one is kept.
    """
    if patient.dialable_numbers <= 0:
        # every number flagged (one just now, not in service): no call can be placed until a new
        # one comes in (the patient is on `carecall patients to-fix`)
        return RetryDecision(TaskStatus.unreachable, None, NO_NUMBER_LEFT)
    cap = policy.max_attempts(patient.tier)
    if task.attempts >= cap:
        return RetryDecision(TaskStatus.unreachable, None, f"{task.attempts} attempts made (max {cap})")
    zone = patient.place.timezone
    earliest = ended_at + _spacing(result, policy)
    horizon = best_time_horizon(earliest, task.deadline, cap - task.attempts, patient.place)
    prefer_morning: bool | None = None
    if policy.retry.vary_time_of_day and task.attempt_starts:
        mornings = sum(_is_morning(s, zone) for s in task.attempt_starts)
        afternoons = len(task.attempt_starts) - mornings
        if mornings != afternoons:
            prefer_morning = mornings < afternoons
    per_day: dict[date, int] = {}
    for s in set(task.attempt_starts) | set(task.patient_starts):
        d = cal.local_date(s, patient.place)
        per_day[d] = per_day.get(d, 0) + 1
    first_fit: datetime | None = None
    varied: RetryDecision | None = None
    allowed: list[tuple[datetime, datetime]] = []  # the windows a retry may go to (best time only)
    looks_until: date | None = None  # best time looks no further than its horizon
    for start, end in cal.next_windows(earliest, patient.place, policy.calling_hours, horizon_days=90):
        if start >= task.deadline:
            break
        day = cal.local_date(start, patient.place)
        if varied is not None and looks_until is not None and day >= looks_until:
            break
        if per_day.get(day, 0) >= policy.caps.max_attempts_per_day:
            continue
        if end - start < timedelta(minutes=5):
            continue
        allowed.append((start, end))
        if first_fit is None:
            first_fit = start
            looks_until = day + timedelta(days=horizon)
        if varied is None:
            varied = _varied(result, start, end, day, prefer_morning, task, zone)
        if varied is not None and (model is None or not model.informative()):
            return varied
    if varied is None and first_fit is not None:
        varied = RetryDecision(None, first_fit, f"retry after {result.value}")
    if varied is None:
        return RetryDecision(
            TaskStatus.unreachable,
            None,
            f"no calling window left before the wave ends ({task.attempts} attempts made)",
        )
    if model is None or not model.informative():
        return varied
    chosen = besttime.best_slot(
        allowed, zone, model, deadline=task.deadline, default=varied.next_at, horizon_days=horizon
    )
    if chosen is None:
        return varied
    at, estimate = chosen
    if at == varied.next_at:
        return RetryDecision(None, at, varied.reason, estimate)
    return RetryDecision(
        None, at, f"retry after {result.value} (best time: {band_label(estimate.band)})", estimate
    )


def best_time_horizon(earliest: datetime, deadline: datetime, attempts_left: int, place: cal.Place) -> int:
    """How many days a retry may wait for a better hour: a week (every band once), less near the
    wave's end, where each attempt still allowed keeps a day of its own. Waiting a week for a
    Saturday morning with four attempts and five days left used to cost the patient attempts: on
    the 20,000 benchmark 150 reachable high-tier patients closed with the wave, two to five
    attempts made, while the seniors spent its last two days on the other tiers."""
    left = (cal.local_date(deadline, place) - cal.local_date(earliest, place)).days
    return max(1, min(besttime.HORIZON_DAYS, left - attempts_left))


def _varied(
    result: AttemptResult,
    start: datetime,
    end: datetime,
    day: date,
    prefer_morning: bool | None,
    task: TaskState,
    zone: str,
) -> RetryDecision | None:
    """The retry in this window by the varied-time-of-day rule, or None if the window does not fit it."""
    if prefer_morning is None:
        return RetryDecision(None, start, f"retry after {result.value}")
    if prefer_morning:
        if _is_morning(start, zone):
            return RetryDecision(None, start, f"retry after {result.value} (a morning this time)")
        return None
    candidate = max(start, cal.at_local(day, NOON, zone))
    if candidate < end - timedelta(minutes=5) and candidate < task.deadline:
        return RetryDecision(None, candidate, f"retry after {result.value} (an afternoon this time)")
    return None
