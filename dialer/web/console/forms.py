"""The outcome form: what the nurse typed, checked, into an outcome or the errors to show her.

Pure: no database, no clock (the caller gives `now`, where the patient lives and who may call them
back). An error is a field and a code, with the values its message needs; the French text is the
template's (prompts/web/console_outcome.html.j2), and the form is shown again with everything she
typed, so a wrong date never costs her the note she wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campaign import calendar as cal
from campaign.policy import CallingHours
from campaign.states import OutcomeCode

FIELDS = (
    "code",
    "callback_date",
    "callback_time",
    "callback_nurse",
    "hospitalised_until",
    "message",
    "note",
    "confirm_opt_out",
)
NOTE_MAX = 2000
MESSAGE_MAX = 2000
CALLBACK_HORIZON_DAYS = 60  # the calendar looks no further for an open slot
SELF = "self"  # callback_nurse: the nurse recording the outcome

_FR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_TIME = re.compile(r"^(\d{1,2})[:hH](\d{2})$")


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str  # what is wrong; the template says it in French
    params: Mapping[str, object] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeChoice:
    """A valid outcome, ready for the nurse's dialer process (`NurseCommands.outcome`)."""

    code: OutcomeCode
    callback_at: datetime | None = None
    callback_nurse_id: int | None = None  # None: the nurse recording it
    note: str = ""
    message: str | None = None  # to the physician (escalation)
    hospitalised_until: date | None = None


@dataclass(frozen=True)
class OutcomeForm:
    """The form as submitted: the values to show again, and either a choice or what stops it."""

    values: Mapping[str, str]
    errors: tuple[FieldError, ...] = ()
    choice: OutcomeChoice | None = None
    confirm_opt_out: bool = False  # opt-out chosen but not yet confirmed: ask her first

    def error(self, name: str) -> FieldError | None:
        return next((e for e in self.errors if e.field == name), None)

    @classmethod
    def blank(cls) -> OutcomeForm:
        return cls({name: "" for name in FIELDS})


def parse_date(text: str) -> date | None:
    """'2026-12-03' (a date input) or '03/12/2026' (typed by hand); None if neither."""
    text = text.strip()
    try:
        if m := _FR_DATE.match(text):
            return date(int(m[3]), int(m[2]), int(m[1]))
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def parse_time(text: str) -> time | None:
    """'10:00', '10h00', '9:30'; seconds from some browsers' time inputs are dropped."""
    text = text.strip()[:5] if text.count(":") == 2 else text.strip()
    m = _TIME.match(text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        return None
    return time(int(m[1]), int(m[2]))


def _local(day: date, at: time, zone: str) -> datetime | None:
    """The instant of that wall-clock time where the patient lives; None if it does not exist there
    (the hour skipped when clocks go forward)."""
    tz = ZoneInfo(zone)
    local = datetime.combine(day, at, tzinfo=tz)
    back = local.astimezone(ZoneInfo("UTC")).astimezone(tz)
    return local if back.replace(tzinfo=None) == local.replace(tzinfo=None) else None


def parse_outcome(
    data: Mapping[str, str],
    *,
    now: datetime,
    place: cal.Place,
    hours: CallingHours,
    qualified: Mapping[int, str],
) -> OutcomeForm:
    """Check the submitted form. `place`: where the patient lives (a callback's date and time, and a
    stay's end, are theirs); `qualified`: the other nurses a callback may be promised for (id → name)."""
    values = {name: str(data.get(name, "")) for name in FIELDS}
    errors: list[FieldError] = []
    note = values["note"].strip()
    if len(note) > NOTE_MAX:
        errors.append(FieldError("note", "too_long", {"max": NOTE_MAX, "length": len(note)}))
    try:
        code = OutcomeCode(values["code"])
    except ValueError:
        return OutcomeForm(values, (FieldError("code", "missing"), *errors))

    choice = OutcomeChoice(code, note=note)
    if code == OutcomeCode.callback_requested:
        choice, more = _callback(values, choice, now, place, hours, qualified)
        errors += more
    elif code == OutcomeCode.hospitalised:
        choice, more = _hospitalised(values, choice, now, place)
        errors += more
    elif code == OutcomeCode.escalation:
        message = values["message"].strip()
        if not message:
            errors.append(FieldError("message", "missing"))
        elif len(message) > MESSAGE_MAX:
            errors.append(FieldError("message", "too_long", {"max": MESSAGE_MAX, "length": len(message)}))
        choice = replace(choice, message=message)
    if errors:
        return OutcomeForm(values, tuple(errors))
    if code == OutcomeCode.opted_out and values["confirm_opt_out"] != "yes":
        return OutcomeForm(values, confirm_opt_out=True)
    return OutcomeForm(values, choice=choice)


def _callback(
    values: Mapping[str, str],
    choice: OutcomeChoice,
    now: datetime,
    place: cal.Place,
    hours: CallingHours,
    qualified: Mapping[int, str],
) -> tuple[OutcomeChoice, list[FieldError]]:
    errors: list[FieldError] = []
    nurse_id: int | None = None
    who = values["callback_nurse"].strip()
    if who not in ("", SELF):
        if not who.isdigit() or int(who) not in qualified:
            errors.append(FieldError("callback_nurse", "not_qualified"))
        else:
            nurse_id = int(who)
    day = parse_date(values["callback_date"])
    at = parse_time(values["callback_time"])
    if day is None:
        errors.append(
            FieldError("callback_date", "missing" if not values["callback_date"].strip() else "invalid")
        )
    if at is None:
        errors.append(
            FieldError("callback_time", "missing" if not values["callback_time"].strip() else "invalid")
        )
    if day is None or at is None:
        return choice, errors
    when = _local(day, at, place.timezone)
    if when is None:
        errors.append(FieldError("callback_time", "nonexistent"))
    elif when <= now:
        errors.append(FieldError("callback_date", "past"))
    elif when > now + timedelta(days=CALLBACK_HORIZON_DAYS):
        errors.append(FieldError("callback_date", "too_far", {"days": CALLBACK_HORIZON_DAYS}))
    else:
        # the patient asked for that time: their usual preferred window does not apply, calling hours do
        anywhere = replace(place, preferred_start=None, preferred_end=None)
        if not cal.is_callable_at(when, anywhere, hours):
            slot = cal.next_open(when, anywhere, hours, CALLBACK_HORIZON_DAYS)
            first = slot[0].astimezone(ZoneInfo(place.timezone)) if slot else None
            errors.append(FieldError("callback_time", "closed", {"first": first}))
    if errors or when is None:
        return choice, errors
    return replace(choice, callback_at=when.astimezone(ZoneInfo("UTC")), callback_nurse_id=nurse_id), errors


def _hospitalised(
    values: Mapping[str, str], choice: OutcomeChoice, now: datetime, place: cal.Place
) -> tuple[OutcomeChoice, list[FieldError]]:
    text = values["hospitalised_until"].strip()
    if not text:  # the end of the stay is not known yet: suspended until the file is updated
        return choice, []
    until = parse_date(text)
    if until is None:
        return choice, [FieldError("hospitalised_until", "invalid")]
    today = cal.local_date(now, place)
    if until < today:
        return choice, [FieldError("hospitalised_until", "past", {"today": today})]
    return replace(choice, hospitalised_until=until), []
