"""Simulated nurses step away from the phone as real ones do (config/simulation.toml [nurses]):
a nurse with more work than she can take is on the phone for at most 1 - off_phone_share of her
shift, her breaks wait for the end of her call, and no call is handed to her while she is on one.
Without them the simulation's nurses would work every minute of their shifts, and a dialer with
work to spare (the fifo baseline) would seem to get more nurse hours than the roster has."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from factories import add_nurse, add_patient, make_ctx, paris, policy
from sqlmodel import select

from campaign import services
from campaign.model import CallAttempt
from dialer.outreach import arm_policy
from dialer.presence import NurseStatus
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime

DAY = date(2026, 12, 7)  # a Monday
SHIFT = [{"weekday": 0, "start": "13:30", "end": "19:00"}]  # Monday's afternoon calling hours
MINUTES = 330
PATIENTS = 200  # two dials each at most in a day, most unanswered: far more than her shift holds


def _day_of_one_nurse(tmp_path: Any, off_phone_share: float) -> tuple[list[CallAttempt], list[datetime]]:
    """One senior nurse, far more high-tier patients than a day holds, all due at once (the fifo
    baseline's plan): her attempts of that day, and the minutes (sampled each minute of her shift)
    she was paused."""
    sim = policy().simulation.model_copy(update={"off_phone_share": off_phone_share, "break_minutes": 15})
    pol = arm_policy(policy(), "fifo").model_copy(update={"simulation": sim})
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'breaks.db'}", paris(DAY, 12), pol=pol)
    nurse = add_nurse(ctx, level="senior", shifts=SHIFT)
    # member ids of their own: the simulated people are drawn from them, and the factories' running
    # numbers depend on the tests run before in the process (a worker ran out of work on some)
    for i in range(PATIENTS):
        add_patient(ctx, tier="high", member_id=f"BRK{i:06d}")
    wave = services.record_mailing(ctx, "diet", None, date(2026, 12, 1), late=True)
    services.plan_wave(ctx, wave.wave_id)
    services.change_wave(ctx, wave.wave_id, "launch")
    loop = EventLoop(clock)
    runtime = Runtime(ctx, loop, seed=3)
    runtime.start()
    paused: list[datetime] = []
    at = paris(DAY, 13, 30)
    while at < paris(DAY, 19):
        loop.run_until(at)
        if runtime.dialer.presence.get(nurse) == NurseStatus.paused:
            paused.append(at)
        at += timedelta(minutes=1)
    loop.run_until(paris(DAY, 20))
    with ctx.sessions() as s:
        attempts = list(s.exec(select(CallAttempt).where(CallAttempt.nurse_id == nurse)))
    return sorted(attempts, key=lambda a: a.started_at), paused


def _busy_minutes(attempts: list[CallAttempt]) -> float:
    return sum((a.ended_at - a.started_at).total_seconds() / 60 for a in attempts if a.ended_at is not None)


@pytest.mark.parametrize("share", [0.15, 0.3])
def test_a_nurse_with_work_to_spare_is_off_the_phone_for_her_share_of_the_shift(
    tmp_path: Any, share: float
) -> None:
    attempts, paused = _day_of_one_nurse(tmp_path, share)
    off = share * MINUTES
    # breaks start after her call when she is on one, and last their whole length from then: the
    # last one may run into the end of her shift (she leaves from it), so a little less is seen; a
    # sample each minute sees a 16.5-minute break 16 or 17 times
    breaks = round(off / 15)
    assert off - 20 <= len(paused) <= off + breaks
    # the rest of her shift she is on the phone, and only then: a call's last minutes may overrun
    assert _busy_minutes(attempts) <= (1 - share) * MINUTES + 30
    assert _busy_minutes(attempts) >= (1 - share) * MINUTES - 30
    # no call was placed for her while she was on a break (paused at the minutes around its start)
    starts = {a.started_at.replace(second=0, microsecond=0) for a in attempts}
    on_break = set(paused)
    assert not {m for m in starts if m in on_break and m + timedelta(minutes=1) in on_break}


def test_without_breaks_she_is_on_the_phone_her_whole_shift(tmp_path: Any) -> None:
    attempts, paused = _day_of_one_nurse(tmp_path, 0.0)
    assert paused == []
    assert _busy_minutes(attempts) >= MINUTES - 5
