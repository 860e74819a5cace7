"""Stored presence and nurse commands, on SQLite and PostgreSQL.

A nurse's row follows her through a whole call (reserved, ringing, on call,
the patient hanging up, wrap-up, ready again), each change notified; a
command written by any process is taken by the dialer that owns the nurse
(and only by it), at once on notification, and answered "ok" or why it was
refused; a command left by a crashed owner is taken by its restart; while a
caller waits on the inbound line, the nurses qualified for them get no
outbound call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from factories import add_nurse, add_patient, add_task, dispose, engine_of, make_ctx, paris
from sqlalchemy import event, insert, select, update

from campaign import services, store
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.model import ATTEMPT, OUTCOME, PATIENT, TASK
from campaign.states import OutcomeCode
from dialer.backends.base import DialRequest
from dialer.backends.scripted import ScriptedLines
from dialer.events import CallEvent, CallEventKind
from dialer.inbound.model import InboundCall
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.staff.bus import PRESENCE, Bus, PgBus, make_bus
from dialer.staff.commands import NurseCommands, OutcomeRequest
from dialer.staff.model import NurseCommand
from dialer.staff.store import presence_board, presence_of

MONDAY = date(2026, 12, 7)


def ringing_forever(_rank: int, _request: DialRequest) -> None:
    """Calls ring until the test says what their lines do."""
    return None


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[services.Context, VirtualClock, Bus]]:
    ctx, clock = make_ctx(db_url, paris(MONDAY, 10))
    bus = make_bus(engine_of(ctx))
    yield ctx, clock, bus
    bus.close()
    dispose(ctx)


def _dialer(ctx: services.Context, bus: Bus, worker: str = "w-1", share: tuple[int, int] = (0, 1)) -> Dialer:
    """A dialer process for its share of the nurses (nurse id modulo n = k), as `serve` starts it."""
    d = Dialer(ctx, ScriptedLines(ctx.clock, ringing_forever), worker, None, bus=bus, share=share)
    with ctx.sessions() as s:
        mine = {n.id for n in store.nurses(s) if n.id % share[1] == share[0]}
    d.start(nurse_ids=mine)
    if isinstance(bus, PgBus):
        assert bus.wait_listening(10), "a notification sent before LISTEN is lost (the poll takes it)"
    return d


def _row(ctx: services.Context, nurse_id: int) -> Any:
    with ctx.sessions() as s:
        return presence_of(s, nurse_id)


def _event(d: Dialer, kind: CallEventKind, cause: int | None = None) -> None:
    (attempt_id,) = d.calls
    d.on_event(CallEvent(attempt_id, kind, d.ctx.clock.now(), cause))


def _taken(d: Dialer, commands: NurseCommands, command_id: int, timeout: float = 10.0) -> str | None:
    """What the owner answered: it is woken by the bus (nobody calls `commands_due` here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if d.inbox.wait(0.05):
            d.tick()  # as a step of `serve`: the queue advances, then the flush
        with commands.ctx.sessions() as s:
            row = s.get(NurseCommand, command_id)
            if row is not None and row.result is not None:
                return row.result
    return None


def _notified(sub: Any, nurse_id: int) -> list[str]:
    got = []
    while (m := sub.get(0.2)) is not None:
        got.append(m[1])
    return [p for p in got if p == str(nurse_id)]


def test_presence_row_follows_a_nurse_through_a_whole_call(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, bus = env
    nurse = add_nurse(ctx)
    patient = add_patient(ctx)
    add_task(ctx, patient.id)
    if isinstance(bus, PgBus):
        sub = bus.subscribe(PRESENCE)
        assert bus.wait_listening(10)
    else:
        sub = bus.subscribe(PRESENCE)
    d = _dialer(ctx, bus)
    commands = NurseCommands(ctx, bus)
    assert _row(ctx, nurse).status == NurseStatus.offline and _row(ctx, nurse).version == 0

    assert _taken(d, commands, commands.ready(nurse)) == "ok"
    row = _row(ctx, nurse)
    (attempt_id,) = d.calls
    assert (row.status, row.attempt_id, row.patient_id, row.call_state) == (
        NurseStatus.reserved,
        attempt_id,
        patient.id,
        "dialing",
    ), "her claim stored her reserved for this patient's call"
    assert row.worker == "w-1"
    versions = [row.version]
    assert _notified(sub, nurse), "each change is notified"

    steps = [
        (CallEventKind.ringing, None, NurseStatus.reserved, "ringing"),
        (CallEventKind.connected, None, NurseStatus.on_call, "connected"),
        (CallEventKind.ended, 16, NurseStatus.wrap_up, "patient_hung_up"),  # she did not hang up
    ]
    for kind, cause, status, call_state in steps:
        clock.advance_to(clock.now() + timedelta(seconds=20))
        _event(d, kind, cause)
        row = _row(ctx, nurse)
        assert (row.status, row.call_state, row.attempt_id) == (status, call_state, attempt_id), kind
        versions.append(row.version)
        assert _notified(sub, nurse), f"{kind} notified"

    request = OutcomeRequest(attempt_id, OutcomeCode.reached, note="ok")
    assert _taken(d, commands, commands.outcome(nurse, request)) == "ok"
    row = _row(ctx, nurse)
    assert (row.status, row.attempt_id, row.call_state) == (NurseStatus.ready, None, None)
    versions.append(row.version)
    assert versions == sorted(set(versions)), "every change bumps the version"
    with ctx.sessions() as s:
        assert (
            s.execute(select(OUTCOME.c.code).where(OUTCOME.c.attempt_id == attempt_id)).scalar_one()
            == "reached"
        )
        board = presence_board(s)
    assert [v.nurse_id for v in board] == [nurse]
    sub.close()


def test_a_nurse_who_hangs_up_herself_sees_ended_not_an_alert(env) -> None:  # type: ignore[no-untyped-def]
    ctx, _clock, bus = env
    nurse = add_nurse(ctx)
    add_task(ctx, add_patient(ctx).id)
    d = _dialer(ctx, bus)
    d.nurse_ready(nurse)
    d.tick()
    _event(d, CallEventKind.connected)
    commands = NurseCommands(ctx, bus)
    assert _taken(d, commands, commands.hangup(nurse)) == "ok"
    row = _row(ctx, nurse)
    assert (row.status, row.call_state) == (NurseStatus.wrap_up, "ended")


def test_refused_commands_say_why_and_change_nothing(env) -> None:  # type: ignore[no-untyped-def]
    ctx, _clock, bus = env
    nurse, other = add_nurse(ctx), add_nurse(ctx)
    add_task(ctx, add_patient(ctx).id)
    d = _dialer(ctx, bus)
    commands = NurseCommands(ctx, bus)
    assert _taken(d, commands, commands.hangup(nurse)) == "refused: no call to hang up"
    assert _taken(d, commands, commands.pause(nurse, "nap")) == "refused: unknown pause reason 'nap'"
    assert _taken(d, commands, commands.ready(nurse)) == "ok"
    (attempt_id,) = d.calls
    assert _taken(d, commands, commands.ready(nurse)) == "refused: on a call"
    assert _taken(d, commands, commands.outcome(nurse, OutcomeRequest(attempt_id, OutcomeCode.reached))) == (
        "refused: the call was not answered"
    )
    assert _taken(d, commands, commands.outcome(other, OutcomeRequest(attempt_id, OutcomeCode.reached))) == (
        "refused: not her call"
    )
    _event(d, CallEventKind.connected)
    _event(d, CallEventKind.ended, 16)
    past = OutcomeRequest(attempt_id, OutcomeCode.callback_requested, callback_at=ctx.clock.now())
    assert _taken(d, commands, commands.outcome(nurse, past)) == "refused: a callback needs a time to come"
    row = _row(ctx, nurse)
    assert (row.status, row.attempt_id) == (NurseStatus.wrap_up, attempt_id), "still owes the outcome"
    with ctx.sessions() as s:
        assert s.execute(select(OUTCOME)).first() is None
    # a pause asked for in wrap-up starts once the outcome is stored
    assert _taken(d, commands, commands.pause(nurse, "meal")) == "ok"
    assert _row(ctx, nurse).status == NurseStatus.wrap_up
    assert (
        _taken(d, commands, commands.outcome(nurse, OutcomeRequest(attempt_id, OutcomeCode.reached))) == "ok"
    )
    row = _row(ctx, nurse)
    assert (row.status, row.reason, row.attempt_id) == (NurseStatus.paused, "meal", None)


def test_a_command_is_taken_by_the_process_that_owns_the_nurse(db_url: str) -> None:
    """Two dialer processes (shares 1/2 and 2/2, each its engine and bus) and a web process writing."""
    ctx, clock = make_ctx(db_url, paris(MONDAY, 10))
    nurses = [add_nurse(ctx) for _ in range(4)]
    shared = make_bus(engine_of(ctx))
    engines, buses, dialers = [], [], []
    for k in range(2):
        engine = make_engine(db_url)
        bus = shared if not isinstance(shared, PgBus) else make_bus(engine)  # SQLite: one process
        c = services.Context(session_factory(engine), ctx.policy, clock)
        dialers.append(_dialer(c, bus, worker=f"dialer-{k + 1}", share=(k, 2)))
        engines.append(engine)
        buses.append(bus)
    for bus in buses:
        if isinstance(bus, PgBus):
            assert bus.wait_listening(10)
    web = NurseCommands(ctx, shared)
    try:
        ids = {n: web.ready(n) for n in nurses}
        for n, command_id in ids.items():
            owner = dialers[n % 2]
            assert _taken(owner, web, command_id) == "ok"
            with ctx.sessions() as s:
                row = s.get(NurseCommand, command_id)
                assert row is not None and row.taken_by == owner.worker
            assert _row(ctx, n).worker == owner.worker and _row(ctx, n).status == NurseStatus.ready
        for k, d in enumerate(dialers):
            assert set(d.presence.ready()) == {n for n in nurses if n % 2 == k}, "none taken by the other"
    finally:
        for bus in buses:
            if bus is not shared:
                bus.close()
        shared.close()
        for engine in engines:
            engine.dispose()
        dispose(ctx)


def test_the_owner_is_woken_by_the_notification_not_the_poll(pg_url: str) -> None:
    ctx, _clock = make_ctx(pg_url, paris(MONDAY, 10))
    nurse = add_nurse(ctx)
    bus = make_bus(engine_of(ctx))
    assert isinstance(bus, PgBus)
    d = _dialer(ctx, bus, share=(nurse % 2, 2))
    d.flush()  # what was pending at start-up is taken
    assert bus.wait_listening(10)
    other = make_bus(make_engine(pg_url))  # another process: the web application
    try:
        command_id = NurseCommands(ctx, other).pause(nurse, "break")
        started = time.monotonic()
        assert d.inbox.wait(5.0), "the owner's inbox hears of it through LISTEN/NOTIFY"
        woke = time.monotonic() - started
        d.flush()
        with ctx.sessions() as s:
            assert s.get(NurseCommand, command_id).result == "ok"  # type: ignore[union-attr]
        assert woke < 1.0, f"woken after {woke:.2f} s (the poll runs every 2 s)"
        assert _row(ctx, nurse).status == NurseStatus.paused
    finally:
        other.close()
        bus.close()
        dispose(ctx)


def test_a_waiting_request_reads_its_command_for_its_nurses_changes_not_everyones(env) -> None:  # type: ignore[no-untyped-def]
    """With hundreds of consoles, other nurses' presence changes (dozens a second) must not cost
    every request waiting for an answer a query each: it reads its command once, then at each
    change of its own nurse or at the poll."""
    ctx, _clock, bus = env
    mine, other = add_nurse(ctx, code="MINE1"), add_nurse(ctx, code="OTHER1")
    commands = NurseCommands(ctx, bus)
    command_id = commands.ready(mine)  # no dialer owns her here: nobody answers
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "nurse_command" in statement:
            reads.append(statement)

    engine = engine_of(ctx)
    event.listen(engine, "before_cursor_execute", count)
    done = threading.Event()
    published = [0]

    def chatter() -> None:
        while not done.is_set():
            bus.publish(PRESENCE, str(other))
            published[0] += 1
            time.sleep(0.002)

    talker = threading.Thread(target=chatter)
    talker.start()
    try:
        assert commands.wait(command_id, 0.6) is None
    finally:
        done.set()
        talker.join()
        event.remove(engine, "before_cursor_execute", count)
    assert published[0] > 50, "the other nurse's changes went on during the wait"
    # a read at once, then one per poll (0.25 s) until the timeout: not one per other change
    assert 1 <= len(reads) <= 5, len(reads)


def test_commands_left_by_a_crashed_owner_are_taken_by_its_restart(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, bus = env
    nurse = add_nurse(ctx)
    add_task(ctx, add_patient(ctx).id)
    first = _dialer(ctx, bus, worker="w-crash")
    commands = NurseCommands(ctx, bus)
    assert _taken(first, commands, commands.ready(nurse)) == "ok"
    (attempt_id,) = first.calls
    _event(first, CallEventKind.connected)
    # she gives her outcome while still talking: it waits for her call's end, and is not marked taken
    waiting = commands.outcome(nurse, OutcomeRequest(attempt_id, OutcomeCode.reached))
    assert _taken(first, commands, waiting, timeout=1.0) is None
    later = commands.pause(nurse, "break")  # …and this one arrives while the process is dead
    first._subscription.close()  # type: ignore[union-attr]  # the process dies: nothing else runs
    clock.advance_to(clock.now() + timedelta(minutes=1))

    restarted = _dialer(ctx, bus, worker="w-crash")
    restarted.flush()
    with ctx.sessions() as s:
        results = {c.id: c.result for c in s.execute(select(NurseCommand)).scalars()}
        attempt = s.execute(select(ATTEMPT).where(ATTEMPT.c.id == attempt_id)).one()
    assert results[waiting] == "refused: not her call", "taken again and answered, not lost"
    assert attempt.result == "interrupted"
    assert results[later] == "ok"
    assert _row(ctx, nurse).status == NurseStatus.paused


def test_a_waiting_caller_holds_the_nurses_qualified_for_them(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, bus = env
    junior = add_nurse(ctx, level="junior")
    senior = add_nurse(ctx, level="senior")
    caller = add_patient(ctx, tier="high")
    for _ in range(2):
        add_task(ctx, add_patient(ctx, tier="low").id, tier="low")
    with ctx.sessions() as s:
        call_id = s.execute(
            insert(InboundCall.__table__)  # type: ignore[attr-defined]
            .values(
                backend="simulated",
                call_id="in-1",
                patient_id=caller.id,
                state="waiting",
                started_at=clock.now(),
            )
            .returning(InboundCall.__table__.c.id)  # type: ignore[attr-defined]
        ).scalar_one()
        s.commit()
    d = _dialer(ctx, bus)
    d.nurse_ready(senior)
    d.nurse_ready(junior)
    d.tick()
    assert set(d.call_of_nurse) == {junior}, "the senior waits for the high-tier caller"
    with ctx.sessions() as s:
        s.execute(
            update(InboundCall.__table__).where(InboundCall.__table__.c.id == call_id).values(state="routed")
        )  # type: ignore[attr-defined]
        s.commit()
    d.callers_changed()
    d.tick()
    assert set(d.call_of_nurse) == {junior, senior}, "once the caller is routed, she dials again"


def test_now_is_offline_for_a_nurse_no_dialer_has_seen(env) -> None:  # type: ignore[no-untyped-def]
    ctx, _clock, _bus = env
    nurse = add_nurse(ctx)
    with ctx.sessions() as s:
        (view,) = presence_board(s)
        assert presence_of(s, 10_000) is None
    assert (view.nurse_id, view.status, view.since, view.version) == (nurse, NurseStatus.offline, None, 0)


def test_an_inbound_call_goes_to_a_ready_nurse_and_ends_like_any_call(env) -> None:  # type: ignore[no-untyped-def]
    ctx, _clock, bus = env
    nurse, busy = add_nurse(ctx), add_nurse(ctx)
    caller = add_patient(ctx)
    add_task(ctx, add_patient(ctx).id)
    d = _dialer(ctx, bus)
    commands = NurseCommands(ctx, bus)
    assert _taken(d, commands, commands.inbound(nurse, 1, caller.id)) == "refused: not ready"
    assert _taken(d, commands, commands.ready(busy)) == "ok"  # she takes the outbound call
    assert _taken(d, commands, commands.inbound(busy, 1, caller.id)) == "refused: not ready"
    assert _taken(d, commands, commands.pause(nurse, "break")) == "ok"
    assert _taken(d, commands, commands.ready(nurse)) == "ok"
    result = _taken(d, commands, commands.inbound(nurse, 1, caller.id))
    assert result is not None and result.startswith("ok:"), result
    attempt_id = int(result[3:])
    row = _row(ctx, nurse)
    assert (row.status, row.attempt_id, row.patient_id, row.call_state) == (
        NurseStatus.on_call,
        attempt_id,
        caller.id,
        "connected",
    ), "her console shows the caller at once"
    # the caller hangs up: the line's end, keyed by the attempt, as for an outbound call
    d.on_event(CallEvent(attempt_id, CallEventKind.ended, ctx.clock.now(), 16))
    row = _row(ctx, nurse)
    assert (row.status, row.call_state) == (NurseStatus.wrap_up, "patient_hung_up")
    later = ctx.clock.now() + timedelta(days=1)
    request = OutcomeRequest(
        attempt_id, OutcomeCode.callback_requested, callback_at=later, callback_nurse_id=busy
    )
    assert _taken(d, commands, commands.outcome(nurse, request)) == "ok"
    assert _row(ctx, nurse).status == NurseStatus.ready
    with ctx.sessions() as s:
        outcome = s.execute(select(OUTCOME).where(OUTCOME.c.attempt_id == attempt_id)).one()
        callback = s.execute(select(TASK).where(TASK.c.kind == "callback")).one()
    assert outcome.code == "callback_requested"
    assert callback.assigned_nurse_id == busy, "the callback waits for the nurse it was promised for"
    assert any(t.assigned_id == busy for t in d.queue.items.values())


def test_hospitalised_until_a_date_reaches_the_patient(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, bus = env
    nurse = add_nurse(ctx)
    patient = add_patient(ctx)
    add_task(ctx, patient.id)
    d = _dialer(ctx, bus)
    commands = NurseCommands(ctx, bus)
    assert _taken(d, commands, commands.ready(nurse)) == "ok"
    (attempt_id,) = d.calls
    _event(d, CallEventKind.connected)
    d.hangup(nurse)
    until = clock.now().date() + timedelta(days=20)
    request = OutcomeRequest(attempt_id, OutcomeCode.hospitalised, hospitalised_until=until)
    assert _taken(d, commands, commands.outcome(nurse, request)) == "ok"
    with ctx.sessions() as s:
        row = s.execute(select(PATIENT).where(PATIENT.c.id == patient.id)).one()
    assert row.status == "suspended" and row.suspended_until == until
