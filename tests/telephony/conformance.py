"""The conformance harness: one scenario, one backend, the attempt record it leaves.

Every backend (simulated, Asterisk through the AMI peer, Twilio through its
REST peer and webhooks) is driven by the production dialer, in real time:
one nurse ready with her leg in her conference, one patient whose line plays
the scenario, one task. The harness waits until the attempt is closed and
the nurse free again, then reads what the database holds. Only the far end
of the wire is faked, by the backend's own peer.
"""

from __future__ import annotations

import time as wall
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from factories import add_nurse, add_patient, add_task, make_ctx, policy
from sqlalchemy import select

from campaign import services
from campaign.clock import ScaledClock, SystemClock
from campaign.model import ATTEMPT, TASK, Nurse, Outcome
from campaign.states import AttemptState, OutcomeCode
from dialer.backends.base import EventSink, TelephonyBackend
from dialer.calls import LiveCall
from dialer.events import Event
from dialer.lines.model import CallLine
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.scenarios import Scenario
from dialer.step import step

MONDAY_10 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Paris: inside calling hours
TALK_SECONDS = 1.0  # how long the simulated nurse talks before she hangs up
RING_TIMEOUT = 5  # seconds: the policy's shortest ring timeout


WORKER = "conformance"


@dataclass
class Line:
    """A backend under test and the far end that plays scenarios for it."""

    name: str
    backend: TelephonyBackend
    # makes the number (E.164) that plays `scenario` on this backend's far end
    number_for: Callable[[Scenario, int], str]
    nurse_endpoint: str | None = None
    close: Callable[[], None] = lambda: None
    sink_filter: Callable[[EventSink], EventSink] | None = None  # faults between backend and dialer
    attach: Callable[[Run], None] | None = None  # once the dialer exists (webhooks deliver to it)
    on_dialed: Callable[[Scenario, Run], None] | None = None  # e.g. the nurse's leg drops
    peer: Any = None  # the far end, for fault tests (AmiPeer, TwilioPeer)
    webhooks_url: str | None = None  # where the provider's callbacks reach carecall (Twilio)


@dataclass(frozen=True)
class Record:
    """What a call left in the database: the same for every backend, scenario by scenario."""

    result: str | None
    state: str
    answered: bool
    voicemail_left: bool
    task_status: str
    task_attempts: int
    outcome_recorded: bool
    line_ended: bool | None  # None: the backend keeps no line records (its calls die with it)


def scaled_clock() -> ScaledClock:
    """Real time (factor 1) from a Monday morning, so the calling hours allow the call."""
    return ScaledClock(MONDAY_10, SystemClock().now(), 1.0)


def run_scenario(
    db_url: str,
    line: Line,
    scenario: Scenario,
    *,
    voicemail: bool = True,
    timeout: float = 30.0,
    on_dialed: Callable[[Run], None] | None = None,
    on_talking: Callable[[Run], None] | None = None,
    hang_up_after: float = TALK_SECONDS,
) -> Record:
    """Dial one patient whose line plays `scenario`; the attempt's record once it is over.

    `on_dialed` runs once the call is placed, `on_talking` once the patient talks with the nurse
    (a fault mid-call, say).
    """
    run = start(db_url, line, voicemail=voicemail, hang_up_after=hang_up_after)
    run.on_talking = on_talking
    try:
        patient = add_patient(run.ctx, phone=line.number_for(scenario, 1), tier="high")
        task_id = add_task(run.ctx, patient.id, tier="high")
        run.dialer.refresh()
        run.dialer.nurse_ready(run.nurse_id)
        deadline = wall.monotonic() + timeout
        dialed = False
        while wall.monotonic() < deadline:
            run.pump()
            if not dialed and run.dialer.stats["dials"]:  # (a busy line may be over within the step)
                dialed = True
                if line.on_dialed is not None:
                    line.on_dialed(scenario, run)
                if on_dialed is not None:
                    on_dialed(run)
            if dialed and not run.dialer.calls and _closed(run.ctx, task_id):
                break
        else:
            raise AssertionError(f"{line.name}/{scenario}: the call did not end within {timeout} s")
        run.pump_for(0.3)  # late and repeated events must change nothing
        return read_record(run.ctx, task_id)
    finally:
        run.close()


