"""The replay server behind scripts/bench_ami.py sends every recorded event, each repetition a new call."""

from __future__ import annotations

import socket
import threading
from typing import Any

from asterisk.ami import Action, AMIClient

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
