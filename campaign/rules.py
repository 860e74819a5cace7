"""When may a patient be dialed, and what happens after an attempt or an outcome.

Pure functions: same inputs, same answer; no clock, no database, no I/O. The
dialer, the planner and `carecall patient why` all ask these same functions,
so what the explanation says is what the dialer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from campaign import besttime
from campaign import calendar as cal
from campaign.besttime import band_label
from campaign.policy import Policy, Tier
from campaign.states import AttemptResult, EnrolmentStatus, OutcomeCode, TaskKind, TaskStatus

NOON = time(13, 0)  # local time splitting "morning" from "afternoon" attempts


@dataclass(frozen=True, slots=True)
class PatientState:
    """What the rules need to know of a patient (no names, no numbers)."""

    status: EnrolmentStatus
    tier: Tier
    place: cal.Place
    consent: bool = True
    suspended_until: date | None = None
    dialable_numbers: int = 1
    next_contact_on: date | None = None


@dataclass(frozen=True, slots=True)
class DialHistory:
    """The patient's recent dials, as the store sees them."""

    in_call: bool = False
    last_dial_at: datetime | None = None
    dials_on_day: int = 0  # on the local day being asked about


class Reason(StrEnum):
    ok = "ok"
    withdrawn = "withdrawn"
    deceased = "deceased"
    suspended = "suspended"
    no_consent = "no_consent"
    no_number = "no_number"
    in_call = "in_call"
    min_gap = "min_gap"
    daily_cap = "daily_cap"
    holiday = "holiday"
    outside_hours = "outside_hours"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a dial is allowed now; if not, why, and from when it might be."""

    allowed: bool
    reason: Reason
    detail: str
    retry_at: datetime | None = None  # earliest instant the answer may change; None: never


def may_dial(
    patient: PatientState,
    history: DialHistory,
    at: datetime,
    policy: Policy,
    *,
    requested: bool = False,
) -> Decision:
    """Invariants 1 and 2 as one decision, checked in order of permanence.

    `requested`: this is the dial at the time the patient asked for
    (`requested_dial`), which the minimum gap and the daily cap let through.
    """
    if patient.status == EnrolmentStatus.deceased:
        return Decision(False, Reason.deceased, "the patient is deceased")
    if patient.status == EnrolmentStatus.withdrawn:
        return Decision(False, Reason.withdrawn, "the patient left the programme or opted out")
    if not patient.consent:
        return Decision(False, Reason.no_consent, "no consent to be called is recorded")
    if patient.dialable_numbers <= 0:
        return Decision(False, Reason.no_number, "every phone number of the patient is flagged wrong")
    local_day = cal.local_date(at, patient.place)
    if patient.status == EnrolmentStatus.suspended and (
        patient.suspended_until is None or patient.suspended_until >= local_day
    ):
        if patient.suspended_until is None:
            return Decision(False, Reason.suspended, "suspended with no end date")
        resume = cal.next_open(
            cal.at_local(patient.suspended_until + timedelta(days=1), time(0), patient.place.timezone),
            patient.place,
            policy.calling_hours,
        )
        return Decision(
            False,
            Reason.suspended,
            f"suspended until {patient.suspended_until.isoformat()}",
            resume[0] if resume else None,
        )
    if history.in_call:
        return Decision(False, Reason.in_call, "the patient is already in a call", at)
    gap = timedelta(minutes=policy.retry.min_gap_minutes)
    if not requested and history.last_dial_at is not None and at - history.last_dial_at < gap:
        return Decision(
            False,
            Reason.min_gap,
            f"dialed less than {policy.retry.min_gap_minutes} minutes ago",
            history.last_dial_at + gap,
        )
    if history.dials_on_day >= policy.caps.max_attempts_per_day and not requested:
        next_day = _next_day_open(at, patient.place, policy)
        return Decision(
            False,
            Reason.daily_cap,
            f"already dialed {history.dials_on_day} times on {local_day.isoformat()} "
            f"(cap {policy.caps.max_attempts_per_day})",
            next_day,
        )
    if policy.calling_hours.holidays and cal.is_holiday(local_day, patient.place.departement):
        name = cal.holiday_name(local_day, patient.place.departement) or "public holiday"
        after = cal.next_open(at, patient.place, policy.calling_hours)
        return Decision(
            False,
            Reason.holiday,
            f"{local_day.isoformat()} is a holiday ({name})",
            after[0] if after else None,
        )
    window = cal.window_containing(at, patient.place, policy.calling_hours)
    if window is None:
        opens = cal.next_open(at, patient.place, policy.calling_hours)
        local = cal.local_time_of(at, patient.place.timezone)
        windows = ", ".join(str(w) for w in cal.local_windows(local_day, patient.place, policy.calling_hours))
        return Decision(
            False,
            Reason.outside_hours,
            f"{local:%H:%M} local time ({patient.place.timezone}) is outside the calling "
            f"windows of that day ({windows or 'none'})",
            opens[0] if opens else None,
        )
    return Decision(True, Reason.ok, "may be dialed now")


def requested_dial(kind: TaskKind | str, attempt_number: int) -> bool:
    """The dial at the time the patient asked for: the one exception to the gap and the daily cap.

    Only the first dial of a callback task is; its retries are ordinary dials
    (gap, cap, spacing), or a patient who asked for a callback once could be
    dialed again and again within the gap.
    """
    return kind == TaskKind.callback and attempt_number == 1


def _next_day_open(at: datetime, place: cal.Place, policy: Policy) -> datetime | None:
    tomorrow = cal.local_date(at, place) + timedelta(days=1)
    nxt = cal.next_open(cal.at_local(tomorrow, time(0), place.timezone), place, policy.calling_hours)
    return nxt[0] if nxt else None


# ---------------------------------------------------------------- after an attempt


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
    if task.attempts >= policy.retry.max_attempts:
        return RetryDecision(
            TaskStatus.unreachable, None, f"{task.attempts} attempts made (max {policy.retry.max_attempts})"
        )
    zone = patient.place.timezone
    earliest = ended_at + _spacing(result, policy)
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
            looks_until = day + timedelta(days=besttime.HORIZON_DAYS)
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
    chosen = besttime.best_slot(allowed, zone, model, deadline=task.deadline, default=varied.next_at)
    if chosen is None:
        return varied
    at, estimate = chosen
    if at == varied.next_at:
        return RetryDecision(None, at, varied.reason, estimate)
    return RetryDecision(
        None, at, f"retry after {result.value} (best time: {band_label(estimate.band)})", estimate
    )


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


# ---------------------------------------------------------------- after an outcome


@dataclass(frozen=True, slots=True)
class NextContact:
    """What an outcome changes. The caller applies it in one transaction."""

    task_status: TaskStatus | None  # new status of the task; None: stays pending
    next_contact_on: date | None  # patient's next regular contact
    callback_at: datetime | None = None  # a callback task to create, with that nurse
    callback_nurse_id: int | None = None
    retry_at: datetime | None = None  # the same task, on another number
    flag_number: bool = False
    withdraw: bool = False  # opt-out: stop everything now
    message_physician: bool = False
    notes: list[str] = field(default_factory=list)
    suspend: bool = False  # hospitalised: suspended until `suspended_until` (None: no end date)
    suspended_until: date | None = None


def first_calling_day(day: date, patient: PatientState, policy: Policy) -> date:
    """`day`, or the patient's next day with calling hours (no holiday, not a day off)."""
    target = day
    for _ in range(30):
        if cal.local_windows(target, patient.place, policy.calling_hours):
            return target
        target += timedelta(days=1)
    return target


