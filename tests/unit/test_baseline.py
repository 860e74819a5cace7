"""The FIFO baseline (campaign/baseline.py) as the comparison needs it: a plain list dialer.

Tasks are handed out in the order they fell due, then in mailing order, whatever their tier
or référent; every retry comes one fixed spacing after the last attempt, at whatever hour
that is, within the same calling windows and caps; planning puts the whole list on its
first possible day. Carecall's own behaviour under the same inputs is checked alongside,
so a switch that stopped switching fails here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import baseline
from campaign import calendar as cal
from campaign.planning import Candidate, NurseShifts
from campaign.policy import CALLBACK_PRIORITY, NurseLevel, Policy, Tier, load_policy
from campaign.rules import PatientState, TaskState, after_attempt
from campaign.states import AttemptResult, EnrolmentStatus
from dialer.routing import NurseProfile, QueuedTask, TaskQueue

policy = load_policy()
FIFO = policy.model_copy(update={"outreach": policy.outreach.model_copy(update={"strategy": "fifo"})})
PLACE = cal.Place("75", "Europe/Paris")
NOW = datetime(2027, 1, 12, 9, 30, tzinfo=UTC)  # a Tuesday, 10:30 in Paris
SENIOR = NurseProfile(1, NurseLevel.senior, frozenset({"heart_failure", "copd"}))
PATIENT = PatientState(EnrolmentStatus.enrolled, Tier.medium, PLACE)


def paris(day: date, hh: int, mm: int = 0) -> datetime:
    return cal.at_local(day, time(hh, mm), "Europe/Paris")


# ------------------------------------------------------------------ routing


def queued(task_id: int, tier: Tier, age_minutes: float, *, referent: int | None, pol: Policy) -> QueuedTask:
    """A wave task as the feed queues it under `pol` (baseline.queue_choices)."""
    priority, ref = baseline.queue_choices(False, policy.tiers[tier].priority, referent, pol)
    return QueuedTask(
        task_id, 1000 + task_id, tier, priority, NOW - timedelta(minutes=age_minutes), PLACE, frozenset(), ref
    )


def handed(pol: Policy, specs: list[tuple[int, Tier, float, int | None]]) -> list[int]:
    q = TaskQueue(pol, on_shift=lambda _n, _u: True)
    for task_id, tier, age, referent in specs:
        q.add(queued(task_id, tier, age, referent=referent, pol=pol))
    q.advance(NOW)
    out = []
    while (t := q.pop_for(SENIOR)) is not None:
        out.append(t.task_id)
    return out


# (task id = mailing order, tier, minutes since due, référent)
SPECS = [
    (1, Tier.low, 60, None),
    (2, Tier.medium, 60, None),
    (3, Tier.high, 30, None),
    (4, Tier.low, 60, SENIOR.id),
    (5, Tier.high, 60, None),
]


def test_fifo_hands_tasks_in_due_then_mailing_order_whatever_tier_or_referent() -> None:
    # due 60 min ago: 1, 2, 4, 5 in mailing order; then 3, due later
    assert handed(FIFO, SPECS) == [1, 2, 4, 5, 3]


def test_carecall_keeps_its_referent_and_tier_order_on_the_same_tasks() -> None:
    # fair routing: the high-tier calls only a senior may take first, then her référent patient,
    # then highest tier, oldest first; without fair routing her référent patient comes first
    assert handed(policy, SPECS) == [5, 3, 4, 2, 1]
    plain = policy.model_copy(update={"outreach": policy.outreach.model_copy(update={"fair_routing": False})})
    assert handed(plain, SPECS) == [4, 5, 3, 2, 1]


def test_a_callback_keeps_its_nurse_and_priority_under_fifo() -> None:
    assert baseline.queue_choices(True, CALLBACK_PRIORITY, 7, FIFO) == (CALLBACK_PRIORITY, 7)
    assert baseline.queue_choices(False, 3, 7, FIFO) == (0, None)
    assert baseline.queue_choices(False, 3, 7, policy) == (3, 7)


# ------------------------------------------------------------------ retries

RETRYABLE = [
    r
    for r in AttemptResult
    if r not in (AttemptResult.answered, AttemptResult.interrupted, AttemptResult.no_nurse)
]


def fifo_oracle(ended: datetime, task: TaskState, pol: Policy) -> datetime | None:
    """Written from the sentence: the first calling minute at least `fifo_retry_hours` after the
    attempt, on a day the patient has dials left, before the deadline."""
    at = ended + timedelta(hours=pol.outreach.fifo_retry_hours)
    per_day: dict[date, int] = {}
    for s in set(task.attempt_starts) | set(task.patient_starts):
        per_day[cal.local_date(s, PLACE)] = per_day.get(cal.local_date(s, PLACE), 0) + 1
    for start, end in cal.next_windows(at, PLACE, pol.calling_hours, horizon_days=90):
        if start >= task.deadline:
            return None
        if per_day.get(cal.local_date(start, PLACE), 0) >= pol.caps.max_attempts_per_day:
            continue
        if end - start >= timedelta(minutes=5):
            return start
    return None


@settings(deadline=None, max_examples=150)
@given(
    result=st.sampled_from(RETRYABLE),
    minute=st.integers(min_value=0, max_value=14 * 24 * 60),
    hours=st.sampled_from([2, 4, 9.5, 24]),
    earlier=st.lists(st.integers(min_value=30, max_value=3 * 24 * 60), max_size=3),
)
def test_fifo_retries_one_fixed_spacing_after_any_result(
    result: AttemptResult, minute: int, hours: float, earlier: list[int]
) -> None:
    pol = FIFO.model_copy(update={"outreach": FIFO.outreach.model_copy(update={"fifo_retry_hours": hours})})
    ended = datetime(2027, 1, 11, 8, 0, tzinfo=UTC) + timedelta(minutes=minute)
    starts = (ended - timedelta(minutes=2), *(ended - timedelta(minutes=m) for m in earlier))
    task = TaskState(1 + len(earlier), ended + timedelta(days=10), starts, starts)
    decision = after_attempt(result, ended, task, PATIENT, baseline.retry_policy(pol))
    assert decision.next_at == fifo_oracle(ended, task, pol)


def test_fifo_does_not_vary_the_time_of_day_where_carecall_does() -> None:
    """Two morning attempts on Monday: carecall moves the third to an afternoon, fifo takes the
    first calling minute after its spacing (Tuesday morning at the window's opening)."""
    monday = date(2027, 1, 11)
    starts = (paris(monday, 9), paris(monday, 11, 30))
    ended = starts[-1] + timedelta(minutes=1)
    task = TaskState(2, paris(monday + timedelta(days=10), 0), starts, starts)
    carecall = after_attempt(AttemptResult.no_answer, ended, task, PATIENT, baseline.retry_policy(policy))
    fifo = after_attempt(AttemptResult.no_answer, ended, task, PATIENT, baseline.retry_policy(FIFO))
    assert carecall.next_at == paris(monday + timedelta(days=1), 13, 30)
    assert fifo.next_at == paris(monday + timedelta(days=1), 9)


def test_the_carecall_policy_is_not_touched() -> None:
    assert baseline.retry_policy(policy) is policy
    assert baseline.retry_policy(FIFO).outreach.best_time is False


# ------------------------------------------------------------------ planning

MON, TUE, WED = date(2027, 1, 11), date(2027, 1, 12), date(2027, 1, 13)


def candidate(pid: int, tier: Tier) -> Candidate:
    """The higher the id, the more overdue: carecall's planner would take them first."""
    overdue = MON - timedelta(days=pid)
    return Candidate(pid, PatientState(EnrolmentStatus.enrolled, tier, PLACE, next_contact_on=overdue))


def test_fifo_plans_the_whole_list_on_its_first_day_in_mailing_order() -> None:
    """One senior for two hours a day can take a handful of calls: carecall levels them over the
    days, high tier first, and leaves the rest out; fifo puts everyone on Monday, by patient id."""
    senior = NurseShifts(
        1,
        NurseLevel.senior,
        frozenset(),
        ((0, time(9), time(11)), (1, time(9), time(11)), (2, time(9), time(11))),
    )
    tiers = [Tier.low, Tier.high, Tier.medium] * 10
    cands = [candidate(pid, tier) for pid, tier in zip(range(30, 0, -1), tiers, strict=True)]
    fifo = baseline.plan_wave(cands, [senior], [MON, TUE, WED], FIFO)
    assert list(fifo.assignments) == list(range(1, 31))
    assert set(fifo.assignments.values()) == {MON}
    assert fifo.unplaced == []
    assert fifo.days[MON].capacity == pytest.approx(120 * policy.dialer.target_occupancy)
    carecall = baseline.plan_wave(cands, [senior], [MON, TUE, WED], policy)
    assert carecall.unplaced
    tier_of = {c.patient_id: c.state.tier for c in cands}
    assert {tier_of[pid] for pid, day in carecall.assignments.items() if day == MON} == {Tier.high}
