"""Capacity-aware wave planning: properties over random waves, and hand-computed tables.

The properties recompute what they need (nurse pool capacities, task costs,
holidays, skip reasons) from the inputs and the policy, not from the plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

import holidays as holidays_lib
import pytest
from facts import WHERE
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campaign import calendar as cal
from campaign.planning import Candidate, NurseShifts, WavePlan, plan_wave
from campaign.policy import NurseLevel, Policy, Tier, load_policy
from campaign.rules import PatientState
from campaign.states import EnrolmentStatus

# these properties and tables pin the whole-cost mode (every retry charged to the first-call day);
# the spread of retries over their days is tested in test_retry_spread.py. The tables were computed by
# hand with these costs (every task reaching its patient), whatever config/programme.toml says.
_loaded = load_policy()
policy = _loaded.model_copy(
    update={
        "outreach": _loaded.outreach.model_copy(update={"spread_retries": False}),
        "dialer": _loaded.dialer.model_copy(
            update={
                "expected_attempts_per_reach": {Tier.high: 1.6, Tier.medium: 1.8, Tier.low: 2.0},
                "expected_reach": dict.fromkeys(Tier, 1.0),
                "noanswer_handle_minutes": 1.5,
            }
        ),
    }
)
HOURS = policy.calling_hours
EPS = 1e-6

SKILLS = ("heart_failure", "copd")
WAVE_STARTS = [
    date(2026, 3, 30),  # Monday after the spring change
    date(2026, 3, 31),
    date(2026, 4, 1),  # runs over Good Friday (Alsace-Moselle) and Easter Monday
    date(2026, 5, 18),  # over 22 May (Martinique), 25 May (Whit Monday), 27 May (Guadeloupe)
    date(2026, 12, 21),  # over Christmas and 26 December (Alsace-Moselle)
    date(2027, 12, 15),  # over 20 December (Réunion)
    date(2028, 4, 10),
]


def is_holiday(day: date, dep: str) -> bool:
    return day in holidays_lib.country_holidays("FR", subdiv=WHERE[dep][1], years=day.year)


def cost(tier: Tier, pol: Policy = policy) -> float:
    """Expected nurse minutes of one task, from the policy (talk + unanswered attempts)."""
    return pol.tiers[tier].call_minutes + pol.dialer.noanswer_handle_minutes * (
        pol.dialer.expected_attempts_per_reach[tier] - 1
    )


def shift_minutes(n: NurseShifts, day: date, pol: Policy = policy) -> float:
    """Her shift minutes inside the calling hours: on shift before calls may start or after they
    must end, she takes no call, so planning counts none of that time."""

    def minute(t: time) -> int:
        return t.hour * 60 + t.minute

    total = 0
    for wd, start, end in n.shifts:
        if wd != day.weekday():
            continue
        for w in pol.calling_hours.by_weekday[wd]:
            total += max(0, minute(min(end, w.end)) - minute(max(start, w.start)))
    return total


def pool_capacities(
    nurses: Sequence[NurseShifts], day: date, pol: Policy = policy
) -> tuple[float, dict[NurseLevel, float], dict[str, float]]:
    occ = pol.dialer.target_occupancy
    levels: dict[NurseLevel, float] = defaultdict(float)
    skills: dict[str, float] = defaultdict(float)
    for n in nurses:
        m = shift_minutes(n, day) * occ
        levels[n.level] += m
        for sk in n.skills:
            skills[sk] += m
    return sum(levels.values()), levels, skills


def at_work(
    p: Candidate, d: date, nurses: Sequence[NurseShifts], pol: Policy = policy
) -> tuple[bool, set[NurseLevel]]:
    """(a nurse allowed to take p's call works on d, the levels of those who work in p's window
    for at least the tier's call length). Written from the rule, independently of the planner."""
    allowed = pol.tiers[p.state.tier].nurse_levels
    need = timedelta(minutes=pol.tiers[p.state.tier].call_minutes)
    windows = cal.utc_intervals(d, p.state.place, pol.calling_hours)
    working, levels = False, set()
    for n in nurses:
        if n.level not in allowed or not p.skills <= n.skills:
            continue
        for wd, start, end in n.shifts:
            if wd != d.weekday():
                continue
            working = True
            on, off = cal.at_local(d, start, n.timezone), cal.at_local(d, end, n.timezone)
            if any(min(off, we) - max(on, ws) >= need for ws, we in windows):
                levels.add(n.level)
    return working, levels


def never_in_window(
    c: Candidate, days: Sequence[date], nurses: Sequence[NurseShifts], pol: Policy = policy
) -> bool:
    """Qualified nurses work some usable day, but never while this patient may be called."""
    first = min(pol.tiers[c.state.tier].start_offset_days, len(days) - 1)
    usable = [d for d in days[first:] if not day_blocked_for(c, d, pol)]
    reach = [at_work(c, d, nurses, pol) for d in usable]
    return any(w for w, _ in reach) and not any(lv for _, lv in reach)


def skip_reasons(c: Candidate, wave_end: date, pol: Policy = policy) -> set[str]:
    """Every reason (DESIGN.md) for which this patient gets no task in the wave."""
    s = c.state
    out = set()
    if s.status in (EnrolmentStatus.withdrawn, EnrolmentStatus.deceased):
        out.add(s.status.value)
    if s.status == EnrolmentStatus.suspended and (s.suspended_until is None or s.suspended_until >= wave_end):
        out.add("suspended")
    if not s.consent:
        out.add("no_consent")
    if s.dialable_numbers <= 0:
        out.add("no_number")
    if c.open_task_elsewhere:
        out.add("open_task_in_other_wave")
    if c.tasks_in_period >= pol.caps.max_tasks_per_period:
        out.add("contact_cap")
    return out


def day_blocked_for(c: Candidate, d: date, pol: Policy = policy) -> bool:
    """The day is not usable for this patient whatever the capacity."""
    s = c.state
    if s.status == EnrolmentStatus.suspended and s.suspended_until and d <= s.suspended_until:
        return True
    return not cal.local_windows(d, s.place, pol.calling_hours)


# -------------------------------------------------------------- strategies

places = st.builds(
    lambda dep, pref: cal.Place(dep, WHERE[dep][0], *(pref or (None, None))),
    st.sampled_from(list(WHERE)),
    st.one_of(
        st.none(),
        st.sampled_from(
            [
                (time(10), time(11)),
                (time(14), time(16)),
                (time(20), time(21)),
                (time(8), time(9, 30)),
            ]
        ),
    ),
)


# drawn per patient and per nurse: built once (building strategies in the loop is slow)
statuses = st.sampled_from([EnrolmentStatus.enrolled] * 6 + list(EnrolmentStatus))
suspension_offsets = st.one_of(st.none(), st.integers(-3, 13))  # days from the wave's first day
tiers = st.sampled_from(list(Tier))
consents = st.sampled_from([True] * 8 + [False])
numbers = st.sampled_from([1, 1, 1, 2, 0])
last_contacts = st.one_of(st.none(), st.dates(date(2025, 6, 1), date(2027, 6, 1)))
needs = st.sampled_from([frozenset(), frozenset(), frozenset({"heart_failure"}), frozenset({"copd"})])
open_elsewhere = st.sampled_from([False] * 8 + [True])
in_period = st.sampled_from([0, 0, 0, 0, 1, 2])
levels = st.sampled_from(list(NurseLevel))
nurse_skills = st.frozensets(st.sampled_from(SKILLS))
weekdays = st.sets(st.integers(0, 6), max_size=6)
shift_starts = st.integers(7 * 4, 14 * 4)  # quarter hours
shift_lengths = st.integers(2, 5 * 4)


def quarter(q: int) -> time:
    return time(q // 4, q % 4 * 15)


@st.composite
def candidate_sets(draw: st.DrawFn, wave_days: Sequence[date]) -> list[Candidate]:
    out = []
    for pid in range(1, draw(st.integers(0, 40)) + 1):
        until = draw(suspension_offsets)
        state = PatientState(
            status=draw(statuses),
            tier=draw(tiers),
            place=draw(places),
            consent=draw(consents),
            suspended_until=None if until is None else wave_days[0] + timedelta(days=until),
            dialable_numbers=draw(numbers),
            next_contact_on=draw(last_contacts),
        )
        out.append(
            Candidate(
                patient_id=pid,
                state=state,
                skills=draw(needs),
                open_task_elsewhere=draw(open_elsewhere),
                tasks_in_period=draw(in_period),
            )
        )
    return out


@st.composite
def nurse_sets(draw: st.DrawFn) -> list[NurseShifts]:
    out = []
    for nid in range(1, draw(st.integers(0, 4)) + 1):
        shifts = []
        for wd in sorted(draw(weekdays)):
            start, length = draw(shift_starts), draw(shift_lengths)
            shifts.append((wd, quarter(start), quarter(start + length)))
        out.append(NurseShifts(nid, draw(levels), draw(nurse_skills), tuple(shifts)))
    return out


Wave = tuple[list[Candidate], list[NurseShifts], list[date], Policy]


@st.composite
def waves(draw: st.DrawFn) -> Wave:
    start = draw(st.one_of(st.sampled_from(WAVE_STARTS), st.dates(date(2026, 1, 1), date(2028, 12, 1))))
    length = draw(st.integers(1, 10))
    if draw(st.booleans()):
        wave_days = cal.working_days(start, start + timedelta(days=3 * length), HOURS)[:length]
    else:  # plain calendar days: Sundays and holidays in the wave, the planner must skip them
        wave_days = [start + timedelta(days=k) for k in range(length)]
    if not wave_days:
        wave_days = [start]
    pol = policy.model_copy(
        update={
            "caps": policy.caps.model_copy(update={"max_tasks_per_period": draw(st.integers(1, 2))}),
        }
    )
    return draw(candidate_sets(wave_days)), draw(nurse_sets()), wave_days, pol


PLAN_SETTINGS = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])


