"""Best time to call in the dialer's choice among due tasks of equal priority (dialer/routing.py).

A task placed where its patient answers with probability p goes before the due
tasks of its priority that fell due up to p × `best_time_lead_minutes` before
it, never before a higher priority, and never further ahead than that: a
patient unlikely to answer is delayed a little, not starved.
"""

from __future__ import annotations

from datetime import timedelta

from test_routing import JUNIOR, NOW, pops, queue_of, task

from campaign.policy import Tier, load_policy
from dialer.routing import lead_for

policy = load_policy()
LEAD = policy.outreach.best_time_lead_minutes
OFF = policy.model_copy(update={"outreach": policy.outreach.model_copy(update={"best_time": False})})


def with_estimate(t, p: float | None, pol=policy):  # type: ignore[no-untyped-def]
    t.lead = lead_for(p, pol)
    return t


def test_among_equal_priority_the_likelier_answer_goes_first_within_the_lead() -> None:
    assert LEAD >= 30
    older = with_estimate(task(1, age_minutes=20), 0.1)  # due 20 min ago, rarely answers
    likely = with_estimate(task(2, age_minutes=5), 0.9)  # due 5 min ago, nearly always answers
    assert pops(queue_of([older, likely]), JUNIOR) == [2, 1]


def test_the_head_start_is_bounded_so_nobody_is_starved() -> None:
    """Due longer ago than the lead covers: the unlikely patient keeps their turn."""
    long_due = with_estimate(task(1, age_minutes=LEAD + 30), 0.0)
    likely = with_estimate(task(2, age_minutes=0), 1.0)
    assert pops(queue_of([long_due, likely]), JUNIOR) == [1, 2]


def test_a_higher_priority_still_comes_first() -> None:
    high_tier_unlikely = with_estimate(task(1, tier=Tier.medium, age_minutes=1, priority=5), 0.0)
    likely = with_estimate(task(2, tier=Tier.medium, age_minutes=30, priority=1), 1.0)
    assert pops(queue_of([high_tier_unlikely, likely]), JUNIOR) == [1, 2]


def test_best_time_off_is_todays_order() -> None:
    """The estimate stored on a task changes nothing when best time is off: oldest due first."""
    assert lead_for(0.9, OFF) == timedelta(0)
    assert lead_for(None, policy) == timedelta(0)
    older = with_estimate(task(1, age_minutes=20), 0.1, OFF)
    likely = with_estimate(task(2, age_minutes=5), 0.9, OFF)
    assert pops(queue_of([older, likely]), JUNIOR) == [1, 2]


def test_a_requeued_task_keeps_its_head_start() -> None:
    q = queue_of([with_estimate(task(1, age_minutes=5), 0.9)])
    t = q.pop_for(JUNIOR)
    assert t is not None
    q.requeue(t, NOW - timedelta(minutes=1))
    q.add(with_estimate(task(2, age_minutes=20), 0.0))
    q.advance(NOW)
    assert pops(q, JUNIOR) == [1, 2]
