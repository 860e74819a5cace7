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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from campaign import store
from campaign.errors import NotFound
from campaign.model import Wave
from campaign.policy import Policy
from campaign.reports.figures import REACHED
from campaign.reports.load import (
    days_filled_by_top_ups,
    days_loaded_unplanned,
    days_of,
    max_daily_load_deviation,
    occupancy_spread,
)
from campaign.reports.nurses import NurseLoad, busy_seconds, occupancy

# planning's note for a recipient it had no nurse capacity for: that is the outreach's own
# choice, so such a recipient still counts among those it could reach
from campaign.services.waves import UNPLACED_NOTE
from campaign.states import AttemptResult, TaskKind


@dataclass(slots=True)
class _Recipient:
    tier: str
    callable: bool  # the rules let this wave call them (a task, or no capacity left for one)
    referent: int | None = None
    # the first reaching call: (started, patient's local day, nurse)
    reach: tuple[datetime, date, int | None] | None = None


# per reachable patient, the chance the tier's attempts reach them: at random hours, at their best
# hours, by the oracle on the roster's hours, and by that oracle blind to stays away
# (`dialer.outreach_bounds.Bound`; the last two None for tiers every nurse may take)
ReachBound = tuple[float, float, float | None, float | None]


def outreach_figures(
    session: Session,
    policy: Policy,
    wave_id: int,
    reachable: Collection[int],
    bounds: Mapping[int, ReachBound] | None = None,
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
    - load_by_day, max_daily_load_deviation (against the mornings' plans) and
      …_from_launch_plan (against the plan made before the first call): as the wave report
      counts them (`reports.load`), over the recipients' attempts; days_loaded_unplanned:
      working days with load the plan charged nothing (each counts as 100 % off);
    - reach_curve: per day of the window (patient's local day), the reachable recipients
      reached by the end of that day, cumulated;
    - by_attempt: per attempt number of a wave task (first call 1, first retry 2…), the attempts
      made, the share a person answered, and the attempts per reach counting only attempts up
      to that number and the reaches they made (`by_attempt`);
    - first_calls_ahead: the wave's tasks whose first call a nurse with nothing due made before
      its planned time (work ahead, `dialer/ahead.py`);
    - per tier, reach_bound (when the caller passes `bounds`, per reachable patient the chance the
      tier's attempts reach them placed at random calling hours, at their best hours, and placed by
      an oracle on the roster's hours where the tier has nurses of its own, knowing or not when
      the patients are away: ground truth too):
      their means over the tier's reachable, what timing could make of its attempts.
    """
    wave = store.wave_row(session, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    people = {
        pid: _Recipient(tier, _callable(note))
        for pid, tier, note in store.recipient_outcomes(session, wave.mailing_id)
    }
    truth = {pid for pid in reachable if pid in people and people[pid].callable}
    task_patient: dict[int, int] = {}
    ahead = 0
    for task_id, patient_id, _kind, _tier, _status, referent, ahead_of in store.report_tasks(
        session, wave_id
    ):
        task_patient[task_id] = patient_id
        ahead += ahead_of is not None
        if patient_id in people:
            people[patient_id].referent = referent

    attempts: Counter[str] = Counter()
    depth = _Depth()
    loads: dict[int, NurseLoad] = {}
    busy_by_day: dict[date, float] = {}  # nurse minutes per patient-local day, as the plan places calls
    zones: dict[str, ZoneInfo] = {}
    for (
        task_id, nurse_id, result, started, answered_at, ended, timezone, code, outcome_nurse, kind,
    ) in store.report_attempts(session, wave_id):  # fmt: skip
        person = people.get(task_patient[task_id])
        if person is None:
            continue  # a task of a patient no longer among the recipients: not this comparison's
        attempts[person.tier] += 1
        answered = result == AttemptResult.answered.value
        zone = zones.get(timezone) or zones.setdefault(timezone, ZoneInfo(timezone))
        day = started.astimezone(zone).date()
        busy_by_day[day] = busy_by_day.get(day, 0.0) + busy_seconds(started, ended) / 60
        if nurse_id is not None:
            load = loads.get(nurse_id) or loads.setdefault(nurse_id, NurseLoad())
            load.add(started, answered_at, ended, answered)
        reaches = code in REACHED and person.reach is None
        if reaches:
            nurse = outcome_nurse if outcome_nurse is not None else nurse_id
            person.reach = (started, started.astimezone(zone).date(), nurse)
        if kind == TaskKind.wave:
            depth.add(task_id, person.tier, answered, reaches)

    nurses = occupancy(session, loads, wave, policy)
    target = policy.dialer.target_occupancy
    busy = sum(n["busy_minutes"] for n in nurses.values())
    shift = sum(n["shift_minutes"] for n in nurses.values())
    per_nurse = {code: n["occupancy"] for code, n in nurses.items() if n["occupancy"] is not None}
    load_days = days_of(wave.plan or {}, busy_by_day)
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
        "by_tier": _by_tier(people, truth, attempts, wave, policy, depth, bounds),
        "occupancy": _ratio(busy, shift),
        "occupancy_spread": occupancy_spread(per_nurse, target),
        "nurse_occupancy": per_nurse,
        "load_by_day": [d.as_dict() for d in load_days],
        "max_daily_load_deviation": max_daily_load_deviation(load_days),
        "max_daily_load_deviation_from_launch_plan": max_daily_load_deviation(load_days, from_launch=True),
        "days_filled_by_top_ups": days_filled_by_top_ups(load_days),
        "days_loaded_unplanned": days_loaded_unplanned(load_days),
        "reach_curve": reach_curve(people, truth, wave),
        "by_attempt": depth.table(None),
        "first_calls_ahead": ahead,
    }


def _callable(note: str | None) -> bool:
    return note is None or note == UNPLACED_NOTE


def callable_recipients(session: Session, mailing_id: int) -> set[int]:
    """The recipients the rules let the wave call (a task, or no capacity left for one): the ones
    the figures count, and the benchmark's bounds are computed for."""
    return {pid for pid, _tier, note in store.recipient_outcomes(session, mailing_id) if _callable(note)}


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
    depth: _Depth,
    bounds: Mapping[int, ReachBound] | None,
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
            "by_attempt": depth.table(tier.value),
        }
        if bounds is not None:
            known = [bounds[pid] for pid in mine if pid in bounds]
            roster = [b[2] for b in known if b[2] is not None]
            blind = [b[3] for b in known if b[3] is not None]
            out[tier.value]["reach_bound"] = {
                "attempts": policy.max_attempts(tier),
                "at_random_hours": _ratio(sum(b[0] for b in known), len(known)),
                "at_best_hours": _ratio(sum(b[1] for b in known), len(known)),
                "on_the_roster": _ratio(sum(roster), len(roster)) if roster else None,
                "blind_to_absences": _ratio(sum(blind), len(blind)) if blind else None,
            }
    return out


@dataclass(slots=True)
class _Depth:
    """Wave tasks' attempts by their number, per tier: an arm that stops after three attempts and
    one that goes on to eight have attempts per reach of different things; compared attempt by
    attempt, the one that calls at better hours answers more at every number."""

    number: Counter[int] = field(default_factory=Counter)  # task -> attempts seen so far
    made: Counter[tuple[str, int]] = field(default_factory=Counter)
    answered: Counter[tuple[str, int]] = field(default_factory=Counter)
    reached: Counter[tuple[str, int]] = field(default_factory=Counter)

    def add(self, task_id: int, tier: str, answered: bool, reaches: bool) -> None:
        self.number[task_id] += 1
        key = (tier, self.number[task_id])
        self.made[key] += 1
        self.answered[key] += answered
        self.reached[key] += reaches

    def table(self, tier: str | None) -> list[dict[str, Any]]:
        """Per attempt number (all tiers when `tier` is None): attempts, answer rate, reach rate (a
        "call me back" is answered but does not reach), and attempts per reach over the attempts up
        to that number."""
        made: Counter[int] = Counter()
        answered: Counter[int] = Counter()
        reached: Counter[int] = Counter()
        for (t, k), n in self.made.items():
            if tier is None or t == tier:
                made[k] += n
                answered[k] += self.answered[(t, k)]
                reached[k] += self.reached[(t, k)]
        out, made_so_far, reached_so_far = [], 0, 0
        for k in sorted(made):
            made_so_far += made[k]
            reached_so_far += reached[k]
            out.append(
                {
                    "attempt": k,
                    "attempts": made[k],
                    "answer_rate": _ratio(answered[k], made[k]),
                    # what `dialer.answer_rate_by_attempt` means: answered calls that reached the patient
                    "reach_rate": _ratio(reached[k], made[k]),
                    "attempts_per_reach_up_to": _ratio(made_so_far, reached_so_far),
                }
            )
        return out


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