def check_partition(plan: WavePlan, candidates: list[Candidate]) -> None:
    planned = set(plan.assignments)
    skipped = [pid for ids in plan.skipped_ids.values() for pid in ids]
    unplaced = plan.unplaced
    assert len(skipped) == len(set(skipped))
    assert len(unplaced) == len(set(unplaced))
    assert not planned & set(skipped), "planned and skipped"
    assert not planned & set(unplaced)
    assert not set(skipped) & set(unplaced)
    assert planned | set(skipped) | set(unplaced) == {c.patient_id for c in candidates}
    assert {k: len(v) for k, v in plan.skipped_ids.items()} == {k: v for k, v in plan.skipped.items() if v}


# -------------------------------------------------------------- properties


@PLAN_SETTINGS
@given(waves())
def test_plan_respects_every_pool_capacity(wave: Wave) -> None:
    """No day is planned beyond its nurses' time, overall, per level and per skill.

    Pools overlap (a senior cardiology nurse counts in the senior and the
    heart_failure pools), so per level we check Hall's condition: the tasks
    only seniors may take fit in the senior pool, and all fit in the total.
    A broken planner that charged only the level pool and forgot the skill
    pool would put five heart-failure patients on a day with one hour of
    heart-failure nurse time, and fail the skill assertion.
    """
    candidates, nurses, wave_days, pol = wave
    plan = plan_wave(candidates, nurses, wave_days, pol)
    check_partition(plan, candidates)
    by_id = {c.patient_id: c for c in candidates}
    on_day: dict[date, list[Candidate]] = defaultdict(list)
    for pid, d in plan.assignments.items():
        on_day[d].append(by_id[pid])
    assert set(plan.days) == set(wave_days)
    event("some unplaced" if plan.unplaced else "all placed")
    for d in wave_days:
        total, levels, skills = pool_capacities(nurses, d, pol)
        tasks = on_day[d]
        minutes = sum(cost(c.state.tier, pol) for c in tasks)
        load = plan.days[d]
        assert load.capacity == pytest.approx(total)
        assert load.minutes == pytest.approx(minutes)
        assert sum(load.tasks.values()) == len(tasks)
        assert minutes <= total + EPS
        # Hall's condition for each set of levels: tasks that may only go to those levels fit in them
        for allowed in ({NurseLevel.senior}, {NurseLevel.junior}, {NurseLevel.senior, NurseLevel.junior}):
            only = sum(
                cost(c.state.tier, pol) for c in tasks if set(pol.tiers[c.state.tier].nurse_levels) <= allowed
            )
            assert only <= sum(levels[lv] for lv in allowed) + EPS, (d, allowed)
        for sk in SKILLS:
            need = sum(cost(c.state.tier, pol) for c in tasks if sk in c.skills)
            assert need <= skills[sk] + EPS, (d, sk)


