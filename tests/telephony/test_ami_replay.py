"""The replay servers behind scripts/bench_ami.py: the captures at full speed, each repetition a new
call; and the call replay, a recorded flow for every call the backend originates."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from ami_lines import NURSE, Collector, nurse_in_conference, request, result_of
from asterisk.ami import Action, AMIClient

from campaign.clock import SystemClock
from campaign.states import AttemptResult
from dialer.backends.asterisk import AsteriskBackend, AsteriskSettings
from dialer.testing.ami_call_replay import NURSE_GONE, AmiCallReplay
from dialer.testing.ami_replay import AmiReplay, recordings


def test_the_library_client_reads_every_recorded_event_and_each_repetition_has_its_own_ids() -> None:
    files = recordings("ami-transcript-conf-busy.jsonl")
    with AmiReplay(files, repeat=3) as replay:
        client = AMIClient(*replay.address, timeout=5)
        events: list[Any] = []
        done = threading.Event()
        client.add_event_listener(lambda event, source: events.append(event))
        client.add_listener(on_disconnect=lambda source, error: done.set())
        client.connect()
        login = client.send_action(Action("Login", {"Username": "anyone", "Secret": "x"})).response
        assert done.wait(5)
        client.disconnect()
    assert login.status == "Success"
    assert len(events) == replay.events == 3 * 61  # the capture's 61 events: login, her leg, the busy call
    responses = [e for e in events if e.name == "OriginateResponse" and e["Response"] == "Failure"]
    assert [(r["ActionID"], r["Uniqueid"]) for r in responses] == [
        ("orig-att-105", "att-105-1"),
        ("orig-att-105-r1", "att-105-1-r1"),
        ("orig-att-105-r2", "att-105-1-r2"),
    ]


def test_a_raw_reader_gets_the_stream_then_the_close() -> None:
    replay = AmiReplay(recordings("ami-transcript-conf-human.jsonl"), repeat=2)
    with replay, socket.create_connection(replay.address, timeout=5) as raw:
        assert raw.recv(100) == b"Asterisk Call Manager/11.0.0\r\n"
        raw.sendall(b"Action: Login\r\nActionID: l\r\nUsername: dialer\r\nSecret: s\r\n\r\n")
        data = b""
        while chunk := raw.recv(1 << 16):
            data += chunk
    packets = data.split(b"\r\n\r\n")
    assert packets[0] == b"Response: Success\r\nActionID: l\r\nMessage: Authentication accepted"
    assert sum(p.startswith(b"Event:") for p in packets) == replay.events == 2 * 107


# what each flow the call replay plays stands for: (result, Q.850 cause), as the dialer reads it
CALL_FLOWS = {
    "conf-human": (AttemptResult.answered, 16),
    "conf-notsure": (AttemptResult.answered, 16),
    "conf-machine": (AttemptResult.machine, 16),
    "conf-hangup-quick": (AttemptResult.hung_up, 16),
    "conf-busy": (AttemptResult.busy, 17),
    "conf-noanswer": (AttemptResult.no_answer, 19),
    "congestion": (AttemptResult.failed, 34),
    "unallocated": (AttemptResult.number_not_in_service, 1),
    NURSE_GONE: (AttemptResult.no_nurse, 16),
}


def _backend(replay: AmiCallReplay, sink: Collector) -> AsteriskBackend:
    host, port = replay.address
    settings = AsteriskSettings(
        host=host, port=port, username="dialer", secret="s", caller_id='"Accompagnement" <0199000000>'
    )
    backend = AsteriskBackend(settings, SystemClock())
    backend.connect(sink)
    assert backend.wait_connected(5)
    return backend


def test_the_call_replay_plays_each_originated_call_the_flow_its_number_was_given() -> None:
    """The benchmark's switch: it learns the calls from the Originates, answers a nurse's leg at once,
    then streams every call's recorded flow with that call's ids, as `Events: call,user` lets through."""
    flows = {f"+3319900{i:04d}": flow for i, flow in enumerate(CALL_FLOWS)}
    alone = "+33261910001"  # a person whose nurse never had her leg up: the recorded apology
    flows[alone] = "conf-human"
    attempts = {number: 100 + i for i, number in enumerate(flows)}
    sink = Collector()
    with AmiCallReplay(flows.__getitem__) as replay:
        backend = _backend(replay, sink)
        try:
            nurse_in_conference(backend, sink)
            for number, attempt in attempts.items():
                backend.dial(request(attempt, number, nurse_id=2002 if number == alone else NURSE))
            # nothing is played before `play`, however long the calls wait
            assert not sink.wait(lambda: any(sink.calls(a) for a in attempts.values()), 0.3)
            replay.play(len(flows), timeout=5)
            for attempt in attempts.values():
                sink.ended(attempt)
        finally:
            backend.close()
    results = {flows[n]: result_of(sink.calls(a)) for n, a in attempts.items() if n != alone}
    assert results == CALL_FLOWS
    assert result_of(sink.calls(attempts[alone])) == (AttemptResult.no_nurse, 16)
    stream = replay.stream
    assert replay.calls == len(flows) and stream.count(b"\r\n\r\n") == replay.events
    assert b"Event: VarSet" not in stream and b"Event: Newexten" not in stream  # dialplan class: not asked
    assert b"Uniqueid: att-100-1\r\n" in stream and b"ActionID: orig-att-100\r\n" in stream


def test_the_call_replay_waits_for_the_calls_it_is_told_to_expect() -> None:
    sink = Collector()
    with AmiCallReplay(lambda _number: "conf-busy") as replay:
        backend = _backend(replay, sink)
        try:
            backend.dial(request(7, "+33199000007"))
            with pytest.raises(TimeoutError, match="1 of 2 calls"):
                replay.play(2, timeout=0.5)
            replay.play(1, timeout=5)
            sink.ended(7)
        finally:
            backend.close()
    assert result_of(sink.calls(7)) == (AttemptResult.busy, 17)
