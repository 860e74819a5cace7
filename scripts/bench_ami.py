#!/usr/bin/env python3
"""Benchmark: AMI events ingested per second by the production dialer on the Asterisk backend.

The production path, end to end: a `Dialer` (dialer/loop.py, deferred, as
`carecall serve` runs it) on an `AsteriskBackend` (the shipped
config/telephony.toml settings, pointed at a local replay server) claims and
dials `--calls` calls for as many ready nurses, for real: attempts stored
before the Originates, each nurse's phone brought into her conference first
(the replay answers each leg's Originate with the recorded leg, so the
backend hears her join as it would on a switch). The replay server
(dialer.testing.ami_call_replay) learns the calls from those Originates and,
once all are placed, writes for each one a recorded nurse-conference flow
(`ami-transcript-conf-*`), rewritten with that call's ActionID, ChannelId,
OtherChannelId, channels and variables, and cut to the `Events: call,user`
classes the backend logs in with, as a real Asterisk does: all the flows
back to back, as fast as the socket takes them. The mix, patient by patient
in turn: a person, a "not sure" verdict (a person), a machine, a person who
hangs up during the detector, busy, no answer, congestion, unallocated, and
a person whose nurse is gone (the apology).

Timed: from the replay's first byte until every attempt is closed in the
database and every answered call's outcome stored. Meanwhile, as during the
set-up, the bench's loop is serve's (dialer/serve.py): a step
(`dialer.step.step`) whenever the inbox holds events, else a wait on the
inbox, the heartbeat every 2 s and the look for forwarded events every
0.25 s. Each event goes through the library's reader thread, carecall's
framing, parser and correlator, the inbox, the line tracker, and the
flushes' batched transactions (answers, results with their retries,
outcomes, line records). A nurse connected to her patient records "reached"
at once; it is stored when the call's end puts her in wrap-up (the recorded
flow ends the call: the bench sends no Hangup, whose answer on a switch would
be another flow). `events_per_second` = events the replay sent / that time.

Afterwards the database is read: every attempt must be completed with the
result its flow stands for (counted by kind), every answered call must have
its outcome; and the run must have kept one AMI connection, heard no event
for an unknown call and dialed nothing more. The exit code is 1 when one of
these or a target fails. The floors read the very bytes the backend was
sent, in the same run, each on a fresh connection:
- socket_read_events_per_second: a raw socket reader splitting packets at
  `\\r\\n\\r\\n` and counting the events, nothing else;
- library_parse_events_per_second: the bare `asterisk-ami` 0.1.7 AMIClient
  (its defaults) with one event listener counting events.

    .venv/bin/python scripts/bench_ami.py [--calls 4000] [--postgresql | --database-url URL] [--json PATH]

SQLite (a file in a temporary directory) by default. Prints JSON on stdout,
progress on stderr. Target (issue "Real telephony"): events_per_second at
least 40,000 and at least a third of library_parse_events_per_second.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from _benchdata import emit, load_average, peak_rss_mib, running_wave
from asterisk.ami import Action, AMIClient
from sqlalchemy import func, insert, select

from campaign import calendar as cal
from campaign import migrate, services
from campaign.clock import VirtualClock
from campaign.db import session_factory
from campaign.logs import configure_logging
from campaign.model import ATTEMPT, OUTCOME, PATIENT, TASK, Nurse
from campaign.policy import Tier, load_policy
from campaign.states import AttemptResult, OutcomeCode
from campaign.synthetic import FICTION_NUMBERS, fiction_number
from dialer import lines
from dialer.backends.asterisk import AsteriskBackend, AsteriskSettings, load_asterisk_settings
from dialer.backends.asterisk.settings import SECRET_VARIABLE, USER_VARIABLE
from dialer.calls import LiveCall
from dialer.loop import Dialer
from dialer.serve import FORWARDED_REAL_SECONDS, IDLE_SLEEP, dialer_engine
from dialer.simulation import voicemail_text
from dialer.step import settle_gc, step
from dialer.testing.ami_call_replay import NURSE_GONE, AmiCallReplay
from dialer.testing.ami_replay import AmiReplay

DAY = date(2027, 1, 12)  # a Tuesday, no holiday anywhere in metropolitan France
AT = dtime(10, 0)  # Paris; the virtual clock does not move
HEARTBEAT_REAL_SECONDS = 2.0  # serve's default
WORKER = "bench-ami"
TARGET_EVENTS_PER_S = 40_000
LOGIN = b"Action: Login\r\nActionID: bench\r\nUsername: dialer\r\nSecret: dialer-secret\r\n\r\n"
TIMEOUT = 120.0
# each flow of the mix and the attempt result it stands for
MIX: dict[str, AttemptResult] = {
    "conf-human": AttemptResult.answered,
    "conf-notsure": AttemptResult.answered,
    "conf-machine": AttemptResult.machine,
    "conf-hangup-quick": AttemptResult.hung_up,
    "conf-busy": AttemptResult.busy,
    "conf-noanswer": AttemptResult.no_answer,
    "congestion": AttemptResult.failed,
    "unallocated": AttemptResult.failed,
    NURSE_GONE: AttemptResult.no_nurse,
}


def progress(message: str) -> None:
    print(f"bench_ami: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- set-up


def prepare(ctx: services.Context, calls: int) -> dict[str, str]:
    """`calls` senior nurses with a phone, `calls` patients with fiction numbers, each with a task due
    now in a running wave. Returns each patient's number (E.164) -> the flow its call will play."""
    now = ctx.clock.now()
    flows = list(MIX)
    numbers = {"+33" + fiction_number(i)[1:]: flows[i % len(flows)] for i in range(calls)}
    shifts = [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(5)]
    services.sync_themes(ctx)
    with ctx.sessions() as s:
        s.execute(
            insert(Nurse),
            [
                {
                    "code": f"B{i:05d}",
                    "display_name": f"Infirmière {i}",
                    "level": "senior",
                    "skills": [],
                    "shifts": shifts,
                    "timezone": "Europe/Paris",
                    "active": True,
                    "phone_endpoint": f"bench-{i:05d}",
                }
                for i in range(calls)
            ],
        )
        patients = s.execute(
            insert(PATIENT).returning(PATIENT.c.id),
            [
                {
                    "member_id": f"B{i:09d}",
                    "first_name": "Prénom",
                    "last_name": "Nom",
                    "birth_date": date(1950, 1, 1),
                    "sex": "F",
                    "phone": number,
                    "flagged_numbers": [],
                    "postal_code": "75011",
                    "city": "Paris",
                    "departement": "75",
                    "timezone": "Europe/Paris",
                    "pathologies": "|diabetes|",
                    "tier": Tier.medium.value,
                    "status": "enrolled",
                    "consent": True,
                    "enrolled_on": date(2024, 1, 1),
                }
                for i, number in enumerate(numbers)
            ],
        ).all()
        wave_id = running_wave(s, DAY, now, calls)
        priority = ctx.policy.tiers[Tier.medium].priority
        s.execute(
            insert(TASK),
            [
                {
                    "wave_id": wave_id,
                    "patient_id": patient_id,
                    "kind": "wave",
                    "status": "pending",
                    "tier": Tier.medium.value,
                    "priority": priority,
                    "planned_day": DAY,
                    "not_before": now - timedelta(minutes=1),
                    "deadline": now + timedelta(days=29),
                    "theme_code": "adherence",
                    "attempts": 0,
                    "created_at": now,
                }
                for (patient_id,) in patients
            ],
        )
        s.commit()
    return numbers