@PLAN_SETTINGS
@given(waves())
def test_planned_days_are_callable_days_for_that_patient(
    wave: Wave,
) -> None:
    """Every planned day is a wave day, not a holiday where the patient lives, with calling windows,
    after any suspension, and not before the tier's start offset."""
    candidates, nurses, wave_days, pol = wave
    plan = plan_wave(candidates, nurses, wave_days, pol)
    by_id = {c.patient_id: c for c in candidates}
    for pid, d in plan.assignments.items():
        c = by_id[pid]
        assert d in wave_days
        assert not is_holiday(d, c.state.place.departement), (pid, d, c.state.place)
        assert cal.local_windows(d, c.state.place, pol.calling_hours)
        assert HOURS.by_weekday[d.weekday()], "a day without calling hours"
        if c.state.status == EnrolmentStatus.suspended:
            assert c.state.suspended_until is not None and d > c.state.suspended_until
        # start offset, in wave days (a wave shorter than the offset starts the tier on its last day)
        offset = min(pol.tiers[c.state.tier].start_offset_days, len(wave_days) - 1)
        assert wave_days.index(d) >= offset
        assert at_work(c, d, nurses, pol)[1], "a nurse allowed to take the call works in the patient's window"


@PLAN_SETTINGS
@given(waves())
def test_skipped_are_exactly_the_ineligible(
    wave: Wave,
) -> None:
    """Skipped: withdrawn, deceased, suspended through the wave, no consent, no number, an open task
    in another wave, over the contact cap; and nobody else. Nobody is planned and skipped."""
    candidates, nurses, wave_days, pol = wave
    plan = plan_wave(candidates, nurses, wave_days, pol)
    check_partition(plan, candidates)
    expected = {c.patient_id: skip_reasons(c, wave_days[-1], pol) for c in candidates}
    for c in candidates:
        if not expected[c.patient_id] and never_in_window(c, wave_days, nurses, pol):
            expected[c.patient_id] = {"no_nurse_in_window"}
    skipped = {pid: reason for reason, ids in plan.skipped_ids.items() for pid in ids}
    assert set(skipped) == {pid for pid, reasons in expected.items() if reasons}
    for pid, reason in skipped.items():
        assert reason in expected[pid], (pid, reason, expected[pid])


