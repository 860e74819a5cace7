"""A nurse left with nothing due takes one of the next day's first calls now (dialer/ahead.py):
in a wave's first days nothing falls due for an hour or more while the plan counts those hours as
worked. Only first calls she may take at once, of patients who may be called now."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from factories import add_nurse, add_patient, fiction_phone, make_ctx, paris, policy
from sqlalchemy import select, update

from campaign import services
from campaign.explain import explain_patient
from campaign.explain.patient import local_text
from campaign.model import ATTEMPT, TASK
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime

MONDAY = date(2026, 12, 7)
TUESDAY, THURSDAY = MONDAY + timedelta(days=1), MONDAY + timedelta(days=3)
ALL_WEEK = [{"weekday": d, "start": "09:00", "end": "19:00"} for d in range(5)]


def _monday(tmp_path: Any, hours: float, sent_on: date = date(2026, 12, 1)) -> dict[str, list[datetime]]:
    """One senior (Anne) on shift Monday, nothing due before Tuesday: the attempts each patient
    got on Monday, by role. Mailed on `sent_on` (by default, the wave's window is open on Monday)."""
    return _run_monday(tmp_path, hours, sent_on)[2]


def _run_monday(
    tmp_path: Any, hours: float, sent_on: date
) -> tuple[services.Context, dict[str, int], dict[str, list[datetime]]]:
    """`_monday`, with the context and the patients' ids by role."""
    pol = policy()
    pol = pol.model_copy(update={"dialer": pol.dialer.model_copy(update={"work_ahead_hours": hours})})
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'ahead.db'}", paris(MONDAY, 8), pol=pol)
    anne = add_nurse(ctx, level="senior", shifts=ALL_WEEK)
    # Bea is on shift only from Tuesday: her référent patients wait for her
    bea = add_nurse(ctx, level="senior", shifts=[{"weekday": 1, "start": "09:00", "end": "19:00"}])
    roles = {
        "tomorrow_1": dict(tier="high"),
        "tomorrow_2": dict(tier="medium"),
        "annes_own": dict(tier="medium", referent_nurse_id=anne),
        "beas_own": dict(tier="medium", referent_nurse_id=bea),
        "retry": dict(tier="high"),
        "thursday": dict(tier="high"),
        "evenings": dict(tier="high", preferred_start=time(17, 0), preferred_end=time(19, 0)),
    }
    ids = {}
    for i, (role, fields) in enumerate(roles.items()):
        p = add_patient(ctx, member_id=f"AHD{i:06d}", phone=fiction_phone(7000 + i), **fields)
        ids[role] = int(p.id)
    wave = services.record_mailing(ctx, "diet", None, sent_on, late=True)
    services.plan_wave(ctx, wave.wave_id)
    services.change_wave(ctx, wave.wave_id, "launch")
    planned = {role: paris(TUESDAY, 10) for role in ids}
    planned |= {"thursday": paris(THURSDAY, 10), "evenings": paris(TUESDAY, 17, 30)}
    with ctx.sessions() as s:
        for role, at in planned.items():
            s.execute(
                update(TASK)
                .where(TASK.c.patient_id == ids[role])
                .values(not_before=at, attempts=1 if role == "retry" else 0)
            )
        s.commit()
    loop = EventLoop(clock)
    Runtime(ctx, loop, seed=3).start()
    loop.run_until(paris(MONDAY, 19))
    with ctx.sessions() as s:
        rows = s.execute(
            select(ATTEMPT.c.patient_id, ATTEMPT.c.started_at, ATTEMPT.c.nurse_id).order_by(
                ATTEMPT.c.started_at
            )
        ).all()
    role_of = {v: k for k, v in ids.items()}
    monday: dict[str, list[datetime]] = {}
    for patient, started, nurse in rows:
        assert nurse == anne, "only Anne is on shift on Monday"
        monday.setdefault(role_of[patient], []).append(started)
    return ctx, ids, monday


def test_an_idle_nurse_takes_tomorrows_first_calls_she_may_make_now(tmp_path: Any) -> None:
    monday = _monday(tmp_path, 36)
    for role in ("tomorrow_1", "tomorrow_2", "annes_own"):
        assert role in monday, f"{role}: planned for Tuesday, called on Monday by an idle nurse"
    # never a retry (its spacing and hour were chosen from the patient's answers), nothing beyond
    # the horizon, nor a référent patient of a nurse who is not idle now
    for role in ("retry", "thursday", "beas_own"):
        assert role not in monday, f"{role} was brought forward"
    # a patient who likes evening calls is brought forward only once they may be called
    assert "evenings" in monday
    assert all(paris(MONDAY, 17) <= at < paris(MONDAY, 19) for at in monday["evenings"])


def test_a_first_call_made_ahead_keeps_its_planned_time_and_patient_why_says_so(tmp_path: Any) -> None:
    """The supervisor asking why a patient planned for Tuesday was called on Monday: `patient why`
    says the first call was planned for Tuesday 10:00 and a nurse with nothing due made it."""
    ctx, ids, monday = _run_monday(tmp_path, 36, date(2026, 12, 1))
    with ctx.sessions() as s:
        rows = s.execute(select(TASK.c.patient_id, TASK.c.status, TASK.c.ahead_of)).all()
    ahead_of = {pid: at for pid, _status, at in rows}
    for role, pid in ids.items():
        if role in monday:
            planned = paris(TUESDAY, 17, 30) if role == "evenings" else paris(TUESDAY, 10)
            assert ahead_of[pid] == planned, role
        else:
            assert ahead_of[pid] is None, role
    still_open = [pid for pid, status, at in rows if at is not None and status == "pending"]
    assert still_open, "some patient brought forward did not answer on Monday"
    members = {pid: f"AHD{i:06d}" for i, pid in enumerate(ids.values())}
    for pid in still_open:
        found = [
            f
            for f in explain_patient(ctx, members[pid], TUESDAY, actor="test").findings
            if "work ahead" in f.check
        ]
        assert len(found) == 1 and not found[0].blocking
        assert found[0].detail.startswith(
            f"its first call was planned for {local_text(ahead_of[pid], 'Europe/Paris')}"
        )
    untouched = ids["thursday"]
    assert not [
        f
        for f in explain_patient(ctx, members[untouched], TUESDAY, actor="test").findings
        if "work ahead" in f.check
    ]


def test_with_work_ahead_off_a_nurse_with_nothing_due_waits(tmp_path: Any) -> None:
    monday = _monday(tmp_path, 0)
    assert monday == {}


def test_the_horizon_bounds_how_far_ahead(tmp_path: Any) -> None:
    """From 09:00 on Monday, 20 hours reach no further than 05:00 on Tuesday: nothing to take;
    once the clock passes 14:00, Tuesday's 10:00 calls come inside them."""
    monday = _monday(tmp_path, 20)
    firsts = [at[0] for at in monday.values()]
    assert firsts, "brought forward once inside the horizon"
    assert min(firsts) >= paris(MONDAY, 14)


def test_no_first_call_before_the_wave_window_opens(tmp_path: Any) -> None:
    """Mailed on Friday the 4th, the letters arrive on Tuesday: the wave, launched on Monday, has
    its first calls on Tuesday and none is brought forward to Monday, however idle the nurse."""
    assert _monday(tmp_path, 36, sent_on=date(2026, 12, 4)) == {}
