"""Morning top-ups: a running wave's spare nurse time today goes to the patients its plan left out.

A wave's plan is an expectation made before its first call. Best time to call then
moves retries to the hours and days each patient answers, so some days have fewer
calls due than planned: the nurses would sit idle while patients the plan could not
fit wait for the next wave. So each working morning, before calling hours, the calls
due today are costed (each at its next attempt's expected minutes, with the same-day
retries it brings) and set against the nurses' hours as they fall due (`day_pacing.doable`:
calls piled up in the evening do not fill the morning's nurses), and the planner
places left-out patients on today where their pools have room, highest tier first,
exactly as at planning (their expected retries charged to the later days, whose
plans are made again on their own mornings). The day's planned minutes become this morning's
forecast (the launch plan's are kept beside them), so planned against actual load compares
each day with the plan made for it that morning.

The forecast and the room differ in one figure, the same-day retries a call due today
brings. The retry rule's share (`same_day_factor`) ignores best time, which sends most
retries to a better hour of another day: on a Friday of the 20,000 benchmark it counted
1.25 where the day measured 1.10, and the morning planned 14 % more than came. The forecast
takes the share the wave measured on its last day of the kind (`measured_same_day_factor`)
and costs the added first calls at the hours they fall due; the room keeps the rule's share,
a margin: reckoned with the measured one, the days filled, but the high tier's evening retries
lost senior time (84.8 % of the reachable high-tier patients reached instead of 86.0 %).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import structlog
from sqlmodel import Session

from campaign import baseline, planning, store
from campaign import calendar as cal
from campaign.day_pacing import PoolTimeline, doable
from campaign.policy import Policy, Tier
from campaign.retry_spread import answer_rate, attempt_costs, spread_table
from campaign.services import wave_tasks
from campaign.services.base import Context
from campaign.services.waves import PARIS, UNPLACED_NOTE
from campaign.states import WaveStatus

log = structlog.get_logger("carecall.campaign")

# the programme's day: waves are planned in working days of mainland France
PROGRAMME_PLACE = cal.Place("75", PARIS)


@dataclass(frozen=True, slots=True)
class TopUp:
    """One wave's morning: the minutes already due today, the patients added, their minutes today."""

    wave_id: int
    day: date
    due_minutes: float  # of the calls due, those the nurses can get through today (the forecast)
    added: int
    added_minutes: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave_id,
            "day": self.day.isoformat(),
            "due_minutes": round(self.due_minutes, 1),
            "added": self.added,
            "added_minutes": round(self.added_minutes, 1),
        }


def next_attempt_minutes(tier: Tier, attempts_made: int, policy: Policy) -> float:
    """Expected nurse minutes of an open task's next attempt: answered with the answer rate of
    that attempt (`dialer.answer_rate_by_attempt`, else 1/E), unanswered otherwise."""
    p = answer_rate(tier, attempts_made, policy)
    return p * policy.tiers[tier].call_minutes + (1 - p) * policy.dialer.noanswer_handle_minutes


def same_day_factor(days: Sequence[date], policy: Policy) -> dict[Tier, float]:
    """Per tier, the minutes a call due on days[0] brings that day, its same-day retries included,
    against its own: the ratio planning's retry spread gives a first call on that day."""
    table = spread_table(days, policy)
    out: dict[Tier, float] = {}
    for tier in Tier:
        first = attempt_costs(tier, policy)[0]
        today = sum(m for j, m in table[tier][0] if j == 0)
        out[tier] = today / first if first else 1.0
    return out


# fewer tasks than this attempted the day before: too few to measure their same-day retries on
MIN_MEASURED_TASKS = 50


