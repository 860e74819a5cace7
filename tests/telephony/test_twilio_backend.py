"""The backend never blocks the dialer, keeps to the account's calls per second, cancels what Twilio
keeps queued too long, and turns a refused or unreachable REST API into an ended call."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from twilio.http.response import Response
from twilio_world import ACCOUNT_SID, START, Inbox, settings, twilio_world

from campaign.clock import VirtualClock
from campaign.states import AttemptResult
from dialer.backends.base import DialRequest
from dialer.backends.twilio import TwilioBackend
from dialer.events import CallEventKind
from dialer.testing.twilio_calls import Behaviour, Script
from dialer.testing.twilio_peer import PeerHttpClient

CREATE = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


def creates(peer: Any) -> int:
    return sum(1 for method, path, _ in peer.requests if method == "POST" and path == CREATE)


class HeldMonotonic:
    """The backend's monotonic clock, held still while `held`: then it goes on from there."""

    def __init__(self) -> None:
        self._lag = 0.0
        self._held: float | None = None

    def __call__(self) -> float:
        return self._held if self._held is not None else time.monotonic() - self._lag

    def hold(self) -> None:
        self._held = self()

    def release(self) -> None:
        assert self._held is not None
        self._lag, self._held = time.monotonic() - self._held, None


def test_calls_over_the_rate_are_not_placed(tmp_path: Path) -> None:
    pacing = {"calls_per_second": 2, "max_queue_wait_seconds": 1.2}
    monotonic = HeldMonotonic()
    with twilio_world(f"sqlite:///{tmp_path / 'c.db'}", backend_settings=pacing, monotonic=monotonic) as w:
        requests = [w.prepare(Script.busy) for _ in range(5)]
        monotonic.hold()  # the five requests come in the same instant, however slow this machine
        for request in requests:  # the dialer asks for five calls at once
            w.backend.dial(request)
        monotonic.release()
        attempts = [r.attempt_id for r in requests]
        ended = [w.wait_ended(a) for a in attempts]
        w.peer.wait_idle()
        refused = [e for e in ended if e.detail == "over calls per second"]
        assert [e.attempt_id for e in refused] == attempts[3:], (
            "slots 0, 0.5, 1 s are taken; 1.5 s is too far"
        )
        assert {e.cause for e in refused} == {47}
        assert creates(w.peer) == 3
        assert w.record(attempts[4]) == (AttemptResult.failed, False)


def test_calls_twilio_keeps_queued_too_long_are_cancelled(tmp_path: Path) -> None:
    """The account is slower than carecall thinks (other traffic): Twilio queues the calls."""
    pacing = {"calls_per_second": 100, "max_queue_wait_seconds": 0.2}
    with twilio_world(
        f"sqlite:///{tmp_path / 'c.db'}", account_cps=0.001, backend_settings=pacing, queue_check_seconds=0.05
    ) as w:
        requests = [w.prepare(Behaviour(Script.human, talk_seconds=30)) for _ in range(3)]
        for request in requests:
            w.backend.dial(request)
        first, *queued = [r.attempt_id for r in requests]
        for attempt in queued:
            ended = w.wait_ended(attempt)
            assert (ended.cause, ended.detail) == (47, "queued too long")
            call = w.call_over(attempt)
            assert call.statuses_sent == ["canceled"], "it never rang"
            assert w.record(attempt) == (AttemptResult.failed, False)
        cancels = [f["Status"] for m, p, f in w.peer.requests if m == "POST" and "Status" in f]
        assert cancels == [["canceled"], ["canceled"]]
        assert w.wait_ended(first).cause == 16, "the call that left the queue went on"


def test_a_refused_call_ends_as_a_number_not_in_service_with_the_reason_and_not_the_number(
    tmp_path: Path,
) -> None:
    """Twilio refuses an invalid number (21211): Q.850 28, so the number is flagged, never redialed."""
    with twilio_world(f"sqlite:///{tmp_path / 'c.db'}") as w:
        attempt = w.dial(Script.invalid_number)
        ended = w.wait_ended(attempt)
        assert (ended.cause, ended.detail) == (28, "rest 400 21211")
        assert w.record(attempt) == (AttemptResult.number_not_in_service, False)


def test_an_unreachable_api_ends_the_call_as_failed() -> None:
    inbox = Inbox()
    backend = TwilioBackend(
        settings("https://x.example.org"), VirtualClock(START), "w", PeerHttpClient("http://127.0.0.1:9")
    )
    backend.connect(inbox)
    try:
        backend.dial(DialRequest(7, 1, "+33199003333", 1, None, 30, None))
        inbox.wait_for(lambda: inbox.calls(7))
    finally:
        backend.close()
    (ended,) = inbox.calls(7)
    assert (ended.kind, ended.cause) == (CallEventKind.ended, 41)
    assert ended.detail is not None and ended.detail.startswith("rest unreachable")


class GatedClient(PeerHttpClient):
    """The peer's client, holding every request until the test opens the gate."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self.waiting.set()
        self.gate.wait(10)
        return super().request(method, url, *args, **kwargs)


def test_dial_returns_before_the_network_is_touched(tmp_path: Path) -> None:
    with twilio_world(f"sqlite:///{tmp_path / 'c.db'}") as w:
        client = GatedClient(w.peer.base_url)
        backend = TwilioBackend(w.settings, w.clock, "gated", client)
        backend.connect(w.inbox)
        try:
            attempt, number = w.attempt()
            w.peer.script(number, Script.busy)
            backend.dial(DialRequest(attempt, 1, number, w.nurse_id or 1, None, 30, None))
            assert client.waiting.wait(5), "the request went to the backend's own thread"
            assert creates(w.peer) == 0 and w.inbox.calls(attempt) == []
            client.gate.set()
            assert w.wait_ended(attempt).cause == 17
        finally:
            client.gate.set()
            backend.close()


def test_a_call_hung_up_before_its_turn_is_never_placed(tmp_path: Path) -> None:
    pacing = {"calls_per_second": 2, "max_queue_wait_seconds": 5}
    with twilio_world(f"sqlite:///{tmp_path / 'c.db'}", backend_settings=pacing) as w:
        requests = [w.prepare(Script.busy) for _ in range(3)]
        for request in requests:
            w.backend.dial(request)
        first, second, third = [r.attempt_id for r in requests]
        w.backend.hangup(second)
        ended = w.wait_ended(second)
        assert (ended.cause, ended.detail) == (None, "hung up before it was placed")
        w.call_over(third)  # placed after the second's turn: had the second been placed, it would be by now
        assert w.peer.calls_to(w.numbers[second]) == []
        assert creates(w.peer) == 2 and w.wait_ended(first).cause == 17
        assert w.record(second) == (AttemptResult.no_answer, False)
