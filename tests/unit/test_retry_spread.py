"""Expected retries are planned on the days they happen (campaign/retry_spread.py, planning).

Properties over random waves and retry policies: a task's minutes add up to its
cost, land only on days of the wave that have calling hours, never before its
first-call day; a whole plan keeps every planned minute and stays within each
day's capacity. A table computed by hand from the retry rule's text pins where
the second attempt goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign import calendar as cal
from campaign.planning import Candidate, NurseShifts, plan_wave
from campaign.policy import NurseLevel, Policy, Tier, load_policy
from campaign.retry_spread import attempt_costs, spread_table
from campaign.rules import PatientState
from campaign.states import EnrolmentStatus

policy = load_policy()
HOURS = policy.calling_hours
SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
PARIS = cal.Place("75", "Europe/Paris")


def cost(tier: Tier, pol: Policy) -> float:
    """A task's expected minutes, from the policy: the reached call and E - 1 unanswered attempts, for
    the share r of tasks that reach the patient."""
    e, r = pol.dialer.expected_attempts_per_reach[tier], pol.dialer.expected_reach[tier]
    return r * (pol.tiers[tier].call_minutes + pol.dialer.noanswer_handle_minutes * (e - 1))


def with_costs(pol: Policy, attempts_per_reach: float, reach: float, **dialer: object) -> Policy:
    """The same E and reached share for every tier, 1.5 min an unanswered attempt, every attempt
    answering with 1/E (no answer-rate curve)."""
    update = {
        "expected_attempts_per_reach": dict.fromkeys(Tier, attempts_per_reach),
        "expected_reach": dict.fromkeys(Tier, reach),
        "noanswer_handle_minutes": 1.5,
        "answer_rate_by_attempt": [],
        **dialer,
    }
    return pol.model_copy(update={"dialer": pol.dialer.model_copy(update=update)})


def with_retry(pol: Policy, **retry: object) -> Policy:
    return pol.model_copy(update={"retry": pol.retry.model_copy(update=retry)})


@st.composite
def retry_policies(draw: st.DrawFn) -> Policy:
    pol = with_retry(
        policy,
        max_attempts=draw(st.integers(1, 8)),
        unanswered_minutes=draw(st.sampled_from([60, 120, 240, 600, 1440])),
        vary_time_of_day=draw(st.booleans()),
    )
    e = {t: draw(st.floats(1.0, 6.0)) for t in Tier}
    r = {t: draw(st.floats(0.05, 1.0)) for t in Tier}
    dialer = pol.dialer.model_copy(update={"expected_attempts_per_reach": e, "expected_reach": r})
    # a tier may cap its attempts on its own, above or below the retry's cap
    tiers = {
        t: tp.model_copy(update={"max_attempts": draw(st.none() | st.integers(1, 10))})
        for t, tp in pol.tiers.items()
    }
    return pol.model_copy(update={"dialer": dialer, "tiers": tiers})


@st.composite
def wave_days(draw: st.DrawFn) -> list[date]:
    start = draw(st.dates(date(2026, 1, 1), date(2028, 12, 1)))
    length = draw(st.integers(1, 12))
    if draw(st.booleans()):
        return cal.working_days(start, start + timedelta(days=3 * length), HOURS)[:length] or [start]
    return [start + timedelta(days=k) for k in range(length)]  # Sundays and holidays among them


@SETTINGS
@given(retry_policies(), wave_days())
def test_a_task_minutes_add_up_to_its_cost_on_callable_days_of_the_wave(
    pol: Policy, days: Sequence[date]
) -> None:
    """Catches a spread that drops the attempts the wave's end cuts off (the total shrinks), puts
    a retry on a Sunday, a holiday, a day after the window or before the first call, or ignores a
    tier's own attempt cap."""
    table = spread_table(days, pol)
    for tier in Tier:
        assert sum(attempt_costs(tier, pol)) == pytest.approx(cost(tier, pol))
        # one share per attempt the tier allows: its own cap, else the retry's
        assert len(attempt_costs(tier, pol)) == (pol.tiers[tier].max_attempts or pol.retry.max_attempts)
        for i, shares in enumerate(table[tier]):
            assert sum(m for _, m in shares) == pytest.approx(cost(tier, pol))
            assert all(m > 0 for _, m in shares)
            for j, _ in shares:
                assert i <= j < len(days)
                if j != i:  # a retry's day: one the patient may be called on
                    assert HOURS.by_weekday[days[j].weekday()]
                    assert cal.local_windows(days[j], PARIS, HOURS), days[j]


