"""One contract for every backend: the same scenario leaves the same attempt record.

Each backend plays every `Scenario` through its own far end (the simulated
lines, the AMI peer, the Twilio peer) under the production dialer; the
record must be the one `dialer.scenarios.RESULT` names, and the same for
all. Faults between the line and the dialer (duplicated, reordered, stray
and malformed events) must change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from ami_lines import SPEED as AMI_SPEED
from ami_lines import settings_for as ami_settings
from conformance import WORKER, Line, Record, Run, every_event_twice, run_scenario
from factories import fiction_phone, policy
from served import bound_socket, uvicorn_server
from structlog.testing import capture_logs
from twilio_world import ACCOUNT_SID, AUTH_TOKEN
from twilio_world import settings as twilio_settings

from campaign.clock import SystemClock
from campaign.states import AttemptResult, TaskStatus
from dialer.backends.asterisk import AsteriskBackend
from dialer.backends.base import DialRequest, EventSink, NurseLine
from dialer.backends.simulated import SimulatedBackend
from dialer.backends.twilio import TwilioBackend
from dialer.events import CallEvent, CallEventKind, Event
from dialer.scenarios import RESULT, Scenario
from dialer.scheduler_loop import EventLoop
from dialer.testing.ami_peer import AmiPeer
from dialer.testing.twilio_calls import Script
from dialer.testing.twilio_peer import TwilioPeer
from dialer.web import create_app

SCENARIOS = list(Scenario)


class ThreadedSimulated:
    """The simulated lines on the wall clock, run by a thread of their own as a real backend's reader is.

    The simulated backend usually runs on the dialer's own event loop; here its
    loop turns in another thread, so its events reach the dialer through the
    inbox like any other backend's.
    """

    name = "simulated"
    needs_nurse_leg = False
    remote = False

    def __init__(self, scenarios: dict[str, Scenario]) -> None:
        self.loop = EventLoop(SystemClock())
        self.lines = SimulatedBackend(self.loop, policy().simulation, scripted=scenarios)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.loop.run_due(limit=100)
            self._stop.wait(0.005)

    def connect(self, sink: EventSink) -> None:
        self.lines.connect(sink)

    def nurse_ready(self, nurse: NurseLine) -> None:
        with self._lock:
            self.lines.nurse_ready(nurse)

    def nurse_away(self, nurse_id: int) -> None:
        with self._lock:
            self.lines.nurse_away(nurse_id)

    def dial(self, request: DialRequest) -> None:
        with self._lock:
            self.lines.dial(request)

    def hangup(self, attempt_id: int) -> None:
        with self._lock:
            self.lines.hangup(attempt_id)

    def hangup_orphan(self, call_id: str) -> None:
        self.lines.hangup_orphan(call_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def simulated_line() -> Line:
    backend = ThreadedSimulated({})

    def number_for(scenario: Scenario, k: int) -> str:
        number = fiction_phone(100 * SCENARIOS.index(scenario) + k)
        backend.lines.scripted[number] = scenario
        return number

    return Line("simulated", backend, number_for, close=backend.close)


TWILIO_SCRIPT = {
    Scenario.human: Script.human,
    Scenario.busy: Script.busy,
    Scenario.no_answer: Script.no_answer,
    Scenario.congestion: Script.congestion,
    Scenario.unallocated: Script.unallocated,
    Scenario.machine_message: Script.machine_message_end,
    Scenario.machine_silent: Script.machine_message_end,  # the policy leaves no message
    Scenario.hangs_up_at_once: Script.hangs_up_at_once,
    Scenario.nurse_gone: Script.human,  # her phone drops while the patient's rings
}


def twilio_line() -> Line:
    """The real SDK against the local Twilio peer, whose signed callbacks reach the webhook app."""
    stack = ExitStack()
    peer = stack.enter_context(TwilioPeer(ACCOUNT_SID, AUTH_TOKEN, seconds=0.01))
    sock = bound_socket()
    conf = twilio_settings(f"http://127.0.0.1:{sock.getsockname()[1]}")
    backend = TwilioBackend(conf, SystemClock(), WORKER, peer.http_client())

    def attach(run: Run) -> None:
        app = create_app(
            conf,
            run.ctx.sessions,
            WORKER,
            run.dialer.inbox.put,
            clock=run.ctx.clock,
            voicemail_text="message neutre",
            http_client=peer.http_client(),
        )
        stack.enter_context(uvicorn_server(app, sock))

    def number_for(scenario: Scenario, k: int) -> str:
        number = fiction_phone(100 * SCENARIOS.index(scenario) + k, "+3326191")
        peer.script(number, TWILIO_SCRIPT[scenario])
        return number

    def on_dialed(scenario: Scenario, run: Run) -> None:
        if scenario == Scenario.nurse_gone:
            peer.drop_nurse(run.nurse_id)

    def close() -> None:
        backend.close()
        stack.close()

    return Line(
        "twilio",
        backend,
        number_for,
        nurse_endpoint="client:nurse-coach",
        close=close,
        attach=attach,
        on_dialed=on_dialed,
        peer=peer,
        webhooks_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
    )


AMI_FLOW = {
    Scenario.human: "conf-human",
    Scenario.busy: "conf-busy",
    Scenario.no_answer: "conf-noanswer",
    Scenario.congestion: "congestion",
    Scenario.unallocated: "unallocated",
    Scenario.machine_message: "conf-machine",
    Scenario.machine_silent: "conf-machine",  # the policy leaves no message
    Scenario.hangs_up_at_once: "conf-hangup-quick",
    Scenario.nurse_gone: "conf-human",  # her leg is hung up while the patient's phone rings
}


def asterisk_line() -> Line:
    """The real asterisk-ami client against the AMI peer playing a real Asterisk 22's recordings."""
    stack = ExitStack()
    peer = stack.enter_context(AmiPeer(speed=AMI_SPEED))
    # every event class: the recorded dialplan says a message was played only in its VarSets
    backend = AsteriskBackend(ami_settings(peer, events="on"), SystemClock())

    def number_for(scenario: Scenario, k: int) -> str:
        number = fiction_phone(100 * SCENARIOS.index(scenario) + k, "+3326191")
        peer.script("0" + number[3:], AMI_FLOW[scenario], talk_seconds=30)  # talks until hung up
        return number

    def on_dialed(scenario: Scenario, run: Run) -> None:
        if scenario == Scenario.nurse_gone:
            backend.nurse_away(run.nurse_id)

    def close() -> None:
        backend.close()
        stack.close()

    return Line(
        "asterisk",
        backend,
        number_for,
        nurse_endpoint="NURSE1001",
        close=close,
        on_dialed=on_dialed,
        peer=peer,
    )