def measured_same_day_factor(
    s: Session, wave_id: int, days: Sequence[date], today: date
) -> dict[Tier, float] | None:
    """`same_day_factor` as the wave's last working day of today's kind (weekday, Saturday) measured
    it: the minutes its calls took that day, same-day retries included, against their first
    attempt's of the day, per tier (pooled for a tier with few tasks). The rule's factor ignores
    best time, which moves most retries to another day's better hours: it counted about 1.25 where
    the days measured 1.10-1.20, and the mornings planned work that never came. None: no such
    day yet, or too few tasks on it."""
    saturday = today.weekday() == 5
    before = [d for d in days if d < today and (d.weekday() == 5) == saturday]
    if not before:
        return None
    day = before[-1]
    start = cal.at_local(day, time(0), PROGRAMME_PLACE.timezone)
    end = cal.at_local(day + timedelta(days=1), time(0), PROGRAMME_PLACE.timezone)
    calls: dict[int, tuple[str, float, float]] = {}  # task -> tier, first attempt's minutes, all
    for task, tier, started, ended in store.wave_attempts_between(s, wave_id, start, end):
        minutes = (ended - started).total_seconds() / 60
        tier, first, total = calls.get(task, (tier, minutes, 0.0))
        calls[task] = (tier, first, total + minutes)

    def ratio(of: list[tuple[str, float, float]]) -> float | None:
        first = sum(c[1] for c in of)
        if len(of) < MIN_MEASURED_TASKS or first <= 0:
            return None
        return max(1.0, sum(c[2] for c in of) / first)  # a call brings at least its own minutes

    pooled = ratio(list(calls.values()))
    if pooled is None:
        return None
    out: dict[Tier, float] = {}
    for tier in Tier:
        out[tier] = ratio([c for c in calls.values() if c[0] == tier.value]) or pooled
    return out


def due_arrivals(
    due: Iterable[tuple[str, int, datetime]], policy: Policy, factor: dict[Tier, float]
) -> list[tuple[datetime, float]]:
    """(due at, expected minutes) of the calls due, (tier, attempts made, due at) as
    `store.pending_attempts_due`, with the same-day retries they bring (`same_day_factor`)."""
    return [
        (at, next_attempt_minutes(Tier(tier), made, policy) * factor[Tier(tier)]) for tier, made, at in due
    ]


def top_up_waves(ctx: Context) -> list[TopUp]:
    """Every running wave's morning top-up (the scheduler's job, before calling hours)."""
    if not ctx.policy.outreach.fill_spare_capacity or baseline.is_fifo(ctx.policy):
        return []
    with ctx.sessions() as s:
        running = [w.id for w in store.waves_with_status(s, WaveStatus.running) if w.id is not None]
    return [t for wave_id in running if (t := top_up_wave(ctx, wave_id)) is not None]


