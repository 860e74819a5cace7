"""What the AMI backend tests share: a thread-safe sink, the backend on the AMI peer, and results
read from events as the dialer reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from campaign.clock import SystemClock
from campaign.states import AttemptResult
from dialer.backends.asterisk.backend import AsteriskBackend
from dialer.backends.asterisk.settings import AsteriskSettings
from dialer.backends.base import DialRequest, NurseLine
from dialer.causes import attempt_result
from dialer.events import CallEvent, CallEventKind, Event, LineState, NurseLegEvent
from dialer.testing.ami_peer import AmiPeer

K = CallEventKind
SPEED = 20.0  # the peer plays the recorded flows 20 times faster
NURSE = 1001
# fiction numbers (ARCEP 2018-0881) of the peer's table, dialed nationally: 02 61 91 0D xx, D picks the flow
PERSON = "+33261910001"
BUSY = "+33261910101"
NO_ANSWER = "+33261910201"
CONGESTION = "+33261910301"
QUICK_HANGUP = "+33261910401"
UNALLOCATED = "+33261910501"
MACHINE = "+33261910601"
NOT_SURE = "+33261910701"


def national(e164: str) -> str:
    """A French number as `patient_channel`'s {national} dials it, which is what the peer is scripted by."""
    return "0" + e164.removeprefix("+33")


class Collector:
    """The dialer's inbox in a test: thread-safe, never blocks the sender; events with their wall time."""

    def __init__(self) -> None:
        self.got: list[tuple[float, Event]] = []
        self._cv = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cv:
            self.got.append((time.monotonic(), event))
            self._cv.notify_all()

    def wait(self, ready: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def calls(self, attempt_id: int) -> list[CallEvent]:
        with self._cv:
            return [e for _, e in self.got if isinstance(e, CallEvent) and e.attempt_id == attempt_id]

    def legs(self, nurse_id: int = NURSE) -> list[bool]:
        with self._cv:
            return [e.up for _, e in self.got if isinstance(e, NurseLegEvent) and e.nurse_id == nurse_id]

    def at(self, attempt_id: int, kind: CallEventKind) -> float:
        with self._cv:
            return next(
                t
                for t, e in self.got
                if isinstance(e, CallEvent) and e.attempt_id == attempt_id and e.kind == kind
            )

    def ended(self, attempt_id: int, timeout: float = 10.0) -> CallEvent:
        assert self.wait(lambda: any(e.kind == K.ended for e in self.calls(attempt_id)), timeout), (
            f"attempt {attempt_id} never ended: {[e.kind.value for e in self.calls(attempt_id)]}"
        )
        return self.calls(attempt_id)[-1]

    def leg_is(self, up: bool, nurse_id: int = NURSE, timeout: float = 10.0) -> None:
        assert self.wait(lambda: bool(self.legs(nurse_id)) and self.legs(nurse_id)[-1] is up, timeout), (
            f"nurse {nurse_id}'s leg never went {'up' if up else 'down'}: {self.legs(nurse_id)}"
        )


def poll(ready: Callable[[], bool], timeout: float = 5.0) -> bool:
    """For what no event announces (a new connection, an action the peer received)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def result_of(events: list[CallEvent]) -> tuple[AttemptResult, int | None]:
    """What the dialer records, read as `dialer.lines.advance` reads a line: the furthest state first."""
    assert events and events[-1].kind == K.ended, f"no end last: {[e.kind.value for e in events]}"
    kinds = [e.kind for e in events]
    assert len(kinds) == len(set(kinds)), f"a kind came twice: {kinds}"
    furthest = max((LineState(k.value) for k in kinds[:-1]), key=lambda s: s.rank, default=LineState.dialing)
    return attempt_result(furthest, events[-1].cause), events[-1].cause


def settings_for(peer: AmiPeer, **overrides: Any) -> AsteriskSettings:
    host, port = peer.address
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": "dialer",
        "secret": "dialer-secret",
        "caller_id": '"Accompagnement" <0199000000>',
        # the recorded set-up: Local channels into the simulated world of the dialplan
        "patient_channel": "Local/{national}@patients",
        "nurse_channel": "Local/{endpoint}@nurse-phones",
        "ping_interval_seconds": 0.5,
        "response_timeout_seconds": 1.0,
        "send_timeout_seconds": 1.0,
        "reconnect_backoff_initial_seconds": 0.1,
        "reconnect_backoff_max_seconds": 0.5,
        "audit_interval_seconds": 30,
    }
    values.update(overrides)
    return AsteriskSettings(**values)


@contextmanager
def asterisk(peer: AmiPeer, sink: Callable[[Event], None], **overrides: Any) -> Iterator[AsteriskBackend]:
    backend = AsteriskBackend(settings_for(peer, **overrides), SystemClock())
    backend.connect(sink)
    try:
        assert backend.wait_connected(5), "the backend did not log in"
        yield backend
    finally:
        backend.close()


def nurse_in_conference(backend: AsteriskBackend, sink: Collector, nurse_id: int = NURSE) -> None:
    backend.nurse_ready(NurseLine(nurse_id, f"NURSE{nurse_id}"))
    sink.leg_is(True, nurse_id)


def request(attempt_id: int, number: str, *, nurse_id: int = NURSE, voicemail: bool = True) -> DialRequest:
    return DialRequest(
        attempt_id=attempt_id,
        task_id=attempt_id + 5000,
        number=number,
        nurse_id=nurse_id,
        nurse_endpoint=f"NURSE{nurse_id}",
        ring_timeout_seconds=15,
        voicemail_text="Bonjour…" if voicemail else None,
    )