def _planned(
    wave: tuple[list[Candidate], list[NurseShifts], list[date], Policy],
) -> tuple[WavePlan, dict[int, Candidate], dict[Tier, int], dict[date, list[Candidate]]]:
    """The plan of a drawn wave, its candidates by id, the tiers' priorities, who is on each day."""
    candidates, nurses, wave_days, pol = wave
    plan = plan_wave(candidates, nurses, wave_days, pol)
    by_id = {c.patient_id: c for c in candidates}
    on_day: dict[date, list[Candidate]] = defaultdict(list)
    for pid, d in plan.assignments.items():
        on_day[d].append(by_id[pid])
    return plan, by_id, {t: pol.tiers[t].priority for t in Tier}, on_day


@PLAN_SETTINGS
@given(waves())
def test_higher_tiers_go_first(wave: Wave) -> None:
    """A lower-priority task on day d means every higher-priority patient who is later or unplaced
    could not have had d.

    The planner places patients by priority, so when a higher-tier patient P
    was placed, only patients of priority >= P's had taken nurse time. For
    each pool, what was left on d at that moment is at least
        capacity(pool, d) - minutes on d of tasks of priority >= P's that may use the pool
    (an over-estimate of what they used). If P skipped d for lack of time, that
    lower bound is below P's cost for every level pool P may use or for one of
    P's skill pools. Otherwise d had to be unusable for P: before the tier's
    start offset, a day without windows where P lives, or inside P's suspension.
    A planner that sorted by patient id only, or lowest tier first, fails this.
    """
    _, nurses, wave_days, pol = wave
    plan, by_id, prio, on_day = _planned(wave)
    later_or_unplaced = [
        (by_id[pid], plan.assignments.get(pid)) for pid in [*plan.assignments, *plan.unplaced]
    ]
    for d, tasks in on_day.items():
        i = wave_days.index(d)
        _, levels, skills = pool_capacities(nurses, d, pol)
        lowest = min(prio[c.state.tier] for c in tasks)
        for p, placed_on in later_or_unplaced:
            tier = p.state.tier
            if prio[tier] <= lowest or (placed_on is not None and placed_on <= d):
                continue
            if i < min(pol.tiers[tier].start_offset_days, len(wave_days) - 1) or day_blocked_for(p, d, pol):
                continue
            ahead = [c for c in tasks if prio[c.state.tier] >= prio[tier]]
            need = cost(tier, pol)
            event("a higher-tier patient waits behind a lower-tier task's day")

            def left_at_least(pool_cap: float, users: list[Candidate], need: float = need) -> bool:
                return pool_cap - sum(cost(c.state.tier, pol) for c in users) >= need - EPS

            reachable = at_work(p, d, nurses, pol)[1]
            level_free = any(
                left_at_least(levels[lv], [c for c in ahead if lv in pol.tiers[c.state.tier].nurse_levels])
                for lv in pol.tiers[tier].nurse_levels
                if lv in reachable
            )
            skills_free = all(
                left_at_least(skills[sk], [c for c in ahead if sk in c.skills]) for sk in p.skills
            )
            assert not (level_free and skills_free), (
                f"patient {p.patient_id} ({tier}) is {placed_on or 'unplaced'} while day {d} "
                f"had room for them and carries a lower-tier task"
            )


