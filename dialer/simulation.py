"""Run the programme on a virtual clock: shifts, scheduler jobs, dialer, nurses.

Simulated nurses take the calls the dialer hands them and record realistic
outcomes (config/simulation.toml); the simulated backend plays the patients.
Everything else is the production code path: the same services, rules,
routing and storage.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import select

from campaign import calendar as cal
from campaign import jobs, services, store
from campaign.clock import VirtualClock
from campaign.model import PATIENT
from campaign.policy import Tier
from campaign.states import OutcomeCode
from campaign.templates import render
from dialer.backends.simulated import LineProfile, SimulatedBackend
from dialer.loop import Dialer, LiveCall
from dialer.scheduler_loop import EventLoop

log = structlog.get_logger("carecall.simulation")

INBOUND_NUMBER = "01 99 00 00 00"  # fiction range: the programme's inbound line in demos


def voicemail_text() -> str:
    return render("ivr/voicemail.fr.j2", inbound_number=INBOUND_NUMBER)


@dataclass
class SimulatedNurses:
    """Nurses who talk for a realistic time and record a realistic outcome."""

    dialer: Dialer
    loop: EventLoop
    backend: SimulatedBackend
    rng: random.Random
    outcomes: dict[str, int] = field(default_factory=dict)

    def on_connected(self, nurse_id: int, call: LiveCall) -> None:
        policy = self.dialer.policy
        sim = policy.simulation
        mean = policy.tiers[call.task.tier].call_minutes - policy.dialer.wrap_up_seconds / 60
        minutes = max(1.0, self.rng.gauss(mean, mean * sim.call_minutes_sd_ratio))
        number_wrong = self.backend.is_wrong_number(call.number)
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
        self.dialer.record_outcome(nurse_id, code, callback_at=callback_at)
        self.outcomes[code.value] = self.outcomes.get(code.value, 0) + 1
        self.dialer.nurse_wrapped_up(nurse_id)


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
        for phone, alt, tier, tz in s.execute(
            select(PATIENT.c.phone, PATIENT.c.phone_alt, PATIENT.c.tier, PATIENT.c.timezone)
        ).all():
            profile = LineProfile(Tier(tier), tz)
            out[phone] = profile
            if alt:
                out[alt] = profile
    return out


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
    """Run the programme from the clock's now until `until`."""
    loop = EventLoop(clock)
    rng = random.Random(seed)
    backend = SimulatedBackend(loop, ctx.policy.simulation, line_directory(ctx), seed=seed)
    nurses_sim: SimulatedNurses | None = None

    def connected(nurse_id: int, call: LiveCall) -> None:
        assert nurses_sim is not None
        nurses_sim.on_connected(nurse_id, call)

    dialer = Dialer(ctx, backend, worker, voicemail_text(), on_connected=connected)
    nurses_sim = SimulatedNurses(dialer, loop, backend, rng)
    dialer.start()
    started = clock.now()

    # shifts, in each nurse's local time, on working days of the metropolitan calendar
    with ctx.sessions() as s:
        nurse_list = store.nurses(s)
    day: date = started.date() - timedelta(days=1)
    while day <= until.date():
        if not cal.is_holiday(day, "75"):
            for n in nurse_list:
                for weekday, start, end in n.shifts:
                    if weekday != day.weekday():
                        continue
                    on = cal.at_local(day, start, n.timezone)
                    off = cal.at_local(day, end, n.timezone)
                    if off <= started or on >= until:
                        continue
                    loop.call_at(on, _shift_start, dialer, n.id)
                    loop.call_at(off, dialer.nurse_offline, n.id)
        day += timedelta(days=1)

    # the scheduler's jobs, fired at the instants their APScheduler triggers give
    def fire(spec: jobs.JobSpec, previous: datetime | None) -> None:
        if auto_launch and spec.id == "plan_due_waves":
            if services.plan_due_waves(ctx, auto_launch=True):
                dialer.refresh()
        else:
            spec.func(ctx)
        if stop_when is not None and stop_when():
            loop.stop()
        nxt = jobs.next_fire(spec, clock.now(), clock.now() + timedelta(seconds=1))
        if nxt is not None and nxt <= until:
            loop.call_at(nxt, fire, spec, clock.now())

    for spec in jobs.job_specs(ctx.policy):
        first = jobs.next_fire(spec, None, started)
        if first is not None:
            loop.call_at(first, fire, spec, None)

    def tick() -> None:
        dialer.tick()
        nxt = clock.now() + timedelta(minutes=1)
        if nxt <= until:
            loop.call_at(nxt, tick)

    def refresh() -> None:
        if any(dialer.presence.on_shift(n.id) for n in nurse_list):
            dialer.refresh()
        nxt = clock.now() + timedelta(minutes=10)
        if nxt <= until:
            loop.call_at(nxt, refresh)

    loop.call_at(started, tick)
    loop.call_at(started, refresh)
    loop.run_until(until, progress)
    return SimulationResult(
        started=started,
        ended=clock.now(),
        events=loop.processed,
        dials=backend.dials,
        claims=dialer.stats["claims"],
        lost_claims=dialer.stats["lost_claims"],
        refused_by_rules=dialer.stats["refused_by_rules"],
        outcomes=nurses_sim.outcomes,
    )


def _shift_start(dialer: Dialer, nurse_id: int) -> None:
    from dialer.presence import NurseStatus

    if dialer.presence.get(nurse_id) == NurseStatus.offline:
        dialer.nurse_ready(nurse_id)
    else:
        dialer.presence.leaving.discard(nurse_id)
