"""The simulated backend places inbound calls: the same line and decision, on the runtime's clock."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from factories import add_nurse, add_patient, dispose, make_ctx
from inbound_world import OPEN, WORKER, Desk
from sqlalchemy import select

from campaign import services
from campaign.model import TASK
from campaign.services.incoming import create_request_callback as request_callback
from dialer.events import CallEventKind, Event
from dialer.inbound.line import InboundLine, Step, caller_hangup
from dialer.inbound.simulated import SimulatedCaller, SimulatedInbound
from dialer.scheduler_loop import EventLoop
from dialer.staff.model import NursePresence


def ready(ctx: services.Context, nurse_id: int) -> None:
    with ctx.sessions() as s:
        s.add(
            NursePresence(
                nurse_id=nurse_id,
                status="ready",
                since=ctx.clock.now(),
                worker=WORKER,
                updated_at=ctx.clock.now(),
            )
        )
        s.commit()


def test_a_simulated_caller_keys_waits_talks_and_hangs_up(tmp_path: Path) -> None:
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'c.db'}", OPEN)
    try:
        inbox: list[Event] = []
        desk = Desk(ctx)
        line = InboundLine(
            ctx, desk, request_callback, worker=WORKER, deliver=inbox.append, resolve_offers=False
        )
        loop = EventLoop(clock)
        sim = SimulatedInbound(loop, line, desk)
        nurse = add_nurse(ctx)
        add_patient(ctx, member_id="77001234", birth_date=date(1949, 9, 9))
        call = sim.place(SimulatedCaller(None, "77001234", 1949, talk_seconds=240))
        loop.call_at(OPEN + timedelta(seconds=45), ready, ctx, nurse)  # a nurse comes back from a call
        loop.run_until(OPEN + timedelta(minutes=10))
        record = sim.calls[call]
        steps = [r.step for r in record.replies]
        assert steps[:2] == [Step.gather_member, Step.gather_birth_year]
        assert Step.wait in steps and steps[-2:] == [Step.offer, Step.conference]
        assert record.nurse_id == nurse and record.attempt_id is not None and record.ended
        (ended,) = inbox
        assert (ended.attempt_id, ended.kind) == (record.attempt_id, CallEventKind.ended)  # type: ignore[union-attr]
        assert ended.at >= OPEN + timedelta(seconds=45 + 240)
    finally:
        dispose(ctx)


def test_a_simulated_caller_nobody_answers_leaves_a_callback(tmp_path: Path) -> None:
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'c.db'}", OPEN)
    try:
        desk = Desk(ctx)
        line = InboundLine(ctx, desk, request_callback, worker=WORKER, resolve_offers=False)
        loop = EventLoop(clock)
        sim = SimulatedInbound(loop, line, desk)
        nurse = add_nurse(ctx)
        ready(ctx, nurse)
        desk.refusing.add(nurse)
        patient = add_patient(ctx, phone="+33199005555")
        call = sim.place(SimulatedCaller("+33199005555"))
        loop.run_until(OPEN + timedelta(minutes=10))
        assert sim.calls[call].last == Step.hangup and sim.calls[call].ended
        assert desk.offered_to()[0] == nurse
        with ctx.sessions() as s:
            kinds = s.execute(select(TASK.c.kind).where(TASK.c.patient_id == patient.id)).scalars().all()
        assert kinds == ["inbound"]
    finally:
        dispose(ctx)


def test_a_nurse_who_ends_the_call_hangs_the_caller_up(tmp_path: Path) -> None:
    """Else the caller would stay in her conference, where her next patient joins her."""
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'c.db'}", OPEN)
    try:
        inbox: list[Event] = []
        desk = Desk(ctx)
        line = InboundLine(
            ctx, desk, request_callback, worker=WORKER, deliver=inbox.append, resolve_offers=False
        )
        loop = EventLoop(clock)
        sim = SimulatedInbound(loop, line, desk)
        hang_up = caller_hangup(ctx, {"simulated": sim.hang_up})
        nurse = add_nurse(ctx)
        ready(ctx, nurse)
        add_patient(ctx, phone="+33199005556")
        call = sim.place(SimulatedCaller("+33199005556", talk_seconds=3600))
        loop.run_until(OPEN + timedelta(minutes=2))
        record = sim.calls[call]
        assert record.attempt_id is not None and not record.ended and inbox == []
        hang_up(record.attempt_id)  # the nurse ends it from her console
        assert record.ended
        (ended,) = inbox
        assert (ended.attempt_id, ended.kind, ended.at) == (
            record.attempt_id,
            CallEventKind.ended,
            clock.now(),
        )  # type: ignore[union-attr]
        hang_up(record.attempt_id)  # once over, nothing more
        assert len(inbox) == 1
    finally:
        dispose(ctx)