@PLAN_SETTINGS
@given(waves())
def test_nobody_waits_while_an_earlier_day_had_room(
    wave: Wave,
) -> None:
    """Each patient gets the earliest usable day that still had room once everyone ahead was served.

    "Ahead" of P (DESIGN: highest tier first, then the most overdue) is every
    patient of a higher priority, and of P's tier those at least as overdue
    (ties counted too: that only over-estimates what they used). If P is later
    than day d or unplaced, and d was usable for P, then on d the pools left
    after everyone ahead (a lower bound of what P saw) could not hold P.
    Caught by this and not by the tier property above: a planner that, to go
    faster, marks a day "full for the tier" when one patient could not use it
    for a reason of their own (a regional holiday, a skill), so that the next
    patient of that tier skips a day that had room.
    """
    _, nurses, wave_days, pol = wave
    plan, by_id, prio, on_day = _planned(wave)
    far = date.max

    def ahead_of(c: Candidate, p: Candidate) -> bool:
        if prio[c.state.tier] != prio[p.state.tier]:
            return prio[c.state.tier] > prio[p.state.tier]
        return (c.state.next_contact_on or far) <= (p.state.next_contact_on or far)

    for pid in [*plan.assignments, *plan.unplaced]:
        p, placed_on = by_id[pid], plan.assignments.get(pid)
        tier, need = p.state.tier, cost(p.state.tier, pol)
        first = min(pol.tiers[tier].start_offset_days, len(wave_days) - 1)
        for d in wave_days[first:]:
            if placed_on is not None and d >= placed_on:
                break
            if day_blocked_for(p, d, pol):
                continue
            _, levels, skills = pool_capacities(nurses, d, pol)
            ahead = [c for c in on_day[d] if c.patient_id != pid and ahead_of(c, p)]

            def left(cap: float, users: list[Candidate]) -> float:
                return cap - sum(cost(c.state.tier, pol) for c in users)

            reachable = at_work(p, d, nurses, pol)[1]
            level_room = any(
                left(levels[lv], [c for c in ahead if lv in pol.tiers[c.state.tier].nurse_levels])
                >= need - EPS
                for lv in pol.tiers[tier].nurse_levels
                if lv in reachable
            )
            skill_room = all(
                left(skills[sk], [c for c in ahead if sk in c.skills]) >= need - EPS for sk in p.skills
            )
            assert not (level_room and skill_room), (
                f"patient {pid} ({tier}) is {placed_on or 'unplaced'} while {d} had room for them"
            )


# -------------------------------------------------------------- tables, by hand

MON, TUE, WED = date(2026, 3, 23), date(2026, 3, 24), date(2026, 3, 25)
# costs with config/programme.toml: call_minutes + 1.5 min x (expected attempts - 1)
HIGH, MEDIUM, LOW = 25 + 1.5 * 0.6, 18 + 1.5 * 0.8, 12 + 1.5 * 1.0  # 25.9, 19.2, 13.5


def patient(
    pid: int,
    tier: Tier,
    dep: str = "75",
    *,
    skills: frozenset[str] = frozenset(),
    overdue: date | None = None,
) -> Candidate:
    place = cal.Place(dep, WHERE[dep][0])
    state = PatientState(EnrolmentStatus.enrolled, tier, place, next_contact_on=overdue)
    return Candidate(pid, state, skills=skills)


def nurse(
    nid: int, level: NurseLevel, *shifts: tuple[int, str, str], skills: tuple[str, ...] = ()
) -> NurseShifts:
    return NurseShifts(
        nid,
        level,
        frozenset(skills),
        tuple((wd, time.fromisoformat(a), time.fromisoformat(b)) for wd, a, b in shifts),
    )


def test_costs_match_the_hand_computation() -> None:
    assert (cost(Tier.high), cost(Tier.medium), cost(Tier.low)) == pytest.approx((HIGH, MEDIUM, LOW))
    assert policy.dialer.target_occupancy == 0.85


def test_senior_capacity_fills_day_by_day() -> None:
    """One senior: Monday 13:30-17:30 (240 min x 0.85 = 204 -> 7 high tasks of 25.9 = 181.3; 8 would be
    207.2), Tuesday 09-11 (120 x 0.85 = 102 -> 3 tasks, 77.7; 4 would be 103.6). 12 high patients: 7 + 3 + 2
    left. Her shift minutes outside calling hours (before 09:00, over lunch) count for nothing."""
    seniors = [nurse(1, NurseLevel.senior, (0, "13:30", "17:30"), (1, "09:00", "11:00"))]
    plan = plan_wave([patient(i, Tier.high) for i in range(1, 13)], seniors, [MON, TUE], policy)
    assert plan.days[MON].capacity == pytest.approx(204)
    assert plan.days[TUE].capacity == pytest.approx(102)
    assert plan.days[MON].tasks["high"] == 7
    assert plan.days[MON].minutes == pytest.approx(7 * HIGH)
    assert plan.days[TUE].tasks["high"] == 3
    assert sorted(plan.unplaced) == [11, 12]
    assert [plan.assignments[i] for i in range(1, 11)] == [MON] * 7 + [TUE] * 3


