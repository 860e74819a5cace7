"""The inbound line end to end, on SQLite and PostgreSQL: simulated callers reach the real dialer.

The simulated backend places the calls through `SimulatedInbound` on the same
event loop as a `Runtime` (the real Dialer owning the nurses, its nurse
commands and bus, console-driven nurses): no test double answers the line's
offers. A known caller whose référent is ready reaches her, her stored
presence shows the call, the caller hangs up, her outcome sets the patient's
next contact and closes the wave task the call stood in for; a caller while
nobody is ready leaves a callback request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from factories import SENT_ON, add_nurse, add_patient, dispose, engine_of, make_ctx, paris, running_wave
from sqlalchemy import select, update

from campaign import services
from campaign.clock import VirtualClock
from campaign.model import PATIENT, TASK
from campaign.services.incoming import create_request_callback
from campaign.states import OutcomeCode, TaskKind, TaskStatus
from dialer.inbound.line import InboundLine, Step, caller_hangup
from dialer.inbound.simulated import SimulatedCaller, SimulatedInbound
from dialer.nurse_sources import ConsoleNurses
from dialer.presence import NurseStatus
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime
from dialer.staff.bus import Bus, PgBus, make_bus
from dialer.staff.commands import NurseCommands, OutcomeRequest
from dialer.staff.store import PresenceView, presence_of

DAY = date(2026, 12, 14)  # a Monday of the wave, the line open
WORKER = "dialer-1"


@dataclass
class Line:
    ctx: services.Context
    clock: VirtualClock
    loop: EventLoop
    runtime: Runtime
    commands: NurseCommands
    sim: SimulatedInbound

    def run(self, seconds: float) -> None:
        """The loop on for `seconds` of virtual time (the runtime's ticks step the dialer)."""
        self.loop.run_until(self.clock.now() + timedelta(seconds=seconds))

    def command(self, command_id: int) -> str | None:
        """Its owner's answer, once the loop has let the owner take it."""
        self.runtime.dialer.commands_due()  # what `serve`'s safety net does: no wait on the bus's thread
        self.run(60)
        return self.commands.wait(command_id, 0)

    def presence(self, nurse_id: int) -> PresenceView:
        self.runtime.dialer.store_presence(force=True)
        with self.ctx.sessions() as s:
            found = presence_of(s, nurse_id)
        assert found is not None
        return found

    def tasks(self, patient_id: int) -> list[Any]:
        with self.ctx.sessions() as s:
            return list(s.execute(select(TASK).where(TASK.c.patient_id == patient_id).order_by(TASK.c.id)))

    def next_contact_on(self, patient_id: int) -> date | None:
        with self.ctx.sessions() as s:
            found: date | None = s.execute(
                select(PATIENT.c.next_contact_on).where(PATIENT.c.id == patient_id)
            ).scalar_one()
            return found


@pytest.fixture
def line(db_url: str) -> Iterator[Line]:
    ctx, clock = make_ctx(db_url, paris(SENT_ON, 8))
    bus: Bus = make_bus(engine_of(ctx))
    try:
        loop = EventLoop(clock)
        yield Line(ctx, clock, loop, *_assemble(ctx, loop, bus))
    finally:
        bus.close()
        dispose(ctx)


def _assemble(
    ctx: services.Context, loop: EventLoop, bus: Bus
) -> tuple[Runtime, NurseCommands, SimulatedInbound]:
    """As a dialer process runs the simulated telephony: the line delivers its calls' ends to it."""
    runtime = Runtime(ctx, loop, worker=WORKER, auto_launch=False, presence=ConsoleNurses(), bus=bus)
    commands = NurseCommands(ctx, bus)
    inbound = InboundLine(
        ctx,
        commands,
        create_request_callback,
        worker=WORKER,
        deliver=runtime.dialer.inbox.put,
        resolve_offers=False,
    )
    sim = SimulatedInbound(loop, inbound, commands, owner_due=runtime.dialer.commands_due)
    runtime.dialer.on_inbound_hangup = caller_hangup(ctx, {"simulated": sim.hang_up})
    return runtime, commands, sim


def _start(line: Line, at: datetime) -> None:
    line.clock.advance_to(at)
    line.runtime.start()
    bus = line.commands.bus
    if isinstance(bus, PgBus):
        assert bus.wait_listening(10)


def test_a_known_caller_reaches_her_ready_referent_and_a_later_one_leaves_a_callback(line: Line) -> None:
    ctx, clock = line.ctx, line.clock
    nurse = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")  # never ready: her console is closed
    caller = add_patient(ctx, referent_nurse_id=nurse, phone="+33199007001")
    later = add_patient(ctx, phone="+33199007002")
    running_wave(ctx, clock, "diet", SENT_ON)
    # the wave's calls fall due on Thursday, beyond what a nurse with nothing due works ahead on
    # (dialer.work_ahead_hours): today her only call is the inbound one
    assert ctx.policy.dialer.work_ahead_hours < 72
    with ctx.sessions() as s:
        s.execute(
            update(TASK)
            .where(TASK.c.kind == TaskKind.wave.value)
            .values(not_before=paris(DAY + timedelta(days=3), 9))
        )
        s.commit()
    (wave_task,) = [t for t in line.tasks(caller.id) if t.kind == TaskKind.wave.value]
    assert line.next_contact_on(caller.id) is None
    _start(line, paris(DAY, 10))

    assert line.command(line.commands.ready(nurse)) == "ok"
    assert line.presence(nurse).status == NurseStatus.ready

    call = line.sim.place(SimulatedCaller(caller.phone, talk_seconds=240))
    line.run(60)
    record = line.sim.calls[call]
    assert [r.step for r in record.replies][-2:] == [Step.offer, Step.conference]
    assert record.nurse_id == nurse and record.attempt_id is not None and not record.ended
    shown = line.presence(nurse)
    assert (shown.status, shown.call_state, shown.patient_id, shown.attempt_id) == (
        NurseStatus.on_call,
        "connected",
        caller.id,
        record.attempt_id,
    ), "her console shows the caller's call"
    assert line.presence(other).status == NurseStatus.offline

    line.run(300)  # the caller talks four minutes, then hangs up
    assert record.ended
    shown = line.presence(nurse)
    assert (shown.status, shown.call_state) == (NurseStatus.wrap_up, "patient_hung_up")

    request = OutcomeRequest(record.attempt_id, OutcomeCode.reached, note="questions sur le régime")
    assert line.command(line.commands.outcome(nurse, request)) == "ok"
    assert line.next_contact_on(caller.id) is not None
    tasks = {t.id: t for t in line.tasks(caller.id)}
    assert (tasks[wave_task.id].status, tasks[wave_task.id].close_reason) == (
        TaskStatus.done.value,
        "reached on an incoming call",
    ), "the incoming call stood in for her pending wave task"
    (incoming,) = [t for t in tasks.values() if t.kind == TaskKind.incoming.value]
    assert (incoming.status, incoming.assigned_nurse_id) == (TaskStatus.done.value, nurse)
    assert line.presence(nurse).status == NurseStatus.ready

    assert line.command(line.commands.offline(nurse)) == "ok"
    second = line.sim.place(SimulatedCaller(later.phone))
    line.run(ctx.policy.inbound.wait_seconds + 120)
    record = line.sim.calls[second]
    steps = [r.step for r in record.replies]
    assert Step.wait in steps and Step.offer not in steps and record.last == Step.hangup and record.ended
    (request_task,) = [t for t in line.tasks(later.id) if t.kind == TaskKind.inbound.value]
    assert request_task.status == TaskStatus.pending.value
    assert request_task.priority == ctx.policy.inbound.callback_priority
