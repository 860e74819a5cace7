"""From recipients to a wave's call tasks: the planner's candidates and the task rows of a plan.

Shared by the wave's planning (`services.plan_wave`) and its morning top-ups
(`services.top_up_wave`), so a first call placed either way is the same row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session

from campaign import baseline, besttime, planning, store
from campaign import calendar as cal
from campaign.model import Wave, pathologies_from_text
from campaign.policy import Policy, Tier
from campaign.rules import PatientState
from campaign.services.base import required_skills
from campaign.states import TaskKind, TaskStatus
from campaign.store import answers


def candidates(
    s: Session,
    mailing_id: int,
    wave_id: int,
    theme_code: str | None,
    policy: Policy,
    now: datetime,
    *,
    note: str | None = None,
) -> list[planning.Candidate]:
    """The mailing's recipients as the planner sees them (only those whose plan note is `note`,
    if given): rule data, the skills the call needs, other open calls, contacts in the period."""
    busy = store.open_task_patients(s, exclude_wave_id=wave_id)
    counts = store.wave_task_counts_since(s, now - timedelta(days=policy.caps.period_days), wave_id)

    @functools.cache
    def skills_of(pathologies: str) -> frozenset[str]:
        return required_skills(pathologies_from_text(pathologies), theme_code, policy)

    return [
        planning.Candidate(
            patient_id=r.id,
            state=store.patient_state_from_row(r),
            skills=skills_of(r.pathologies),
            open_task_elsewhere=r.id in busy,
            tasks_in_period=counts.get(r.id, 0),
        )
        for r in store.recipients_rows(s, mailing_id, note=note)
    ]


def nurse_shifts(s: Session) -> list[planning.NurseShifts]:
    """The nurses as the planner sees them: level, skills, shifts."""
    return [planning.NurseShifts(n.id, n.level, n.skills, n.shifts, n.timezone) for n in store.nurses(s)]


def task_rows(
    s: Session,
    wave: Wave,
    theme_code: str | None,
    plan: planning.WavePlan,
    state_of: dict[int, PatientState],
    policy: Policy,
    now: datetime,
) -> Iterator[dict[str, Any]]:
    """The call_task rows of a plan's first calls, for `store.insert_tasks`.

    A first call falls due at the plan's paced time when it has one (inside the patient's
    hours), else, with best time to call, at the start of the day's best band for the patient,
    else at the day's first calling hour.
    """
    assert wave.id is not None

    @functools.cache
    def windows(day: date, place: cal.Place) -> list[tuple[datetime, datetime]]:
        return cal.utc_intervals(day, place, policy.calling_hours)

    def paced(day: date, place: cal.Place, due: datetime | None) -> datetime:
        """The day's first calling hour, or the plan's due time when inside the patient's hours
        (in the lunch break: the afternoon's start; after the last window: its start)."""
        spans = windows(day, place)
        if due is not None:
            for start, end in spans:
                if due < end:
                    return max(start, due)
            return spans[-1][0]
        return spans[0][0]

    models = answer_models(s, wave.mailing_id, state_of, wave.window_start, policy)

    @functools.cache
    def deadline_in(zone: str) -> datetime:
        return cal.at_local(wave.window_end + timedelta(days=1), time(0), zone)

    priority = {t: policy.tiers[t].priority for t in Tier}
    kind, pending = TaskKind.wave.value, TaskStatus.pending.value
    for pid, day in plan.assignments.items():
        state = state_of[pid]
        model, due = models.get(pid), plan.due_at.get(pid)
        at, e = (
            besttime.first_call(day, state.place, windows(day, state.place), model)
            if model and due is None
            else (paced(day, state.place, due), None)
        )
        yield {
            "wave_id": wave.id,
            "patient_id": pid,
            "kind": kind,
            "status": pending,
            "tier": state.tier.value,
            "priority": priority[state.tier],
            "planned_day": day,
            "not_before": at,
            "deadline": deadline_in(state.place.timezone),
            "theme_code": theme_code,
            "attempts": 0,
            "created_at": now,
            "best_band": e.band if e else None,
            "answer_p": e.p if e else None,
        }


def answer_models(
    s: Session, mailing_id: int, states: dict[int, Any], on: date, policy: Policy
) -> dict[int, Any]:
    """Best time to call: the recipients' answer models; none while nothing has been learnt
    (every band would have the base rate: the first window is kept) or when best time is off."""
    if not policy.outreach.best_time or baseline.is_fifo(policy) or not answers.has_answer_counts(s):
        return {}
    o = policy.outreach
    return answers.recipient_models(
        s, mailing_id, states, on, o.best_time_base_rate, o.best_time_prior_weight
    )
