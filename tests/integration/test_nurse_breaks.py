"""Simulated nurses step away from the phone as real ones do (config/simulation.toml [nurses]):
a nurse with more work than she can take is on the phone for at most 1 - off_phone_share of her
shift, her breaks wait for the end of her call, and no call is handed to her while she is on one.
Without them the simulation's nurses would work every minute of their shifts, and a dialer with
work to spare (the fifo baseline) would seem to get more nurse hours than the roster has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from factories import add_nurse, add_patient, fiction_phone, make_ctx, paris, policy
from sqlmodel import select

from campaign import services
from campaign.model import CallAttempt, Outcome
from campaign.states import OutcomeCode
from dialer.nurse_sources import SimulatedNurses
from dialer.outreach import arm_policy
from dialer.presence import NurseStatus
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime

DAY = date(2026, 12, 7)  # a Monday
SHIFT = [{"weekday": 0, "start": "13:30", "end": "19:00"}]  # Monday's afternoon calling hours
MINUTES = 330
PATIENTS = 200  # two dials each at most in a day, most unanswered: far more than her shift holds


@dataclass
class Day:
    attempts: list[CallAttempt]  # hers, by start
    pauses: list[tuple[datetime, datetime]]  # when she was paused, from and to
    breaks_due: list[tuple[datetime, timedelta]]  # when each break fell due, and its length
    codes: dict[int, str]  # what she recorded, by attempt id

    def paused_minutes(self) -> float:
        return sum((b - a).total_seconds() / 60 for a, b in self.pauses)


def _day_of_one_nurse(tmp_path: Any, off_phone_share: float, **outcomes: float) -> Day:
    """One senior nurse, far more high-tier patients than a day holds, all due at once (the fifo
    baseline's plan): what her day was. `outcomes`: the shares of what she records."""
    update = {"off_phone_share": off_phone_share, "break_minutes": 15, **outcomes}
    sim = policy().simulation.model_copy(update=update)
    pol = arm_policy(policy(), "fifo").model_copy(update={"simulation": sim})
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'breaks.db'}", paris(DAY, 12), pol=pol)
    nurse = add_nurse(ctx, level="senior", shifts=SHIFT)
    # member ids, numbers and ages of their own: the simulated people and lines are drawn from them,
    # and the factories' running numbers depend on the tests run before in the process
    for i in range(PATIENTS):
        born = date(1950, 1, 1) + timedelta(days=97 * i)
        add_patient(ctx, tier="high", member_id=f"BRK{i:06d}", phone=fiction_phone(5000 + i), birth_date=born)
    wave = services.record_mailing(ctx, "diet", None, date(2026, 12, 1), late=True)
    services.plan_wave(ctx, wave.wave_id)
    services.change_wave(ctx, wave.wave_id, "launch")
    loop = EventLoop(clock)
    runtime = Runtime(ctx, loop, seed=3)
    board, nurses = runtime.dialer.presence, runtime.presence
    assert isinstance(nurses, SimulatedNurses)
    moves: list[tuple[datetime, NurseStatus]] = []
    due: list[tuple[datetime, timedelta]] = []
    board_set, nurses_break = board.set, nurses._break

    def spied_set(nurse_id: int, target: NurseStatus, **kw: Any) -> None:
        board_set(nurse_id, target, **kw)
        moves.append((clock.now(), target))

    def spied_break(nurse_id: int, length: timedelta) -> None:
        due.append((clock.now(), length))
        nurses_break(nurse_id, length)

    board.set, nurses._break = spied_set, spied_break  # type: ignore[method-assign]
    runtime.start()
    loop.run_until(paris(DAY, 20))
    pauses = [(at, after[0]) for (at, status), after in pairwise(moves) if status == NurseStatus.paused]
    with ctx.sessions() as s:
        attempts = list(s.exec(select(CallAttempt).where(CallAttempt.nurse_id == nurse)))
        codes = {o.attempt_id: o.code for o in s.exec(select(Outcome))}
    return Day(sorted(attempts, key=lambda a: a.started_at), pauses, due, codes)


def _busy_minutes(attempts: list[CallAttempt]) -> float:
    """Her minutes on the phone within her shift (her last call may run well past its end)."""
    end = paris(DAY, 19)
    return sum(
        (min(a.ended_at, end) - a.started_at).total_seconds() / 60 for a in attempts if a.ended_at is not None
    )


@pytest.mark.parametrize("share", [0.15, 0.3])
def test_a_nurse_with_work_to_spare_is_off_the_phone_for_her_share_of_the_shift(
    tmp_path: Any, share: float
) -> None:
    day = _day_of_one_nurse(tmp_path, share)
    off = share * MINUTES
    # breaks start after her call when she is on one, and last their whole length from then: the
    # last one may run into the end of her shift (she leaves from it), so a little less is seen
    assert off - 20 <= day.paused_minutes() <= off + 0.1
    # the rest of her shift she is on the phone, and only then
    assert (1 - share) * MINUTES - 20 <= _busy_minutes(day.attempts) <= (1 - share) * MINUTES + 5
    # no call was placed for her while she was on a break
    assert not [a for a in day.attempts for b, e in day.pauses if b < a.started_at < e]


def test_a_break_due_during_another_follows_it_with_no_call_between(tmp_path: Any) -> None:
    """Breaks take most of this shift: many fall due while she is still on the previous one."""
    day = _day_of_one_nurse(tmp_path, 0.7)
    # (when due, its length, the end of the pause it fell due in)
    during = [(t, length, e) for t, length in day.breaks_due for b, e in day.pauses if b <= t < e]
    assert len(during) >= 3
    for t, length, pause_end in during:
        assert pause_end >= min(t + length, paris(DAY, 19)), f"the break due at {t:%H:%M} was cut short"
    assert not [a for a in day.attempts for b, e in day.pauses if b < a.started_at < e]


def test_without_breaks_she_is_on_the_phone_her_whole_shift(tmp_path: Any) -> None:
    day = _day_of_one_nurse(tmp_path, 0.0)
    assert day.pauses == []
    assert _busy_minutes(day.attempts) >= MINUTES - 5


def test_a_patient_asking_to_be_called_back_takes_minutes_not_a_conversation(tmp_path: Any) -> None:
    """A patient who cannot talk now says so at once: the call lasts `callback_minutes`, where a
    conversation lasts about the tier's `call_minutes`."""
    day = _day_of_one_nurse(tmp_path, 0.0, callback_requested=0.5, opted_out=0.0, escalation=0.0)
    talk: dict[str, list[float]] = {}
    for a in day.attempts:
        if a.answered_at is not None and a.ended_at is not None and a.id in day.codes:
            talk.setdefault(day.codes[a.id], []).append((a.ended_at - a.answered_at).total_seconds() / 60)
    pol = policy()
    low, high = pol.simulation.callback_minutes
    wrap_up = pol.dialer.wrap_up_seconds / 60  # the call's end is her outcome's, after it
    callbacks, conversations = talk[OutcomeCode.callback_requested], talk[OutcomeCode.reached]
    assert len(callbacks) >= 3 and len(conversations) >= 3
    assert all(low + wrap_up - 0.01 <= m <= high + wrap_up + 0.01 for m in callbacks), callbacks
    assert sorted(conversations)[len(conversations) // 2] >= 12  # high tier: 25 minutes, wrap-up included
