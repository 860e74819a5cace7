"""After an outcome: what the nurse's result changes for the task and the patient's next contact.

Pure, like the whole of `campaign.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from campaign import calendar as cal
from campaign.policy import Policy
from campaign.rules.dial import PatientState
from campaign.states import OutcomeCode, TaskStatus


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
        cap = policy.max_attempts(patient.tier)
        if task_attempts >= cap:
            return NextContact(
                TaskStatus.unreachable,
                patient.next_contact_on,
                flag_number=True,
                notes=[f"{task_attempts} attempts made (max {cap})"],
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
