"""What the benchmark's arms are measured against: the simulator's ground truth (scripts/bench_outreach.py).

Who was reachable at all in the window, and, per reachable patient, what the tier's attempts could
reach: placed at random calling hours, at the patient's best hours with a nurse always free, and
placed by an oracle that knows every patient's true chances but has only the roster's hours
(`roster_bounds`), knowing or not when they are away. Only the benchmark reads the truth;
nothing in carecall does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import NamedTuple

from campaign import planning
from campaign.policy import NurseLevel, Policy, Tier
from dialer.population import Population

# per local day, (instant, chance a call then reaches the patient) at each calling hour
Chances = Sequence[Sequence[tuple[datetime, float]]]
HOUR = timedelta(hours=1)


class Bound(NamedTuple):
    """One reachable patient's chance to be reached by the tier's attempts, three ways."""

    at_random_hours: float
    at_best_hours: float
    # by the oracle on the roster's hours (`roster_bounds`); None for the tiers every nurse may take
    on_the_roster: float | None = None
    # by the same oracle blind to stays away: it knows every chance as if the patient were at
    # home, as no dialer can tell a patient away from one not picking up
    blind_to_absences: float | None = None


def reachable_patients(
    rows: Iterable[tuple[int, str, str, str | None]],
    population: Population,
    start: datetime,
    end: datetime,
) -> set[int]:
    """The simulator's ground truth: the patients who can be reached at all in [start, end) (a working
    number, and some calling hour when they are present and would answer: `Population.reachable`).
    Only the benchmark reads it; nothing in carecall does."""
    return {pid for pid, member, _phone, _alt in rows if population.reachable(member, start, end)}


def reach_bounds(chances: Chances, attempts: int, per_day: int, gap: timedelta) -> tuple[float, float]:
    """The chance `attempts` calls reach one patient whose chances by day and calling hour are these
    (`Population.chances`), placed (at random hours) each at a calling hour of the window drawn at
    random, or (at best hours) at their best hours, at most `per_day` a day, `gap` apart, nurses
    always free. What a dialer with that many attempts could get without timing, and at best."""
    hours = [p for day in chances for _at, p in day]
    if not hours:
        return 0.0, 0.0
    at_random = 1 - (1 - sum(hours) / len(hours)) ** attempts
    picked: list[float] = []
    for day in chances:
        chosen: list[tuple[datetime, float]] = []
        for at, p in sorted(day, key=lambda h: -h[1]):
            if len(chosen) == per_day:
                break
            if all(abs(at - other) >= gap for other, _p in chosen):
                chosen.append((at, p))
        picked += [p for _at, p in chosen]
    at_best = 1 - math.prod(1 - p for p in sorted(picked, reverse=True)[:attempts])
    return at_random, at_best


@dataclass(slots=True)
class _Patient:
    attempts: int  # the tier's cap
    call_minutes: float  # nurse minutes of a reaching call
    unreached: float = 1.0  # the chance no call reached the patient yet
    made: int = 0
    last: datetime | None = None
    per_day: dict[int, int] = field(default_factory=dict)  # calls per day of the window


def roster_bounds(
    chances: Mapping[int, Chances],
    attempts: Mapping[int, int],
    call_minutes: Mapping[int, float],
    capacity: Mapping[datetime, float],
    *,
    per_day: int,
    gap: timedelta,
    noanswer_minutes: float,
    believed: Mapping[int, Chances] | None = None,
) -> dict[int, float]:
    """Per patient, the chance to be reached by an oracle calling them on one pool of nurses'
    hours: `capacity` is the pool's minutes on the phone in each hour (keyed by the hour's start,
    UTC). Hour by hour, the oracle calls the patients with a calling hour then, those for whom this
    hour is best against their own week first (chance now over their mean chance), within their
    attempt cap, `per_day` and `gap`, as long as the hour's minutes last.

    `believed`: the chances the oracle chooses by, hour for hour the same as `chances` (what the
    calls get) but for what it cannot know, such as a patient's stays away; by default it knows.

    Fluid: a call to a patient still unreached with probability u costs u × (p × call minutes +
    (1 - p) × `noanswer_minutes`) and leaves u × (1 - p); the hour's last call may be made in
    part. Not a proof of optimality but what a dialer knowing every patient's true chances would
    get on this roster. Ordered by the chance itself instead, it reached 92.8 % of the high tier
    against 95.0 % on the 20,000 benchmark's seed 0 (when "call me back" calls lasted a whole
    conversation)."""
    slots: dict[datetime, list[tuple[float, int, int, float]]] = defaultdict(list)
    patients: dict[int, _Patient] = {}
    for pid, days in chances.items():
        thought = days if believed is None else believed[pid]
        present = [p for day in thought for _at, p in day if p > 0]
        if not present:
            continue
        mean = sum(present) / len(present)
        patients[pid] = _Patient(attempts[pid], call_minutes[pid])
        for index, (day, thought_day) in enumerate(zip(days, thought, strict=True)):
            for (at, p), (_at, q) in zip(day, thought_day, strict=True):
                if q > 0:
                    slots[_hour_of(at)].append((-q / mean, pid, index, p))
    for hour in sorted(slots):
        left = capacity.get(hour, 0.0)
        for _rank, pid, day_index, p in sorted(slots[hour]):
            if left <= 0:
                break
            patient = patients[pid]
            if patient.made >= patient.attempts or patient.per_day.get(day_index, 0) >= per_day:
                continue
            if patient.last is not None and hour - patient.last < gap:
                continue
            cost = patient.unreached * (p * patient.call_minutes + (1 - p) * noanswer_minutes)
            share = min(1.0, left / cost) if cost > 0 else 1.0
            left -= cost * share
            patient.unreached *= 1 - p * share
            patient.made += 1
            patient.per_day[day_index] = patient.per_day.get(day_index, 0) + 1
            patient.last = hour
    return {pid: 1 - patient.unreached for pid, patient in patients.items()}


def reaching_call_minutes(policy: Policy, tier: Tier) -> float:
    """Nurse minutes per conversation that reaches a patient of `tier`, as the simulated nurses
    spend them: the conversation (`call_minutes`, wrap-up included) and, for the share asking to
    be called back first, each such short call (`callback_minutes`' mean talk and a wrap-up)."""
    sim = policy.simulation
    callback = sum(sim.callback_minutes) / 2 + policy.dialer.wrap_up_seconds / 60
    return policy.tiers[tier].call_minutes + callback * sim.callback_requested / (1 - sim.callback_requested)


def _hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def pool_capacity(
    nurses: Iterable[planning.NurseShifts],
    levels: frozenset[NurseLevel],
    days: Iterable[date],
    on_phone: float,
) -> dict[datetime, float]:
    """Minutes on the phone per hour (UTC, keyed by its start) of the nurses of these levels: their
    shifts on these days, times the share of a shift a nurse spends on the phone."""
    out: dict[datetime, float] = defaultdict(float)
    for nurse in nurses:
        if nurse.level not in levels:
            continue
        for day in days:
            for start, end in nurse.utc_shifts_on(day):
                at = start
                while at < end:
                    cut = min(end, _hour_of(at) + HOUR)
                    out[_hour_of(at)] += (cut - at).total_seconds() / 60 * on_phone
                    at = cut
    return dict(out)


def scarce_pools(policy: Policy) -> dict[frozenset[NurseLevel], list[Tier]]:
    """The tiers not every level may take (the high tier: seniors only), by the levels that may: an
    oracle may give those nurses' whole hours to them, since the other tiers have other nurses."""
    every = frozenset(NurseLevel)
    out: dict[frozenset[NurseLevel], list[Tier]] = defaultdict(list)
    for tier in policy.tiers:
        levels = frozenset(policy.tiers[tier].nurse_levels)
        if levels != every:
            out[levels].append(tier)
    return dict(out)


def bounds_of(
    rows: Iterable[tuple[int, str, str, str | None]],
    reachable: set[int],
    population: Population,
    policy: Policy,
    nurses: Sequence[planning.NurseShifts],
    start: datetime,
    end: datetime,
) -> dict[int, Bound]:
    """Each reachable patient's `Bound`, with their tier's attempts and the daily cap and gap of the
    rules; `on_the_roster` and `blind_to_absences` for the tiers not every nurse may take
    (`scarce_pools`), on the whole hours of the nurses who may (their skills aside: measured apart
    on seed 0, the seniors' skills cost the oracle 0.1 point), a reaching call costing the tier's
    call minutes and the calls of the patients who ask to be called back on the way."""
    gap = timedelta(minutes=policy.retry.min_gap_minutes)
    per_day = policy.caps.max_attempts_per_day
    chances: dict[int, list[list[tuple[datetime, float]]]] = {}
    tiers: dict[int, Tier] = {}
    members: dict[int, str] = {}
    for pid, member, _phone, _alt in rows:
        if pid in reachable:
            chances[pid] = list(population.chances(member, start, end))
            tiers[pid] = population.people[member].facts.tier
            members[pid] = member
    out = {
        pid: Bound(*reach_bounds(days, policy.max_attempts(tiers[pid]), per_day, gap))
        for pid, days in chances.items()
    }
    sim = policy.simulation
    # the nurses' local days around the window's UTC ones: zones either side of UTC
    first, last = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    for levels, pool_tiers in scarce_pools(policy).items():
        mine = {pid: by_day for pid, by_day in chances.items() if tiers[pid] in pool_tiers}
        at_home = {
            pid: list(population.chances(members[pid], start, end, as_if_present=True)) for pid in mine
        }
        oracle = partial(
            roster_bounds,
            mine,
            {pid: policy.max_attempts(tiers[pid]) for pid in mine},
            {pid: reaching_call_minutes(policy, tiers[pid]) for pid in mine},
            pool_capacity(nurses, levels, days, 1 - sim.off_phone_share),
            per_day=per_day,
            gap=gap,
            noanswer_minutes=policy.dialer.noanswer_handle_minutes,
        )
        knowing, blind = oracle(), oracle(believed=at_home)
        for pid in mine:
            b = out[pid]
            out[pid] = b._replace(on_the_roster=knowing.get(pid, 0.0), blind_to_absences=blind.get(pid, 0.0))
    return out
