"""The wave report's figures: what a wave did, per tier and per nurse, and whether the
invariants held.

Computed from the database only (never from a dialer's memory), so the same
figures come out whoever asks and whenever. Built to stay fast on a national
wave (100,000 tasks, a few hundred thousand attempts): one streamed pass over
the few columns it needs, no ORM object per row. Plain JSON-serialisable data,
with no personal data: ids, counts, nurse codes.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from campaign import store
from campaign.errors import NotFound
from campaign.invariants import check_invariants
from campaign.model import Mailing, Wave
from campaign.policy import Policy
from campaign.reports.load import days_filled_by_top_ups, days_of, max_daily_load_deviation, occupancy_spread
from campaign.reports.nurses import NurseLoad, busy_seconds, occupancy
from campaign.states import AttemptResult, OutcomeCode, TaskKind, TaskStatus

# a patient is reached when a nurse had the conversation the wave is for
REACHED = frozenset({OutcomeCode.reached.value, OutcomeCode.escalation.value})
_OPEN = (TaskStatus.pending.value, TaskStatus.in_progress.value)
_MAX_FILLED_DAYS = 400


@dataclass(slots=True)
class _Patient:
    tier: str
    referent: int | None
    # the first attempt that reached the patient: (started_at, local day, nurse id)
    reach: tuple[datetime, date, int | None] | None = None


def wave_report(session: Session, policy: Policy, wave_id: int) -> dict[str, Any]:
    """Every figure of one wave, as JSON-ready data (dates as ISO strings).

    Definitions, so the figures can be checked by hand:
    - patients: the mailing's recipients; patients_in_wave: those with a task
      in the wave (planning leaves some out, with the reason);
    - reached: distinct patients of the wave with whom a nurse had the
      conversation (an outcome `reached` or `escalation` on any of the wave's
      tasks, callbacks included), whatever the number of tasks or calls;
      reached_share divides it by patients_in_wave. A callback request or an
      opt-out is a conversation, not a reach: they are counted apart
      (spoke, opted_out);
    - per tier, a patient counts in the tier of their wave task;
    - days to reach run from `wave.window_start` to the local date of the
      first reaching call; "in window" means that call started no later than
      `wave.deadline`; attempts_per_reach divides all the wave's attempts by
      the patients reached;
    - referent_share: among reached patients with a référent, the share whose
      first reaching call was taken by that nurse (the référent as it is now);
    - tasks_done and the other task_* figures count tasks (a patient reached
      through a callback has two done tasks), and are labelled as such;
    - patients_to_fix: recipients whose every number is flagged wrong;
    - nurse occupancy: see `reports.nurses`; occupancy_spread: the largest distance of a
      nurse's occupancy from the target, as a fraction;
    - load_by_day: planned against actual nurse minutes per day, and
      max_daily_load_deviation over the wave's working days (…_from_launch_plan: against the
      plan made before the first call, where morning top-ups re-planned days, the days they
      mostly filled counted apart as days_filled_by_top_ups): see `reports.load`;
    - daily and days to reach use the patient's local date;
    - an incoming call (the patient called and a nurse answered) that stood in
      for a wave task belongs to the wave: it is one of `attempts` (a call a
      nurse handled: occupancy, results and outcomes count it, and a reach on
      it is a reach), and `incoming_calls` counts those; it is never a dial
      in the invariant figures (see `campaign.invariants`).
    """
    wave = store.wave_row(session, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    mailing = store.mailing_row(session, wave.mailing_id)
    invariants = check_invariants(session, policy, wave_id)

    task_patient: dict[int, int] = {}
    task_status: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    tier_tasks: dict[str, Counter[str]] = {}
    patients: dict[int, _Patient] = {}
    for task_id, patient_id, kind, tier, status, referent, _ahead_of in store.report_tasks(session, wave_id):
        task_patient[task_id] = patient_id
        task_status[status] += 1
        kinds[kind] += 1
        tier_tasks.setdefault(tier, Counter())[status] += 1
        known = patients.get(patient_id)
        if known is None or kind == TaskKind.wave.value:
            patients[patient_id] = _Patient(tier, referent, known.reach if known else None)

    results: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    attempts_by_tier: Counter[str] = Counter()
    attempts_by_day: Counter[date] = Counter()
    busy_by_day: dict[date, float] = defaultdict(float)  # nurse minutes, as occupancy counts them
    spoke: set[int] = set()
    opted_out: set[int] = set()
    nurses: dict[int, NurseLoad] = {}
    zones: dict[str, ZoneInfo] = {}
    total_attempts = incoming_calls = 0
    for (
        task_id, nurse_id, result, started, answered_at, ended, timezone, code, outcome_nurse, kind,
    ) in store.report_attempts(session, wave_id):  # fmt: skip
        total_attempts += 1
        incoming_calls += kind == TaskKind.incoming.value
        patient = patients[task_patient[task_id]]
        attempts_by_tier[patient.tier] += 1
        results[result or "none"] += 1
        zone = zones.get(timezone) or zones.setdefault(timezone, ZoneInfo(timezone))
        day = started.astimezone(zone).date()
        attempts_by_day[day] += 1
        answered = result == AttemptResult.answered.value
        busy_by_day[day] += busy_seconds(started, ended) / 60
        if nurse_id is not None:
            load = nurses.get(nurse_id) or nurses.setdefault(nurse_id, NurseLoad())
            load.add(started, answered_at, ended, answered)
        if code:
            outcomes[code] += 1
            spoke.add(task_patient[task_id])
            if code == OutcomeCode.opted_out.value:
                opted_out.add(task_patient[task_id])
            # attempts come oldest first: the first reaching call stays
            if code in REACHED and patient.reach is None:
                patient.reach = (started, day, outcome_nurse if outcome_nurse is not None else nurse_id)

    reached = [p for p in patients.values() if p.reach is not None]
    days = [(p.reach[1] - wave.window_start).days for p in reached if p.reach is not None]
    inv = invariants.counts()
    nurse_occupancy = occupancy(session, nurses, wave, policy)
    day_loads = days_of(wave.plan or {}, busy_by_day)
    return {
        "wave": _wave_info(session, policy, wave, mailing),
        "patients": store.recipient_count(session, wave.mailing_id),
        "patients_in_wave": len(patients),
        "reached": len(reached),
        "reached_share": _ratio(len(reached), len(patients)),
        "spoke": len(spoke),
        "opted_out": len(opted_out),
        "patients_to_fix": len(store.patients_without_number(session, wave.mailing_id)),
        "attempts": total_attempts,
        "incoming_calls": incoming_calls,
        "attempts_per_reach": _ratio(total_attempts, len(reached)),
        "median_days_to_reach": _median(days),
        "tasks": sum(task_status.values()),
        "tasks_by_kind": dict(sorted(kinds.items())),
        "tasks_done": task_status[TaskStatus.done.value],
        "tasks_done_share": _ratio(task_status[TaskStatus.done.value], sum(task_status.values())),
        "unreachable": task_status[TaskStatus.unreachable.value],
        "expired": task_status[TaskStatus.expired.value],
        "cancelled": task_status[TaskStatus.cancelled.value],
        "open": sum(task_status[s] for s in _OPEN),
        "calls_outside_window": inv["calls_outside_window"],
        "calls_to_uncallable": inv["calls_to_uncallable"],
        "double_dials": inv["double_dials"],
        "over_daily_cap": inv["over_daily_cap"],
        "open_tasks": inv["open_tasks"],
        "by_tier": _by_tier(patients.values(), tier_tasks, attempts_by_tier, wave, policy),
        "nurse_occupancy": nurse_occupancy,
        "occupancy_spread": occupancy_spread(
            {code: n["occupancy"] for code, n in nurse_occupancy.items()}, policy.dialer.target_occupancy
        ),
        "load_by_day": [d.as_dict() for d in day_loads],
        "max_daily_load_deviation": max_daily_load_deviation(day_loads),
        "max_daily_load_deviation_from_launch_plan": max_daily_load_deviation(day_loads, from_launch=True),
        # days a morning top-up re-planned: their "planned" is that morning's, the launch plan's beside it
        "days_replanned": sum(1 for d in day_loads if d.launch_planned_min != d.planned_min),
        "days_filled_by_top_ups": days_filled_by_top_ups(day_loads),
        "next_contact": _next_contact(session, wave.mailing_id),
        "outcomes": dict(sorted(outcomes.items())),
        "attempt_results": dict(sorted(results.items())),
        "daily": _daily(attempts_by_day, Counter(p.reach[1] for p in reached if p.reach), wave),
        "invariants": invariants.as_dict(),
        "policy": {
            "min_gap_minutes": policy.retry.min_gap_minutes,
            "max_attempts_per_day": policy.caps.max_attempts_per_day,
            "wrap_up_seconds": policy.dialer.wrap_up_seconds,
            "target_occupancy": policy.dialer.target_occupancy,
        },
    }


def _by_tier(
    patients: Iterable[_Patient],
    tasks: Mapping[str, Counter[str]],
    attempts: Counter[str],
    wave: Wave,
    policy: Policy,
) -> dict[str, dict[str, Any]]:
    order = sorted(policy.tiers, key=lambda t: -policy.tiers[t].priority)
    groups: dict[str, list[_Patient]] = {t.value: [] for t in order}
    for p in patients:
        groups.setdefault(p.tier, []).append(p)
    out: dict[str, dict[str, Any]] = {}
    for tier, items in groups.items():
        reached = [p for p in items if p.reach is not None]
        days = [(p.reach[1] - wave.window_start).days for p in reached if p.reach is not None]
        in_window = sum(1 for p in reached if p.reach is not None and p.reach[0] <= wave.deadline)
        with_referent = [p for p in reached if p.referent is not None]
        by_referent = sum(1 for p in with_referent if p.reach is not None and p.reach[2] == p.referent)
        status = tasks.get(tier, Counter())
        out[tier] = {
            "patients": len(items),
            "reached": len(reached),
            "reached_share": _ratio(len(reached), len(items)),
            "reached_in_window_share": _ratio(in_window, len(items)),
            "attempts": attempts[tier],
            "attempts_per_reach": _ratio(attempts[tier], len(reached)),
            "median_days_to_reach": _median(days),
            "p90_days_to_reach": _p90(days),
            "reached_with_referent": len(with_referent),
            "referent_share": _ratio(by_referent, len(with_referent)),
            "tasks": sum(status.values()),
            "tasks_done": status[TaskStatus.done.value],
            "unreachable": status[TaskStatus.unreachable.value],
            "expired": status[TaskStatus.expired.value],
            "cancelled": status[TaskStatus.cancelled.value],
            "open": sum(status[s] for s in _OPEN),
        }
    return out


def _next_contact(session: Session, mailing_id: int) -> dict[str, Any]:
    weeks: Counter[str] = Counter()
    unscheduled = 0
    for day, n in store.next_contact_counts(session, mailing_id):
        if day is None:
            unscheduled += n
        else:
            iso = day.isocalendar()
            weeks[f"{iso.year}-W{iso.week:02d}"] += n
    return {"unit": "iso_week", "counts": dict(sorted(weeks.items())), "unscheduled": unscheduled}


def _daily(attempts: Counter[date], reached: Counter[date], wave: Wave) -> dict[str, dict[str, int]]:
    """Per local day, the wave's days without calls shown as zeros (weekends are visible)."""
    days = set(attempts) | set(reached)
    first = min(days | {wave.window_start})
    last = max(days | {wave.window_end})
    if (last - first).days <= _MAX_FILLED_DAYS:
        days |= {first + timedelta(days=i) for i in range((last - first).days + 1)}
    return {d.isoformat(): {"attempts": attempts[d], "reached": reached[d]} for d in sorted(days)}


def _wave_info(session: Session, policy: Policy, wave: Wave, mailing: Mailing | None) -> dict[str, Any]:
    theme = mailing.theme_code if mailing else None
    label = policy.themes[theme].label if theme in policy.themes else None
    if label is None and theme is not None:
        label = store.theme_label(session, theme) or theme
    return {
        "id": wave.id,
        "theme": theme,
        "theme_label": label,
        "status": wave.status,
        "window_start": wave.window_start.isoformat(),
        "window_end": wave.window_end.isoformat(),
        "deadline": wave.deadline.isoformat(),
        "mailing_id": wave.mailing_id,
        "sent_on": mailing.sent_on.isoformat() if mailing else None,
        "arrives_on": mailing.arrives_on.isoformat() if mailing else None,
    }


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return round(statistics.quantiles(values, n=10, method="inclusive")[-1], 2)


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file, then rename): a reader never sees half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
