"""Run the programme on a virtual clock: shifts, scheduler jobs, dialer, nurses.

Simulated nurses take the calls the dialer hands them and record realistic
outcomes (config/simulation.toml); the simulated backend plays the patients,
unless the runtime is given another backend (Asterisk, Twilio: real lines,
simulated nurses, as the conformance suite runs them). Everything else is the
production code path: the same services, rules, routing and storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog

from campaign import jobs, services, store
from campaign.clock import VirtualClock
from campaign.policy import Tier
from campaign.templates import render
from dialer.backends.base import TelephonyBackend
from dialer.backends.simulated import SimulatedBackend
from dialer.loop import Dialer
from dialer.nurse_sources import PresenceSource, SimulatedNurses
from dialer.population import PatientFacts, Population
from dialer.scheduler_loop import EventLoop
from dialer.staff.bus import WAVES, Bus
from dialer.step import step

log = structlog.get_logger("carecall.simulation")

INBOUND_NUMBER = "01 99 00 00 00"  # fiction range: the programme's inbound line in demos


def voicemail_text() -> str:
    return render("ivr/voicemail.fr.j2", inbound_number=INBOUND_NUMBER)


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


def load_population(ctx: services.Context, seed: int = 0) -> Population:
    """The simulated patients of this database, seeded. Ages are counted on 1 January of the clock's
    year, so populations built a few days apart (a runtime, a benchmark's ground truth) agree."""
    with ctx.sessions() as s:
        rows = store.patient_lines(s)
    return Population.from_policy(
        ctx.policy.simulation,
        seed,
        as_of=date(ctx.clock.now().year, 1, 1),
        calling_hours=ctx.policy.calling_hours,
        patients=(
            PatientFacts(
                key=r.member_id,
                birth_date=r.birth_date,
                tier=Tier(r.tier),
                departement=r.departement,
                timezone=r.timezone,
                phones=tuple(n for n in (r.phone, r.phone_alt) if n),
                preferred_start=r.preferred_start,
                preferred_end=r.preferred_end,
                patient_id=r.id,
            )
            for r in rows
        ),
    )


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
        presence: PresenceSource | None = None,
        bus: Bus | None = None,
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
        self._regular_sweep = False  # the sweep under way is the periodic one: it schedules the next
        self._sweep_asked = False  # a wave was launched or resumed (any thread): sweep at the next step
        self._bus = bus
        self.backend: TelephonyBackend = backend or SimulatedBackend(
            loop, ctx.policy.simulation, load_population(ctx, seed), seed=seed
        )
        self.dialer = Dialer(
            ctx,
            self.backend,
            worker,
            voicemail_text(),
            deferred=True,
            share=share,
            bus=bus,
        )
        loop.after_step(self._step)
        with ctx.sessions() as s:
            self.my_nurses = [n for n in store.nurses(s) if nurse_filter(n)]
        self.presence: PresenceSource = presence or SimulatedNurses(seed)
        self.dialer.on_connected = self.presence.on_connected
        self.until: datetime | None = None

    def start(self, until: datetime | None = None) -> None:
        """Reconcile, then schedule shifts, jobs, ticks and refreshes from now on."""
        self.until = until
        self.dialer.start(nurse_ids={n.id for n in self.my_nurses})
        now = self.ctx.clock.now()
        self.presence.attach(self)
        for spec in jobs.job_specs(self.ctx.policy):
            first = jobs.next_fire(spec, None, now)
            if first is not None:
                self.at(first, self._fire, spec)
        self.at(now, self._tick)
        self.at(now, self._refresh)
        if self._bus is not None:
            self._bus.subscribe(WAVES, callback=lambda _channel, _payload: self.sweep_soon())

    def sweep_soon(self) -> None:
        """From any thread: a wave was launched or resumed (the bus's `WAVES`). Its due tasks are older
        than the queue's reading position, so only a sweep finds them: one starts at the next step,
        instead of at the next periodic one (ten minutes on)."""
        self._sweep_asked = True
        self.dialer.commands_due()  # wakes the loop

    def at(self, at: datetime, fn: Callable[..., object], *args: object) -> None:
        """Run `fn` at `at` on the loop, unless that is past the end of the run."""
        if self.until is None or at <= self.until:
            self.loop.call_at(at, fn, *args)

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
            self.at(nxt, self._fire, spec)

    def _tick(self) -> None:
        """Every `tick_every`: the next step tops the queue up and lets what fell due through."""
        self._tick_due = True
        self.at(self.ctx.clock.now() + self.tick_every, self._tick)

    def _refresh(self) -> None:
        """Every `refresh_every` while a nurse is on shift, a sweep of the due tasks: a page per step."""
        if any(self.dialer.presence.on_shift(n.id) for n in self.my_nurses):
            self._sweeping = self._regular_sweep = True
        else:
            self.at(self.ctx.clock.now() + self.refresh_every, self._refresh)

    def step_now(self) -> None:
        """Events arrived from the backend's threads (real time): store them and move on at once."""
        self._step()

    def _step(self) -> None:
        """After the events of an instant (virtual time) or a pass (real time): the dialer's step."""
        tick, self._tick_due = self._tick_due, False
        if self._sweep_asked:
            self._sweep_asked, self._sweeping = False, True
        done = step(self.dialer, tick=tick, sweep=self._sweeping, collect_garbage=self.collect_garbage)
        if done.sweep_over is None:
            return
        now = self.ctx.clock.now()
        if done.sweep_over:
            self._sweeping = False
            if self._regular_sweep:
                self._regular_sweep = False
                self.at(now + self.refresh_every, self._refresh)
        else:
            self.at(now, _next_page)  # the loop makes one more pass, and its step reads the page

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
            outcomes=self.presence.outcomes,
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


def _next_page() -> None:
    """No work of its own: its pass ends with a step, which reads the sweep's next page."""
