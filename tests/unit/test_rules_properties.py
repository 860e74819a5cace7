"""The scheduling rules stated as properties (hypothesis).

Each test states one rule of DESIGN.md ("when is a patient called") over
random patients, places, instants and histories, and checks it against
facts computed here, independently of the code under test where that is
practical: holidays come straight from the `holidays` library with the
subdivisions of DESIGN.md, calling windows are compared in the patient's
wall-clock time, spacing is read from the policy.

Instants cover 2026-2028 with extra weight on the daylight-saving change
days of Paris, on the days either side, on regional and overseas holidays,
and on the minutes around window edges.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from facts import WHERE
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from campaign import calendar as cal
from campaign.policy import Tier, load_policy
from campaign.rules import (
    NOON,
    DialHistory,
    NextContact,
    PatientState,
    Reason,
    TaskState,
    after_attempt,
    may_dial,
    next_contact,
    requested_dial,
)
from campaign.states import AttemptResult, EnrolmentStatus, OutcomeCode, TaskKind, TaskStatus

policy = load_policy()
HOURS = policy.calling_hours
GAP = timedelta(minutes=policy.retry.min_gap_minutes)
DAY_CAP = policy.caps.max_attempts_per_day
# attempts a task may make, per tier, read from the file itself: the tier's own, else the retry's
_PROGRAMME = tomllib.loads((Path(__file__).parents[2] / "config" / "programme.toml").read_text("utf-8"))
CAP = {
    tier: int(_PROGRAMME["tiers"][tier.value].get("max_attempts", _PROGRAMME["retry"]["max_attempts"]))
    for tier in Tier
}
MAX_ATTEMPTS = max(CAP.values())  # the deepest tier's
MIN_CAP = min(CAP.values())  # below it, no tier's task closes for its attempts

SETTINGS = settings(
    deadline=None,
    max_examples=250,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# -------------------------------------------------------------- independent facts

DEPS = tuple(WHERE)


@cache
def _holidays(subdiv: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_lib.country_holidays("FR", subdiv=subdiv, years=year))


def holiday_where(day: date, dep: str) -> bool:
    return day in _holidays(WHERE[dep][1], day.year)


def local(instant: datetime, dep: str) -> datetime:
    return instant.astimezone(ZoneInfo(WHERE[dep][0]))


def windows_on(day: date, place: cal.Place) -> list[tuple[time, time]]:
    """The patient's windows of a local day, from DESIGN.md's rule, written apart from campaign.calendar.

    Calling hours of that weekday from the policy; none on a holiday where the
    patient lives; the patient's preferred window wins where it lies inside
    calling hours (each window clipped to it), and is ignored when it lies
    wholly outside them or is not a window at all.
    """
    if holiday_where(day, place.departement):
        return []
    base = [(w.start, w.end) for w in HOURS.by_weekday[day.weekday()]]
    start, end = place.preferred_start, place.preferred_end
    if start is None or end is None or end <= start:
        return base
    clipped = [(max(a, start), min(b, end)) for a, b in base if max(a, start) < min(b, end)]
    return clipped or base


def utc_windows_on(day: date, place: cal.Place) -> list[tuple[datetime, datetime]]:
    zone = ZoneInfo(WHERE[place.departement][0])
    return [
        (datetime.combine(day, a, zone).astimezone(UTC), datetime.combine(day, b, zone).astimezone(UTC))
        for a, b in windows_on(day, place)
    ]


def wall_clock_callable(instant: datetime, place: cal.Place) -> bool:
    """Inside one of that local day's windows, judged on the patient's wall clock."""
    here = local(instant, place.departement)
    t = here.time().replace(tzinfo=None)
    return any(a <= t < b for a, b in windows_on(here.date(), place))


def last_sunday(year: int, month: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() + 1) % 7)


# bounds of hypothesis' st.datetimes are naive by its API; the drawn instants are UTC
FIRST, LAST = datetime(2026, 1, 1), datetime(2028, 12, 31, 23, 59)  # noqa: DTZ001
DST_DAYS = [
    last_sunday(y, m) + timedelta(days=k) for y in (2026, 2027, 2028) for m in (3, 10) for k in (-1, 0, 1, 2)
]
SPECIAL_DAYS = [
    *DST_DAYS,
    date(2026, 4, 3),
    date(2027, 3, 26),
    date(2028, 4, 14),  # Good Friday (Alsace-Moselle)
    date(2026, 12, 26),
    date(2028, 12, 26),  # St Stephen (Alsace-Moselle)
    date(2027, 12, 20),
    date(2028, 12, 20),  # abolition, Réunion
    date(2026, 5, 22),
    date(2027, 5, 22),  # abolition, Martinique
    date(2026, 5, 27),
    date(2026, 6, 10),
    date(2026, 4, 27),  # Guadeloupe, Guyane, Mayotte
    date(2026, 12, 24),
    date(2026, 12, 25),
    date(2026, 7, 14),
    date(2027, 1, 1),
]
EDGES = [h * 60 + m for h, m in ((9, 0), (12, 0), (12, 30), (13, 0), (13, 30), (18, 0), (19, 0))]

# -------------------------------------------------------------- strategies

days = st.one_of(st.dates(date(2026, 1, 1), date(2028, 12, 31)), st.sampled_from(SPECIAL_DAYS))
minutes_of_day = st.one_of(
    st.integers(0, 24 * 60 - 1),
    st.integers(8 * 60, 20 * 60),
    st.builds(lambda e, k: e + k, st.sampled_from(EDGES), st.integers(-2, 2)),
)
quarter_hours = st.builds(lambda q: time(q // 4, (q % 4) * 15), st.integers(6 * 4, 22 * 4 - 1))
preferences = st.one_of(st.none(), st.tuples(quarter_hours, quarter_hours))
# not the answered result: after_attempt is for attempts that did not reach anyone
unanswered = st.sampled_from(
    [
        AttemptResult.no_answer,
        AttemptResult.busy,
        AttemptResult.failed,
        AttemptResult.machine,
        AttemptResult.interrupted,
    ]
)


def at_local_minute(day: date, minute: int, dep: str) -> datetime:
    naive = datetime.combine(day, time(0)) + timedelta(minutes=minute)
    return naive.replace(tzinfo=ZoneInfo(WHERE[dep][0])).astimezone(UTC)


@st.composite
def places(draw: st.DrawFn) -> cal.Place:
    dep = draw(st.sampled_from(DEPS))
    pref = draw(preferences)
    return cal.Place(dep, WHERE[dep][0], *(pref or (None, None)))


@st.composite
def instants_for(draw: st.DrawFn, place: cal.Place) -> datetime:
    """Any instant 2026-2028; often a local wall-clock time near a window edge or on a special day."""
    if draw(st.booleans()):
        return draw(st.datetimes(FIRST, LAST, timezones=st.just(UTC)))
    return at_local_minute(draw(days), draw(minutes_of_day), place.departement)


@st.composite
def callable_instants(draw: st.DrawFn, place: cal.Place) -> datetime:
    """An instant inside one of the patient's windows (the next window after a random instant)."""
    slot = cal.next_open(draw(instants_for(place)), place, HOURS)
    assert slot is not None
    start, end = slot
    return start + (end - start) * draw(st.floats(0, 0.999))


