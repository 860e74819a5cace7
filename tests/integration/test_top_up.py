"""Morning top-ups through the real services (SQLite and PostgreSQL).

A running wave whose calls due today leave its nurses spare time gives that time,
before calling hours, to the patients its plan could not fit, highest tier first,
as first calls today; the day's planned minutes become the morning's. Once a day,
only for a running wave, on its working days, never for the fifo baseline.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from factories import SENT_ON, WEEKDAY_SHIFTS, add_nurse, bulk_patients, paris, policy, running_wave
from rich.console import Console
from sqlalchemy import delete, select, update

from campaign import calendar as cal
from campaign import jobs, services, store
from campaign.explain import explain_wave
from campaign.model import RECIPIENT, TASK, AuditEvent, CallAttempt, Patient
from campaign.policy import Tier
from campaign.services.top_up import (
    MIN_MEASURED_TASKS,
    UNPLACED_NOTE,
    measured_same_day_factor,
    next_attempt_minutes,
    same_day_factor,
)
from campaign.states import TaskStatus, WaveStatus
from dialer.cli.render import print_wave

FIRST = date(2026, 12, 10)  # Thursday, the wave's first working day
DAY = date(2026, 12, 14)  # Monday, its fourth (Saturday is one): the low tier may start
LATER = date(2026, 12, 16)


def _wave(ctx: services.Context, clock: Any) -> Any:
    """One senior and one junior on weekday shifts, more patients than they can call in the wave."""
    add_nurse(ctx, level="senior", shifts=WEEKDAY_SHIFTS)
    add_nurse(ctx, level="junior", shifts=WEEKDAY_SHIFTS)
    bulk_patients(ctx, 30, tier="high")
    bulk_patients(ctx, 400, tier="medium")
    bulk_patients(ctx, 400, tier="low")
    info = running_wave(ctx, clock, "diet", SENT_ON)
    assert info.window_start == FIRST
    return info


def _plan(ctx: services.Context, wave_id: int) -> dict[str, Any]:
    with ctx.sessions() as s:
        return dict(services.get_wave(s, wave_id).plan)


def _left_out(ctx: services.Context, mailing_id: int) -> dict[int, str]:
    """Left-out recipients and their tiers."""
    with ctx.sessions() as s:
        rows = s.execute(
            select(Patient.id, Patient.tier)
            .join(RECIPIENT, RECIPIENT.c.patient_id == Patient.id)
            .where(RECIPIENT.c.mailing_id == mailing_id, RECIPIENT.c.plan_note == UNPLACED_NOTE)
        ).all()
    return {pid: str(tier) for pid, tier in rows}


def _defer_todays_calls(ctx: services.Context, wave_id: int) -> int:
    """The earlier days' calls made (their patients reached), and half of today's moved to a later
    day, as best time to call does."""
    with ctx.sessions() as s:
        s.execute(
            update(TASK)
            .where(TASK.c.wave_id == wave_id, TASK.c.planned_day < DAY)
            .values(status=TaskStatus.done, attempts=1)
        )
        n = s.execute(
            update(TASK)
            .where(TASK.c.wave_id == wave_id, TASK.c.planned_day == DAY, TASK.c.id % 2 == 0)
            .values(not_before=paris(LATER, 9))
        ).rowcount
        s.commit()
    return int(n)


def test_spare_time_today_goes_to_left_out_patients(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    info = _wave(ctx, clock)
    before = _plan(ctx, info.wave_id)
    left_before = _left_out(ctx, info.mailing_id)
    assert before["unplaced"] == len(left_before) > 0
    deferred = _defer_todays_calls(ctx, info.wave_id)
    assert deferred > 0
    clock.advance_to(paris(DAY, 8, 40))

    top = services.top_up_wave(ctx, info.wave_id)

    assert top is not None and top.day == DAY and top.added > 0
    plan = _plan(ctx, info.wave_id)
    today = plan["days"][DAY.isoformat()]
    # the morning's plan: the calls due plus those added, within the day's capacity
    assert today["minutes"] == round(top.due_minutes + top.added_minutes, 1)
    assert today["minutes"] <= today["capacity"] + 0.1
    assert today["launch_minutes"] == before["days"][DAY.isoformat()]["minutes"]
    assert top.due_minutes < today["launch_minutes"], "the deferred calls are not due today"
    assert plan["unplaced"] == before["unplaced"] - top.added
    assert sum(n["patients"] for n in plan["unplaced_by_tier"].values()) == plan["unplaced"]
    assert plan["planned"] == before["planned"] + top.added
    assert plan["top_ups"] == {DAY.isoformat(): top.added}
    with ctx.sessions() as s:
        added = s.execute(
            select(TASK.c.patient_id, TASK.c.tier, TASK.c.not_before, TASK.c.status).where(
                TASK.c.wave_id == info.wave_id, TASK.c.created_at == paris(DAY, 8, 40)
            )
        ).all()
        audits = s.execute(select(AuditEvent.action).where(AuditEvent.action == "wave.top_up")).all()
    assert len(added) == top.added and len(audits) == 1
    # first calls today, in the patient's calling hours, of patients who were left out
    for pid, _tier, at, status in added:
        assert pid in left_before and status == TaskStatus.pending
        at = at if at.tzinfo else at.replace(tzinfo=paris(DAY, 0).tzinfo)
        assert paris(DAY, 9) <= at < paris(DAY, 19)
    # highest tier first: medium patients are added before any low one while mediums are left out
    left_after = _left_out(ctx, info.mailing_id)
    assert set(left_after) == set(left_before) - {pid for pid, *_ in added}
    added_tiers = {str(t) for _, t, _, _ in added}
    if "low" in added_tiers:
        assert "medium" not in left_after.values()
    else:
        assert added_tiers == {"medium"}
    # the day's counts per tier show the added first calls
    for tier in added_tiers:
        n = sum(1 for _, t, _, _ in added if str(t) == tier)
        assert today["tasks"][tier] == before["days"][DAY.isoformat()]["tasks"].get(tier, 0) + n

    # once a day
    assert services.top_up_wave(ctx, info.wave_id) is None
    # `carecall wave show` tells the supervisor
    out = Console(width=200, record=True, file=io.StringIO())
    print_wave(explain_wave(ctx, info.wave_id), out)
    text = out.export_text()
    assert f"added on the mornings of spare nurse time (patients left out before): {DAY}: {top.added}" in text
    assert f"{plan['unplaced']} patients did not fit" in text
    for tier, need in plan["unplaced_by_tier"].items():
        assert f"{tier}: {need['patients']} patients, about {need['hours']:.0f} h of junior or senior" in text


def test_top_up_only_for_a_running_wave_on_its_working_days(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    info = _wave(ctx, clock)
    _defer_todays_calls(ctx, info.wave_id)
    sunday = DAY + timedelta(days=6)
    assert not cal.local_windows(sunday, cal.Place("75", "Europe/Paris"), ctx.policy.calling_hours)
    clock.advance_to(paris(sunday, 8, 40))
    assert services.top_up_wave(ctx, info.wave_id) is None, "no calls on Sundays"
    clock.advance_to(paris(DAY + timedelta(days=7), 8, 40))
    services.change_wave(ctx, info.wave_id, "pause")
    assert services.top_up_wave(ctx, info.wave_id) is None, "a paused wave is not topped up"
    services.change_wave(ctx, info.wave_id, "resume")
    # the scheduler's job tops up every running wave
    assert [t.wave_id for t in jobs.top_up_waves(ctx)] == [info.wave_id]
    # the fifo baseline has no plan to top up, nor does carecall with the option off
    for update_ in ({"strategy": "fifo"}, {"fill_spare_capacity": False}):
        pol = ctx.policy.model_copy(update={"outreach": ctx.policy.outreach.model_copy(update=update_)})
        assert services.top_up_waves(services.Context(ctx.sessions, pol, clock)) == []
    with ctx.sessions() as s:
        assert services.get_wave(s, info.wave_id).status == WaveStatus.running


def test_the_job_fires_before_calling_hours_on_working_days() -> None:
    spec = next(s for s in jobs.job_specs(policy()) if s.id == "top_up_waves")
    fires = []
    at = paris(FIRST, 0)
    for _ in range(7):
        at = jobs.next_fire(spec, at, at + timedelta(seconds=1))
        assert at is not None
        fires.append(cal.local_time_of(at, "Europe/Paris"))
    assert [f.strftime("%a %H:%M") for f in fires] == [
        "Thu 08:40",
        "Fri 08:40",
        "Sat 08:40",
        "Mon 08:40",
        "Tue 08:40",
        "Wed 08:40",
        "Thu 08:40",
    ]


def test_the_morning_measures_yesterdays_same_day_retries(env) -> None:  # type: ignore[no-untyped-def]
    """The minutes a call due today brings today are measured on the wave's last working day of the
    same kind, not taken from the retry rule, which ignores best time: of 60 medium calls of 10 min
    on Friday, 30 brought a 5-min retry that day (1.25); the high tier, with too few calls to
    measure, takes the pooled figure; a day with too few calls, or no earlier Saturday for a
    Saturday, falls back to the rule's factor (None)."""
    ctx, clock = env
    info = _wave(ctx, clock)
    friday = FIRST + timedelta(days=1)
    with ctx.sessions() as s:
        tasks = s.execute(
            select(TASK.c.id, TASK.c.patient_id, TASK.c.tier).where(TASK.c.wave_id == info.wave_id)
        ).all()
        medium = [t for t in tasks if str(t.tier) == "medium"][:60]
        high = [t for t in tasks if str(t.tier) == "high"][:10]

        def attempt(task: Any, hour: int, minutes: float) -> CallAttempt:
            start = paris(friday, hour)
            return CallAttempt(
                task_id=task.id, patient_id=task.patient_id, number="+33199001234", state="completed",
                result="no_answer", started_at=start, ended_at=start + timedelta(minutes=minutes),
            )  # fmt: skip

        s.add_all(attempt(t, 9, 10.0) for t in medium)
        s.add_all(attempt(t, 15, 5.0) for t in medium[:30])
        s.add_all(attempt(t, 10, 20.0) for t in high)  # one call each: nothing more that day
        s.commit()
        days = cal.working_days(info.window_start, info.window_end, policy().calling_hours)
        factor = measured_same_day_factor(s, info.wave_id, days, DAY)
        assert factor is not None
        assert factor[Tier.medium] == pytest.approx(1.25)
        pooled = (600 + 150 + 200) / (600 + 200)
        assert factor[Tier.high] == pytest.approx(pooled) and factor[Tier.low] == pytest.approx(pooled)
        # Saturday: no earlier Saturday in the wave; the first day: nothing before it
        assert measured_same_day_factor(s, info.wave_id, days, DAY - timedelta(days=2)) is None
        assert measured_same_day_factor(s, info.wave_id, days, FIRST) is None
        # Monday measures Friday: with fewer than MIN_MEASURED_TASKS calls there, the rule's factor
        gone = 60 + 10 - MIN_MEASURED_TASKS + 1
        s.execute(delete(CallAttempt).where(CallAttempt.task_id.in_([t.id for t in medium[:gone]])))
        s.commit()
        assert measured_same_day_factor(s, info.wave_id, days, DAY) is None