def next_regular_contact(day: date, patient: PatientState, policy: Policy) -> date:
    """Tier cadence from `day`, moved to the patient's next day with calling hours."""
    return first_calling_day(day + timedelta(days=policy.tiers[patient.tier].cadence_days), patient, policy)


def next_contact(
    patient: PatientState,
    outcome: OutcomeCode,
    at: datetime,
    policy: Policy,
    *,
    nurse_id: int | None = None,
    callback_at: datetime | None = None,
    task_deadline: datetime | None = None,
    task_attempts: int = 0,
    until: date | None = None,
) -> NextContact:
    """The outcome → next-contact rules of DESIGN.md.

    `task_attempts`: the attempts the task has had, this one included; a wrong
    number's retry on the other number is one more, never beyond `max_attempts`.
    `until`: hospitalised, the last day of the stay (the patient's local date, not
    before today; None: no end date known).
    """
    today = cal.local_date(at, patient.place)
    regular = next_regular_contact(today, patient, policy)
    if outcome == OutcomeCode.reached:
        return NextContact(TaskStatus.done, regular)
    if outcome == OutcomeCode.escalation:
        return NextContact(TaskStatus.done, regular, message_physician=True)
    if outcome == OutcomeCode.opted_out:
        return NextContact(TaskStatus.done, None, withdraw=True)
    if outcome == OutcomeCode.callback_requested:
        wanted = callback_at or at + timedelta(days=1)
        slot = cal.next_open(max(wanted, at), patient.place, policy.calling_hours)
        when = slot[0] if slot else wanted
        return NextContact(
            TaskStatus.done,
            cal.local_date(when, patient.place),
            callback_at=when,
            callback_nurse_id=nurse_id,
        )
    if outcome == OutcomeCode.hospitalised:
        return _hospitalised(patient, today, until, policy, task_deadline)
    if outcome == OutcomeCode.wrong_number:
        if patient.dialable_numbers <= 1:
            # no number left: no contact can be planned until a new number is imported; the
            # patient is on the supervisor's list of files to fix (`carecall patients to-fix`)
            return NextContact(
                TaskStatus.unreachable,
                None,
                flag_number=True,
                notes=["no valid number left: the patient's file needs a new number"],
            )
        if task_attempts >= policy.retry.max_attempts:
            return NextContact(
                TaskStatus.unreachable,
                patient.next_contact_on,
                flag_number=True,
                notes=[f"{task_attempts} attempts made (max {policy.retry.max_attempts})"],
            )
        earliest = at + timedelta(minutes=policy.retry.min_gap_minutes)
        slot = cal.next_open(earliest, patient.place, policy.calling_hours)
        if slot and (task_deadline is None or slot[0] < task_deadline):
            return NextContact(None, patient.next_contact_on, retry_at=slot[0], flag_number=True)
        return NextContact(
            TaskStatus.unreachable,
            patient.next_contact_on,
            flag_number=True,
            notes=["no calling window left before the wave ends to try the other number"],
        )
    raise ValueError(f"unknown outcome {outcome!r}")