@st.composite
def patient_states(draw: st.DrawFn, place: cal.Place, around: date) -> PatientState:
    status = draw(st.sampled_from([EnrolmentStatus.enrolled] * 4 + list(EnrolmentStatus)))
    # the suspension ends around the day asked about; -1 and 0 are the edge (over / not yet over)
    offset = draw(st.one_of(st.none(), st.sampled_from([-1, 0]), st.integers(-6, 6)))
    suspended_until = None if offset is None else around + timedelta(days=offset)
    return PatientState(
        status=status,
        tier=draw(st.sampled_from(Tier)),
        place=place,
        consent=draw(st.sampled_from([True] * 9 + [False])),
        suspended_until=suspended_until,
        dialable_numbers=draw(st.sampled_from([0, 1, 1, 1, 1, 2, 3])),
        next_contact_on=draw(st.one_of(st.none(), st.just(around))),
    )


@st.composite
def dial_cases(draw: st.DrawFn) -> tuple[PatientState, DialHistory, datetime, bool]:
    place = draw(places())
    at = draw(st.one_of(instants_for(place), callable_instants(place)))
    patient = draw(patient_states(place, local(at, place.departement).date()))
    last = draw(st.one_of(st.none(), st.integers(0, 600).map(lambda m: at - timedelta(minutes=m))))
    history = DialHistory(
        in_call=draw(st.sampled_from([False, False, False, True])),
        last_dial_at=last,
        dials_on_day=draw(st.integers(0, DAY_CAP + 1)),
    )
    return patient, history, at, draw(st.booleans())