def asterisk_settings(address: tuple[str, int]) -> AsteriskSettings:
    """The shipped [asterisk] settings, pointed at the replay; no audit falls inside a run (the replay
    lists no channels: an audit would find every call gone)."""
    shipped = load_asterisk_settings(environ={USER_VARIABLE: "dialer", SECRET_VARIABLE: "dialer-secret"})
    return shipped.model_copy(update={"host": address[0], "port": address[1], "audit_interval_seconds": 3600})


# ---------------------------------------------------------------- the production dialer


@dataclass
class ServeLoop:
    """`carecall serve`'s loop (dialer/serve.py) around a dialer on a live backend: a step whenever
    the inbox holds events, else a wait on it; the heartbeat and the look for events other processes
    received for this one, each at serve's pace. Set-up and timed run share it, so its pace runs on."""

    dialer: Dialer
    ctx: services.Context
    worker: str
    next_beat: float = 0.0
    next_forwarded: float = 0.0

    def run_until(self, done: Callable[[], bool], what: str) -> None:
        dialer, inbox = self.dialer, self.dialer.inbox
        deadline = time.monotonic() + TIMEOUT
        while not done():
            t = time.monotonic()
            if t > deadline:
                raise SystemExit(f"{what} not done after {TIMEOUT:.0f} s: {dialer.stats}")
            if t >= self.next_beat:
                dialer.heartbeat()
                self.next_beat = t + HEARTBEAT_REAL_SECONDS
            if t >= self.next_forwarded:
                with self.ctx.sessions() as s:  # none here: one process, and AMI events reach it alone
                    forwarded = lines.events_for_worker(s, self.worker)
                    if forwarded:
                        s.commit()
                for e in forwarded:
                    inbox.put(e)
                self.next_forwarded = t + FORWARDED_REAL_SECONDS
            if len(inbox):
                step(dialer, tick=False, sweep=False, collect_garbage=True)
                continue
            inbox.wait(IDLE_SLEEP)


