"""What the benchmark sets each tier against, hand-counted: attempts at random or at the best hours,
and the oracle on the roster's hours with the patients' true chances."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from campaign.planning import NurseShifts
from campaign.policy import NurseLevel, Tier, load_policy
from dialer.outreach_bounds import pool_capacity, reach_bounds, roster_bounds, scarce_pools

MONDAY = datetime(2026, 12, 7, 8, tzinfo=UTC)  # 09:00 in Paris
H = timedelta(hours=1)


def bounds(chances, capacity, *, attempts=8, per_day=2, gap=timedelta(hours=2), believed=None):  # type: ignore[no-untyped-def]
    return roster_bounds(
        chances,
        dict.fromkeys(chances, attempts),
        dict.fromkeys(chances, 25.0),
        capacity,
        per_day=per_day,
        gap=gap,
        noanswer_minutes=0.5,
        believed=believed,
    )


def test_the_hour_goes_first_to_whom_it_suits_best_against_their_own_week() -> None:
    """Both answer one time in two at 09:00 on Monday; for "b" it is the best hour of the week (a
    tenth on Tuesday), for "a" an ordinary one. 13 minutes: b's call costs 12.75 (half a chance of
    a 25-minute call, half of an unanswered half-minute), a gets what is left of the hour, in part."""
    tuesday = MONDAY + timedelta(days=1)
    chances = {
        1: [[(MONDAY, 0.5)], [(tuesday, 0.5)]],  # "a"
        2: [[(MONDAY, 0.5)], [(tuesday, 0.1)]],  # "b"
    }
    got = bounds(chances, {MONDAY: 13.0})  # no minute on Tuesday
    assert got[2] == pytest.approx(0.5)
    assert got[1] == pytest.approx(0.5 * 0.25 / 12.75)
    # with the whole hour, both are called once
    assert bounds(chances, {MONDAY: 60.0}) == pytest.approx({1: 0.5, 2: 0.5})


def test_the_rules_hold_for_the_oracle_too() -> None:
    """Four calling hours in one day, minutes enough: two calls a day, two hours apart (09:00 and
    11:00), and no more than the tier's attempts."""
    day = [(MONDAY + k * H, 0.5) for k in (0, 1, 2, 5)]
    capacity = {at: 600.0 for at, _p in day}
    assert bounds({1: [day]}, capacity)[1] == pytest.approx(1 - 0.5**2)
    assert bounds({1: [day]}, capacity, attempts=1)[1] == pytest.approx(0.5)
    assert bounds({1: [day]}, capacity, per_day=3)[1] == pytest.approx(1 - 0.5**3)  # 09, 11, 14
    assert bounds({1: [day]}, capacity, per_day=3, gap=timedelta(0))[1] == pytest.approx(1 - 0.5**3)
    # a patient who never answers is reached by nobody, and costs nothing of the others' bound
    assert bounds({1: [day], 2: [[(MONDAY, 0.0)]]}, capacity) == {1: pytest.approx(0.75)}


def test_a_pool_has_its_nurses_minutes_on_the_phone_hour_by_hour() -> None:
    """A senior on shift 09:00-10:30 in Paris on Monday (08:00-09:30 UTC), on the phone 85 % of it;
    a junior's hours are not the seniors' pool."""
    senior = NurseShifts(1, NurseLevel.senior, frozenset(), ((0, time(9), time(10, 30)),))
    junior = NurseShifts(2, NurseLevel.junior, frozenset(), ((0, time(9), time(17)),))
    got = pool_capacity([senior, junior], frozenset({NurseLevel.senior}), [date(2026, 12, 7)], 0.85)
    assert got == {MONDAY: pytest.approx(51.0), MONDAY + H: pytest.approx(25.5)}


def test_only_the_tiers_some_nurses_may_not_take_have_a_pool_of_their_own() -> None:
    assert scarce_pools(load_policy()) == {frozenset({NurseLevel.senior}): [Tier.high]}


def test_a_bound_places_the_attempts_at_random_or_at_the_best_hours_the_rules_allow() -> None:
    """Two a day at most, two hours apart: 10:00 is too close to 9:00, so the first day gives 9:00
    and 14:00; the three best of what the days give are 0.6, 0.5 and 0.2."""
    day1, day2 = datetime(2026, 12, 7, 8, tzinfo=UTC), datetime(2026, 12, 8, 8, tzinfo=UTC)
    chances = [
        [(day1, 0.5), (day1 + timedelta(hours=1), 0.4), (day1 + timedelta(hours=5), 0.2)],
        [(day2, 0.0), (day2 + timedelta(hours=8), 0.6)],
    ]
    at_random, at_best = reach_bounds(chances, 3, 2, timedelta(hours=2))
    assert at_best == pytest.approx(1 - 0.4 * 0.5 * 0.8)
    assert at_random == pytest.approx(1 - (1 - 1.7 / 5) ** 3)  # each attempt at any of the 5 hours
    assert reach_bounds(chances, 3, 1, timedelta(0))[1] == pytest.approx(1 - 0.4 * 0.5)
    assert reach_bounds([[]], 3, 2, timedelta(0)) == (0.0, 0.0)


def test_an_oracle_blind_to_absences_spends_its_calls_on_a_patient_away() -> None:
    """ "a" is in hospital on Monday and answers one time in two on Tuesday. Knowing it, the oracle
    keeps a's one attempt for Tuesday; blind to it, the oracle believes Monday as good as Tuesday,
    calls on Monday, rings out (half a minute) and has no attempt left. "b" is at home both days."""
    tuesday = MONDAY + timedelta(days=1)
    truth = {1: [[(MONDAY, 0.0)], [(tuesday, 0.5)]], 2: [[(MONDAY, 0.5)], [(tuesday, 0.5)]]}
    at_home = {1: [[(MONDAY, 0.5)], [(tuesday, 0.5)]], 2: truth[2]}
    capacity = {MONDAY: 60.0, tuesday: 60.0}
    assert bounds(truth, capacity, attempts=1) == pytest.approx({1: 0.5, 2: 0.5})
    assert bounds(truth, capacity, attempts=1, believed=at_home) == pytest.approx({1: 0.0, 2: 0.5})
    # the ring-out costs the hour its half-minute: with 13 minutes on Monday, b gets 12.5 of them
    # where 13 were left when the oracle knew a was away
    assert bounds(truth, {MONDAY: 13.0}, attempts=1, believed=at_home)[2] == pytest.approx(0.5 * 12.5 / 12.75)
    assert bounds(truth, {MONDAY: 13.0}, attempts=1)[2] == pytest.approx(0.5)