def test_high_tier_needs_seniors_medium_takes_juniors_first() -> None:
    """Junior Monday 09-10: 51 min -> 2 medium (38.4). Senior Monday 09-10: 51 min -> 1 high (25.9),
    then one more medium (19.2) fits in the senior's remaining 25.1. High patients never go to juniors."""
    nurses = [
        nurse(1, NurseLevel.junior, (0, "09:00", "10:00")),
        nurse(2, NurseLevel.senior, (0, "09:00", "10:00")),
    ]
    cands = [patient(1, Tier.high), patient(2, Tier.high), *(patient(i, Tier.medium) for i in (3, 4, 5, 6))]
    pol = policy.model_copy(
        update={
            "tiers": {t: tp.model_copy(update={"start_offset_days": 0}) for t, tp in policy.tiers.items()}
        }
    )
    plan = plan_wave(cands, nurses, [MON], pol)
    assert plan.assignments == {1: MON, 3: MON, 4: MON, 5: MON}
    assert sorted(plan.unplaced) == [2, 6]
    assert plan.days[MON].minutes == pytest.approx(HIGH + 3 * MEDIUM)
    # only juniors: no high-tier patient is planned at all
    plan = plan_wave(cands, [nurse(1, NurseLevel.junior, (0, "09:00", "17:00"))], [MON], pol)
    assert sorted(plan.unplaced) == [1, 2]
    assert set(plan.assignments) == {3, 4, 5, 6}


def test_skill_pool_limits_heart_failure_patients() -> None:
    """Two seniors, one all day, the other a heart-failure nurse only 09-11 (120 x 0.85 = 102 min):
    3 heart-failure high patients fit on Monday (77.7; a 4th would make 103.6), the 4th goes to
    Tuesday although the level pool has hours left. Nobody is trained for COPD: unplaced."""
    nurses = [
        nurse(1, NurseLevel.senior, (0, "09:00", "17:00"), (1, "09:00", "17:00")),
        nurse(2, NurseLevel.senior, (0, "09:00", "11:00"), (1, "09:00", "11:00"), skills=("heart_failure",)),
    ]
    hf = frozenset({"heart_failure"})
    cands = [patient(i, Tier.high, skills=hf) for i in (1, 2, 3, 4)]
    cands += [patient(5, Tier.high, skills=frozenset({"copd"})), patient(6, Tier.high)]
    plan = plan_wave(cands, nurses, [MON, TUE], policy)
    # 09-17 is 7 hours of calls (none over lunch, 12:30-13:30)
    assert plan.days[MON].capacity == pytest.approx(7 * 60 * 0.85 + 102)
    assert plan.assignments == {1: MON, 2: MON, 3: MON, 4: TUE, 6: MON}
    assert plan.unplaced == [5]


def test_juniors_skills_do_not_make_room_for_patients_only_seniors_may_take() -> None:
    """The two seniors above (one untrained all day, one trained for heart failure 09-11: three high
    patients a day) and a junior trained for heart failure all day. High-tier patients go to seniors
    only, so the junior's hours make no room for them: still three on Monday, three on Tuesday, the
    7th and 8th nowhere. A plan
    that pooled the skill's minutes across levels put all eight on Monday, and at 20,000 patients
    left 566 high-tier heart-failure tasks to expire undialed (two trained seniors among 17)."""
    nurses = [
        nurse(1, NurseLevel.senior, (0, "09:00", "17:00"), (1, "09:00", "17:00")),
        nurse(2, NurseLevel.senior, (0, "09:00", "11:00"), (1, "09:00", "11:00"), skills=("heart_failure",)),
        nurse(3, NurseLevel.junior, (0, "09:00", "17:00"), (1, "09:00", "17:00"), skills=("heart_failure",)),
    ]
    hf = frozenset({"heart_failure"})
    plan = plan_wave([patient(i, Tier.high, skills=hf) for i in range(1, 9)], nurses, [MON, TUE], policy)
    assert plan.assignments == {1: MON, 2: MON, 3: MON, 4: TUE, 5: TUE, 6: TUE}
    assert plan.unplaced == [7, 8]
    # a medium-tier heart-failure patient may go to the junior: her hours count for them
    plan = plan_wave([patient(i, Tier.medium, skills=hf) for i in range(1, 9)], nurses, [MON, TUE], policy)
    assert set(plan.assignments) == set(range(1, 9))


