"""A planned first call falls due as the nurses of its pool get to it in the day (campaign/day_pacing.py).

The oracle integrates the nurses on shift minute by minute, apart from the timeline's
breakpoints; a hand table pins the planner's due times for a day and a late shift.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import calendar as cal
from campaign.day_pacing import PoolTimeline, doable
from campaign.planning import Candidate, NurseShifts, plan_wave
from campaign.policy import NurseLevel, Tier, load_policy
from campaign.rules import PatientState
from campaign.states import EnrolmentStatus

_loaded = load_policy()
# the costs the tables below were computed with (every task reaching its patient)
policy = _loaded.model_copy(
    update={
        "dialer": _loaded.dialer.model_copy(
            update={
                "expected_attempts_per_reach": {Tier.high: 1.6, Tier.medium: 1.8, Tier.low: 2.0},
                "expected_reach": dict.fromkeys(Tier, 1.0),
                "noanswer_handle_minutes": 1.5,
            }
        )
    }
)
DAY = datetime(2026, 3, 9, tzinfo=UTC)

shifts_st = st.lists(
    st.tuples(st.integers(0, 24 * 4), st.integers(1, 10 * 4)).map(
        lambda q: (DAY + timedelta(minutes=15 * q[0]), DAY + timedelta(minutes=15 * (q[0] + q[1])))
    ),
    max_size=6,
)


def minutes_by(shifts: list[tuple[datetime, datetime]], at: datetime, occupancy: float) -> float:
    """Nurse minutes worked from the day's start to `at`, minute by minute."""
    total, t = 0.0, DAY
    while t < at:
        total += occupancy * sum(1 for s, e in shifts if s <= t < e)
        t += timedelta(minutes=1)
    return total


@settings(deadline=None, max_examples=60)
@given(shifts_st, st.floats(0, 1.2))
def test_a_call_falls_due_when_the_pool_has_worked_the_minutes_planned_before_it(
    shifts: list[tuple[datetime, datetime]], fraction: float
) -> None:
    """Catches a timeline that forgets overlapping shifts (two nurses work twice as fast), or one
    that hands out instants in a gap between shifts."""
    timeline = PoolTimeline.of(shifts, 0.85)
    total = minutes_by(shifts, DAY + timedelta(days=2), 0.85)
    due = timeline.reached(fraction * total)
    if not shifts:
        assert due is None
        return
    assert due is not None
    assert min(s for s, _ in shifts) <= due <= max(e for _, e in shifts)
    planned = min(fraction, 1.0) * total
    assert minutes_by(shifts, due, 0.85) == pytest.approx(planned, abs=0.85 * len(shifts) + 1e-6)
    if 0 < fraction < 1:
        assert any(s <= due <= e for s, e in shifts), "due while nobody of the pool is on shift"


def test_the_day_work_arrives_as_its_nurses_can_take_it() -> None:
    """Monday 9 March 2026 (Paris, UTC+1). A senior works 09:00-13:00 and a junior 14:00-18:00, both
    at 85 %: 204 min each. Four high patients (25.9 min each, no retry counted in this one-day wave)
    fall due at 0, 25.9, 51.8 and 77.7 minutes of the senior's time: 09:00, 09:30:28, 10:00:56,
    10:31:24. Four medium ones (19.2 min) go to the junior's pool: from 14:00, every 22 min 35 s.
    Without pacing (the default), planning gives no due time: all eight are due at the first calling hour."""
    monday = date(2026, 3, 9)
    nurses = [
        NurseShifts(1, NurseLevel.senior, frozenset(), ((0, time(9), time(13)),)),
        NurseShifts(2, NurseLevel.junior, frozenset(), ((0, time(14), time(18)),)),
    ]
    place = cal.Place("75", "Europe/Paris")
    pol = policy.model_copy(
        update={
            "tiers": {t: tp.model_copy(update={"start_offset_days": 0}) for t, tp in policy.tiers.items()},
            "outreach": policy.outreach.model_copy(update={"pace_first_calls": True}),
        }
    )

    def cand(pid: int, tier: Tier) -> Candidate:
        return Candidate(pid, PatientState(EnrolmentStatus.enrolled, tier, place))

    cands = [cand(p, Tier.high) for p in (1, 2, 3, 4)] + [cand(p, Tier.medium) for p in (5, 6, 7, 8)]
    plan = plan_wave(cands, nurses, [monday], pol)
    paris = [cal.local_time_of(plan.due_at[p], "Europe/Paris").time() for p in range(1, 9)]
    step_high = timedelta(minutes=25.9 / 0.85)  # 30 min 28 s of shift per high task
    step_medium = timedelta(minutes=19.2 / 0.85)
    expected = [(datetime(2026, 3, 9, 9, tzinfo=UTC) + k * step_high).time() for k in range(4)]
    expected += [(datetime(2026, 3, 9, 14, tzinfo=UTC) + k * step_medium).time() for k in range(4)]
    assert [t.replace(microsecond=0) for t in paris] == [t.replace(microsecond=0) for t in expected]
    off = pol.model_copy(update={"outreach": pol.outreach.model_copy(update={"pace_first_calls": False})})
    assert plan_wave(cands, nurses, [monday], off).due_at == {}


def done_by_day_end(
    shifts: list[tuple[datetime, datetime]], arrivals: list[tuple[datetime, float]], occupancy: float
) -> float:
    """The oracle of `doable`: minute by minute, the pool works off what has arrived, as fast as its
    nurses on shift at that occupancy can; work arrived before the day waits at its start."""
    backlog, done, t = 0.0, 0.0, DAY - timedelta(days=1)
    pending = sorted(arrivals)
    while t < DAY + timedelta(days=2):
        while pending and pending[0][0] <= t:
            backlog += pending.pop(0)[1]
        work = min(backlog, occupancy * sum(1 for s, e in shifts if s <= t < e))
        backlog -= work
        done += work
        t += timedelta(minutes=1)
    return done


arrivals_st = st.lists(
    st.tuples(st.integers(-4, 24 * 4).map(lambda q: DAY + timedelta(minutes=15 * q)), st.floats(0.5, 120)),
    max_size=12,
)


@settings(deadline=None, max_examples=60)
@given(shifts_st, arrivals_st)
def test_doable_is_what_the_pool_gets_through_as_work_falls_due(
    shifts: list[tuple[datetime, datetime]], arrivals: list[tuple[datetime, float]]
) -> None:
    """Catches a morning top-up that counts the calls due this evening as filling this morning's
    nurses (their total against the day's total), or that lets work be done before it falls due."""
    got = doable(arrivals, PoolTimeline.of(shifts, 0.85))
    assert got == pytest.approx(done_by_day_end(shifts, arrivals, 0.85), abs=0.85 * len(shifts) + 1e-6)
    assert got <= sum(m for _, m in arrivals) + 1e-9
    assert got <= minutes_by(shifts, DAY + timedelta(days=2), 0.85) + 1e-6


def test_evening_calls_leave_the_morning_idle() -> None:
    """One nurse 09:00-17:00 at 85 % (408 min): 400 min due at 16:00 gets 51 min done (16:00-17:00),
    not 400; the same due at 09:00 gets all 400 done."""
    shift = [(DAY + timedelta(hours=9), DAY + timedelta(hours=17))]
    timeline = PoolTimeline.of(shift, 0.85)
    assert doable([(DAY + timedelta(hours=16), 400.0)], timeline) == pytest.approx(51)
    assert doable([(DAY + timedelta(hours=9), 400.0)], timeline) == pytest.approx(400)
    assert timeline.at(DAY + timedelta(hours=13)) == pytest.approx(4 * 60 * 0.85)