def test_the_second_attempt_lands_where_the_retry_rule_puts_it() -> None:
    """Monday 9 March 2026, windows 09:00-12:30 and 13:30-19:00: first calls sampled every 15 minutes
    at the quarter's middle, 14 in the morning and 22 in the afternoon (36). Two attempts at most,
    retry 4 h after no answer, varied time of day. A morning first call (09:07:30 … 12:22:30) is
    retried that afternoon (13:08 … 16:23); an afternoon one must be retried on a morning: Tuesday.
    E = 2 (p = 1/2): attempt 1 is the reach with weight 1/2, attempt 2 with 1/4, scaled to 2/3 and
    1/3 of 12 min (low tier); the one unanswered attempt (1.5 min) splits the same way. So attempt 2
    costs 12/3 + 1.5/3 = 4.5 min, and Tuesday gets 4.5 x 22/36 = 2.75 min of the 13.5."""
    monday, tuesday = date(2026, 3, 9), date(2026, 3, 10)
    pol = with_costs(
        with_retry(policy, max_attempts=2, unanswered_minutes=240, vary_time_of_day=True), 2.0, 1.0
    )
    assert attempt_costs(Tier.low, pol) == pytest.approx([9.0, 4.5])
    shares = dict(spread_table([monday, tuesday], pol)[Tier.low][0])
    assert shares[1] == pytest.approx(4.5 * 22 / 36)
    assert shares[0] == pytest.approx(13.5 - 4.5 * 22 / 36)
    # planned on the wave's last day, the retry has no day left: the whole cost stays on it
    assert spread_table([monday, tuesday], pol)[Tier.low][1] == ((1, pytest.approx(13.5)),)
    off = pol.model_copy(update={"outreach": pol.outreach.model_copy(update={"spread_retries": False})})
    assert spread_table([monday, tuesday], off)[Tier.low][0] == ((0, pytest.approx(13.5)),)


def test_tasks_that_do_not_reach_the_patient_cost_only_their_attempts() -> None:
    """Catches a plan that charges every task a reached call: with 60 % of tasks reaching the
    patient, a low-tier task (12 min call, E = 2, 1.5 min unanswered) costs 0.6 x 13.5 = 8.1 min, and
    a day of 81 nurse minutes takes ten first calls, not six."""
    pol = with_costs(policy, 2.0, 0.6, target_occupancy=1.0)
    pol = pol.model_copy(update={"outreach": pol.outreach.model_copy(update={"spread_retries": False})})
    assert sum(attempt_costs(Tier.low, pol)) == pytest.approx(8.1)
    monday = date(2026, 3, 9)
    nurse = NurseShifts(1, NurseLevel.junior, frozenset(), ((0, time(9, 0), time(10, 21)),))
    low = [
        Candidate(k, PatientState(EnrolmentStatus.enrolled, Tier.low, PARIS, next_contact_on=monday))
        for k in range(20)
    ]
    plan = plan_wave(low, [nurse], [monday], pol)
    assert len(plan.assignments) == 10


def senior(nid: int, *weekdays: int) -> NurseShifts:
    return NurseShifts(nid, NurseLevel.senior, frozenset(), tuple((wd, time(9), time(17)) for wd in weekdays))


def high_patient(pid: int) -> Candidate:
    return Candidate(pid, PatientState(EnrolmentStatus.enrolled, Tier.high, PARIS))