def measure_backend(url: str, calls: int) -> tuple[dict[str, Any], bytes, int]:
    """Events per second through the dialer on the Asterisk backend, database writes included.

    Returns the figures, and the stream the backend was sent with its number of events (for the floors).
    """
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    engine = dialer_engine(url)  # as `serve` makes it
    migrate.upgrade(engine)
    ctx = services.Context(session_factory(engine), load_policy(), clock)
    started = time.perf_counter()
    numbers = prepare(ctx, calls)
    setup = {"rows_s": round(time.perf_counter() - started, 2)}
    progress(f"{calls} nurses, patients and tasks stored in {setup['rows_s']} s")
    with AmiCallReplay(numbers.__getitem__) as replay:
        backend = AsteriskBackend(asterisk_settings(replay.address), clock)
        dialer: Dialer

        def connected(nurse_id: int, _call: LiveCall) -> None:
            dialer.submit_outcome(nurse_id, OutcomeCode.reached)  # stored once the call's end comes

        dialer = Dialer(ctx, backend, WORKER, voicemail_text(), on_connected=connected, deferred=True)
        loop = ServeLoop(dialer, ctx, WORKER)
        try:
            started = time.perf_counter()
            dialer.start()
            if not backend.wait_connected(10):
                raise SystemExit("the Asterisk backend did not log in to the replay")
            dialer.tick()
            settle_gc()  # as `serve` does
            for nurse_id in dialer.nurses:
                dialer.nurse_ready(nurse_id)  # her phone is originated into her conference
            loop.run_until(lambda: dialer.stats["dials"] >= calls, f"dialing {calls} calls")
            setup["legs_and_dials_s"] = round(time.perf_counter() - started, 2)
            progress(f"{calls} nurse legs up and {calls} calls dialed in {setup['legs_and_dials_s']} s")
            replay.play(calls)
            before = dict(dialer.stats)
            loop.run_until(lambda: not dialer.calls, "ingestion")  # every attempt closed, outcomes stored
            ended = time.perf_counter()
            assert replay.started_at is not None
            elapsed = ended - replay.started_at
            progress(f"{replay.events} events ingested in {elapsed:.2f} s")
            streamed = replay.wait_streamed(TIMEOUT)
            out: dict[str, Any] = {
                "events": replay.events,
                "calls": calls,
                "flows": dict(replay.scenarios),
                "elapsed_s": round(elapsed, 3),
                "events_per_second": replay.events / elapsed,
                "stream_bytes": len(replay.stream),
                "stream_written_s": round(replay.finished_at - replay.started_at, 3)
                if streamed and replay.finished_at is not None
                else None,
                "flushes": dialer.stats["flushes"] - before["flushes"],
                "dials_while_ingesting": dialer.stats["dials"] - before["dials"],
                "stray_events": dialer.stats["stray_events"],
                "ami_connections": backend.connections,
                "actions_received": dict(replay.actions),
                "peak_rss_mib": peak_rss_mib(),
                "setup": setup,
            }
        finally:
            backend.close()
            stream, events = replay.stream, replay.events
    out["database_checks"] = database_checks(ctx, numbers)
    engine.dispose()
    return out, stream, events


