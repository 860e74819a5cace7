"""The retry planner with best time to call (`rules.after_attempt(..., model)`), as properties.

The cases and the independent facts (the patient's windows on their wall clock,
the daily cap, the spacing) are those of test_rules_properties; the band is
computed here from the wall clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_rules_properties import (
    CAP,
    DAY_CAP,
    GAP,
    MIN_CAP,
    SETTINGS,
    attempt_cases,
    dials_per_day,
    local,
    policy,
    spacing,
    utc_windows_on,
    wall_clock_callable,
)

from campaign import besttime
from campaign import calendar as cal
from campaign.besttime import AnswerModel, BandCounts
from campaign.rules import PatientState, TaskState, after_attempt
from campaign.states import AttemptResult

# bands the default calling hours use: (day class, first hour)
CALLING_BANDS = [(0, h) for h in (9, 11, 13, 15, 17)] + [(1, 9), (1, 11)]
FIVE = timedelta(minutes=5)


def band_id(day_class: int, hour: int) -> int:
    return day_class * besttime.BANDS_PER_DAY + (hour - 1) // 2


def day_class(day: date) -> int:
    return 0 if day.weekday() < 5 else day.weekday() - 4


def horizon(earliest: datetime, deadline: datetime, attempts_left: int, dep: str) -> int:
    """How many days a retry may wait for its band: a week, but near the wave's end each attempt
    still allowed (this one included) keeps a day of its own, and at least a day."""
    left = (local(deadline, dep).date() - local(earliest, dep).date()).days
    return max(1, min(7, left - attempts_left))


def first_in_band(
    earliest: datetime,
    deadline: datetime,
    task: TaskState,
    dep: str,
    place: cal.Place,
    band: tuple[int, int],
    cap: int,
) -> tuple[datetime | None, date | None, int]:
    """The first instant a retry may start in that band: callable for five minutes inside the band,
    spaced, before the deadline, on a day under the daily cap, within `horizon` days of the first
    day a retry may happen at all (facts computed here); with that first day and the horizon."""
    per_day = dials_per_day(task, dep)
    days = horizon(earliest, deadline, cap - task.attempts, dep)
    kind, hour = band
    day = local(earliest, dep).date()
    first: date | None = None
    while cal.at_local(day, time(0), place.timezone) < deadline:
        windows = utc_windows_on(day, place)
        if (
            first is None
            and per_day[day] < DAY_CAP
            and any(max(s, earliest) < deadline and e - max(s, earliest) >= FIVE for s, e in windows)
        ):
            first = day
        if first is not None and (day - first).days >= days:
            return None, first, days
        if per_day[day] < DAY_CAP and day_class(day) == kind:
            b0 = cal.at_local(day, time(hour), place.timezone)
            b1 = cal.at_local(day, time(hour + 2), place.timezone)
            for s, e in utc_windows_on(day, place):
                t, end = max(s, earliest, b0), min(e, b1)
                if t < deadline and end - t >= FIVE:
                    return t, first, days
        day += timedelta(days=1)
    return None, first, days


Case = tuple[AttemptResult, datetime, TaskState, PatientState, str]


@settings(SETTINGS, max_examples=300)
@given(attempt_cases(max_attempts=MIN_CAP - 1), st.sampled_from(CALLING_BANDS))
def test_the_retry_goes_to_the_band_the_patient_answers_in(case: Case, band: tuple[int, int]) -> None:
    """A patient who always answers in one band and rarely otherwise is retried at the first moment
    of that band the spacing, the caps and the windows allow, if it falls within the horizon.
    A planner that ignored the model (the varied time of day only) or that took the band's first
    hour without checking the window fails."""
    result, ended_at, task, patient, _ = case
    place, dep = patient.place, patient.place.departement
    model = AnswerModel({band_id(*band): BandCounts(1000, 1000)}, (), base=0.01, weight=4)
    expected, first, days = first_in_band(
        ended_at + spacing(result), task.deadline, task, dep, place, band, CAP[patient.tier]
    )
    r = after_attempt(result, ended_at, task, patient, policy, model)
    if r.next_at is not None and first is not None:
        # wherever the band is, the retry waits no longer than the horizon: near the wave's end a
        # patient's attempts still allowed keep their days (a planner looking a week ahead fails)
        assert (local(r.next_at, dep).date() - first).days < days, (r, first, days)
    if expected is None:
        return
    assert r.next_at == expected, (r, expected, besttime.band_label(band_id(*band)))
    assert r.estimate is not None and r.estimate.band == band_id(*band)
    assert r.estimate.p > 0.9


@settings(SETTINGS, max_examples=300)
@given(attempt_cases(), st.data())
def test_best_time_keeps_every_rule_of_a_retry(case: Case, data: st.DataObject) -> None:
    """Whatever the model says: callable on the wall clock, spaced, before the deadline, within the
    daily cap; and a task closes only when the rules without best time close it."""
    result, ended_at, task, patient, _ = case
    place = patient.place
    own = data.draw(
        st.dictionaries(
            st.sampled_from([band_id(*b) for b in CALLING_BANDS]),
            st.integers(0, 20).flatmap(lambda n: st.builds(BandCounts, st.just(n), st.integers(0, n))),
            min_size=1,
        )
    )
    r = after_attempt(result, ended_at, task, patient, policy, AnswerModel(own))
    plain = after_attempt(result, ended_at, task, patient, policy)
    assert r.close == plain.close
    if r.next_at is not None:
        assert wall_clock_callable(r.next_at, place)
        assert r.next_at - ended_at >= GAP
        assert r.next_at >= ended_at + spacing(result)
        assert r.next_at < task.deadline
        assert dials_per_day(task, place.departement)[local(r.next_at, place.departement).date()] < DAY_CAP
        assert r.estimate is not None


@settings(SETTINGS, max_examples=200)
@given(attempt_cases())
def test_a_model_that_knows_nothing_changes_nothing(case: Case) -> None:
    """No history anywhere: every band has the base rate, and the retry is the one the rules give
    without best time (varied time of day included)."""
    result, ended_at, task, patient, _ = case
    plain = after_attempt(result, ended_at, task, patient, policy)
    knowing_nothing = after_attempt(result, ended_at, task, patient, policy, AnswerModel())
    assert knowing_nothing.next_at == plain.next_at
    assert knowing_nothing.close == plain.close
