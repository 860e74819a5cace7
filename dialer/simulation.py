"""Run the programme on a virtual clock: shifts, scheduler jobs, dialer, nurses.

Simulated nurses take the calls the dialer hands them and record realistic
outcomes (config/simulation.toml); the simulated backend plays the patients,
unless the runtime is given another backend (Asterisk, Twilio: real lines,
simulated nurses, as the conformance suite runs them). Everything else is the
production code path: the same services, rules, routing and storage.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import structlog

from campaign import calendar as cal
from campaign import jobs, services, store
from campaign.clock import VirtualClock
from campaign.policy import Tier
from campaign.states import OutcomeCode
from campaign.templates import render
from dialer.backends.base import TelephonyBackend
from dialer.backends.simulated import LineProfile, SimulatedBackend, is_wrong_number
from dialer.calls import LiveCall
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.scheduler_loop import EventLoop
from dialer.step import step

log = structlog.get_logger("carecall.simulation")

INBOUND_NUMBER = "01 99 00 00 00"  # fiction range: the programme's inbound line in demos


def voicemail_text() -> str:
    return render("ivr/voicemail.fr.j2", inbound_number=INBOUND_NUMBER)


@dataclass
class SimulatedNurses:
    """Nurses who talk for a realistic time and record a realistic outcome."""

    dialer: Dialer
    loop: EventLoop
    seed: int
    rng: random.Random
    outcomes: dict[str, int] = field(default_factory=dict)

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        policy = self.dialer.policy
        sim = policy.simulation
        mean = policy.tiers[call.task.tier].call_minutes - policy.dialer.wrap_up_seconds / 60
        minutes = max(1.0, self.rng.gauss(mean, mean * sim.call_minutes_sd_ratio))
        number_wrong = is_wrong_number(self.seed, call.number, sim.wrong_number)
        if number_wrong:
            minutes = self.rng.uniform(0.5, 1.5)
        self.loop.call_at(
            self.loop.clock.now() + timedelta(minutes=minutes), self._hang_up, nurse_id, number_wrong
        )

    def _hang_up(self, nurse_id: int, number_wrong: bool) -> None:
        self.dialer.hangup(nurse_id)
        self.loop.call_at(
            self.loop.clock.now() + timedelta(seconds=self.dialer.policy.dialer.wrap_up_seconds),
            self._record,
            nurse_id,
            number_wrong,
        )

    def _record(self, nurse_id: int, number_wrong: bool) -> None:
        sim = self.dialer.policy.simulation
        callback_at = None
        if number_wrong:
            code = OutcomeCode.wrong_number
        else:
            u = self.rng.random()
            if u < sim.callback_requested:
                code = OutcomeCode.callback_requested
                callback_at = self.loop.clock.now() + timedelta(
                    hours=self.rng.choice(sim.callback_delay_hours)
                )
            elif u < sim.callback_requested + sim.opted_out:
                code = OutcomeCode.opted_out
            elif u < sim.callback_requested + sim.opted_out + sim.escalation:
                code = OutcomeCode.escalation
            else:
                code = OutcomeCode.reached
        self.dialer.submit_outcome(nurse_id, code, callback_at=callback_at)
        self.outcomes[code.value] = self.outcomes.get(code.value, 0) + 1


@dataclass
class SimulationResult:
    started: datetime
    ended: datetime
    events: int
    dials: int
    claims: int
    lost_claims: int
    refused_by_rules: int
    outcomes: dict[str, int]


def line_directory(ctx: services.Context) -> dict[str, LineProfile]:
    out: dict[str, LineProfile] = {}
    with ctx.sessions() as s:
        for phone, alt, tier, tz in store.patient_lines(s):
            profile = LineProfile(Tier(tier), tz)
            out[phone] = profile
            if alt:
                out[alt] = profile
    return out


class Runtime:
    """Scheduler jobs, shifts, dialer, simulated telephony and nurses on one event loop.

    The same assembly runs a simulation (virtual clock, as fast as possible)
    and `carecall serve` (a wall or scaled clock, in real time, with several
    processes sharing one database: each takes its share of the nurses, and
    only the scheduler leader fires the jobs).
    """

    def __init__(
        self,
        ctx: services.Context,
        loop: EventLoop,
        *,
        seed: int = 0,
        worker: str = "sim-1",
        auto_launch: bool = True,
        nurse_filter: Callable[[store.NurseInfo], bool] = lambda _n: True,
        is_leader: Callable[[], bool] = lambda: True,
        stop_when: Callable[[], bool] | None = None,
        tick_every: timedelta = timedelta(minutes=1),
        refresh_every: timedelta = timedelta(minutes=10),
        share: tuple[int, int] = (0, 1),
        collect_garbage: bool = False,
        backend: TelephonyBackend | None = None,
    ) -> None:
        self.ctx = ctx
        self.loop = loop
        self.auto_launch = auto_launch
        self.is_leader = is_leader
        self.stop_when = stop_when
        self.tick_every = tick_every
        self.refresh_every = refresh_every
        self.collect_garbage = collect_garbage
        self._tick_due = False
        self._sweeping = False
        self.backend: TelephonyBackend = backend or SimulatedBackend(
            loop, ctx.policy.simulation, line_directory(ctx), seed=seed
        )
        self.dialer = Dialer(
            ctx,
            self.backend,
            worker,
            voicemail_text(),
            on_connected=self._connected,
            deferred=True,
            share=share,
        )
        loop.after_step(self._step)
        self.nurses_sim = SimulatedNurses(self.dialer, loop, seed, random.Random(seed))
        with ctx.sessions() as s:
            self.my_nurses = [n for n in store.nurses(s) if nurse_filter(n)]
        self.until: datetime | None = None

    def _connected(self, nurse_id: int, call: LiveCall) -> None:
        self.nurses_sim.on_connected(nurse_id, call)

    def start(self, until: datetime | None = None) -> None:
        """Reconcile, then schedule shifts, jobs, ticks and refreshes from now on."""
        self.until = until
        self.dialer.start(nurse_ids={n.id for n in self.my_nurses})
        now = self.ctx.clock.now()
        self._schedule_shifts(now.date() - timedelta(days=1))
        self._daily(now.date())
        for spec in jobs.job_specs(self.ctx.policy):
            first = jobs.next_fire(spec, None, now)
            if first is not None:
                self._at(first, self._fire, spec)
        self._at(now, self._tick)
        self._at(now, self._refresh)

    def _at(self, at: datetime, fn: Callable[..., object], *args: object) -> None:
        if self.until is None or at <= self.until:
            self.loop.call_at(at, fn, *args)

    def _schedule_shifts(self, day: date) -> None:
        """One day's shifts, in each nurse's local time; metropolitan holidays are off."""
        now = self.ctx.clock.now()
        if cal.is_holiday(day, "75"):
            return
        for n in self.my_nurses:
            for weekday, start, end in n.shifts:
                if weekday != day.weekday():
                    continue
                on = cal.at_local(day, start, n.timezone)
                off = cal.at_local(day, end, n.timezone)
                if off <= now:
                    continue
                self._at(on, _shift_start, self.dialer, n.id)
                self._at(off, self.dialer.nurse_offline, n.id)

    def _daily(self, day: date) -> None:
        """Shifts are always scheduled a day ahead: `day`'s now, the next day's at its eve."""
        self._schedule_shifts(day)
        self._at(cal.at_local(day, time(0), "UTC"), self._daily, day + timedelta(days=1))

    def _fire(self, spec: jobs.JobSpec) -> None:
        """A scheduler job, at the instants its APScheduler trigger gives; only on the leader."""
        ctx = self.ctx
        if self.is_leader():
            if self.auto_launch and spec.id == "plan_due_waves":
                if services.plan_due_waves(ctx, auto_launch=True):
                    self.dialer.refresh()
            else:
                spec.func(ctx)
        if self.stop_when is not None and self.stop_when():
            self.loop.stop()
        now = ctx.clock.now()
        nxt = jobs.next_fire(spec, now, now + timedelta(seconds=1))
        if nxt is not None:
            self._at(nxt, self._fire, spec)

    def _tick(self) -> None:
        """Every `tick_every`: the next step tops the queue up and lets what fell due through."""
        self._tick_due = True
        self._at(self.ctx.clock.now() + self.tick_every, self._tick)

    def _refresh(self) -> None:
        """Every `refresh_every` while a nurse is on shift, a sweep of the due tasks: a page per step."""
        if any(self.dialer.presence.on_shift(n.id) for n in self.my_nurses):
            self._sweeping = True
        else:
            self._at(self.ctx.clock.now() + self.refresh_every, self._refresh)

    def step_now(self) -> None:
        """Events arrived from the backend's threads (real time): store them and move on at once."""
        self._step()

    def _step(self) -> None:
        """After the events of an instant (virtual time) or a pass (real time): the dialer's step."""
        tick, self._tick_due = self._tick_due, False
        done = step(self.dialer, tick=tick, sweep=self._sweeping, collect_garbage=self.collect_garbage)
        if done.sweep_over is None:
            return
        now = self.ctx.clock.now()
        if done.sweep_over:
            self._sweeping = False
            self._at(now + self.refresh_every, self._refresh)
        else:
            self._at(now, _next_page)  # the loop makes one more pass, and its step reads the page

    def result(self, started: datetime) -> SimulationResult:
        d = self.dialer
        return SimulationResult(
            started=started,
            ended=self.ctx.clock.now(),
            events=self.loop.processed,
            dials=d.stats["dials"],
            claims=d.stats["claims"],
            lost_claims=d.stats["lost_claims"],
            refused_by_rules=d.stats["refused_by_rules"],
            outcomes=self.nurses_sim.outcomes,
        )


def run_simulation(
    ctx: services.Context,
    clock: VirtualClock,
    until: datetime,
    *,
    seed: int = 0,
    worker: str = "sim-1",
    auto_launch: bool = True,
    progress: Callable[[datetime], None] | None = None,
    stop_when: Callable[[], bool] | None = None,
) -> SimulationResult:
    """Run the programme from the clock's now until `until`, as fast as the machine goes."""
    loop = EventLoop(clock)
    runtime = Runtime(ctx, loop, seed=seed, worker=worker, auto_launch=auto_launch, stop_when=stop_when)
    started = clock.now()
    runtime.start(until)
    loop.run_until(until, progress)
    return runtime.result(started)


def _shift_start(dialer: Dialer, nurse_id: int) -> None:
    if dialer.presence.get(nurse_id) == NurseStatus.offline:
        dialer.nurse_ready(nurse_id)
    else:
        dialer.presence.leaving.discard(nurse_id)


def _next_page() -> None:
    """No work of its own: its pass ends with a step, which reads the sweep's next page."""