def database_checks(ctx: services.Context, numbers: dict[str, str]) -> dict[str, Any]:
    """Every attempt completed with the result its flow stands for; every answered call has its outcome."""
    with ctx.sessions() as s:
        attempts = s.execute(select(ATTEMPT.c.number, ATTEMPT.c.state, ATTEMPT.c.result)).all()
        outcomes = s.execute(select(func.count()).select_from(OUTCOME)).scalar_one()
        tasks = dict(s.execute(select(TASK.c.status, func.count()).group_by(TASK.c.status)).all())
    wrong: Counter[str] = Counter()
    for number, _state, result in attempts:
        expected = MIX[numbers[number]]
        if result != expected.value:
            wrong[f"{numbers[number]}: {result} instead of {expected.value}"] += 1
    results = Counter(result for _, _, result in attempts)
    expected_results = Counter(MIX[flow].value for flow in numbers.values())
    answered = results.get(AttemptResult.answered.value, 0)
    return {
        "attempts": len(attempts),
        "attempts_not_completed": sum(1 for _, state, _ in attempts if state != "completed"),
        "results": dict(sorted(results.items(), key=str)),
        "expected_results": dict(sorted(expected_results.items())),
        "wrong_results": dict(wrong),
        "outcomes": outcomes,
        "answered_without_outcome": answered - outcomes,
        "tasks": dict(sorted(tasks.items())),
        "ok": len(attempts) == len(numbers)
        and not wrong
        and all(state == "completed" for _, state, _ in attempts)
        and outcomes == answered,
    }


# ---------------------------------------------------------------- the floors


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


def _check(who: str, got: int, expected: int) -> None:
    if got != expected:
        raise SystemExit(f"{who} counted {got} events, the replay sent {expected}")


# ---------------------------------------------------------------- the run


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, Any]]]:
    """SQLite in a temporary directory, or a fresh PostgreSQL database (scripts/_pgcluster.py)."""
    if args.postgresql or args.database_url:
        from _pgcluster import bench_database

        with bench_database(args) as db:
            yield db.url, {"backend": "postgresql", **db.settings}
        return
    with tempfile.TemporaryDirectory(prefix="carecall-bench-ami-") as work:
        yield f"sqlite:///{Path(work) / 'bench.db'}", {"backend": "sqlite", "file": "temporary"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument(
        "--calls", type=int, default=4000, help="calls dialed and replayed, one per nurse (default 4000)"
    )
    parser.add_argument(
        "--postgresql", action="store_true", help="a throwaway PostgreSQL cluster instead of SQLite"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (role with CREATEDB): a fresh database is created there and dropped after",
    )
    parser.add_argument("--pg-fsync", action="store_true", help="throwaway cluster only: keep fsync on")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= FICTION_NUMBERS:
        parser.error(f"--calls must be between 1 and {FICTION_NUMBERS} (one fiction number per patient)")
    configure_logging("json", "warning", stream=sys.stderr)
    load_before = load_average()
    with database(args) as (url, db_settings):
        backend, stream, events = measure_backend(url, args.calls)
    progress("floors on the same stream")
    with AmiReplay.of_stream(stream, events) as floor:
        socket_rate = socket_read_events_per_second(floor.address, events)
        library_rate = library_parse_events_per_second(floor.address, events)
    rate = backend.pop("events_per_second")
    checks = backend["database_checks"]
    result: dict[str, Any] = {
        "benchmark": "ami_ingestion",
        "events": events,
        "events_per_second": round(rate),
        "library_parse_events_per_second": round(library_rate),
        "socket_read_events_per_second": round(socket_rate),
        "ratio_to_library": round(rate / library_rate, 3),
        "database": db_settings,
        "backend": backend,
        "load_average_before_after": [load_before, load_average()],
    }
    result["targets"] = {
        "events_per_second_at_least_40000": rate >= TARGET_EVENTS_PER_S,
        "at_least_a_third_of_the_library": rate * 3 >= library_rate,
        "every_attempt_as_its_flow_says": checks["ok"],
        "one_ami_connection_no_stray_event_no_extra_dial": backend["ami_connections"] == 1
        and backend["stray_events"] == 0
        and backend["dials_while_ingesting"] == 0,
    }
    emit(result, args.json)
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