def enrolled(place: cal.Place, numbers: int = 1, tier: Tier = Tier.medium) -> PatientState:
    return PatientState(EnrolmentStatus.enrolled, tier, place, dialable_numbers=numbers)


# -------------------------------------------------------------- invariant 2


def may_be_called(p: PatientState, day: date) -> bool:
    """Who may be called at all on that local day (DESIGN.md: withdrew, died, suspended)."""
    if p.status == EnrolmentStatus.enrolled:
        status_ok = True
    elif p.status == EnrolmentStatus.suspended:
        status_ok = p.suspended_until is not None and p.suspended_until < day
    else:
        status_ok = False
    return status_ok and p.consent and p.dialable_numbers > 0


@settings(SETTINGS, max_examples=500)
@given(dial_cases())
def test_may_dial_allows_exactly_the_callable(case: tuple[PatientState, DialHistory, datetime, bool]) -> None:
    """Invariant 2 (and 1): an allowed dial is in the window, not on a holiday, to a callable patient.

    Stated both ways: `allowed` if and only if every condition holds, so the
    rules neither call someone they must not nor refuse someone for nothing.
    A broken `may_dial` that checked Paris time instead of the patient's
    (`at.astimezone(ZoneInfo("Europe/Paris"))`) would allow 03:00 calls to
    Martinique and fail here within a few examples; one that forgot the
    Alsace-Moselle subdivision would allow calls to Metz on Good Friday.
    """
    patient, history, at, callback = case
    here = local(at, patient.place.departement)
    decision = may_dial(patient, history, at, policy, requested=callback)

    conditions = {
        "patient": may_be_called(patient, here.date()),
        "not_holiday": not holiday_where(here.date(), patient.place.departement),
        "in_window": wall_clock_callable(at, patient.place),
        "not_in_call": not history.in_call,
        "gap": callback or history.last_dial_at is None or at - history.last_dial_at >= GAP,
        "day_cap": callback or history.dials_on_day < DAY_CAP,
    }
    failing = [k for k, ok in conditions.items() if not ok]
    event("allowed" if not failing else f"first failing: {failing[0]}")
    assert decision.allowed == (not failing), (decision, failing)
    if not conditions["not_holiday"] and failing == ["not_holiday", "in_window"]:
        # only the holiday stands in the way: the supervisor is told which holiday, and when
        # the rules allow a call again, not merely that it is "outside the calling windows"
        assert decision.reason == Reason.holiday, decision
    if decision.allowed:
        assert decision.reason == Reason.ok
        assert cal.is_callable_at(at, patient.place, HOURS)
    else:
        assert decision.reason != Reason.ok
        assert decision.detail


@settings(SETTINGS, max_examples=500)
@given(dial_cases(), st.floats(0, 1, exclude_max=True))
def test_refusals_are_honest_about_when_things_change(
    case: tuple[PatientState, DialHistory, datetime, bool], fraction: float
) -> None:
    """A refusal's retry_at is the earliest instant the time-based reason goes away.

    At retry_at the same reason no longer holds, and (for holiday and
    outside_hours) nothing between now and retry_at was callable. A broken
    `may_dial` that answered "outside hours, try again tomorrow 09:00 Paris"
    would fail for an overseas patient (09:00 Paris is 03:00 in Martinique)
    and for one whose window opens again this afternoon.
    """
    patient, history, at, callback = case
    d = may_dial(patient, history, at, policy, requested=callback)
    assume(not d.allowed)
    event(f"refused: {d.reason}")
    if d.reason in (Reason.holiday, Reason.outside_hours):
        assert d.retry_at is not None and d.retry_at > at
        again = may_dial(patient, history, d.retry_at, policy, requested=callback)
        assert again.reason not in (Reason.holiday, Reason.outside_hours), (d, again)
        assert wall_clock_callable(d.retry_at, patient.place)
        # nothing callable before it: the explanation does not send the dialer away for nothing
        between = min(at + (d.retry_at - at) * fraction, d.retry_at - timedelta(microseconds=1))
        assert not wall_clock_callable(between, patient.place), (at, between, d.retry_at)
        assert not wall_clock_callable(d.retry_at - timedelta(seconds=1), patient.place)
    elif d.reason == Reason.min_gap:
        assert history.last_dial_at is not None
        assert d.retry_at == history.last_dial_at + GAP
        assert may_dial(patient, history, d.retry_at, policy, requested=callback).reason != Reason.min_gap
    elif d.reason == Reason.suspended:
        if patient.suspended_until is None:
            assert d.retry_at is None  # no end date: nothing will change by itself
        else:
            assert d.retry_at is not None
            assert local(d.retry_at, patient.place.departement).date() > patient.suspended_until
            assert wall_clock_callable(d.retry_at, patient.place)
            again = may_dial(patient, history, d.retry_at, policy, requested=callback)
            assert again.reason != Reason.suspended
    elif d.reason == Reason.daily_cap:
        assert d.retry_at is not None
        dep = patient.place.departement
        assert local(d.retry_at, dep).date() > local(at, dep).date()
        assert wall_clock_callable(d.retry_at, patient.place)
    elif d.reason in (Reason.withdrawn, Reason.deceased, Reason.no_consent, Reason.no_number):
        assert d.retry_at is None  # permanent until someone edits the file