BACKENDS: dict[str, Callable[[], Line]] = {
    "simulated": simulated_line,
    "asterisk": asterisk_line,
    "twilio": twilio_line,
}


@pytest.fixture(params=sorted(BACKENDS))
def make_line(request: pytest.FixtureRequest) -> Iterator[Callable[[], Line]]:
    yield BACKENDS[request.param]


def expected(scenario: Scenario, line: Line) -> Record:
    """The record every backend must leave; the line's own record only where lines outlive a process."""
    result = RESULT[scenario]
    answered = result == AttemptResult.answered
    # a number the network says is no one's is flagged; the scenario's patient has no other
    closed = TaskStatus.unreachable.value if result == AttemptResult.number_not_in_service else None
    return Record(
        result=result.value,
        state="completed",
        answered=answered,
        voicemail_left=scenario == Scenario.machine_message,
        task_status=TaskStatus.done.value if answered else closed or TaskStatus.pending.value,
        task_attempts=1,
        outcome_recorded=answered,
        line_ended=True if line.backend.remote else None,
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_leaves_the_same_record_on_every_backend(
    make_line: Callable[[], Line], scenario: Scenario, tmp_path: Path
) -> None:
    line = make_line()
    record = run_scenario(
        f"sqlite:///{tmp_path / 'c.db'}", line, scenario, voicemail=scenario != Scenario.machine_silent
    )
    assert record == expected(scenario, line)


@pytest.mark.parametrize("scenario", [Scenario.human, Scenario.busy, Scenario.machine_message])
def test_duplicated_events_change_nothing(
    make_line: Callable[[], Line], scenario: Scenario, tmp_path: Path
) -> None:
    line = make_line()
    line.sink_filter = every_event_twice
    record = run_scenario(
        f"sqlite:///{tmp_path / 'c.db'}", line, scenario, voicemail=scenario != Scenario.machine_silent
    )
    assert record == expected(scenario, line)


def test_an_event_for_an_unknown_call_changes_nothing(make_line: Callable[[], Line], tmp_path: Path) -> None:
    line = make_line()

    def stray(sink: Callable[[Event], None]) -> Callable[[Event], None]:
        def deliver(e: Event) -> None:
            if isinstance(e, CallEvent) and e.kind == CallEventKind.ended:
                sink(CallEvent(e.attempt_id + 1000, CallEventKind.connected, e.at))
                sink(CallEvent(e.attempt_id + 1000, CallEventKind.ended, e.at, 16))
            sink(e)

        return deliver

    line.sink_filter = stray
    assert run_scenario(f"sqlite:///{tmp_path / 'c.db'}", line, Scenario.busy) == expected(
        Scenario.busy, line
    )


# ---------------------------------------------------------------- faults on the wire, seen from the database

AMI_FAULTS: dict[str, Callable[[AmiPeer], None]] = {
    "connection dropped mid-call": lambda peer: peer.drop_connections(),
    # asterisk-ami's reader dies after its socket timeout (3 s) without traffic
    "silent longer than the library's timeout": lambda peer: peer.fall_silent(4.0),
    "a malformed line": lambda peer: peer.send_raw(b"a line without a colon\r\n\x00\xff\r\nEvent: Newst"),
    "every event twice": lambda peer: peer.repeat_events(1),
}


@pytest.mark.parametrize("fault", sorted(AMI_FAULTS))
def test_ami_faults_mid_call_leave_the_database_consistent(fault: str, tmp_path: Path) -> None:
    """No attempt left open, none recorded twice, the patient dialed once, nothing personal logged."""
    line = asterisk_line()
    with capture_logs() as logs:
        record = run_scenario(
            f"sqlite:///{tmp_path / 'c.db'}",
            line,
            Scenario.human,
            on_talking=lambda _run: AMI_FAULTS[fault](line.peer),
            hang_up_after=2.0,
        )
    assert record == expected(Scenario.human, line)
    _no_personal_data(logs, line.number_for(Scenario.human, 1))


TWILIO_FAULTS = ("duplicate", "reorder", "forged")


@pytest.mark.parametrize("fault", TWILIO_FAULTS)
def test_twilio_callback_faults_leave_the_database_consistent(fault: str, tmp_path: Path) -> None:
    """Duplicated and reordered callbacks change nothing; a forged one (signed with the wrong token)
    claiming the call is over gets 403 and records nothing, whatever it says."""
    line = twilio_line()
    if fault != "forged":
        setattr(line.peer, fault, True)

    def forge(run: Run) -> None:
        (call,) = run.dialer.calls.values()
        form = {"CallSid": "CA" + "f" * 32, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}
        r = httpx.post(
            f"{line.webhooks_url}/twilio/status?attempt={call.attempt_id}",
            data=form,
            headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
        )
        assert r.status_code == 403

    with capture_logs() as logs:
        record = run_scenario(
            f"sqlite:///{tmp_path / 'c.db'}",
            line,
            Scenario.human,
            on_dialed=forge if fault == "forged" else None,
        )
    assert record == expected(Scenario.human, line)
    _no_personal_data(logs, line.number_for(Scenario.human, 1))


def _no_personal_data(logs: list[dict[str, object]], number: str) -> None:
    """Checked before the scrubber: the code itself must not log a number."""
    digits = number[-9:]
    leaked = [e for e in logs if any(digits in str(v).replace(" ", "") for v in e.values())]
    assert not leaked, leaked
