"""On which days a task's nurse time falls: its first call's day and the days of its retries.

Pure. Planning used to charge a task's whole expected cost (the reached call and
every expected unanswered attempt) to the first-call day, so the first days of a
wave ran hotter than planned and the last ones cooler. Here the cost is split
by attempt and each attempt is put on the day the retry rule would give it:

- attempt k (1-based) answers with p_k, `dialer.answer_rate_by_attempt` (falling: the
  patients easy to reach are reached first; 1/E, the tier's
  `expected_attempts_per_reach`, for every attempt when it is empty), so it is
  the reaching one with probability p_k times the chance that none before did,
  and an unanswered one with that chance times 1 - p_k. Both series are cut at
  the tier's attempt cap (`Policy.max_attempts`) and scaled back to 1 and E - 1, so the shares add up to
  exactly `task_cost` (the reached call plus E - 1 unanswered attempts, times the share of
  tasks that reach the patient);
- the day of each attempt comes from `rules.after_attempt` itself (spacing
  after no answer, daily cap, varied time of day, the wave's end), starting
  from first calls spread evenly over the first day's calling hours, for a
  metropolitan patient (`REFERENCE_PLACE`): the plan is an expectation, not a
  per-patient schedule;
- an attempt the rule would not make (the wave ends first) cannot happen: its
  share stays on the day of the last attempt that can, so every minute lands
  on a day of the wave and the total is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, time, timedelta

from campaign import calendar as cal
from campaign import rules
from campaign.policy import Policy, Tier
from campaign.rules import PatientState, TaskState
from campaign.states import AttemptResult, EnrolmentStatus

REFERENCE_PLACE = cal.Place("75", "Europe/Paris")
# first calls are sampled every this many minutes of the first day's calling hours
SAMPLE_MINUTES = 15

Shares = tuple[tuple[int, float], ...]  # (index into the wave's days, nurse minutes)


def task_cost(tier: Tier, policy: Policy) -> float:
    """Expected nurse minutes of one task: a reached call plus its unanswered attempts, times the share
    of tasks that reach the patient (`expected_reach`, r). With E attempts per reach, a task makes r * E
    attempts on average, r of them reaching: r * (call + noanswer * (E - 1)) minutes."""
    expected = policy.dialer.expected_attempts_per_reach[tier]
    reach = policy.dialer.expected_reach[tier]
    return reach * (policy.tiers[tier].call_minutes + policy.dialer.noanswer_handle_minutes * (expected - 1))


def answer_rate(tier: Tier, attempts_made: int, policy: Policy) -> float:
    """The chance that a task's next attempt reaches the patient, after `attempts_made`:
    `dialer.answer_rate_by_attempt` (its last rate for later attempts), else 1/E."""
    rates = policy.dialer.answer_rate_by_attempt or [1.0 / policy.dialer.expected_attempts_per_reach[tier]]
    return rates[min(attempts_made, len(rates) - 1)]


def attempt_costs(tier: Tier, policy: Policy) -> list[float]:
    """Expected nurse minutes of attempt 1, 2, … max_attempts of one task; they add up to its cost."""
    expected = policy.dialer.expected_attempts_per_reach[tier]
    reach, fail = [], []
    left = 1.0  # the chance that no attempt before this one reached the patient
    for k in range(policy.max_attempts(tier)):
        p = answer_rate(tier, k, policy)
        reach.append(left * p)
        left *= 1 - p
        fail.append(left)
    reach_total, fail_total = sum(reach), sum(fail)
    share = policy.dialer.expected_reach[tier]
    call = share * policy.tiers[tier].call_minutes
    unanswered = share * policy.dialer.noanswer_handle_minutes * (expected - 1)
    return [
        call * r / reach_total + (unanswered * f / fail_total if fail_total else 0.0)
        for r, f in zip(reach, fail, strict=True)
    ]


def attempt_days(days: Sequence[date], start: int, policy: Policy) -> list[list[int]]:
    """For first calls sampled over days[start]'s calling hours: the day index of each attempt the
    retry rule would make, after unanswered attempts, until the deepest tier's max_attempts or the
    wave's end (a tier that stops sooner takes the first of them: the rule's days do not depend
    on the tier)."""
    place = REFERENCE_PLACE
    index = {d: i for i, d in enumerate(days)}
    deadline = cal.at_local(days[-1] + timedelta(days=1), time(0), place.timezone)
    deepest = max(Tier, key=policy.max_attempts)
    patient = PatientState(EnrolmentStatus.enrolled, deepest, place)
    ring = timedelta(seconds=policy.retry.ring_timeout_seconds)
    step = timedelta(minutes=SAMPLE_MINUTES)
    firsts = []
    for s, e in cal.utc_intervals(days[start], place, policy.calling_hours):
        at = s + step / 2
        while at < e:
            firsts.append(at)
            at += step
    out: list[list[int]] = []
    for first in firsts:
        starts = [first]
        seq = [start]
        while len(starts) < policy.max_attempts(deepest):
            task = TaskState(len(starts), deadline, tuple(starts), tuple(starts))
            decision = rules.after_attempt(AttemptResult.no_answer, starts[-1] + ring, task, patient, policy)
            if decision.next_at is None:
                break
            day = index.get(cal.local_date(decision.next_at, place))
            if day is None:
                break  # not a day of the wave: the retry cannot be planned on it
            starts.append(decision.next_at)
            seq.append(day)
        out.append(seq)
    return out or [[start]]


def spread_table(days: Sequence[date], policy: Policy) -> dict[Tier, list[Shares]]:
    """Per tier, per first-call day index: the task's minutes on each day of the wave.

    With `outreach.spread_retries` off, a task's whole cost stays on its first-call day
    (the planner's behaviour before). Computed once per plan: a few thousand calls of
    the retry rule, whatever the number of patients.
    """
    if not policy.outreach.spread_retries:
        return {t: [((i, task_cost(t, policy)),) for i in range(len(days))] for t in Tier}
    costs = {t: attempt_costs(t, policy) for t in Tier}
    table: dict[Tier, list[Shares]] = {t: [] for t in Tier}
    for i in range(len(days)):
        samples = attempt_days(days, i, policy)
        for t in Tier:
            per_day: dict[int, float] = defaultdict(float)
            for seq in samples:
                for k, minutes in enumerate(costs[t]):
                    per_day[seq[min(k, len(seq) - 1)]] += minutes / len(samples)
            table[t].append(tuple(sorted((j, m) for j, m in per_day.items() if m > 0)))
    return table