# -------------------------------------------------------------- invariant 1


@SETTINGS
@given(st.data())
def test_never_two_calls_at_once_nor_inside_the_gap_unless_callback(data: st.DataObject) -> None:
    place = data.draw(places())
    at = data.draw(callable_instants(place))
    patient = enrolled(place)
    callback = data.draw(st.booleans())
    # in a call: refused, whatever else (a callback too)
    busy = DialHistory(in_call=True, last_dial_at=at - timedelta(minutes=data.draw(st.integers(0, 2000))))
    d = may_dial(patient, busy, at, policy, requested=callback)
    assert not d.allowed and d.reason == Reason.in_call

    # dialed less than min_gap ago
    gap_s = policy.retry.min_gap_minutes * 60
    since = timedelta(
        seconds=data.draw(st.one_of(st.sampled_from([0, gap_s - 60, gap_s - 1]), st.integers(0, gap_s - 1)))
    )
    recent = DialHistory(last_dial_at=at - since, dials_on_day=data.draw(st.integers(0, DAY_CAP - 1)))
    assert not may_dial(patient, recent, at, policy).allowed
    assert may_dial(patient, recent, at, policy).reason == Reason.min_gap
    # ... a callback the patient asked for is allowed inside the gap
    assert may_dial(patient, recent, at, policy, requested=True).allowed

    # exactly min_gap or more: allowed again
    later = DialHistory(last_dial_at=at - GAP - since)
    assert may_dial(patient, later, at, policy).allowed


# -------------------------------------------------------------- after an attempt


def spacing(result: AttemptResult) -> timedelta:
    r = policy.retry
    minutes = {
        AttemptResult.no_answer: r.unanswered_minutes,
        AttemptResult.busy: r.busy_minutes,
        AttemptResult.failed: r.failed_minutes,
        AttemptResult.machine: r.machine_minutes,
        AttemptResult.interrupted: r.min_gap_minutes,
    }[result]
    return timedelta(minutes=max(minutes, r.min_gap_minutes))


def is_morning(instant: datetime, dep: str) -> bool:
    return local(instant, dep).time().replace(tzinfo=None) < NOON


@st.composite
def attempt_cases(
    draw: st.DrawFn,
    modes: tuple[str, ...] = ("morning", "afternoon", "any", "unknown"),
    max_attempts: int = MAX_ATTEMPTS + 1,
) -> tuple[AttemptResult, datetime, TaskState, PatientState, str]:
    """A task after an unanswered attempt: its history of attempt starts, its deadline.

    `mode` shapes the history: all mornings, all afternoons, anything, or no start times at all.
    attempt_starts holds every attempt of the task, the one just ended included.
    """
    place = draw(places())
    dep = place.departement
    mode = draw(st.sampled_from(modes))
    span = {"morning": (9 * 60, 12 * 60 + 59), "afternoon": (13 * 60, 18 * 60 + 59)}.get(mode, (0, 1439))
    attempts = draw(st.integers(1, max_attempts))
    day = draw(days)
    last_start = at_local_minute(day, draw(st.integers(*span)), dep)
    starts = [last_start]
    for _ in range(attempts - 1):
        back = draw(st.integers(0, 4))
        s = at_local_minute(day - timedelta(days=back), draw(st.integers(*span)), dep)
        if s >= last_start:
            s = at_local_minute(day - timedelta(days=back + 1), draw(st.integers(*span)), dep)
        starts.append(s)
    ended_at = last_start + timedelta(minutes=draw(st.integers(0, 40)))
    deadline = ended_at + timedelta(days=draw(st.integers(0, 20)), minutes=draw(st.integers(0, 24 * 60)))
    # the patient's dials for their other tasks (a callback, another wave) earlier that day or
    # the day before: the daily cap counts them too
    others = [
        at_local_minute(day - timedelta(days=draw(st.integers(0, 1))), draw(st.integers(0, 1439)), dep)
        for _ in range(draw(st.integers(0, 2)))
    ]
    others = [s for s in others if s < last_start]
    if mode == "unknown":  # no history of start times (e.g. attempts made before it was kept)
        starts = []
    task = TaskState(
        attempts=attempts,
        deadline=deadline,
        attempt_starts=tuple(sorted(starts)),
        patient_starts=tuple(sorted({*starts, *others})),
    )
    return draw(unanswered), ended_at, task, enrolled(place, tier=draw(st.sampled_from(Tier))), mode


