"""The benchmark's roster (scripts/bench_outreach.py): sized so that its usable hours are about 70 %
of what the whole wave needs, with seniors enough for the tiers only they may take.

A programme staffs for its sickest patients first, so the shortfall falls on the tiers any nurse
may call. Apart from the arms (`dialer.outreach`): sizing reads a generated patient file and the
planner's costs, never an arm's database.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable
from datetime import date, time
from pathlib import Path
from typing import Any

from campaign import calendar as cal
from campaign import planning
from campaign.imports.values import parse_tier
from campaign.model import Nurse
from campaign.policy import NurseLevel, Policy, Tier
from campaign.synthetic import generate_nurses, generate_patients_for

SENT_ON = date(2026, 12, 7)
ROSTER_SHARE = 0.7  # the roster's usable hours against what the whole wave needs
# the seniors' usable hours against what the tiers only they may take need at planning's cost,
# which expects to reach `dialer.expected_reach` (0.8) of them: the programme aims at 95 % of
# the reachable, so it staffs its seniors over that cost
SENIOR_COVER = 1.15


def wave_days(policy: Policy, sent_on: date = SENT_ON) -> list[date]:
    """The working days of the wave a mailing sent that day gets (as `record_mailing` sets it)."""
    hours = policy.calling_hours
    start = cal.add_working_days(
        cal.add_working_days(sent_on, policy.mailing.delivery_working_days, hours), 0, hours
    )
    end = cal.add_working_days(start, policy.mailing.wave_working_days - 1, hours)
    return cal.working_days(start, end, hours)


def tiers_in(csv_path: Path) -> Counter[Tier]:
    """Patients per tier in a generated file, read as the import reads the column."""
    with csv_path.open(encoding="utf-8", newline="") as f:
        return Counter(parse_tier(row["niveau_risque"]) for row in csv.DictReader(f, delimiter=";"))


def needed_minutes(tiers: Counter[Tier], policy: Policy) -> float:
    """Nurse minutes the whole wave needs: each patient's expected handle time (planning's cost)."""
    return sum(n * planning.task_cost(t, policy) for t, n in tiers.items())


def usable_minutes(roster: Iterable[Nurse], days: list[date], policy: Policy) -> dict[NurseLevel, float]:
    """Per level, the roster's shift minutes inside calling hours on the wave's days that planning
    may fill (target occupancy)."""
    out = dict.fromkeys(NurseLevel, 0.0)
    for n in roster:
        shifts = planning.NurseShifts(
            0,
            NurseLevel(n.level),
            frozenset(n.skills),
            tuple(
                (s["weekday"], time.fromisoformat(s["start"]), time.fromisoformat(s["end"])) for s in n.shifts
            ),
        )
        out[shifts.level] += sum(shifts.minutes_on(d, policy.calling_hours) for d in days)
    return {level: m * policy.dialer.target_occupancy for level, m in out.items()}


def staffed(nurses: int, seniors: int, seed: int) -> list[Nurse]:
    """The benchmark's roster: `seniors` of `nurses`, on the evenings and Saturdays their
    working-age high-tier patients answer in (`generate_nurses(senior_evenings=True)`)."""
    return generate_nurses(nurses, seed=seed, seniors=seniors, senior_evenings=True)


def senior_only_minutes(tiers: Counter[Tier], policy: Policy) -> float:
    """What the tiers only seniors may take need (planning's cost): the hours a programme staffs
    its seniors for first, whatever else the roster is short of."""
    return sum(
        n * planning.task_cost(t, policy)
        for t, n in tiers.items()
        if set(policy.tiers[t].nurse_levels) == {NurseLevel.senior}
    )


def _smallest_roster(
    seed: int, days: list[date], policy: Policy, need: float, senior_need: float
) -> tuple[int, int]:
    """The fewest nurses, and seniors among them, whose usable hours reach `need` in all and
    `senior_need` for the seniors."""

    def usable(n: int, k: int) -> dict[NurseLevel, float]:
        return usable_minutes(staffed(n, k, seed), days, policy)

    per_nurse = sum(usable(30, 10).values()) / 30
    n = max(2, math.floor(need / per_nurse) - 2)  # a little under: the search climbs from there
    while True:
        k = max(1, math.ceil(senior_need / per_nurse))
        while k > 1 and usable(n, k - 1)[NurseLevel.senior] >= senior_need:
            k -= 1
        while k < n and usable(n, k)[NurseLevel.senior] < senior_need:
            k += 1
        if sum(usable(n, k).values()) >= need:
            return n, k
        n += 1


def size_roster(
    policy: Policy, patients: int, seed: int, work: Path, share: float = ROSTER_SHARE
) -> dict[str, Any]:
    """The smallest roster whose usable hours reach `share` of what the whole wave needs, with
    seniors enough for the tiers only they may take: a programme staffs for its sickest patients
    first, so the shortfall falls on the tiers any nurse may call."""
    days = wave_days(policy)
    nurses, seniors = 2, 1
    for _ in range(4):  # the patients' référents depend on the roster: settle on a fixed point
        roster = staffed(nurses, seniors, seed)
        path = work / "patients.csv"
        generate_patients_for(roster, path, patients, seed=seed, reference_date=SENT_ON)
        tiers = tiers_in(path)
        need = needed_minutes(tiers, policy)
        senior_need = SENIOR_COVER * senior_only_minutes(tiers, policy)
        found = _smallest_roster(seed, days, policy, share * need, senior_need)
        if found == (nurses, seniors):
            break
        nurses, seniors = found
    usable = usable_minutes(staffed(nurses, seniors, seed), days, policy)
    return {
        "nurses": nurses,
        "seniors": seniors,
        "wave_working_days": len(days),
        "hours_needed": round(need / 60, 1),
        "usable_hours": round(sum(usable.values()) / 60, 1),
        "share_of_needed": round(sum(usable.values()) / need, 4) if need else None,
        "senior_only_hours_needed": round(senior_need / SENIOR_COVER / 60, 1),
        "senior_usable_hours": round(usable[NurseLevel.senior] / 60, 1),
    }