def test_start_offsets_per_tier() -> None:
    """Offsets 0, 1, 2: high starts on the wave's first day, medium on its second, low on its third
    (working days of the wave); a one-day wave starts every tier on that day rather than not at all."""
    offsets = {Tier.high: 0, Tier.medium: 1, Tier.low: 2}
    tiers = {t: policy.tiers[t].model_copy(update={"start_offset_days": offsets[t]}) for t in Tier}
    pol = policy.model_copy(update={"tiers": tiers})
    nurses = [nurse(1, NurseLevel.senior, *((wd, "09:00", "17:00") for wd in range(5)))]
    cands = [patient(1, Tier.low), patient(2, Tier.medium), patient(3, Tier.high)]
    plan = plan_wave(cands, nurses, [MON, TUE, WED], pol)
    assert plan.assignments == {3: MON, 2: TUE, 1: WED}
    plan = plan_wave(cands, nurses, [MON], pol)
    assert plan.assignments == {1: MON, 2: MON, 3: MON}


def test_top_up_plans_only_today_in_the_room_left_by_what_is_due() -> None:
    """A morning top-up: Monday's senior has 204 min (13:30-17:30 x 0.85), 150 already due, so 54 are left:
    two high tasks (51.8), not three (77.7). Nobody is placed on Tuesday although it is empty, and
    without `start_offsets` a tier may start on the first day whatever its offset."""
    seniors = [nurse(1, NurseLevel.senior, (0, "13:30", "17:30"), (1, "13:30", "17:30"))]
    cands = [patient(i, Tier.high) for i in range(1, 5)]
    plan = plan_wave(cands, seniors, [MON, TUE], policy, committed={MON: 150.0}, first_call_days=1)
    assert plan.assignments == {1: MON, 2: MON}
    assert plan.days[MON].minutes == pytest.approx(2 * HIGH)
    assert plan.days[TUE].minutes == 0 and sorted(plan.unplaced) == [3, 4]
    # a day already full takes nobody
    plan = plan_wave(cands, seniors, [MON, TUE], policy, committed={MON: 204.0}, first_call_days=1)
    assert plan.assignments == {} and len(plan.unplaced) == 4
    # a tier whose offset would start it on the second day
    low = [patient(9, Tier.low)]
    offsets = {t: policy.tiers[t].model_copy(update={"start_offset_days": 1}) for t in Tier}
    pol = policy.model_copy(update={"tiers": offsets})
    assert plan_wave(low, seniors, [MON, TUE], pol, first_call_days=1).assignments == {}
    assert plan_wave(low, seniors, [MON, TUE], pol, first_call_days=1, start_offsets=False).assignments == {
        9: MON
    }


def test_two_nurses_back_to_back_are_not_one_who_can_take_the_call() -> None:
    """The patient may be called 09:00-09:30 only (their preferred window); a medium call takes 18 min.
    One nurse until 09:15 and another from 09:15: neither has 18 minutes of that window, so nobody
    works in it (hypothesis found a planner that merged their shifts into 07:00-09:45)."""
    place = cal.Place("75", "Europe/Paris", time(8, 0), time(9, 30))
    c = Candidate(1, PatientState(EnrolmentStatus.enrolled, Tier.medium, place))
    apart = [
        nurse(1, NurseLevel.senior, (0, "07:00", "09:15")),
        nurse(2, NurseLevel.senior, (0, "09:15", "11:00")),
    ]
    now = {t: tp.model_copy(update={"start_offset_days": 0}) for t, tp in policy.tiers.items()}
    pol = policy.model_copy(update={"tiers": now})
    plan = plan_wave([c], apart, [MON], pol)
    assert plan.skipped_ids == {"no_nurse_in_window": [1]}
    plan = plan_wave([c], [*apart, nurse(3, NurseLevel.junior, (0, "09:00", "11:00"))], [MON], pol)
    assert plan.assignments == {1: MON}


def test_regional_and_overseas_holidays_move_the_patient_not_the_wave() -> None:
    """Good Friday 3 April 2026: Paris works, Metz and Strasbourg do not; 20 December 2027: Réunion off."""
    seniors = [nurse(1, NurseLevel.senior, *((wd, "08:00", "18:00") for wd in range(6)))]
    good_friday, saturday = date(2026, 4, 3), date(2026, 4, 4)
    cands = [
        patient(1, Tier.high, "75"),
        patient(2, Tier.high, "57"),
        patient(3, Tier.high, "67"),
        patient(4, Tier.high, "68"),
        patient(5, Tier.high, "974"),
    ]
    plan = plan_wave(cands, seniors, [good_friday, saturday], policy)
    assert plan.assignments == {1: good_friday, 2: saturday, 3: saturday, 4: saturday, 5: good_friday}
    monday, tuesday = date(2027, 12, 20), date(2027, 12, 21)
    plan = plan_wave(cands, seniors, [monday, tuesday], policy)
    assert plan.assignments == {1: monday, 2: monday, 3: monday, 4: monday, 5: tuesday}
    # a wave of that one day: the Réunion patient is not placed on their holiday
    plan = plan_wave(cands, seniors, [monday], policy)
    assert plan.unplaced == [5]


