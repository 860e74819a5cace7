"""Where nurse presence comes from: who is ready when, and what a nurse does with her call.

`serve` and the simulation take a source instead of building one. The simulated
nurses are one: they go ready and offline on their shifts and take every call
the dialer hands them, talking for a realistic time and recording a realistic
outcome (config/simulation.toml). Console nurses are another: their clicks
reach the dialer as commands (dialer/staff/desk.py), so the source itself
does nothing. `MixedNurses` (what `carecall serve` runs by default) lets the
console drive every nurse with a nurse account and simulates the others.
Whoever drives her, a nurse changes presence through the same dialer
methods, so every change is stored and notified alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

from campaign import calendar as cal
from campaign.states import OutcomeCode
from dialer.backends.simulated import is_wrong_number
from dialer.calls import LiveCall
from dialer.loop import Dialer
from dialer.presence import NurseSource, NurseStatus
from dialer.staff import store as staff_store

if TYPE_CHECKING:
    from dialer.simulation import Runtime

_BREAK_POLL = timedelta(seconds=30)  # how often a break waiting for her call's end looks again


class PresenceSource(Protocol):
    outcomes: dict[str, int]  # outcomes recorded so far, by code (reports, the demo)

    def attach(self, runtime: Runtime) -> None:
        """Start driving the runtime's nurses (their shifts, say) from the runtime's clock on."""

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        """Her call is connected: the patient is on the line."""


def presence_source(kind: NurseSource, seed: int) -> PresenceSource:
    if kind == NurseSource.simulated:
        return SimulatedNurses(seed)
    if kind == NurseSource.console:
        return ConsoleNurses()
    return MixedNurses(seed)


@dataclass
class ConsoleNurses:
    """Nurses driven by their consoles: their commands move them, nothing else does."""

    outcomes: dict[str, int] = field(default_factory=dict)

    def attach(self, runtime: Runtime) -> None:
        """Nothing to schedule: a console nurse is offline until she says she is ready."""

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        """Her console shows the call (her stored presence): she talks, hangs up, records the outcome."""


@dataclass
class MixedNurses:
    """The console drives each nurse with an active nurse account; the others are simulated.

    Decided when the process starts; a nurse whose account is created later is
    handed to her console by her first command (a simulated call she has then
    runs to its end).
    """

    seed: int
    outcomes: dict[str, int] = field(default_factory=dict)
    console: set[int] = field(default_factory=set)

    def attach(self, runtime: Runtime) -> None:
        with runtime.ctx.sessions() as s:
            self.console = staff_store.has_account(s, [n.id for n in runtime.my_nurses])
        self.simulated = SimulatedNurses(self.seed, self.outcomes, drives=self.drives)
        self.simulated.attach(runtime)
        runtime.dialer.on_command = self.console.add  # her console has spoken: it drives her from now on

    def drives(self, nurse_id: int) -> bool:
        return nurse_id not in self.console

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        if self.drives(nurse_id):
            self.simulated.on_connected(nurse_id, call)


@dataclass
class SimulatedNurses:
    """Nurses on their shifts who talk for a realistic time and record a realistic outcome."""

    seed: int
    outcomes: dict[str, int] = field(default_factory=dict)
    drives: Callable[[int], bool] = lambda _nurse_id: True  # the nurses it simulates (all by default)

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.dialer: Dialer = runtime.dialer
        self.loop = runtime.loop
        self.rng = random.Random(self.seed)
        self._queued: dict[int, timedelta] = {}  # breaks due while she was on one: they follow it
        today = runtime.ctx.clock.now().date()
        self._schedule_shifts(today - timedelta(days=1))
        self._daily(today)

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        """She talks as long as what the patient has to say: a wrong number or a patient asking to be
        called back ends within minutes, a conversation lasts about the tier's `call_minutes`."""
        policy = self.dialer.policy
        sim = policy.simulation
        code = self._outcome(call)
        if code == OutcomeCode.wrong_number:
            minutes = self.rng.uniform(0.5, 1.5)
        elif code == OutcomeCode.callback_requested:
            minutes = self.rng.uniform(*sim.callback_minutes)
        else:
            mean = policy.tiers[call.task.tier].call_minutes - policy.dialer.wrap_up_seconds / 60
            minutes = max(1.0, self.rng.gauss(mean, mean * sim.call_minutes_sd_ratio))
        self.loop.call_at(self.loop.clock.now() + timedelta(minutes=minutes), self._hang_up, nurse_id, code)

    def _outcome(self, call: LiveCall) -> OutcomeCode:
        sim = self.dialer.policy.simulation
        if is_wrong_number(self.seed, call.number, sim.wrong_number):
            return OutcomeCode.wrong_number
        u = self.rng.random()
        if u < sim.callback_requested:
            return OutcomeCode.callback_requested
        if u < sim.callback_requested + sim.opted_out:
            return OutcomeCode.opted_out
        if u < sim.callback_requested + sim.opted_out + sim.escalation:
            return OutcomeCode.escalation
        return OutcomeCode.reached

    def _hang_up(self, nurse_id: int, code: OutcomeCode) -> None:
        self.dialer.hangup(nurse_id)
        self.loop.call_at(
            self.loop.clock.now() + timedelta(seconds=self.dialer.policy.dialer.wrap_up_seconds),
            self._record,
            nurse_id,
            code,
        )

    def _record(self, nurse_id: int, code: OutcomeCode) -> None:
        callback_at = None
        if code == OutcomeCode.callback_requested:
            hours = self.rng.choice(self.dialer.policy.simulation.callback_delay_hours)
            callback_at = self.loop.clock.now() + timedelta(hours=hours)
        self.dialer.submit_outcome(nurse_id, code, callback_at=callback_at)
        self.outcomes[code.value] = self.outcomes.get(code.value, 0) + 1

    def _schedule_shifts(self, day: date) -> None:
        """One day's shifts, in each nurse's local time; metropolitan holidays are off."""
        now = self.runtime.ctx.clock.now()
        if cal.is_holiday(day, "75"):
            return
        for n in self.runtime.my_nurses:
            for weekday, start, end in n.shifts:
                if weekday != day.weekday():
                    continue
                on = cal.at_local(day, start, n.timezone)
                off = cal.at_local(day, end, n.timezone)
                if off <= now:
                    continue
                self.runtime.at(on, self._shift_start, n.id)
                self.runtime.at(off, self._shift_end, n.id)
                self._schedule_breaks(n.id, on, off)

    def _schedule_breaks(self, nurse_id: int, on: datetime, off: datetime) -> None:
        """Her time off the phone in this shift (`off_phone_share`): breaks of about `break_minutes`,
        one at a random moment of each equal stretch of the shift."""
        sim = self.dialer.policy.simulation
        total = (off - on) * sim.off_phone_share
        if total <= timedelta(0):
            return
        count = max(1, round(total / timedelta(minutes=sim.break_minutes)))
        length, stretch = total / count, (off - on) / count
        for k in range(count):
            self.runtime.at(
                on + stretch * k + (stretch - length) * self.rng.random(), self._break, nurse_id, length
            )

    def _break(self, nurse_id: int, length: timedelta) -> None:
        """A break: at once if she is free, after her call otherwise; its length counts from its start."""
        presence = self.dialer.presence
        if not self.drives(nurse_id) or presence.get(nurse_id) == NurseStatus.offline:
            return
        if presence.get(nurse_id) == NurseStatus.paused or nurse_id in presence.pausing:
            # the previous break is not over (it waited for a long call): this one follows it, with
            # no call between them
            self._queued[nurse_id] = self._queued.get(nurse_id, timedelta(0)) + length
            return
        self.dialer.nurse_pause(nurse_id, "break")
        self._on_break(nurse_id, length)

    def _on_break(self, nurse_id: int, length: timedelta) -> None:
        presence, now = self.dialer.presence, self.loop.clock.now()
        if presence.get(nurse_id) == NurseStatus.paused:  # since her call ended, or now
            self.loop.call_at(max(now, presence.since.get(nurse_id, now) + length), self._back, nurse_id)
        elif nurse_id in presence.pausing:  # still on her call: look again shortly
            self.loop.call_at(now + _BREAK_POLL, self._on_break, nurse_id, length)

    def _back(self, nurse_id: int) -> None:
        if not self.drives(nurse_id) or self.dialer.presence.get(nurse_id) != NurseStatus.paused:
            return  # not if her shift ended meanwhile (offline)
        queued = self._queued.pop(nurse_id, None)
        if queued:
            self.loop.call_at(self.loop.clock.now() + queued, self._back, nurse_id)
        else:
            self.dialer.nurse_ready(nurse_id)

    def _daily(self, day: date) -> None:
        """Shifts are always scheduled a day ahead: `day`'s now, the next day's at its eve."""
        self._schedule_shifts(day)
        self.runtime.at(cal.at_local(day, time(0), "UTC"), self._daily, day + timedelta(days=1))

    def _shift_start(self, nurse_id: int) -> None:
        if not self.drives(nurse_id):
            return
        dialer = self.dialer
        if dialer.presence.get(nurse_id) == NurseStatus.offline:
            dialer.nurse_ready(nurse_id)
        else:
            dialer.presence.leaving.discard(nurse_id)

    def _shift_end(self, nurse_id: int) -> None:
        if self.drives(nurse_id):
            self._queued.pop(nurse_id, None)  # what was left of her breaks ends with her shift
            self.dialer.nurse_offline(nurse_id)
