"""A wave's life as the supervisor drives it: plan, review, launch, pause, resume,
cancel; overlapping mailings and the contact cap; patients left out and why;
`explain_patient` / `explain_wave` answering "why is this one not called?".

Each test builds its own small database (SQLite file and PostgreSQL) through
tests/factories.py and the production services; the simulated runs use the
production dialer on the virtual clock.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from factories import (
    WEEKDAY_SHIFTS,
    add_nurse,
    add_nurses,
    add_patient,
    bulk_patients,
    import_synthetic,
    paris,
    planned_wave,
    recorded_wave,
    running_wave,
    wave_status,
)
from rich.console import Console
from sqlalchemy import func, select

from campaign import calendar as cal
from campaign import services
from campaign.errors import InvalidTransition
from campaign.explain import explain_patient, explain_wave, patient_file
from campaign.model import ATTEMPT, RECIPIENT, TASK, AuditEvent, Patient
from campaign.policy import NurseLevel, Tier
from campaign.retry_spread import attempt_costs, task_cost
from campaign.states import WaveStatus
from dialer.cli.render import print_wave
from dialer.simulation import run_simulation

SENT_ON = date(2026, 12, 7)  # letters arrive Thursday 10 December; wave 10 → 28 December
OPEN = ("pending", "in_progress")
TERMINAL = ("done", "unreachable", "expired", "cancelled")


def _wave_end(ctx: services.Context, wave_id: int) -> datetime:
    with ctx.sessions() as s:
        return services.get_wave(s, wave_id).deadline + timedelta(days=30)


def _attempt_starts(ctx: services.Context, wave_id: int) -> list[datetime]:
    with ctx.sessions() as s:
        rows = s.execute(
            select(ATTEMPT.c.started_at)
            .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
            .where(TASK.c.wave_id == wave_id)
            .order_by(ATTEMPT.c.started_at)
        ).all()
    return [r for (r,) in rows]


def _task_statuses(ctx: services.Context, wave_id: int) -> Counter[str]:
    with ctx.sessions() as s:
        rows = s.execute(
            select(TASK.c.status, func.count()).where(TASK.c.wave_id == wave_id).group_by(TASK.c.status)
        ).all()
    return Counter({st: n for st, n in rows})


def _finished(ctx: services.Context, wave_id: int):  # type: ignore[no-untyped-def]
    return lambda: wave_status(ctx, wave_id) in (WaveStatus.done, WaveStatus.cancelled)


def _member(ctx: services.Context, patient_id: int) -> str:
    with ctx.sessions() as s:
        p = s.get(Patient, patient_id)
        assert p is not None
        return p.member_id


# ---------------------------------------------------------------- pause, resume, cancel


def test_pause_stops_new_dials_and_resume_continues(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=2)
    import_synthetic(ctx, 150, seed=2, tmp_dir=tmp_path)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    pause_from = paris(date(2026, 12, 10), 11)  # the first calling day, late morning
    marks: dict[str, datetime] = {}
    explained: list[str] = []

    def hook(now: datetime) -> None:
        if "paused" not in marks and now >= pause_from:
            services.change_wave(ctx, info.wave_id, "pause")
            marks["paused"] = clock.now()
            explained.extend(explain_wave(ctx, info.wave_id).reasons)
        elif "paused" in marks and "resumed" not in marks and now >= marks["paused"] + timedelta(days=1):
            services.change_wave(ctx, info.wave_id, "resume")
            marks["resumed"] = clock.now()

    run_simulation(
        ctx,
        clock,
        _wave_end(ctx, info.wave_id),
        seed=2,
        auto_launch=False,
        progress=hook,
        stop_when=_finished(ctx, info.wave_id),
    )
    services.expire_and_close(ctx)

    assert set(marks) == {"paused", "resumed"}
    paused, resumed = marks["paused"], marks["resumed"]
    starts = [s if s.tzinfo else s.replace(tzinfo=paused.tzinfo) for s in _attempt_starts(ctx, info.wave_id)]
    during = [s for s in starts if paused < s < resumed]
    assert during == [], f"{len(during)} attempts started while the wave was paused"
    assert any(s <= paused for s in starts), "nothing was dialed before the pause"
    assert any(s >= resumed for s in starts), "nothing was dialed after the resume"
    # the pause spanned a whole calling day: without it there would have been calls
    assert any(
        cal.is_callable_at(
            paused + timedelta(hours=h), cal.Place("75", "Europe/Paris"), ctx.policy.calling_hours
        )
        for h in range(1, 24)
    )
    assert any("paused" in r and f"wave resume {info.wave_id}" in r for r in explained)
    assert wave_status(ctx, info.wave_id) == WaveStatus.done
    assert set(_task_statuses(ctx, info.wave_id)) <= set(TERMINAL)


def test_cancel_cancels_pending_tasks_and_the_wave_ends_all_terminal(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=3)
    import_synthetic(ctx, 150, seed=3, tmp_dir=tmp_path)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    cancel_from = paris(date(2026, 12, 11), 15)
    marks: dict[str, datetime] = {}
    pending_at_cancel: list[int] = []

    def hook(now: datetime) -> None:
        if "cancelled" not in marks and now >= cancel_from:
            with ctx.sessions() as s:
                pending_at_cancel.extend(
                    i
                    for (i,) in s.execute(
                        select(TASK.c.id).where(TASK.c.wave_id == info.wave_id, TASK.c.status == "pending")
                    ).all()
                )
            services.change_wave(ctx, info.wave_id, "cancel")
            marks["cancelled"] = clock.now()

    def settled() -> bool:
        # after the cancel, until the calls under way have ended and their tasks are closed
        return "cancelled" in marks and not (set(_task_statuses(ctx, info.wave_id)) - set(TERMINAL))

    end = _wave_end(ctx, info.wave_id)
    run_simulation(ctx, clock, end, seed=3, auto_launch=False, progress=hook, stop_when=settled)
    services.expire_and_close(ctx)

    assert "cancelled" in marks and pending_at_cancel
    cancelled_at = marks["cancelled"]
    assert wave_status(ctx, info.wave_id) == WaveStatus.cancelled
    with ctx.sessions() as s:
        rows = s.execute(
            select(TASK.c.id, TASK.c.status, TASK.c.close_reason).where(TASK.c.id.in_(pending_at_cancel))
        ).all()
    assert {st for _, st, _ in rows} == {"cancelled"}
    assert {r for _, _, r in rows} == {"wave cancelled"}
    statuses = _task_statuses(ctx, info.wave_id)
    assert set(statuses) <= set(TERMINAL), statuses
    # calls under way at the cancel finish; nothing new starts afterwards
    starts = [
        s if s.tzinfo else s.replace(tzinfo=cancelled_at.tzinfo) for s in _attempt_starts(ctx, info.wave_id)
    ]
    assert [s for s in starts if s > cancelled_at] == []
    with pytest.raises(InvalidTransition, match="cannot resume wave"):
        services.change_wave(ctx, info.wave_id, "resume")


# ---------------------------------------------------------------- planning


def test_plan_shows_per_day_and_tier_counts_within_capacity(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    policy = ctx.policy
    senior = add_nurse(ctx, level="senior", skills=["heart_failure"], shifts=WEEKDAY_SHIFTS)
    add_nurse(ctx, level="junior", shifts=WEEKDAY_SHIFTS)
    # more patients than two nurses can call in the wave's 15 working days
    bulk_patients(ctx, 150, tier="high")
    bulk_patients(ctx, 500, tier="medium")
    bulk_patients(ctx, 100, tier="low")
    info = planned_wave(ctx, clock, "diet", SENT_ON)
    assert wave_status(ctx, info.wave_id) == WaveStatus.planned

    with ctx.sessions() as s:
        plan = services.get_wave(s, info.wave_id).plan
        planned = s.execute(select(TASK.c.planned_day, TASK.c.tier).where(TASK.c.wave_id == info.wave_id))
        db = Counter((d.isoformat() if isinstance(d, date) else str(d), t) for d, t in planned)
        unplaced_tiers = Counter(
            t
            for (t,) in s.execute(
                select(Patient.tier)
                .join(RECIPIENT, RECIPIENT.c.patient_id == Patient.id)
                .where(
                    RECIPIENT.c.mailing_id == info.mailing_id,
                    RECIPIENT.c.plan_note == "no nurse capacity left in the wave's window",
                )
            ).all()
        )
        notes = Counter(
            n
            for (n,) in s.execute(
                select(RECIPIENT.c.plan_note).where(RECIPIENT.c.mailing_id == info.mailing_id)
            ).all()
        )
    days = plan["days"]
    assert list(days) == [
        d.isoformat() for d in cal.working_days(info.window_start, info.window_end, policy.calling_hours)
    ]
    shown = Counter({(d, t): n for d, load in days.items() for t, n in load["tasks"].items()})
    assert shown == db, "the plan the supervisor reviews is what was stored"
    assert plan["planned"] == sum(db.values())
    for d, load in days.items():
        assert load["minutes"] <= load["capacity"] + 0.1, d
        # high-tier calls are only for seniors: they never take more than the senior's time (each
        # first call at least its first attempt's share; its retries are planned on their own days)
        high_minutes = load["tasks"].get("high", 0) * attempt_costs(Tier.high, policy)[0]
        senior_minutes = 480 * policy.dialer.target_occupancy if date.fromisoformat(d).weekday() < 5 else 0
        assert high_minutes <= senior_minutes + 0.1, d
    assert plan["unplaced"] > 0
    assert notes["no nurse capacity left in the wave's window"] == plan["unplaced"]
    assert notes[None] == plan["planned"]
    # highest tier first: the patients who did not fit are the lower tiers
    assert unplaced_tiers["high"] == 0 and sum(unplaced_tiers.values()) == plan["unplaced"]
    # what the supervisor would have to staff to call them: per tier, patients, hours, who may take them
    needs = plan["unplaced_by_tier"]
    assert {t: n["patients"] for t, n in needs.items()} == dict(unplaced_tiers)
    for tier, need in needs.items():
        assert need["hours"] == round(need["patients"] * task_cost(Tier(tier), policy) / 60, 1) > 0
        assert need["levels"] == ["junior", "senior"]
    assert db[(next(iter(days)), "high")] > 0, "high tier starts on the first day"
    assert senior


def test_overlapping_mailing_gives_nobody_a_second_open_task(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 4, seed=4)
    ids = bulk_patients(ctx, 40, pathologies="|diabetes|")
    first = planned_wave(ctx, clock, "diet", SENT_ON)
    services.change_wave(ctx, first.wave_id, "launch")
    second = planned_wave(ctx, clock, "foot_care", SENT_ON)  # diabetes: the same 40 patients
    assert second.recipients == first.recipients == len(ids)
    with ctx.sessions() as s:
        open_per_patient = s.execute(
            select(TASK.c.patient_id, func.count())
            .where(TASK.c.status.in_(OPEN))
            .group_by(TASK.c.patient_id)
            .having(func.count() > 1)
        ).all()
        second_tasks = s.execute(select(func.count()).where(TASK.c.wave_id == second.wave_id)).scalar_one()
        plan = services.get_wave(s, second.wave_id).plan
        notes = {
            n
            for (n,) in s.execute(
                select(RECIPIENT.c.plan_note).where(RECIPIENT.c.mailing_id == second.mailing_id)
            ).all()
        }
    assert open_per_patient == []
    assert second_tasks == 0
    assert plan["skipped"] == {"open_task_in_other_wave": len(ids)}
    assert notes == {"already has an open call in another wave (overlapping waves)"}
    exp = explain_patient(ctx, _member(ctx, ids[0]), date(2026, 12, 14), actor="test")
    assert any("already has an open call in another wave" in f.detail for f in exp.findings) or any(
        f"wave {first.wave_id}" in f.check for f in exp.findings
    )


def test_contact_cap_after_a_finished_wave(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 4, seed=5)
    ids = bulk_patients(ctx, 30, pathologies="|diabetes|")
    first = running_wave(ctx, clock, "diet", SENT_ON)
    run_simulation(
        ctx,
        clock,
        _wave_end(ctx, first.wave_id),
        seed=5,
        auto_launch=False,
        stop_when=_finished(ctx, first.wave_id),
    )
    assert wave_status(ctx, first.wave_id) == WaveStatus.done
    # a second letter to the same patients, posted less than caps.period_days after the first wave's tasks
    sent = cal.local_date(clock.now(), cal.Place("75", "Europe/Paris")) + timedelta(days=1)
    second = planned_wave(ctx, clock, "foot_care", sent)
    with ctx.sessions() as s:
        plan = services.get_wave(s, second.wave_id).plan
        withdrawn = s.execute(
            select(func.count()).where(Patient.status == "withdrawn", Patient.id.in_(ids))
        ).scalar_one()
    assert plan["planned"] == 0
    # a patient whose numbers all proved wrong is left out for that reason first
    skipped = plan["skipped"]
    assert skipped.get("contact_cap", 0) > 0
    assert skipped.get("contact_cap", 0) + skipped.get("no_number", 0) == len(ids) - withdrawn
    exp = explain_patient(ctx, _member(ctx, ids[0]), None, actor="test")
    assert any("contact cap reached" in f.detail for f in exp.findings)


def test_plan_on_a_running_wave_is_refused_clearly(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 2, seed=6)
    bulk_patients(ctx, 5)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    with pytest.raises(InvalidTransition) as exc:
        services.plan_wave(ctx, info.wave_id)
    assert f"wave {info.wave_id} is running" in str(exc.value)
    assert "only a scheduled or planned wave can be planned" in str(exc.value)
    with pytest.raises(
        InvalidTransition, match=r"cannot launch wave \d+: it is running \(only from planned\)"
    ):
        services.change_wave(ctx, info.wave_id, "launch")
    with pytest.raises(InvalidTransition, match="already planned; use --replan"):
        services.plan_wave(ctx, planned_wave(ctx, clock, "foot_care", SENT_ON).wave_id)


def test_replan_keeps_the_plan_consistent(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=7)
    bulk_patients(ctx, 20)
    info = planned_wave(ctx, clock, "diet", SENT_ON)
    again = services.plan_wave(ctx, info.wave_id, replan=True)
    with ctx.sessions() as s:
        n = s.execute(select(func.count()).where(TASK.c.wave_id == info.wave_id)).scalar_one()
    assert n == len(again.assignments) == 20, "a replan replaces the tasks, never doubles them"


# ---------------------------------------------------------------- left out, and why


def test_patient_suspended_for_the_whole_window_is_left_out_with_a_note(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=8)
    away = add_patient(ctx, status="suspended", suspended_until=date(2027, 1, 31))
    back_mid_wave = add_patient(ctx, status="suspended", suspended_until=date(2026, 12, 16))
    home = add_patient(ctx)
    info = planned_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        tasks = {
            pid: day
            for pid, day in s.execute(
                select(TASK.c.patient_id, TASK.c.planned_day).where(TASK.c.wave_id == info.wave_id)
            ).all()
        }
        notes = dict(
            s.execute(
                select(RECIPIENT.c.patient_id, RECIPIENT.c.plan_note).where(
                    RECIPIENT.c.mailing_id == info.mailing_id
                )
            ).all()
        )
    assert away.id not in tasks
    assert notes[away.id] == "suspended for the whole wave"
    assert home.id in tasks and notes[home.id] is None
    assert back_mid_wave.id in tasks
    day = tasks[back_mid_wave.id]
    assert (day if isinstance(day, date) else date.fromisoformat(day)) > date(2026, 12, 16)

    exp = explain_patient(ctx, away.member_id, date(2026, 12, 14), actor="test")
    assert not exp.due
    text = " ".join(f.detail for f in exp.findings)
    assert "suspended for the whole wave" in text
    assert "suspended until 2027-01-31" in text


def test_explain_a_patient_of_a_wave_not_yet_launched(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=9)
    p = add_patient(ctx)
    scheduled = recorded_wave(ctx, "diet", SENT_ON)
    exp = explain_patient(ctx, p.member_id, date(2026, 12, 14), actor="test")
    assert not exp.due
    assert any("no open call task" in f.detail for f in exp.findings)
    assert "not planned yet" in explain_wave(ctx, scheduled.wave_id).reasons[0]

    clock.advance_to(scheduled.plan_after)
    services.plan_wave(ctx, scheduled.wave_id)
    exp = explain_patient(ctx, p.member_id, date(2026, 12, 14), actor="test")
    assert not exp.due
    assert any("its wave is planned: nothing is dialed until it runs" in f.detail for f in exp.findings)
    assert f"carecall wave launch {scheduled.wave_id}" in exp.changes
    assert "planned but not launched" in explain_wave(ctx, scheduled.wave_id).reasons[0]

    services.change_wave(ctx, scheduled.wave_id, "launch")
    exp = explain_patient(ctx, p.member_id, date(2026, 12, 14), actor="test")
    assert exp.due, exp


def test_explain_holidays_where_the_patient_lives(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=10)
    paris_patient = add_patient(ctx)
    reunion = add_patient(ctx, departement="974", postal_code="97400", city="Saint-Denis")
    running_wave(ctx, clock, "diet", SENT_ON)

    xmas = explain_patient(ctx, paris_patient.member_id, date(2026, 12, 25), actor="test")
    assert not xmas.due
    assert xmas.verdict.startswith("not called on this day: calendar")
    assert "2026-12-25 is a holiday where the patient lives (Noël" in xmas.verdict

    # 20 December: abolition of slavery in La Réunion only (a Monday in 2027, a Sunday in 2026)
    for day in (date(2026, 12, 20), date(2027, 12, 20)):
        exp = explain_patient(ctx, reunion.member_id, day, actor="test")
        assert not exp.due
        assert "holiday where the patient lives (Abolition de l'esclavage, département 974)" in exp.verdict
    monday = explain_patient(ctx, paris_patient.member_id, date(2027, 12, 20), actor="test")
    assert not any(f.check == "calendar" for f in monday.findings), "20 December is no holiday in Paris"
    sunday = explain_patient(ctx, paris_patient.member_id, date(2026, 12, 20), actor="test")
    assert any("no calling hours on Sundays" in f.detail for f in sunday.findings)


def test_explain_a_withdrawn_patient(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=11)
    gone = add_patient(ctx, status="withdrawn")
    running_wave(ctx, clock, "diet", SENT_ON)
    exp = explain_patient(ctx, gone.member_id, date(2026, 12, 14), actor="test")
    assert not exp.due
    status = next(f for f in exp.findings if f.check == "status")
    assert not status.ok and "withdrawn" in status.detail, (
        "a withdrawn patient's status does not allow a call"
    )
    assert "withdrawn" in exp.verdict, exp.verdict


def test_explain_a_patient_outside_their_preferred_window(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=12)
    p = add_patient(ctx, preferred_start=time(14, 0), preferred_end=time(17, 0))
    info = running_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        day = s.execute(select(TASK.c.planned_day).where(TASK.c.wave_id == info.wave_id)).scalar_one()
        not_before = s.execute(select(TASK.c.not_before).where(TASK.c.wave_id == info.wave_id)).scalar_one()
    day = day if isinstance(day, date) else date.fromisoformat(day)
    # planned at the start of the patient's own window, not at 09:00
    assert not_before.replace(tzinfo=None) == cal.at_local(day, time(14), "Europe/Paris").replace(tzinfo=None)
    clock.advance_to(paris(day, 10))
    exp = explain_patient(ctx, p.member_id, None, actor="test")
    window = next(f for f in exp.findings if f.check == "calling window")
    assert "14:00-17:00" in window.detail and "preferred window" in window.detail
    assert "09:00" not in window.detail


def test_explain_wave_says_why_planned_tasks_are_not_dialed(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurses(ctx, 3, seed=13)
    bulk_patients(ctx, 30)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    # before the first calling day: tasks wait for their day
    early = explain_wave(ctx, info.wave_id)
    assert any("wait for their planned day" in r for r in early.reasons)
    # Christmas morning, nobody dialed yet: due, but the calendar forbids it
    clock.advance_to(paris(date(2026, 12, 25), 10))
    xmas = explain_wave(ctx, info.wave_id)
    assert any("tasks are due now" in r and "holiday: 30" in r for r in xmas.reasons), xmas.reasons
    # 22:00 the next Monday: outside calling hours
    clock.advance_to(paris(date(2026, 12, 28), 22))
    night = explain_wave(ctx, info.wave_id)
    assert any("outside_hours: 30" in r for r in night.reasons), night.reasons
    services.change_wave(ctx, info.wave_id, "pause")
    assert any("paused" in r for r in explain_wave(ctx, info.wave_id).reasons)


def test_reading_a_patient_file_is_audited(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    p = add_patient(ctx)
    data = patient_file(ctx, p.member_id, actor="nurse:N042")
    assert data["member id"] == p.member_id
    with ctx.sessions() as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.patient_id == p.id)).scalars().all()
    reads = [e for e in events if e.action == "patient.read"]
    assert len(reads) == 1
    assert reads[0].actor == "nurse:N042"
    assert reads[0].at.replace(tzinfo=None) == clock.now().replace(tzinfo=None)
    # the trail holds who and when, never the patient's data
    assert p.last_name not in reads[0].detail and p.phone not in reads[0].detail


# ---------------------------------------------------------------- planning gaps


def test_a_patient_no_nurse_can_reach_in_their_window_is_not_silently_planned(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="senior", shifts=WEEKDAY_SHIFTS)  # 09:00-17:00 Paris
    late = add_patient(
        ctx,
        departement="972",
        postal_code="97200",
        city="Fort-de-France",
        preferred_start=time(17, 0),
        preferred_end=time(19, 0),
    )
    info = planned_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        planned = s.execute(
            select(func.count()).where(TASK.c.wave_id == info.wave_id, TASK.c.patient_id == late.id)
        ).scalar_one()
        note = s.execute(select(RECIPIENT.c.plan_note).where(RECIPIENT.c.patient_id == late.id)).scalar_one()
    assert planned == 0 and note, "the plan should leave them out with a note (no nurse works then)"


def test_levels_are_respected_by_the_plan_pools(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="junior", shifts=WEEKDAY_SHIFTS)
    bulk_patients(ctx, 3, tier="high")
    info = planned_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        plan = services.get_wave(s, info.wave_id).plan
        notes = {n for (n,) in s.execute(select(RECIPIENT.c.plan_note)).all()}
    assert plan["planned"] == 0 and plan["unplaced"] == 3, "juniors never get high-tier patients"
    assert notes == {"no nurse capacity left in the wave's window"}
    assert NurseLevel.senior in ctx.policy.tiers[Tier.high].nurse_levels
    # the supervisor is told what it would take: senior time, not just any nurse's
    need = plan["unplaced_by_tier"]["high"]
    assert need["patients"] == 3 and need["levels"] == ["senior"]
    out = Console(width=200, record=True, file=io.StringIO())
    print_wave(explain_wave(ctx, info.wave_id), out)
    assert f"high: 3 patients, about {need['hours']:.0f} h of senior nurse time" in out.export_text()
