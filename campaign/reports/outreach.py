"""How well a wave's outreach did: reach of the reachable per tier, attempts per reach, référent
share, nurse occupancy, planned against actual load per day, and the reach curve.

Read from the database only, like the wave report (scripts/bench_outreach.py compares arms
with it). Who was reachable at all is not the programme's to know: the caller passes that
ground truth (a simulator's) as patient ids; the report keeps, of those, the recipients the
rules let the wave call (planning's exclusions, such as no consent or an open call in another
wave, are the same whatever the dialer's choices). No personal data: ids, counts, nurse codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from campaign import calendar as cal
from campaign import store
from campaign.errors import NotFound
from campaign.model import Wave
from campaign.policy import Policy
from campaign.reports.figures import REACHED
from campaign.reports.nurses import NurseLoad, occupancy

# planning's note for a recipient it had no nurse capacity for: that is the outreach's own
# choice, so such a recipient still counts among those it could reach
from campaign.services.waves import UNPLACED_NOTE
from campaign.states import AttemptResult

_NURSE_ZONE = ZoneInfo("Europe/Paris")


@dataclass(slots=True)
class _Recipient:
    tier: str
    callable: bool  # the rules let this wave call them (a task, or no capacity left for one)
    referent: int | None = None
    # the first reaching call: (started, patient's local day, nurse)
    reach: tuple[datetime, date, int | None] | None = None


def outreach_figures(
    session: Session, policy: Policy, wave_id: int, reachable: Collection[int]
) -> dict[str, Any]:
    """The figures of issue 13's benchmark for one wave, as JSON-ready data.

    - patients: the mailing's recipients, per tier of their patient file;
    - reachable: of `reachable` (ground truth), the recipients the rules let the wave call;
    - reached_in_window: recipients whose first reaching call (outcome reached or escalation)
      started no later than the wave's deadline; `…_of_reachable` counts only the reachable;
    - attempts_per_reach: the wave's attempts (every task, callbacks included) over the
      recipients reached at any time, as in the wave report;
    - referent_share: of the reached recipients who have a référent, the share whose first
      reaching call that nurse took;
    - occupancy: the nurses' busy minutes over their shift minutes on the wave's working days
      (`reports.nurses`); occupancy_spread: the largest distance of one nurse's to the target;
    - load_by_day: per working day (Paris), the minutes planning charged to it (that morning's
      plan when a top-up re-planned the day; the launch plan's too) against the nurses' busy
      minutes; max_daily_load_deviation: the largest |actual - planned| / planned over the days
      planning charged (days it charged nothing are counted apart), against the mornings' plans,
      and …_from_launch_plan against the plan made before the first call;
    - reach_curve: per day of the window (patient's local day), the reachable recipients
      reached by the end of that day, cumulated.
    """
    wave = store.wave_row(session, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    people = {
        pid: _Recipient(tier, note is None or note == UNPLACED_NOTE)
        for pid, tier, note in store.recipient_outcomes(session, wave.mailing_id)
    }
    truth = {pid for pid in reachable if pid in people and people[pid].callable}
    task_patient: dict[int, int] = {}
    for task_id, patient_id, _kind, _tier, _status, referent in store.report_tasks(session, wave_id):
        task_patient[task_id] = patient_id
        if patient_id in people:
            people[patient_id].referent = referent

    attempts: Counter[str] = Counter()
    loads: dict[int, NurseLoad] = {}
    busy_by_day: dict[date, float] = {}
    zones: dict[str, ZoneInfo] = {}
    for (
        task_id, nurse_id, result, started, answered_at, ended, timezone, code, outcome_nurse, _kind,
    ) in store.report_attempts(session, wave_id):  # fmt: skip
        person = people.get(task_patient[task_id])
        if person is None:
            continue  # a task of a patient no longer among the recipients: not this comparison's
        attempts[person.tier] += 1
        answered = result == AttemptResult.answered.value
        if nurse_id is not None:
            load = loads.get(nurse_id) or loads.setdefault(nurse_id, NurseLoad())
            before = load.busy_seconds
            load.add(started, answered_at, ended, answered)
            day = started.astimezone(_NURSE_ZONE).date()
            busy_by_day[day] = busy_by_day.get(day, 0.0) + load.busy_seconds - before
        if code in REACHED and person.reach is None:
            zone = zones.get(timezone) or zones.setdefault(timezone, ZoneInfo(timezone))
            nurse = outcome_nurse if outcome_nurse is not None else nurse_id
            person.reach = (started, started.astimezone(zone).date(), nurse)

    nurses = occupancy(session, loads, wave, policy)
    target = policy.dialer.target_occupancy
    busy = sum(n["busy_minutes"] for n in nurses.values())
    shift = sum(n["shift_minutes"] for n in nurses.values())
    per_nurse = {code: n["occupancy"] for code, n in nurses.items() if n["occupancy"] is not None}
    load_days = load_by_day(wave, policy, busy_by_day)
    from_launch = max_daily_load_deviation(load_days, "launch_planned_min")
    everyone = list(people.values())
    reached = [p for p in everyone if p.reach is not None]
    return {
        "patients": len(people),
        "reachable": len(truth),
        "reached": len(reached),
        "reached_in_window": sum(_in_window(p, wave) for p in everyone),
        "reached_in_window_of_reachable": _ratio(
            sum(_in_window(people[pid], wave) for pid in truth), len(truth)
        ),
        "attempts": sum(attempts.values()),
        "attempts_per_reach": _ratio(sum(attempts.values()), len(reached)),
        "referent_share": _referent_share(reached),
        "by_tier": _by_tier(people, truth, attempts, wave, policy),
        "occupancy": _ratio(busy, shift),
        "occupancy_spread": occupancy_spread(per_nurse, target),
        "nurse_occupancy": per_nurse,
        "load_by_day": load_days,
        "max_daily_load_deviation": max_daily_load_deviation(load_days),
        "max_daily_load_deviation_from_launch_plan": from_launch,
        "days_loaded_unplanned": sum(1 for d in load_days if d["planned_min"] == 0 and d["actual_min"] > 0),
        "reach_curve": reach_curve(people, truth, wave),
    }


def _in_window(p: _Recipient, wave: Wave) -> bool:
    return p.reach is not None and p.reach[0] <= wave.deadline


def _referent_share(reached: list[_Recipient]) -> float | None:
    with_referent = [p for p in reached if p.referent is not None]
    by_referent = sum(1 for p in with_referent if p.reach is not None and p.reach[2] == p.referent)
    return _ratio(by_referent, len(with_referent))


def _by_tier(
    people: Mapping[int, _Recipient],
    truth: set[int],
    attempts: Counter[str],
    wave: Wave,
    policy: Policy,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tier in sorted(policy.tiers, key=lambda t: -policy.tiers[t].priority):
        ids = [pid for pid, p in people.items() if p.tier == tier.value]
        mine = [pid for pid in ids if pid in truth]
        reached = [people[pid] for pid in ids if people[pid].reach is not None]
        out[tier.value] = {
            "patients": len(ids),
            "reachable": len(mine),
            "reached": len(reached),
            "reached_in_window": sum(_in_window(people[pid], wave) for pid in ids),
            "reached_in_window_of_reachable": _ratio(
                sum(_in_window(people[pid], wave) for pid in mine), len(mine)
            ),
            "attempts": attempts[tier.value],
            "attempts_per_reach": _ratio(attempts[tier.value], len(reached)),
            "referent_share": _referent_share(reached),
            "reach_curve": reach_curve(people, set(mine), wave),
        }
    return out


def load_by_day(wave: Wave, policy: Policy, busy_seconds: Mapping[date, float]) -> list[dict[str, Any]]:
    """Per working day of the wave: the minutes planning charged to it (that morning's plan when a
    top-up re-planned the day, `services.top_up`; the launch plan's beside it), the nurses' busy
    minutes."""
    days = (wave.plan or {}).get("days") or {}
    planned = {d: float(v.get("minutes", 0)) for d, v in days.items()}
    launch = {d: float(v.get("launch_minutes", v.get("minutes", 0))) for d, v in days.items()}
    return [
        {
            "day": d.isoformat(),
            "planned_min": round(planned.get(d.isoformat(), 0.0), 1),
            "launch_planned_min": round(launch.get(d.isoformat(), 0.0), 1),
            "actual_min": round(busy_seconds.get(d, 0.0) / 60, 1),
        }
        for d in cal.working_days(wave.window_start, wave.window_end, policy.calling_hours)
    ]


def max_daily_load_deviation(days: list[dict[str, Any]], planned: str = "planned_min") -> float | None:
    """The largest |actual - planned| / planned over the days planning charged minutes to
    (`planned`: the key of the plan to compare with, the morning's or the launch's)."""
    devs = [abs(d["actual_min"] - d[planned]) / d[planned] for d in days if d[planned] > 0]
    return round(max(devs), 4) if devs else None


def occupancy_spread(per_nurse: Mapping[str, float], target: float) -> float | None:
    """The largest distance of a nurse's occupancy to the target, as a fraction (0.1: 10 points)."""
    return round(max(abs(v - target) for v in per_nurse.values()), 4) if per_nurse else None


def reach_curve(people: Mapping[int, _Recipient], truth: set[int], wave: Wave) -> dict[str, int]:
    """Per day of the window, the reachable recipients reached by that day's end (cumulated)."""
    first: Counter[date] = Counter()
    for pid in truth:
        p = people[pid]
        if p.reach is not None and p.reach[0] <= wave.deadline:
            first[p.reach[1]] += 1
    out: dict[str, int] = {}
    total = 0
    day = wave.window_start
    while day <= wave.window_end:
        total += first[day]
        out[day.isoformat()] = total
        day += timedelta(days=1)
    return out


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None