def top_up_wave(ctx: Context, wave_id: int, actor: str = "scheduler") -> TopUp | None:
    """Today's top-up of a running wave, once a day; None when it is not running, today is not
    one of its working days, or it was topped up today already."""
    policy, now = ctx.policy, ctx.clock.now()
    today = cal.local_date(now, PROGRAMME_PLACE)
    with ctx.sessions() as s:
        wave = store.wave_row(s, wave_id)
        if wave is None or wave.status != WaveStatus.running or not wave.plan:
            return None
        plan = dict(wave.plan)
        if today.isoformat() in plan.get("top_ups", {}):
            return None
        days = cal.working_days(wave.window_start, wave.window_end, policy.calling_hours)
        if today not in days:
            return None
        gone = days.index(today)
        end_of_today = cal.at_local(today + timedelta(days=1), time(0), PROGRAMME_PLACE.timezone)
        nurses = wave_tasks.nurse_shifts(s)
        # what the nurses can get through today of the calls due, at the hours they fall due (a
        # pile of calls due in the evening, when few work, leaves the morning's nurses idle)
        timeline = PoolTimeline.of(
            [shift for n in nurses for shift in n.utc_shifts_on(today, policy.calling_hours)],
            policy.dialer.target_occupancy,
        )
        # the room for left-out patients is reckoned with the retry rule's same-day share, which
        # best time makes an overestimate: a margin that keeps senior time for the high tier's
        # evening retries (reckoned with the measured share, the days filled but the high tier
        # lost a point); the day's plan, a forecast, takes what the wave measured
        factor = same_day_factor(days[gone:], policy)
        measured = measured_same_day_factor(s, wave_id, days, today) or factor
        due_calls = store.pending_attempts_due(s, wave_id, end_of_today)
        room_used = doable(due_arrivals(due_calls, policy, factor), timeline)
        arrivals = due_arrivals(due_calls, policy, measured)
        due = planned_today = doable(arrivals, timeline)
        # only today is taken already: the later days' plans are made again on their mornings, and
        # the added patients' retries go before the calls planned there only as their tiers do
        sub = planning.WavePlan()
        state_of = {}
        if plan.get("unplaced"):
            mailing = store.mailing_row(s, wave.mailing_id)
            assert mailing is not None and mailing.id is not None
            cands = wave_tasks.candidates(
                s, mailing.id, wave_id, mailing.theme_code, policy, now, note=UNPLACED_NOTE
            )
            sub = planning.plan_wave(
                cands,
                nurses,
                days[gone:],
                policy,
                committed={today: room_used},
                first_call_days=1,
                start_offsets=False,
            )
            state_of = {c.patient_id: c.state for c in cands if c.patient_id in sub.assignments}
            del cands
            rows = list(wave_tasks.task_rows(s, wave, mailing.theme_code, sub, state_of, policy, now))
            store.insert_tasks(s, rows)
            store.clear_plan_notes(s, mailing.id, sub.assignments)
            # the added first calls fall due where best time put them (evenings, for the working
            # age): costed as they arrive, like the calls already due
            first_calls = [(r["tier"], 0, r["not_before"]) for r in rows if r["not_before"] < end_of_today]
            planned_today = doable([*arrivals, *due_arrivals(first_calls, policy, measured)], timeline)
        added = len(sub.assignments)
        added_today = planned_today - due
        wave.plan = _replanned(plan, sub, today, planned_today, added)
        store.audit(
            s, now, actor, "wave.top_up", detail=f"wave={wave_id} day={today.isoformat()} tasks={added}"
        )
        s.commit()
    top_up = TopUp(wave_id, today, due, added, added_today)
    log.info("wave topped up", **top_up.as_dict())
    return top_up


def _still_unplaced(needs: dict[str, dict[str, Any]], added: Counter[str]) -> dict[str, dict[str, Any]]:
    """The plan's unplaced needs per tier, less the patients added this morning (hours pro rata)."""
    out = {}
    for tier, need in needs.items():
        left = max(0, int(need["patients"]) - added[tier])
        if left:
            share = left / int(need["patients"])
            out[tier] = {**need, "patients": left, "hours": round(float(need["hours"]) * share, 1)}
    return out


def _replanned(
    plan: dict[str, Any], sub: planning.WavePlan, today: date, today_minutes: float, added: int
) -> dict[str, Any]:
    """The wave's plan after this morning: today's minutes are what the nurses can get through of
    the calls due and those added (the launch plan's kept as `launch_minutes`), the added
    patients' retries on later days."""
    days = {d: dict(v) for d, v in plan.get("days", {}).items()}
    for d in {today, *sub.days}:
        entry, load = days.get(d.isoformat()), sub.days.get(d, planning.DayLoad())
        if entry is None or (d != today and not load.minutes):
            continue
        entry.setdefault("launch_minutes", entry.get("minutes", 0.0))
        minutes = today_minutes if d == today else entry.get("minutes", 0.0) + load.minutes
        entry["minutes"] = round(minutes, 1)
        entry["tasks"] = dict(Counter(entry.get("tasks", {})) + load.tasks)
    added_by_tier = sum((load.tasks for load in sub.days.values()), Counter[str]())
    return {
        **plan,
        "days": days,
        "unplaced": max(0, int(plan.get("unplaced", 0)) - added),
        "unplaced_by_tier": _still_unplaced(plan.get("unplaced_by_tier", {}), added_by_tier),
        "planned": int(plan.get("planned", 0)) + added,
        "top_ups": {**plan.get("top_ups", {}), today.isoformat(): added},
    }