def test_one_patients_holiday_does_not_close_the_day_for_the_next() -> None:
    """Good Friday 2026 and the Saturday after; the only senior works Friday.

    The Moselle patient (more overdue, so considered first) cannot have Friday
    (holiday in 57) nor Saturday (no nurse): unplaced. The Paris patient after
    them must still get Friday. A planner that remembered "no room for high
    from Saturday on, so from Friday on" after the first patient would leave
    the second unplaced too.
    """
    good_friday, saturday = date(2026, 4, 3), date(2026, 4, 4)
    seniors = [nurse(1, NurseLevel.senior, (4, "09:00", "12:00"))]
    cands = [patient(1, Tier.high, "57", overdue=date(2026, 1, 1)), patient(2, Tier.high, "75")]
    plan = plan_wave(cands, seniors, [good_friday, saturday], policy)
    assert plan.unplaced == [1]
    assert plan.assignments == {2: good_friday}


def test_most_overdue_first_within_a_tier() -> None:
    """Capacity for one high task (Monday 09:00-09:45: 45 x 0.85 = 38.25 min): the most overdue wins."""
    seniors = [nurse(1, NurseLevel.senior, (0, "09:00", "09:45"))]
    cands = [
        patient(1, Tier.high, overdue=date(2026, 3, 1)),
        patient(2, Tier.high, overdue=date(2026, 1, 10)),
        patient(3, Tier.high),  # never contacted: after the overdue ones
        patient(4, Tier.low, overdue=date(2025, 1, 1)),  # lower tier: last, whatever its date
    ]
    plan = plan_wave(cands, seniors, [MON], policy)
    assert plan.assignments == {2: MON}
    assert plan.unplaced == [1, 3, 4]


def test_skips_are_counted_with_their_reason() -> None:
    place = cal.Place("75", "Europe/Paris")

    def c(pid: int, **kw: object) -> Candidate:
        state_kw = {k: v for k, v in kw.items() if k in PatientState.__slots__}
        cand_kw = {k: v for k, v in kw.items() if k not in state_kw}
        state = PatientState(
            **{"status": EnrolmentStatus.enrolled, "tier": Tier.high, "place": place, **state_kw}
        )
        return Candidate(pid, state, **cand_kw)

    cands = [
        c(1, status=EnrolmentStatus.withdrawn),
        c(2, status=EnrolmentStatus.deceased),
        c(3, status=EnrolmentStatus.suspended, suspended_until=None),
        c(4, status=EnrolmentStatus.suspended, suspended_until=TUE),  # through the wave's last day
        c(5, status=EnrolmentStatus.suspended, suspended_until=MON),  # back on Tuesday
        c(6, consent=False),
        c(7, dialable_numbers=0),
        c(8, open_task_elsewhere=True),
        c(9, tasks_in_period=policy.caps.max_tasks_per_period),
        c(10),
    ]
    seniors = [nurse(1, NurseLevel.senior, (0, "09:00", "17:00"), (1, "09:00", "17:00"))]
    plan = plan_wave(cands, seniors, [MON, TUE], policy)
    assert plan.skipped_ids == {
        "withdrawn": [1],
        "deceased": [2],
        "suspended": [3, 4],
        "no_consent": [6],
        "no_number": [7],
        "open_task_in_other_wave": [8],
        "contact_cap": [9],
    }
    assert plan.assignments == {5: TUE, 10: MON}
    assert plan.as_dict()["planned"] == 2 and plan.as_dict()["unplaced"] == 0


def test_a_wave_needs_days() -> None:
    with pytest.raises(ValueError, match="at least one"):
        plan_wave([], [], [], policy)


def test_nurse_minutes_on_a_day() -> None:
    n = nurse(1, NurseLevel.junior, (0, "09:00", "12:30"), (0, "13:30", "17:00"), (2, "08:00", "09:00"))
    assert n.minutes_on(MON) == 420
    assert n.minutes_on(TUE) == 0
    assert n.minutes_on(WED) == 60
    assert shift_minutes(n, MON) == 420
    assert datetime.combine(MON, time(0)).weekday() == 0