def dials_per_day(task: TaskState, dep: str) -> Counter[date]:
    """The patient's dials per local day, whatever the task."""
    return Counter(local(s, dep).date() for s in {*task.attempt_starts, *task.patient_starts})


def open_slots(
    earliest: datetime, deadline: datetime, place: cal.Place, per_day: Counter[date], min_len: timedelta
) -> list[datetime]:
    """Instants t >= earliest, t < deadline, callable for at least min_len, on days under the cap."""
    out = []
    day = cal.local_date(earliest, place)
    while cal.at_local(day, time(0), place.timezone) < deadline:
        if per_day[day] < DAY_CAP:
            for s, e in utc_windows_on(day, place):
                t = max(s, earliest)
                if t < deadline and e - t >= min_len:
                    out.append(t)
                noon = cal.at_local(day, NOON, place.timezone)
                t = max(s, earliest, noon)
                if t < deadline and e - t >= min_len:
                    out.append(t)
        day += timedelta(days=1)
    return out


@settings(SETTINGS, max_examples=400)
@given(attempt_cases())
def test_after_attempt_retries_only_where_a_dial_is_allowed(
    case: tuple[AttemptResult, datetime, TaskState, PatientState, str],
) -> None:
    """The retry is callable, spaced, before the deadline, within the attempt and daily caps.

    Broken versions this catches (each checked by mutating rules.py): one that
    forgot the per-day cap puts a third attempt on a day that had two; one
    that returned `ended_at + spacing` without looking for a window retries
    at 21:00 or on a Sunday and fails `wall_clock_callable`; one that gave up
    early closes a task that still had a window before its deadline.
    """
    result, ended_at, task, patient, _ = case
    place = patient.place
    r = after_attempt(result, ended_at, task, patient, policy)
    per_day = dials_per_day(task, place.departement)
    earliest = ended_at + spacing(result)

    assert (r.close is None) == (r.next_at is not None)
    assert r.reason
    cap = CAP[patient.tier]
    exhausted = task.attempts >= cap
    event("retry" if r.next_at else "closed: " + ("max attempts" if exhausted else "deadline"))
    if r.next_at is not None:
        assert task.attempts < cap  # one more attempt stays within the tier's cap
        assert wall_clock_callable(r.next_at, place)
        assert cal.is_callable_at(r.next_at, place, HOURS)
        assert r.next_at - ended_at >= GAP
        assert r.next_at >= earliest
        assert r.next_at < task.deadline
        assert per_day[local(r.next_at, place.departement).date()] + 1 <= DAY_CAP
    else:
        assert r.close == TaskStatus.unreachable
        if task.attempts < cap:
            # closed early: there really was no usable window before the deadline
            slots = open_slots(earliest, task.deadline, place, per_day, timedelta(minutes=10))
            assert not slots, (r, slots[:3])
            assert "window" in r.reason
        else:
            assert f"(max {cap})" in r.reason


