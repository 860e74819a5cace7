"""Capacity-aware wave planning.

Pure: given the mailing's patients, the nurses' shifts, the policy and the
wave's working days, decide which day each patient's first call is placed on.
A day is never planned beyond the nurse time it has: each task costs its
tier's expected handle time plus the time of the expected unanswered attempts,
and is charged to the nurse pools (senior, junior, and the skill it needs) that
may take it, each attempt's share on the day it is expected to happen
(`retry_spread`). Highest tier first, then the most overdue patients.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from campaign import calendar as cal
from campaign.day_pacing import PoolTimeline
from campaign.policy import CallingHours, NurseLevel, Policy, Tier
from campaign.retry_spread import REFERENCE_PLACE, Shares, spread_table, task_cost
from campaign.rules import PatientState
from campaign.states import EnrolmentStatus


@dataclass(frozen=True, slots=True)
class Candidate:
    patient_id: int
    state: PatientState
    skills: frozenset[str] = frozenset()  # nurse skills this patient's call needs
    open_task_elsewhere: bool = False  # already has an open task in another wave
    tasks_in_period: int = 0  # wave tasks created within caps.period_days


@dataclass(frozen=True, slots=True)
class NurseShifts:
    nurse_id: int
    level: NurseLevel
    skills: frozenset[str]
    shifts: tuple[tuple[int, time, time], ...]  # (weekday, start, end), nurse's local time
    timezone: str = "Europe/Paris"

    def callable_shifts(self, day: date, hours: CallingHours | None = None) -> list[tuple[time, time]]:
        """Her shifts that day (local times), cut to the calling hours in her own time when given:
        on shift before calls may start or after they must end, she takes no call. (Capacity counts
        only these minutes; whom she may call keeps her whole shifts: late in Paris, the Antilles.)"""
        spans = [(start, end) for weekday, start, end in self.shifts if weekday == day.weekday()]
        if hours is None:
            return spans
        out = []
        for start, end in spans:
            for w in hours.by_weekday[day.weekday()]:
                a, b = max(start, w.start), min(end, w.end)
                if a < b:
                    out.append((a, b))
        return out

    def utc_shifts_on(self, day: date, hours: CallingHours | None = None) -> list[tuple[datetime, datetime]]:
        return [
            (cal.at_local(day, start, self.timezone), cal.at_local(day, end, self.timezone))
            for start, end in self.callable_shifts(day, hours)
        ]

    def minutes_on(self, day: date, hours: CallingHours | None = None) -> float:
        return sum(
            (datetime.combine(day, end) - datetime.combine(day, start)).total_seconds() / 60
            for start, end in self.callable_shifts(day, hours)
        )


@dataclass(slots=True)
class DayLoad:
    tasks: Counter[str] = field(default_factory=Counter)  # tier -> first calls planned that day
    minutes: float = 0.0  # expected nurse minutes that day: first calls and the retries falling on it
    capacity: float = 0.0


@dataclass(slots=True)
class WavePlan:
    assignments: dict[int, date] = field(default_factory=dict)  # patient_id -> day
    days: dict[date, DayLoad] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> patients
    skipped_ids: dict[str, list[int]] = field(default_factory=dict)
    unplaced: list[int] = field(default_factory=list)  # no capacity left
    # what the unplaced need, per tier: the supervisor's staffing ask ("about 40 h of senior time")
    unplaced_tiers: Counter[Tier] = field(default_factory=Counter)
    unplaced_minutes: defaultdict[Tier, float] = field(default_factory=lambda: defaultdict(float))
    unplaced_levels: dict[Tier, list[str]] = field(default_factory=dict)  # who may take them
    # outreach.pace_first_calls: when in its day each first call falls due (UTC); see day_pacing
    due_at: dict[int, datetime] = field(default_factory=dict)

    def unplaced_needs(self) -> dict[str, dict[str, object]]:
        """Per tier, the patients that did not fit, the nurse hours they would take (planning's
        cost) and the levels that may take them: what to ask of the roster."""
        return {
            t.value: {
                "patients": self.unplaced_tiers[t],
                "hours": round(self.unplaced_minutes[t] / 60, 1),
                "levels": self.unplaced_levels[t],
            }
            for t in reversed(Tier)  # high first
            if self.unplaced_tiers[t]
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "days": {
                d.isoformat(): {
                    "tasks": dict(load.tasks),
                    "minutes": round(load.minutes, 1),
                    "capacity": round(load.capacity, 1),
                }
                for d, load in sorted(self.days.items())
            },
            "skipped": dict(self.skipped),
            "unplaced": len(self.unplaced),
            "unplaced_by_tier": self.unplaced_needs(),
            "planned": len(self.assignments),
        }


NO_NURSE_IN_WINDOW = "no_nurse_in_window"
__all__ = ["Candidate", "DayLoad", "NurseShifts", "WavePlan", "plan_wave", "skip_reason", "task_cost"]


def skip_reason(c: Candidate, window_end: date, policy: Policy) -> str | None:
    s = c.state
    if s.status in (EnrolmentStatus.withdrawn, EnrolmentStatus.deceased):
        return s.status.value
    suspended_all_wave = s.suspended_until is None or s.suspended_until >= window_end
    if s.status == EnrolmentStatus.suspended and suspended_all_wave:
        return "suspended"
    if not s.consent:
        return "no_consent"
    if s.dialable_numbers <= 0:
        return "no_number"
    if c.open_task_elsewhere:
        return "open_task_in_other_wave"
    if c.tasks_in_period >= policy.caps.max_tasks_per_period:
        return "contact_cap"
    return None


def _pools_for(tier: Tier, policy: Policy) -> list[NurseLevel]:
    """Cheapest pool first, so senior time is kept for those only seniors may take."""
    levels = policy.tiers[tier].nurse_levels
    return sorted(levels, key=lambda lv: 0 if lv == NurseLevel.junior else 1)


Interval = tuple[datetime, datetime]


def _distinct(intervals: list[Interval]) -> list[Interval]:
    """Each nurse's shifts, the same ones once (a roster has few shift patterns). Not merged: two
    nurses back to back do not make one who can take a call across the change of shift."""
    return sorted(set(intervals))


def _overlaps(a: list[Interval], b: list[Interval], minutes: float) -> bool:
    need = minutes * 60
    return any((min(e1, e2) - max(s1, s2)).total_seconds() >= need for s1, e1 in a for s2, e2 in b)


def _usable(d: date, c: Candidate, policy: Policy, has_hours: dict[tuple[date, cal.Place], bool]) -> bool:
    """Not inside the patient's suspension; calling hours where they live (no local holiday).

    `has_hours` caches the calling hours per (day, place): places repeat across a
    million patients.
    """
    until = c.state.suspended_until
    if c.state.status == EnrolmentStatus.suspended and until and d <= until:
        return False
    key = (d, c.state.place)
    hours = has_hours.get(key)
    if hours is None:
        hours = has_hours[key] = bool(cal.local_windows(d, c.state.place, policy.calling_hours))
    return hours


def _fit(
    shares: Shares,
    i: int,
    pool: NurseLevel,
    skills: frozenset[str],
    days: Sequence[date],
    level_left: dict[date, dict[NurseLevel, float]],
    skill_left: dict[date, dict[tuple[NurseLevel, str], float]],
    callable_day: Sequence[bool],
) -> dict[int, float] | None:
    """Where a task's minutes go in this pool if its first call is on days[i], or None if they do not fit.

    The first-call day's share must fit that day. A retry's share goes on its day as far as the
    pool has room, the rest on the next callable days: a retry due on a full day (a Saturday
    with one nurse, say) waits for a nurse, it is not dropped.
    """
    alloc: dict[int, float] = defaultdict(float)
    for j, m in shares:
        rest = m
        for k in range(j, j + 1) if j == i else range(j, len(days)):
            if k != i and not callable_day[k]:
                continue
            room = (
                min([level_left[days[k]][pool], *(skill_left[days[k]][(pool, sk)] for sk in skills)])
                - alloc[k]
            )
            take = min(rest, room) if k != i else rest if room >= rest else 0.0
            if take > 0:
                alloc[k] += take
                rest -= take
            if rest <= 1e-9:
                break
        if rest > 1e-9:
            return None
    return alloc


def plan_wave(
    candidates: Iterable[Candidate],
    nurses: Sequence[NurseShifts],
    days: Sequence[date],
    policy: Policy,
    *,
    committed: Mapping[date, float] | None = None,
    first_call_days: int | None = None,
    start_offsets: bool = True,
) -> WavePlan:
    """Place first calls on `days` in tier order, each where its expected minutes fit.

    A morning top-up of a running wave (`services.top_up`) plans what is left of it:
    `committed` nurse minutes per day are taken already (shared among the pools as
    their capacity is), first calls go on the first `first_call_days` days only, and
    without `start_offsets` every tier may start at once (the offsets keep a wave's
    first days for the higher tiers; spare time is spare).
    """
    plan = WavePlan()
    if not days:
        raise ValueError("a wave needs at least one working day")
    occupancy = policy.dialer.target_occupancy
    # remaining minutes per day, per level pool and per skill within a level: a junior trained for heart
    # failure adds nothing to the minutes a high-tier heart-failure patient (seniors only) may use
    level_left: dict[date, dict[NurseLevel, float]] = {}
    skill_left: dict[date, dict[tuple[NurseLevel, str], float]] = {}
    level_cap: dict[date, dict[NurseLevel, float]] = {}
    for d in days:
        level_left[d] = defaultdict(float)
        skill_left[d] = defaultdict(float)
        cap = 0.0
        for n in nurses:
            m = n.minutes_on(d, policy.calling_hours) * occupancy
            level_left[d][n.level] += m
            for sk in n.skills:
                skill_left[d][(n.level, sk)] += m
            cap += m
        plan.days[d] = DayLoad(capacity=cap)
        level_cap[d] = dict(level_left[d])
        taken = min(1.0, (committed or {}).get(d, 0.0) / cap) if cap else 0.0
        if taken:
            for key in level_left[d]:
                level_left[d][key] *= 1 - taken
            for skey in skill_left[d]:
                skill_left[d][skey] *= 1 - taken
    # when nurses of each (level, skills) group are at work, per day: a patient is only
    # placed on a day when a nurse allowed to take the call works during their window
    groups: dict[date, dict[tuple[NurseLevel, frozenset[str]], list[Interval]]] = {}
    for d in days:
        by_group: dict[tuple[NurseLevel, frozenset[str]], list[Interval]] = defaultdict(list)
        for n in nurses:
            by_group[(n.level, n.skills)].extend(n.utc_shifts_on(d))
        groups[d] = {k: _distinct(v) for k, v in by_group.items() if v}
    reach_cache: dict[tuple[date, cal.Place, Tier, frozenset[str]], tuple[bool, frozenset[NurseLevel]]] = {}

    def reachable(d: date, c: Candidate) -> tuple[bool, frozenset[NurseLevel]]:
        """(some qualified nurse works that day, the levels whose nurses work in the patient's window)."""
        key = (d, c.state.place, c.state.tier, c.skills)
        hit = reach_cache.get(key)
        if hit is None:
            allowed = policy.tiers[c.state.tier].nurse_levels
            windows = cal.utc_intervals(d, c.state.place, policy.calling_hours)
            minutes = policy.tiers[c.state.tier].call_minutes
            working = False
            levels: set[NurseLevel] = set()
            for (level, skills), shifts in groups[d].items():
                if level in allowed and c.skills <= skills:
                    working = True
                    if _overlaps(windows, shifts, minutes):
                        levels.add(level)
            hit = reach_cache[key] = (working, frozenset(levels))
        return hit

    window_end = days[-1]
    eligible: list[Candidate] = []
    for c in candidates:
        reason = skip_reason(c, window_end, policy)
        if reason:
            plan.skipped[reason] += 1
            plan.skipped_ids.setdefault(reason, []).append(c.patient_id)
        else:
            eligible.append(c)

    far = date.max
    rank = {t: -policy.tiers[t].priority for t in Tier}
    eligible.sort(key=lambda c: (rank[c.state.tier], c.state.next_contact_on or far, c.patient_id))
    # first day index a tier may start on
    offsets = {t: min(policy.tiers[t].start_offset_days if start_offsets else 0, len(days) - 1) for t in Tier}
    last_first = len(days) if first_call_days is None else min(len(days), first_call_days)
    first_free = {t: offsets[t] for t in Tier}  # skip days known full for a tier
    spreads = spread_table(days, policy) if eligible else {}
    callable_day = [bool(cal.local_windows(d, REFERENCE_PLACE, policy.calling_hours)) for d in days]
    pace = policy.outreach.pace_first_calls
    timelines: dict[tuple[date, NurseLevel], PoolTimeline] = {}

    def timeline(d: date, level: NurseLevel) -> PoolTimeline:
        hit = timelines.get((d, level))
        if hit is None:
            shifts = [s for n in nurses if n.level == level for s in n.utc_shifts_on(d, policy.calling_hours)]
            hit = timelines[(d, level)] = PoolTimeline.of(shifts, occupancy)
        return hit

    pools_of = {t: _pools_for(t, policy) for t in Tier}
    has_hours: dict[tuple[date, cal.Place], bool] = {}
    for c in eligible:
        tier = c.state.tier
        pools = pools_of[tier]
        placed = False
        for i in range(first_free[tier], last_first):
            d = days[i]
            if not _usable(d, c, policy, has_hours):
                continue
            shares = spreads[tier][i]
            first = next(m for j, m in shares if j == i)
            if all(level_left[d][lv] < first for lv in pools):
                if i == first_free[tier]:
                    first_free[tier] = i + 1  # the first-call share only grows harder to fit
                continue
            _working, levels = reachable(d, c)
            fits = (_fit(shares, i, lv, c.skills, days, level_left, skill_left, callable_day) for lv in pools)
            found = next(
                ((lv, alloc) for lv, alloc in zip(pools, fits, strict=True) if lv in levels and alloc), None
            )
            if found is None:
                continue
            pool, alloc = found
            if pace:
                due = timeline(d, pool).reached(level_cap[d][pool] - level_left[d][pool])
                if due is not None:
                    plan.due_at[c.patient_id] = due
            for j, m in alloc.items():
                level_left[days[j]][pool] -= m
                for sk in c.skills:
                    skill_left[days[j]][(pool, sk)] -= m
                plan.days[days[j]].minutes += m
            plan.days[d].tasks[tier.value] += 1
            plan.assignments[c.patient_id] = d
            placed = True
            break
        if placed:
            continue
        usable = [d for d in days[offsets[tier] :] if _usable(d, c, policy, has_hours)]
        reach = [reachable(d, c) for d in usable]
        if any(working for working, _ in reach) and not any(levels for _, levels in reach):
            # qualified nurses work, but never while this patient may be called
            plan.skipped[NO_NURSE_IN_WINDOW] += 1
            plan.skipped_ids.setdefault(NO_NURSE_IN_WINDOW, []).append(c.patient_id)
        else:
            plan.unplaced.append(c.patient_id)
            plan.unplaced_tiers[tier] += 1
            plan.unplaced_minutes[tier] += task_cost(tier, policy)
            plan.unplaced_levels[tier] = [lv.value for lv in _pools_for(tier, policy)]
    return plan
