"""The Asterisk backend survives what goes wrong on an AMI link, and each flaw of `asterisk-ami` 0.1.7.

Every fault leaves exactly one `ended` per call, with the result the call
earned, and nothing personal in the logs (checked before the log scrubber,
which would hide a leak).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ami_lines import (
    BUSY,
    MACHINE,
    NURSE,
    PERSON,
    SPEED,
    Collector,
    K,
    asterisk,
    national,
    nurse_in_conference,
    poll,
    request,
    result_of,
)
from structlog.testing import capture_logs

from campaign.states import AttemptResult
from dialer.backends.asterisk.client import AmiSession
from dialer.backends.asterisk.packets import encode
from dialer.testing.ami_peer import AmiPeer

DIGITS = tuple(form for n in (PERSON, MACHINE, BUSY) for form in (national(n), n.removeprefix("+33")))


@pytest.fixture
def peer() -> Iterator[AmiPeer]:
    with AmiPeer(speed=SPEED) as p:
        yield p


def no_personal_data(logs: list[dict[str, Any]]) -> None:
    for entry in logs:
        text = repr(entry)
        assert not any(d in text for d in DIGITS), f"a phone number in a log: {entry}"


def connected(sink: Collector, attempt_id: int) -> None:
    assert sink.wait(lambda: any(e.kind == K.connected for e in sink.calls(attempt_id)))


def test_a_connection_dropped_mid_call_is_replaced_and_the_call_ends_once(peer: AmiPeer) -> None:
    sink = Collector()
    peer.script(national(PERSON), "conf-human", talk_seconds=60)  # talks until hung up
    with capture_logs() as logs, asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(21, PERSON))
        connected(sink, 21)
        peer.drop_connections()
        assert poll(lambda: backend.connections == 2 and backend.wait_connected(0))
        backend.hangup(21)
        sink.ended(21)
    assert result_of(sink.calls(21)) == (AttemptResult.answered, 16)  # its Hangups came on the new link
    assert sink.legs() == [True]  # her leg went on: still in her conference
    actions = [dict(a).get("Action") for a in peer.actions]
    assert "CoreShowChannels" in actions and "Status" in actions
    no_personal_data(logs)


def test_a_call_that_ends_while_the_link_is_down_is_ended_by_reconciliation(peer: AmiPeer) -> None:
    """The switch falls silent longer than the Ping allows: the backend drops the link, cannot log in
    again until the silence ends, and meanwhile the calls end; reconciliation ends them, once."""
    sink = Collector()
    with capture_logs() as logs, asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(22, PERSON))
        backend.dial(request(23, MACHINE))
        connected(sink, 22)
        assert sink.wait(lambda: any(e.kind == K.machine for e in sink.calls(23)))
        peer.fall_silent(3.0)
        for attempt_id in (22, 23):
            sink.ended(attempt_id, timeout=10)
        assert backend.connections >= 2
        time.sleep(0.5)  # late events of the old link, if any, must change nothing
    assert result_of(sink.calls(22))[0] == AttemptResult.answered
    assert result_of(sink.calls(23))[0] == AttemptResult.machine
    assert any("reconciled" in e["event"] for e in logs)
    no_personal_data(logs)


def test_silence_longer_than_the_librarys_read_timeout_loses_nothing(peer: AmiPeer) -> None:
    """asterisk-ami's reader reads with the client's timeout and dies after that long without traffic.
    Here no Ping is due, the switch says nothing for 4 s (the library's default timeout is 3 s, the
    session's connect timeout 1 s): the same link still delivers the call's end."""
    sink = Collector()
    with asterisk(peer, sink, ping_interval_seconds=60) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(24, PERSON))
        connected(sink, 24)
        peer.fall_silent(4.0)
        sink.ended(24, timeout=10)
        assert backend.connections == 1
    assert result_of(sink.calls(24)) == (AttemptResult.answered, 16)


def test_malformed_lines_are_skipped_and_logged_without_their_content(peer: AmiPeer) -> None:
    sink = Collector()
    with capture_logs() as logs, asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(25, PERSON))
        connected(sink, 25)
        peer.send_raw(b"a line without a colon, calling 0261910001\r\n\r\n")
        peer.send_raw(b"\x00\xff\xfe binary \x01\x02\r\n\r\n")
        peer.send_raw(b"Event: Newstate\r\nChannel: Local/0261910001@pat")  # truncated: runs into the next
        sink.ended(25)
        assert backend.connections == 1
    assert result_of(sink.calls(25)) == (AttemptResult.answered, 16)
    assert sum(1 for e in logs if "unreadable" in e["event"]) == 2
    no_personal_data(logs)


def test_every_event_twice_still_gives_one_event_of_each_kind(peer: AmiPeer) -> None:
    sink = Collector()
    peer.repeat_events(2)
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(26, PERSON))
        backend.dial(request(27, BUSY))
        for attempt_id in (26, 27):
            sink.ended(attempt_id)
        time.sleep(0.3)
    assert result_of(sink.calls(26)) == (AttemptResult.answered, 16)
    assert result_of(sink.calls(27)) == (AttemptResult.busy, 17)
    assert sink.legs() == [True]


def _unknown(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in list(logs) if "did not place" in e["event"]]


def test_calls_this_process_did_not_place_are_ignored_and_logged_once(peer: AmiPeer) -> None:
    sink, other_sink = Collector(), Collector()
    with capture_logs() as logs, asterisk(peer, sink) as backend, asterisk(peer, other_sink) as other:
        nurse_in_conference(backend, sink)
        foreign = peer.unknown_call_event("conf-busy")  # not carecall's ids at all
        other.dial(request(28, BUSY))  # another dialer process on the same switch
        other_sink.ended(28)
        backend.dial(request(29, BUSY))
        sink.ended(29)
        # each process reads the switch's events on its own link: the other one may see the end of
        # call 29 after this one does
        assert poll(lambda: any(e["channel_id"].endswith("-29-1") for e in _unknown(logs)))
    assert {e.attempt_id for _, e in sink.got if hasattr(e, "attempt_id")} == {29}
    assert {e.attempt_id for _, e in other_sink.got if hasattr(e, "attempt_id")} == {28}
    # each process logs the other's call, once per channel
    unknown = _unknown(logs)
    assert {e["channel_id"][-5:] for e in unknown} >= {"-28-1", "-29-1"}
    assert {e["channel_id"] for e in unknown} <= {
        f"{p}att-{a}{h}" for p in ("", "orig-") for a in (28, 29) for h in ("", "-1", "-2")
    }
    assert len(unknown) == len({e["channel_id"] for e in unknown}), "logged more than once per call"
    assert not any(foreign in repr(e) for e in unknown)
    no_personal_data(logs)


def test_a_sink_that_raises_does_not_stop_the_events(peer: AmiPeer) -> None:
    sink = Collector()
    failures = []

    def faulty(event: Any) -> None:
        if not failures:
            failures.append(event)
            raise RuntimeError("the inbox is broken")
        sink(event)

    with capture_logs() as logs, asterisk(peer, faulty) as backend:
        backend.dial(request(30, BUSY))
        assert poll(lambda: bool(failures))
        backend.dial(request(31, BUSY))
        sink.ended(31)
    assert failures[0].attempt_id == 30
    assert any("sink failed" in e["event"] for e in logs)
    assert result_of(sink.calls(31)) == (AttemptResult.busy, 17)


def test_a_whole_action_is_written_however_slowly_the_switch_reads() -> None:
    """asterisk-ami writes with `send`, which may write part of a packet: the rest is lost. Here the
    server stops reading while far more than the socket buffers is written, then reads it all."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        login = action(data.split(b"\r\n\r\n")[0])
        conn.sendall(encode([("Response", "Success"), ("ActionID", login["ActionID"])]))
        time.sleep(0.5)  # not reading: the client's writes must wait, not break
        conn.settimeout(2)
        rest = data.split(b"\r\n\r\n", 1)[1]
        try:
            while chunk := conn.recv(1 << 20):
                rest += chunk
        except TimeoutError:
            pass
        received.append(rest)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    session = AmiSession(
        *server.getsockname()[:2], lambda _p: None, lambda: None, response_timeout=2, send_timeout=5
    )
    session.open("dialer", "secret", "call,user")
    padding = "x" * 1000
    sent = [
        session.send([("Action", "UserEvent"), ("UserEvent", "Pad"), ("Pad", padding)]) for _ in range(5000)
    ]
    thread.join(10)
    session.close()
    server.close()
    packets = [action(p) for p in received[0].split(b"\r\n\r\n") if p]
    assert [p.get("ActionID") for p in packets] == sent
    assert all(p.get("Pad") == padding for p in packets)


def action(data: bytes) -> dict[str, str]:
    """An action as a server reads it."""
    return dict(line.split(": ", 1) for line in data.decode().split("\r\n") if line)


def test_action_ids_are_unique_across_threads_and_connections(peer: AmiPeer) -> None:
    """asterisk-ami's ActionID counter is unlocked and starts again at 0 with every client, so after a
    reconnect an answer could be taken for another action's. carecall's are unique in the process."""
    sessions = [
        AmiSession(*peer.address, lambda _p: None, lambda: None, response_timeout=2, send_timeout=2)
        for _ in range(2)
    ]
    for session in sessions:
        session.open("dialer", "dialer-secret", "call,user")
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(target=lambda s=s: [s.send([("Action", "Ping")]) for _ in range(500)])
            for s in sessions
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    deadline = time.monotonic() + 5
    while len(peer.actions) < 4002 and time.monotonic() < deadline:
        time.sleep(0.05)
    for session in sessions:
        session.close()
    ids = [dict(a)["ActionID"] for a in peer.actions]
    assert len(ids) == 4002 and len(set(ids)) == len(ids)


def test_a_nurse_leg_gone_while_the_link_is_down_is_reported_down(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        peer.fall_silent(2.5)
        backend.nurse_away(NURSE)  # the switch takes the Hangup; its events are lost with the link
        sink.leg_is(False, timeout=10)
        assert backend.connections >= 2
        time.sleep(0.5)
    assert sink.legs() == [True, False]


def test_the_audit_ends_a_call_whose_end_never_arrived(peer: AmiPeer) -> None:
    """An end lost on a link that stayed up (a damaged packet): the periodic audit finds the call gone.
    The lost end is made by registering a call the switch never had, as the backend does on dialing."""
    sink = Collector()
    with asterisk(peer, sink, audit_interval_seconds=0.5) as backend:
        with backend._lock:
            backend._corr.dialed(40, time.monotonic() - 5)
        end = sink.ended(40, timeout=5)
        time.sleep(1.2)  # two more audits: nothing more
        assert backend.connections == 1
    assert [e.kind for e in sink.calls(40)] == [K.ended] and end.cause is None
    assert result_of(sink.calls(40)) == (AttemptResult.no_answer, None)