@settings(SETTINGS, max_examples=300)
@given(attempt_cases(modes=("morning", "afternoon"), max_attempts=MIN_CAP - 1))
def test_after_attempt_varies_the_time_of_day(
    case: tuple[AttemptResult, datetime, TaskState, PatientState, str],
) -> None:
    """All attempts so far in the morning: the retry is in the afternoon if one is available, and back.

    A broken `after_attempt` that ignored vary_time_of_day (always the first
    free slot) fails here: after a 10:00 no-answer with a 4-hour spacing the
    first slot is often the next morning, while that afternoon was free.
    """
    result, ended_at, task, patient, mode = case
    assert policy.retry.vary_time_of_day
    place, dep = patient.place, patient.place.departement
    mornings = [is_morning(s, dep) for s in task.attempt_starts]
    assert all(mornings) if mode == "morning" else not any(mornings)
    per_day = dials_per_day(task, dep)
    earliest = ended_at + spacing(result)
    slots = open_slots(earliest, task.deadline, place, per_day, timedelta(minutes=10))
    wanted = [t for t in slots if is_morning(t, dep) == (mode == "afternoon")]

    r = after_attempt(result, ended_at, task, patient, policy)
    event(f"{mode} history, {'the other half-day available' if wanted else 'no choice'}")
    if wanted:
        assert r.next_at is not None
        assert is_morning(r.next_at, dep) == (mode == "afternoon"), (mode, r, wanted[:2])
    elif slots:
        assert r.next_at is not None  # no alternative: any slot beats none


# a policy whose retry spacings are shorter than its minimum gap (the configuration allows it)
HURRIED = policy.model_copy(
    update={
        "retry": policy.retry.model_copy(
            update={"unanswered_minutes": 20, "busy_minutes": 5, "failed_minutes": 10, "machine_minutes": 45}
        )
    }
)


@settings(SETTINGS, max_examples=200)
@given(attempt_cases())
def test_a_retry_never_comes_sooner_than_the_minimum_gap_whatever_the_spacing(
    case: tuple[AttemptResult, datetime, TaskState, PatientState, str],
) -> None:
    """Invariant 1 holds even when the policy's spacing after busy (5 min) is below the gap.

    A planner that took the spacing as configured, without clamping it to
    `retry.min_gap_minutes`, would retry a busy line 5 minutes later: the
    dialer would then refuse the claim and the task would stall, or worse.
    """
    result, ended_at, task, patient, _ = case
    assert HURRIED.retry.busy_minutes < HURRIED.retry.min_gap_minutes
    r = after_attempt(result, ended_at, task, patient, HURRIED)
    if r.next_at is not None:
        assert r.next_at - ended_at >= timedelta(minutes=HURRIED.retry.min_gap_minutes)
        assert wall_clock_callable(r.next_at, patient.place)


def test_only_the_first_dial_of_a_callback_is_the_patients_request() -> None:
    """The dial at the time the patient asked for passes the gap and the daily cap; its retries do not.

    A callback that reached a machine and was retried as if asked for again was
    the third dial of a local day (cap 2) in an independent check of the demo.
    """
    assert requested_dial(TaskKind.callback, 1)
    assert requested_dial(TaskKind.callback.value, 1)  # as stored
    for n in range(2, MAX_ATTEMPTS + 1):
        assert not requested_dial(TaskKind.callback, n)
    for kind in (TaskKind.wave, TaskKind.inbound):
        assert not any(requested_dial(kind, n) for n in range(1, MAX_ATTEMPTS + 1))


# -------------------------------------------------------------- after an outcome


OutcomeCase = tuple[PatientState, datetime, datetime | None, datetime | None, int]


@st.composite
def outcome_cases(draw: st.DrawFn) -> OutcomeCase:
    place = draw(places())
    at = draw(st.one_of(callable_instants(place), instants_for(place)))
    tier = draw(st.sampled_from(Tier))
    numbers = draw(st.integers(0, 3))
    patient = PatientState(
        EnrolmentStatus.enrolled,
        tier,
        place,
        dialable_numbers=numbers,
        next_contact_on=draw(st.one_of(st.none(), st.just(date(2029, 1, 15)))),
    )
    asked_min = draw(st.one_of(st.none(), st.integers(-600, 20 * 24 * 60)))
    deadline_min = draw(st.one_of(st.none(), st.integers(0, 20).map(lambda k: k * 24 * 60 + 30)))
    asked = None if asked_min is None else at + timedelta(minutes=asked_min)
    deadline = None if deadline_min is None else at + timedelta(minutes=deadline_min)
    return patient, at, asked, deadline, draw(st.integers(1, 500))


def after_outcome(case: OutcomeCase, code: OutcomeCode, task_attempts: int = 0) -> NextContact:
    """What `code`, recorded by the case's nurse at the case's instant, implies."""
    patient, at, asked, deadline, nurse = case
    return next_contact(
        patient,
        code,
        at,
        policy,
        nurse_id=nurse,
        callback_at=asked,
        task_deadline=deadline,
        task_attempts=task_attempts,
    )


