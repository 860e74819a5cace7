#!/usr/bin/env python3
"""Benchmark: AMI events ingested per second from a recorded stream replayed at full speed on a local socket.

The stream is the recorded nurse-conference captures (`dialer/testing/ami_recordings/
ami-transcript-conf-*.jsonl`), every event packet back to back, `--repeat` times
with each repetition's ChannelIds and ActionIDs renamed so it is a distinct set
of calls (dialer.testing.ami_replay). Each measure gets a fresh connection to
the same replay server, logs in, and reads until the server closes.

The floors, measured in the same run:
- socket_read_events_per_second: a raw socket reader splitting packets at
  `\\r\\n\\r\\n` and counting the events, nothing else;
- library_parse_events_per_second: the bare `asterisk-ami` 0.1.7 AMIClient
  (its defaults) with one event listener counting events.

`measure_backend` is the backend's whole ingestion path (parse, correlation,
attempt-state updates, database writes batched as the dialer does): it
reports `events_per_second` once the Asterisk backend exists.

    .venv/bin/python scripts/bench_ami.py [--repeat 100]

Prints JSON. Target (issue "Real telephony"): events_per_second at least 40,000
and at least a third of library_parse_events_per_second.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any

from asterisk.ami import Action, AMIClient

from dialer.testing.ami_replay import AmiReplay, recordings

LOGIN = b"Action: Login\r\nActionID: bench\r\nUsername: dialer\r\nSecret: dialer-secret\r\n\r\n"
TIMEOUT = 120.0


def socket_read_events_per_second(address: tuple[str, int], expected: int) -> float:
    with socket.create_connection(address, timeout=TIMEOUT) as raw:
        raw.recv(len(b"Asterisk Call Manager/11.0.0\r\n"))
        start = time.perf_counter()
        raw.sendall(LOGIN)
        events, rest = 0, b""
        while True:
            data = raw.recv(1 << 16)
            if not data:
                break
            packets = (rest + data).split(b"\r\n\r\n")
            rest = packets.pop()
            events += sum(1 for p in packets if p.startswith(b"Event:"))
        elapsed = time.perf_counter() - start
    _check("socket reader", events, expected)
    return events / elapsed


def library_parse_events_per_second(address: tuple[str, int], expected: int) -> float:
    client = AMIClient(*address)
    counted = [0]
    done = threading.Event()

    def count(event: Any, source: Any) -> None:
        counted[0] += 1

    client.add_event_listener(count)
    client.add_listener(on_disconnect=lambda source, error: done.set())
    client.connect()
    start = time.perf_counter()
    client.send_action(Action("Login", {"Username": "dialer", "Secret": "dialer-secret"}))
    if not done.wait(TIMEOUT):
        raise SystemExit(f"the asterisk-ami client read {counted[0]} of {expected} events in {TIMEOUT:.0f} s")
    elapsed = time.perf_counter() - start
    client.disconnect()
    _check("asterisk-ami client", counted[0], expected)
    return counted[0] / elapsed


def measure_backend(address: tuple[str, int], expected: int) -> float:
    """Events per second through the Asterisk backend's whole ingestion path, database writes included."""
    raise NotImplementedError("the Asterisk backend (dialer/backends/asterisk.py) is not on this branch")


def _check(who: str, got: int, expected: int) -> None:
    if got != expected:
        raise SystemExit(f"{who} counted {got} events, the replay sent {expected}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument(
        "--repeat", type=int, default=100, help="times the captures are replayed (default 100)"
    )
    args = parser.parse_args(argv)
    files = recordings()
    with AmiReplay(files, repeat=args.repeat) as replay:
        result: dict[str, Any] = {
            "events": replay.events,
            "repeat": args.repeat,
            "recordings": [f.name for f in files],
            "socket_read_events_per_second": round(
                socket_read_events_per_second(replay.address, replay.events)
            ),
            "library_parse_events_per_second": round(
                library_parse_events_per_second(replay.address, replay.events)
            ),
        }
        try:
            result["events_per_second"] = round(measure_backend(replay.address, replay.events))
        except NotImplementedError as missing:
            print(f"events_per_second not measured: {missing}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
