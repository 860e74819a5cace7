"""Before a dial: whether a patient may be dialed now, and why not.

Pure, like the whole of `campaign.rules`: no clock, no database, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from campaign import calendar as cal
from campaign.policy import Policy, Tier
from campaign.states import EnrolmentStatus, TaskKind

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