@dataclass
class Run:
    """A dialer on a line, one senior nurse, and the nurse's side played by the harness."""

    ctx: services.Context
    dialer: Dialer
    nurse_id: int
    line: Line
    hang_up_after: float
    connected: list[LiveCall] = field(default_factory=list)
    on_talking: Callable[[Run], None] | None = None
    _hang_up_at: float | None = None

    def on_connected(self, _nurse: int, call: LiveCall) -> None:
        self.connected.append(call)
        self._hang_up_at = wall.monotonic() + self.hang_up_after
        if self.on_talking is not None:
            self.on_talking(self)

    def pump(self) -> None:
        """One pass of the dialer's loop, as `serve` runs it, and the nurse's part."""
        step(self.dialer, tick=True, sweep=False)
        if self._hang_up_at is not None and wall.monotonic() >= self._hang_up_at:
            self._hang_up_at = None
            self.dialer.hangup(self.nurse_id)
        if self.dialer.presence.get(self.nurse_id) == NurseStatus.wrap_up and not self.dialer._outcomes:
            self.dialer.submit_outcome(self.nurse_id, OutcomeCode.reached)
        self.dialer.inbox.wait(0.02)

    def pump_for(self, seconds: float) -> None:
        end = wall.monotonic() + seconds
        while wall.monotonic() < end:
            self.pump()

    def close(self) -> None:
        self.line.close()


def start(db_url: str, line: Line, *, voicemail: bool = True, hang_up_after: float = TALK_SECONDS) -> Run:
    """A dialer on `line` with one nurse known (not yet ready), in real time from a Monday morning."""
    # a short ring timeout: a call nobody answers ends after 5 s, whichever the backend
    pol = policy()
    pol = pol.model_copy(
        update={"retry": pol.retry.model_copy(update={"ring_timeout_seconds": RING_TIMEOUT})}
    )
    ctx, _ = make_ctx(db_url, MONDAY_10, pol=pol)
    ctx = services.Context(ctx.sessions, ctx.policy, scaled_clock())
    nurse_id = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    if line.nurse_endpoint is not None:
        with ctx.sessions() as s:
            nurse = s.get(Nurse, nurse_id)
            assert nurse is not None
            nurse.phone_endpoint = line.nurse_endpoint
            s.commit()
    backend: TelephonyBackend = line.backend
    if line.sink_filter is not None:
        backend = _FilteredBackend(backend, line.sink_filter)  # type: ignore[assignment]
    dialer = Dialer(ctx, backend, WORKER, "message neutre" if voicemail else None, deferred=True)
    run = Run(ctx, dialer, nurse_id, line, hang_up_after)
    dialer.on_connected = run.on_connected
    if line.attach is not None:
        line.attach(run)
    dialer.start(nurse_ids={nurse_id})
    return run


def _closed(ctx: services.Context, task_id: int) -> bool:
    with ctx.sessions() as s:
        states = s.execute(select(ATTEMPT.c.state).where(ATTEMPT.c.task_id == task_id)).scalars().all()
    return bool(states) and all(st == AttemptState.completed for st in states)


def read_record(ctx: services.Context, task_id: int) -> Record:
    with ctx.sessions() as s:
        (a,) = s.execute(select(ATTEMPT).where(ATTEMPT.c.task_id == task_id)).all()
        t = s.execute(select(TASK.c.status, TASK.c.attempts).where(TASK.c.id == task_id)).one()
        line = s.get(CallLine, a.id)
        outcome = s.execute(select(Outcome.id).where(Outcome.attempt_id == a.id)).first()  # type: ignore[arg-type]
    return Record(
        result=a.result,
        state=a.state,
        answered=a.answered_at is not None,
        voicemail_left=bool(a.voicemail_left),
        task_status=t.status,
        task_attempts=t.attempts,
        outcome_recorded=outcome is not None,
        line_ended=None if line is None else line.rank == 5,
    )


class _FilteredBackend:
    """The backend with a fault between it and the dialer (duplicates, reordering, strays)."""

    def __init__(self, inner: TelephonyBackend, sink_filter: Callable[[EventSink], EventSink]) -> None:
        self._inner = inner
        self._filter = sink_filter
        self.name = inner.name
        self.needs_nurse_leg = inner.needs_nurse_leg
        self.remote = inner.remote

    def connect(self, sink: EventSink) -> None:
        self._inner.connect(self._filter(sink))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


def every_event_twice(sink: EventSink) -> EventSink:
    def twice(e: Event) -> None:
        sink(e)
        sink(e)

    return twice