def test_the_days_plan_is_forecast_with_the_same_day_retries_measured(env) -> None:  # type: ignore[no-untyped-def]
    """Friday's calls brought no retry the same day (best time sent them to better hours of
    other days): Monday's forecast counts the calls due at their own minutes, where the retry
    rule's share would have added same-day retries that do not come; the plan records that
    forecast, and the added patients' first calls within it."""
    ctx, clock = env
    info = _wave(ctx, clock)
    _defer_todays_calls(ctx, info.wave_id)
    friday = FIRST + timedelta(days=1)
    with ctx.sessions() as s:
        done = s.execute(
            select(TASK.c.id, TASK.c.patient_id).where(
                TASK.c.wave_id == info.wave_id, TASK.c.planned_day < DAY
            )
        ).all()
        assert len(done) >= MIN_MEASURED_TASKS
        one_call = {"number": "+33199001234", "state": "completed", "result": "no_answer"}
        start, end = paris(friday, 10), paris(friday, 10, 1)
        s.add_all(
            CallAttempt(task_id=t.id, patient_id=t.patient_id, started_at=start, ended_at=end, **one_call)
            for t in done
        )
        s.commit()
        days = cal.working_days(info.window_start, info.window_end, policy().calling_hours)
        assert measured_same_day_factor(s, info.wave_id, days, DAY) == dict.fromkeys(Tier, 1.0)
        rule = same_day_factor(days[days.index(DAY) :], policy())
        assert min(rule.values()) > 1.0, "the retry rule expects same-day retries"
        end_of_day = paris(DAY + timedelta(days=1), 0)
        due_calls = store.pending_attempts_due(s, info.wave_id, end_of_day)
    own = sum(next_attempt_minutes(Tier(t), made, policy()) for t, made, _ in due_calls)
    clock.advance_to(paris(DAY, 8, 40))

    top = services.top_up_wave(ctx, info.wave_id)

    assert top is not None and top.added > 0
    assert top.due_minutes == pytest.approx(own, rel=1e-6), "no same-day retry expected"
    today = _plan(ctx, info.wave_id)["days"][DAY.isoformat()]
    assert today["minutes"] == round(top.due_minutes + top.added_minutes, 1) <= today["capacity"] + 0.1
