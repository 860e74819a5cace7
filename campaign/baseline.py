"""The FIFO baseline: carecall's production loop with its choices swapped for a plain dialer's.

For comparison only (`policy.outreach.strategy = "fifo"`, scripts/bench_outreach.py). The
same planner, rules, dialer and storage run; only what carecall chooses is replaced:

- planning: every recipient's first call is due on their first day with calling hours and a
  qualified nurse at work, in mailing order (patient id), with no capacity levelling, no
  tier first and no tier start offsets: the whole list is there to be dialed from day one;
- routing: no tier priority and no référent preference, so due tasks are dialed in the
  order they became due, then in mailing order (a callback the patient asked for keeps its
  nurse and its priority: it is the patient's request, not a choice of carecall's);
- retries: one fixed spacing (`fifo_retry_hours`) whatever the result, no time-of-day
  variation, no learned best time.

The calling windows, holidays, minimum gap, daily cap, attempt cap and contact cap are the
production rules themselves. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from campaign import planning
from campaign.policy import Policy, Tier

# planning's capacity made unbounded: no day ever fills, so nothing is levelled or left out
_UNBOUNDED_OCCUPANCY = 1e9


def is_fifo(policy: Policy) -> bool:
    return policy.outreach.strategy == "fifo"


def retry_policy(policy: Policy) -> Policy:
    """The policy `rules.after_attempt` is given: under fifo, one spacing for every result and
    no time-of-day variation or best time; otherwise `policy` itself."""
    if not is_fifo(policy):
        return policy
    minutes = max(1, round(policy.outreach.fifo_retry_hours * 60))
    retry = policy.retry.model_copy(
        update={
            "unanswered_minutes": minutes,
            "busy_minutes": minutes,
            "failed_minutes": minutes,
            "machine_minutes": minutes,
            "vary_time_of_day": False,
        }
    )
    outreach = policy.outreach.model_copy(update={"best_time": False})
    return policy.model_copy(update={"retry": retry, "outreach": outreach})


def queue_choices(
    kind_is_callback: bool, priority: int, referent_id: int | None, policy: Policy
) -> tuple[int, int | None]:
    """(priority, référent) a due task is routed with: under fifo, a wave task has neither
    tier priority nor référent, so tasks go in the order they fell due, then mailing order."""
    if not is_fifo(policy) or kind_is_callback:
        return priority, referent_id
    return 0, None


def plan_wave(
    candidates: Iterable[planning.Candidate],
    nurses: Sequence[planning.NurseShifts],
    days: Sequence[date],
    policy: Policy,
) -> planning.WavePlan:
    """The wave's plan: carecall's (`planning.plan_wave`), or under fifo the whole list due
    from its first possible day, in mailing order (the order of `plan.assignments`, which
    is the order the tasks are written in, hence their ids)."""
    if not is_fifo(policy):
        return planning.plan_wave(candidates, nurses, days, policy)
    tiers = {t: policy.tiers[t].model_copy(update={"priority": 0, "start_offset_days": 0}) for t in Tier}
    dialer = policy.dialer.model_copy(update={"target_occupancy": _UNBOUNDED_OCCUPANCY})
    # the plain planner charges every retry to the first-call day (no spread over the retries' days)
    outreach = policy.outreach.model_copy(update={"spread_retries": False})
    flat = policy.model_copy(update={"tiers": tiers, "dialer": dialer, "outreach": outreach})
    plan = planning.plan_wave(candidates, nurses, days, flat)
    plan.assignments = dict(sorted(plan.assignments.items()))
    scale = policy.dialer.target_occupancy / _UNBOUNDED_OCCUPANCY
    for load in plan.days.values():
        load.capacity *= scale  # the nurses' real capacity, for `wave show` and the load report
    return plan