@SETTINGS
@given(outcome_cases(), st.sampled_from([OutcomeCode.reached, OutcomeCode.escalation]))
def test_reached_sets_the_next_contact_by_tier_cadence(case: OutcomeCase, outcome: OutcomeCode) -> None:
    """Reached or escalated: the task is done, the next contact is the first day with windows
    at least `cadence_days` after the patient's local today.

    A broken rule counting the cadence from the UTC date would be a day short
    for a Martinique patient reached at 21:00 local; one that did not skip
    holidays would plan a Réunion patient's contact on 20 December.
    """
    patient, at, _, _, _ = case
    nc = after_outcome(case, outcome)
    today = local(at, patient.place.departement).date()
    floor = today + timedelta(days=policy.tiers[patient.tier].cadence_days)
    assert nc.task_status == TaskStatus.done
    assert nc.next_contact_on is not None and nc.next_contact_on >= floor
    assert windows_on(nc.next_contact_on, patient.place)
    assert not holiday_where(nc.next_contact_on, patient.place.departement)
    skipped = (floor + timedelta(days=k) for k in range((nc.next_contact_on - floor).days))
    assert not any(windows_on(d, patient.place) for d in skipped)  # the first such day
    assert nc.message_physician == (outcome == OutcomeCode.escalation)
    assert not nc.withdraw and nc.callback_at is None and nc.retry_at is None and not nc.flag_number


@SETTINGS
@given(outcome_cases())
def test_opt_out_stops_everything(case: OutcomeCase) -> None:
    nc = after_outcome(case, OutcomeCode.opted_out)
    assert nc.withdraw
    assert nc.next_contact_on is None and nc.callback_at is None and nc.retry_at is None
    assert nc.task_status is not None and nc.task_status.terminal


@SETTINGS
@given(outcome_cases())
def test_callback_is_at_the_first_callable_instant_from_the_asked_time(
    case: OutcomeCase,
) -> None:
    patient, at, asked, _, nurse = case
    nc = after_outcome(case, OutcomeCode.callback_requested)
    wanted = max(asked, at) if asked is not None else at + timedelta(days=1)
    assert nc.callback_at is not None
    assert nc.callback_at >= wanted
    assert wall_clock_callable(nc.callback_at, patient.place)
    just_before = nc.callback_at - timedelta(seconds=1)
    assert nc.callback_at == wanted or not wall_clock_callable(just_before, patient.place)
    assert nc.callback_nurse_id == nurse  # with that nurse
    assert nc.next_contact_on == local(nc.callback_at, patient.place.departement).date()
    assert not nc.withdraw and not nc.flag_number


@SETTINGS
@given(outcome_cases(), st.integers(1, MAX_ATTEMPTS))
def test_wrong_number_flags_it_and_retries_only_on_another_number(case: OutcomeCase, attempts: int) -> None:
    """The other number is tried in the same task, never as an attempt beyond `max_attempts`
    (the independent check found a task dialed seven times after a wrong number on its sixth)."""
    patient, at, _, deadline, _ = case
    nc = after_outcome(case, OutcomeCode.wrong_number, task_attempts=attempts)
    assert nc.flag_number
    assert nc.callback_at is None and not nc.withdraw
    if patient.dialable_numbers <= 1:
        # the last number is wrong: nothing can be planned until the file is fixed, and the
        # patient must not keep a next contact date nobody can keep
        assert nc.next_contact_on is None
        assert nc.task_status == TaskStatus.unreachable and nc.retry_at is None
        assert nc.notes and "new number" in nc.notes[0]
    else:
        assert nc.next_contact_on == patient.next_contact_on  # the regular cadence is untouched
    if nc.retry_at is not None:
        assert patient.dialable_numbers > 1  # another number exists
        assert attempts < CAP[patient.tier]  # one more attempt stays within the tier's cap
        assert nc.task_status is None  # the same task goes on
        assert wall_clock_callable(nc.retry_at, patient.place)
        assert nc.retry_at - at >= GAP
        assert deadline is None or nc.retry_at < deadline
    else:
        assert nc.task_status == TaskStatus.unreachable
        if patient.dialable_numbers > 1 and attempts < CAP[patient.tier]:
            # another number, but no window before the task's deadline
            assert deadline is not None
            slot = cal.next_open(at + GAP, patient.place, HOURS)
            assert slot is None or slot[0] >= deadline