def resume_after(until: date, patient: PatientState, policy: Policy) -> datetime | None:
    """The first instant the patient may be called once a suspension through `until` is over."""
    slot = cal.next_open(
        cal.at_local(until + timedelta(days=1), time(0), patient.place.timezone),
        patient.place,
        policy.calling_hours,
    )
    return slot[0] if slot else None


def _hospitalised(
    patient: PatientState, today: date, until: date | None, policy: Policy, deadline: datetime | None
) -> NextContact:
    """Suspended through `until`; this task is tried again once the stay is over, if its window
    allows. The next contact is the first calling day after the stay: a call soon after
    discharge, not a whole cadence later. The patient's other tasks are left to `may_dial`,
    which puts off a suspended patient's dials (or cancels them when there is no end date)."""
    if until is None:
        return NextContact(
            TaskStatus.cancelled,
            None,
            suspend=True,
            notes=["hospitalised with no end date: no call until the file is updated"],
        )
    if until < today:
        raise ValueError(f"hospitalised until {until.isoformat()}, before today ({today.isoformat()})")
    resume = resume_after(until, patient, policy)
    next_on = (
        cal.local_date(resume, patient.place)
        if resume
        else first_calling_day(until + timedelta(days=1), patient, policy)
    )
    if resume is not None and (deadline is None or resume < deadline):
        return NextContact(None, next_on, retry_at=resume, suspend=True, suspended_until=until)
    return NextContact(
        TaskStatus.expired,
        next_on,
        suspend=True,
        suspended_until=until,
        notes=[f"hospitalised until {until.isoformat()}: the task's window ends first"],
    )