@SETTINGS
@given(retry_policies(), wave_days(), st.integers(0, 60), st.integers(1, 3))
def test_a_plan_keeps_every_minute_within_each_day_capacity(
    pol: Policy, days: Sequence[date], patients: int, nurses: int
) -> None:
    """The plan's minutes are the planned tasks' costs, no more, no less; no day holds more than its
    capacity, even when earlier first calls' retries filled it. A planner that checked only the
    first-call day would overfill the next day here (8 h of senior time, 60 high patients)."""
    team = [senior(n, 0, 1, 2, 3, 4, 5) for n in range(1, nurses + 1)]
    plan = plan_wave([high_patient(p) for p in range(1, patients + 1)], team, days, pol)
    planned = len(plan.assignments)
    assert sum(load.minutes for load in plan.days.values()) == pytest.approx(planned * cost(Tier.high, pol))
    for d, load in plan.days.items():
        assert d in days
        assert load.minutes <= load.capacity + 1e-6
        if load.minutes:
            assert cal.local_windows(d, PARIS, HOURS)


def test_retries_are_charged_to_the_next_day_not_the_first() -> None:
    """One senior, Monday and Tuesday 09:00-17:00 (408 min at 85 %), ten high patients (about 230 min
    with the default policy). Whole-cost planning puts it all on Monday and nothing on Tuesday;
    spread, Monday carries less and Tuesday the retries of Monday's first calls, the same in all."""
    monday, tuesday = date(2026, 3, 9), date(2026, 3, 10)
    team = [senior(1, 0, 1)]
    cands = [high_patient(p) for p in range(1, 11)]
    total = 10 * cost(Tier.high, policy)
    assert total < 408
    plan = plan_wave(cands, team, [monday, tuesday], policy)
    assert plan.days[monday].tasks["high"] == 10
    assert 0 < plan.days[tuesday].minutes < total
    assert 0 < plan.days[monday].minutes < total
    assert plan.days[monday].minutes + plan.days[tuesday].minutes == pytest.approx(total)
    off = policy.model_copy(update={"outreach": policy.outreach.model_copy(update={"spread_retries": False})})
    plan = plan_wave(cands, team, [monday, tuesday], off)
    assert (plan.days[monday].minutes, plan.days[tuesday].minutes) == (pytest.approx(total), 0)


def test_a_retry_due_on_a_day_without_room_waits_for_the_next_day_with_some() -> None:
    """Friday 13 March 2026 (calling hours until 18:00), then Saturday (09:00-12:00) and Monday. The
    only senior works weekdays: an afternoon first call on Friday is retried by the rule on Saturday
    morning, when no senior works, so that share waits for Monday. Friday's patients are still
    planned on Friday (a planner that required every share to fit on its own day would push them
    all to Monday), Saturday carries nothing, and every minute is kept."""
    friday, saturday, monday = date(2026, 3, 13), date(2026, 3, 14), date(2026, 3, 16)
    shares = dict(spread_table([friday, saturday, monday], policy)[Tier.high][0])
    assert shares[1] > 0  # the rule does put some retries on Saturday
    plan = plan_wave(
        [high_patient(p) for p in range(1, 6)], [senior(1, 0, 4)], [friday, saturday, monday], policy
    )
    assert set(plan.assignments.values()) == {friday}
    assert plan.days[saturday].minutes == 0
    assert plan.days[friday].minutes + plan.days[monday].minutes == pytest.approx(5 * cost(Tier.high, policy))
    assert plan.days[monday].minutes >= 5 * shares[1] - 1e-6


def test_a_falling_answer_curve_puts_more_of_a_task_on_its_first_call() -> None:
    """Catches a spread that ignores `answer_rate_by_attempt` (the population's easy patients answer
    the first call): low tier, 12 min call, E = 2, all reached, 1.5 min unanswered, two attempts.
    Rates 0.5 then 0.2: the reach falls on attempt 1 with 0.5 and on attempt 2 with 0.5 x 0.2, so
    10 and 2 min of the call; the unanswered minute and a half splits 0.5 : 0.4. With 1/E = 0.5 for
    both attempts it would be 9 and 4.5."""
    pol = with_retry(with_costs(policy, 2.0, 1.0, answer_rate_by_attempt=[0.5, 0.2]), max_attempts=2)
    assert attempt_costs(Tier.low, pol) == pytest.approx([10 + 1.5 * 5 / 9, 2 + 1.5 * 4 / 9])
    assert sum(attempt_costs(Tier.low, pol)) == pytest.approx(cost(Tier.low, pol))
    geometric = with_retry(with_costs(policy, 2.0, 1.0), max_attempts=2)
    assert attempt_costs(Tier.low, geometric) == pytest.approx([9.0, 4.5])
