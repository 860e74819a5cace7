#!/usr/bin/env python3
"""Benchmark: 250 nurse consoles and 20 supervisor boards live on `carecall serve`, PostgreSQL.

Real `carecall serve` processes (`--processes`, each with its `--share` of the
nurses and its own `--port`; simulated telephony; `--nurses console`) run on a
throwaway PostgreSQL cluster, on a scaled clock at factor 1 that reads a
Tuesday 10:00 in Paris when they start, so the patients are callable whatever
the real hour. Seeded: the nurses and their nurse accounts, the supervisors'
accounts (through dialer.accounts' store, one Argon2 hash at the production
parameters made once and given to all: hashing 270 takes a minute; every
log-in still verifies at the production cost), fictional patients and a
running wave whose tasks are all due.

The clients do what a browser does (httpx, asyncio, `--client-processes`
processes): GET /login for the session cookie and the CSRF token, POST the
log-in, GET the page, open its live stream (`sse-connect`) with
`Accept: text/event-stream`, and post as htmx does (`X-CSRF-Token`,
`HX-Request`). A nurse presses "ready"; when her call appears she confirms the
identity, talks `--talk-seconds`, hangs up and records "reached"; the dialer
makes her ready again. Boards only watch.

Measured, on the wall clock all processes share (the serve's scaled clock is
converted to wall time with ScaledClock.real_at):

- console: from the instant the dialer marked a call connected (her stored
  presence's `since` when she went on call, carried by the console's `state`
  event) to the instant her console's stream delivered the call panel with the
  patient (the `call` event);
- board: from a nurse's state change (her presence's `since`, carried by the
  board's row as `data-since`) to the instant each board's stream delivered the
  `nurses` table or `nurse-<id>` row showing it. A change overtaken by the next one before the
  board was pushed (the nurses' rows are pushed at most every 50 ms) is not counted; the
  next one is.

Only changes inside the measured window (after `--warmup` seconds) count.
The client's own load is reported (CPU seconds per wall second, how late its
event loop ran a 20 ms timer), so a slow client shows rather than hides.

    .venv/bin/python scripts/bench_consoles.py [--consoles 250] [--boards 20] [--seconds 120]
        [--processes 1] [--client-processes 1] [--database-url URL] [--json PATH]

Prints JSON; exits 1 when a target is missed. Target (issue 12): p99 under
300 ms for both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import http.cookiejar
import multiprocessing
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _benchdata import bulk_load_patients, emit, load_average, running_wave
from _pgcluster import add_database_arguments, bench_database, libpq_conninfo

from campaign import calendar as cal
from campaign import migrate, services
from campaign.clock import ScaledClock, VirtualClock
from campaign.db import make_engine, session_factory
from campaign.logs import configure_logging
from campaign.policy import Tier, load_policy
from campaign.synthetic import generate_nurses
from dialer.accounts import Role
from dialer.accounts import store as account_store
from dialer.accounts.passwords import hash_password

ROOT = Path(__file__).resolve().parents[1]
CARECALL = str(Path(sys.executable).parent / "carecall")
DAY = date(2027, 1, 12)  # a Tuesday, no holiday anywhere in metropolitan France
AT = dtime(10, 0)  # Paris
TARGET_P99_MS = 300.0
PASSWORD = "bench-consoles-password"
LOOP_TICK = 0.02  # the client's event-loop lag probe


def log(msg: str) -> None:
    print(f"[bench_consoles {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in seconds]
    return {
        "count": len(ms),
        "p50": round(percentile(ms, 50) or 0, 1),
        "p90": round(percentile(ms, 90) or 0, 1),
        "p99": round(percentile(ms, 99) or 0, 1),
        "max": round(max(ms), 1) if ms else None,
    }


# ---------------------------------------------------------------- set-up


def prepare(url: str, consoles: int, boards: int, tasks: int, seed: int) -> dict[str, Any]:
    """Nurses with accounts, supervisors, patients (one task each, all due) in a running wave."""
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    now = clock.now()
    engine = make_engine(url)
    migrate.upgrade(engine)
    policy = load_policy()
    ctx = services.Context(session_factory(engine), policy, clock)
    with ctx.sessions() as s:
        staff = generate_nurses(consoles, seed=seed)
        s.add_all(staff)
        s.commit()
    loaded = bulk_load_patients(
        url,
        tasks,
        staff=staff,
        policy=policy,
        today=DAY,
        now=now,
        seed=seed,
        overseas=False,
        all_enrolled=True,
        windows=False,
    )
    services.sync_themes(ctx)
    with ctx.sessions() as s:
        wave_id = running_wave(s, DAY, now, tasks)
        s.commit()
    with psycopg.connect(libpq_conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO call_task (wave_id, patient_id, kind, status, tier, priority, planned_day, "
            "not_before, deadline, theme_code, attempts, created_at) "
            "SELECT %(wave)s, p.id, 'wave', 'pending', p.tier, t.priority, %(day)s, "
            "%(due)s - (p.id %% 600) * interval '1 second', %(deadline)s, 'adherence', 0, %(now)s "
            "FROM patient p JOIN unnest(%(tiers)s::text[], %(priorities)s::int[]) AS t(tier, priority) "
            "ON t.tier = p.tier ORDER BY p.id",
            {
                "tiers": [tier.value for tier in Tier],
                "priorities": [policy.tiers[tier].priority for tier in Tier],
                "wave": wave_id,
                "day": DAY,
                "due": now - timedelta(minutes=1),
                "deadline": now + timedelta(days=29),
                "now": now,
            },
        )
        conn.commit()
    # the accounts through dialer.accounts' store, with one Argon2 hash at the production parameters
    # made once: 270 hashes take a minute here; each log-in still verifies at the production cost
    started = time.perf_counter()
    hashed = hash_password(PASSWORD)
    nurses = [f"inf{i:04d}" for i in range(len(staff))]
    supervisors = [f"sup{i:03d}" for i in range(boards)]
    with ctx.sessions() as s:
        for username, n in zip(nurses, staff, strict=True):
            account_store.add_account(s, username, Role.nurse.value, n.id, hashed, now)
        for username in supervisors:
            account_store.add_account(s, username, Role.supervisor.value, None, hashed, now)
        s.commit()
    accounts_s = time.perf_counter() - started
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    engine.dispose()
    return {
        "patients": loaded,
        "tasks": tasks,
        "accounts": len(nurses) + len(supervisors),
        "accounts_s": round(accounts_s, 1),
        "nurse_users": nurses,
        "supervisor_users": supervisors,
    }


# ---------------------------------------------------------------- the serve processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Serve:
    """One `carecall serve` process, as an operator starts it."""

    k: int
    n: int
    url: str
    clock: str
    logs: Path
    port: int = field(default_factory=free_port)
    p: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, secret_key: str) -> None:
        env = {
            **os.environ,
            "CARECALL_DATABASE_URL": self.url,
            "CARECALL_SECRET_KEY": secret_key,
            "CARECALL_LOG_FORMAT": "json",
            "CARECALL_LOG_LEVEL": "warning",
        }
        out = (self.logs / f"serve-{self.k}.log").open("wb")
        self.p = subprocess.Popen(
            [
                CARECALL,
                "serve",
                "--worker",
                f"bench-{self.k}",
                "--share",
                f"{self.k}/{self.n}",
                "--clock",
                self.clock,
                "--nurses",
                "console",
                "--telephony",
                "simulated",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def wait_listening(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.p is not None
            if self.p.poll() is not None:
                raise RuntimeError(f"serve {self.k} exited with {self.p.returncode}; see {self.logs}")
            try:
                if httpx.get(self.base + "/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve {self.k} did not listen within {timeout} s; see {self.logs}")

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


# ---------------------------------------------------------------- the browsers


CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
SSE_CONNECT = re.compile(rb'sse-connect="([^"]+)"')
CALL_CONNECTED = re.compile(rb"/console/calls/(\d+)/identity")
STATE = re.compile(rb'class="state state-([a-z_]+)"')
SINCE = re.compile(rb'data-since="([^"]+)"')
ROW = re.compile(rb'<tr data-nurse="(\d+)" data-version="\d+" data-since="([^"]*)" class="status-(\w+)"')
EVENT = re.compile(rb"^event: ?(.*)$", re.M)
NUMBER = re.compile(r"/\d+/")


@dataclass
class Window:
    """Wall-clock seconds (epoch) of the run's phases, the same for every client process."""

    measure_from: float
    measure_until: float
    stop_at: float


@dataclass
class Record:
    """What one client process saw."""

    window: Window | None = None
    console: list[float] = field(default_factory=list)  # seconds, one per connected call
    board: list[float] = field(default_factory=list)  # seconds, one per (change, board)
    board_seen: dict[tuple[int, str], list[float]] = field(default_factory=dict)  # change -> delays
    board_by_state: dict[str, list[float]] = field(default_factory=dict)  # the state the row shows -> delays
    connected: int = 0  # calls connected in the window whose console showed them
    unmatched: int = 0  # call panels whose connection instant never came
    posts: dict[str, int] = field(default_factory=dict)  # "path status" -> count
    stream_bytes: int = 0
    errors: int = 0
    loop_lag: list[float] = field(default_factory=list)  # inside the window
    login_s: float = 0.0
    cpu_s: float = 0.0  # inside the window
    wall_s: float = 0.0
    serve_cpu_s: list[float] = field(default_factory=list)  # each serve process, inside the window
    machine_busy: float | None = None  # share of the machine's CPU time busy inside the window
    nurses_fragment_kib: list[float] = field(default_factory=list)


class Browser:
    """One person's browser: her session cookie and CSRF token, requests as htmx sends them."""

    def __init__(self, http: httpx.AsyncClient, base: str, username: str, rec: Record) -> None:
        self.http, self.base, self.username, self.rec = http, base, username, rec
        self.cookie = ""
        self.csrf = ""

    def _keep_cookie(self, r: httpx.Response) -> None:
        # the cookie is Secure: a browser sends it back to http://127.0.0.1, a cookie jar would not
        for value in r.headers.get_list("set-cookie"):
            self.cookie = value.split(";", 1)[0]

    async def log_in(self) -> None:
        r = await self.http.get(self.base + "/login")
        self._keep_cookie(r)
        m = CSRF.search(r.content)
        assert m, "no CSRF token on the log-in page"
        form = {"username": self.username, "password": PASSWORD, "csrf_token": m[1].decode()}
        r = await self.http.post(self.base + "/login", data=form, headers={"cookie": self.cookie})
        if r.status_code != 303:
            raise RuntimeError(f"{self.username}: log-in answered {r.status_code}")
        self._keep_cookie(r)

    async def open(self, home: str) -> str:
        """The page; returns the path of its live stream."""
        r = await self.http.get(self.base + home, headers={"cookie": self.cookie})
        r.raise_for_status()
        csrf, stream = CSRF.search(r.content), SSE_CONNECT.search(r.content)
        assert csrf and stream, f"no CSRF token or no live stream on {home}"
        self.csrf = csrf[1].decode()
        return html.unescape(stream[1].decode())

    async def post(self, path: str, data: dict[str, str] | None = None) -> int:
        r = await self.http.post(
            self.base + path,
            data=data or {},
            headers={"cookie": self.cookie, "x-csrf-token": self.csrf, "hx-request": "true"},
        )
        key = f"{NUMBER.sub('/N/', path)} {r.status_code}"
        self.rec.posts[key] = self.rec.posts.get(key, 0) + 1
        return r.status_code

    async def events(self, path: str, stop_at: float) -> AsyncIterator[tuple[float, str, bytes]]:
        """(receipt wall time, event name, raw event block) as the stream delivers them."""
        headers = {"cookie": self.cookie, "accept": "text/event-stream", "cache-control": "no-cache"}
        async with self.http.stream("GET", self.base + path, headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"{self.username}: {path} answered {r.status_code}")
            buf = b""
            async for chunk in r.aiter_raw():
                t = time.time()
                self.rec.stream_bytes += len(chunk)
                buf += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
                while (end := buf.find(b"\n\n")) >= 0:
                    block, buf = buf[:end], buf[end + 2 :]
                    m = EVENT.search(block)
                    if m is not None:
                        yield t, m[1].strip().decode(), block
                if t > stop_at:
                    return


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far: what everybody else ran shows too."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wall_of(clock: ScaledClock, text: bytes) -> float:
    """An instant the serve wrote on its scaled clock, as wall-clock seconds."""
    return clock.real_at(datetime.fromisoformat(text.decode())).timestamp()


async def nurse(
    browser: Browser, clock: ScaledClock, w: Window, talk: tuple[float, float], rng: random.Random
) -> None:
    stream = await browser.open("/console")
    calls: asyncio.Queue[int] = asyncio.Queue()
    rec = browser.rec

    async def watch() -> None:
        shown: dict[int, float] = {}  # attempt -> when its panel arrived
        waiting: int | None = None  # a call panel whose connection instant comes with the state
        async for t, name, block in browser.events(stream, w.stop_at):
            if name == "call":
                c = CALL_CONNECTED.search(block)
                if c is not None and int(c[1]) not in shown:
                    waiting = int(c[1])
                    shown[waiting] = t
                    calls.put_nowait(waiting)
            elif name == "state" and waiting is not None:
                s, since = STATE.search(block), SINCE.search(block)
                if s is not None and s[1] == b"on_call" and since is not None:
                    at = wall_of(clock, since[1])
                    if w.measure_from <= at < w.measure_until:
                        rec.console.append(shown[waiting] - at)
                        rec.connected += 1
                else:
                    rec.unmatched += 1
                waiting = None

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(rng.uniform(0, 2))  # nurses do not all click at the same instant
        await browser.post("/console/ready")
        while time.time() < w.stop_at:
            try:
                attempt = await asyncio.wait_for(calls.get(), max(0.1, w.stop_at - time.time()))
            except TimeoutError:
                break
            await asyncio.sleep(rng.uniform(0.3, 1.0))  # she reads the identity card
            await browser.post(f"/console/calls/{attempt}/identity", {"confirmed": "yes"})
            await asyncio.sleep(rng.uniform(*talk))
            await browser.post("/console/hangup")
            # the dialer makes her ready again once the outcome is stored
            await browser.post(f"/console/calls/{attempt}/outcome", {"code": "reached", "note": ""})
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


async def board(browser: Browser, clock: ScaledClock, w: Window) -> None:
    stream = await browser.open("/board")
    last: dict[int, bytes] = {}
    rec = browser.rec
    async for t, name, block in browser.events(stream, w.stop_at):
        if name != "nurses" and not (name.startswith("nurse-") and name != "nurse-counts"):
            continue  # the whole table (nurses come or go) or one nurse's row (`nurse-<id>`)
        if len(rec.nurses_fragment_kib) < 1000:
            rec.nurses_fragment_kib.append(len(block) / 1024)
        first = not last  # the whole board as it stands: no change to time
        for nurse_id, since, state in ROW.findall(block):
            n = int(nurse_id)
            if last.get(n) == since:
                continue
            last[n] = since
            if first or not since:
                continue
            at = wall_of(clock, since)
            if w.measure_from <= at < w.measure_until:
                rec.board.append(t - at)
                rec.board_by_state.setdefault(state.decode(), []).append(t - at)
                rec.board_seen.setdefault((n, since.decode()), []).append(t - at)


async def probe_loop(rec: Record, w: Window) -> None:
    """How late the client's own event loop runs a timer: a busy client would delay what it times."""
    while (now := time.time()) < w.stop_at:
        t = time.perf_counter()
        await asyncio.sleep(LOOP_TICK)
        if w.measure_from <= now < w.measure_until:
            rec.loop_lag.append(time.perf_counter() - t - LOOP_TICK)


def new_client() -> httpx.AsyncClient:
    """One browser's HTTP client; its cookie goes by hand (a cookie jar keeps a Secure cookie from
    http://127.0.0.1, which a browser sends)."""
    jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # idle connections are dropped before uvicorn's keep-alive (5 s) closes them under a request
    limits = httpx.Limits(max_connections=10, keepalive_expiry=2.0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, read=None), cookies=jar)


async def run_clients_async(job: ClientJob) -> Record:
    rec = Record()
    clock = ScaledClock.parse(job.clock)
    # each browser its own connections, as a browser has: one pool of 500 connections costs httpcore
    # a scan of them all at every request and every response (most of the client's time)
    clients = [new_client() for _ in range(len(job.nurses) + len(job.boards))]
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)
        people = [
            Browser(c, base, u, rec) for c, (base, u) in zip(clients, job.nurses + job.boards, strict=True)
        ]
        nurses, boards = people[: len(job.nurses)], people[len(job.nurses) :]
        gate = asyncio.Semaphore(4)  # Argon2 at the server: a crowd of log-ins would only queue there

        async def log_in(b: Browser) -> None:
            async with gate:
                await b.log_in()

        started = time.perf_counter()
        await asyncio.gather(*(log_in(b) for b in boards + nurses))
        rec.login_s = time.perf_counter() - started
        log(f"{len(boards) + len(nurses)} browsers logged in in {rec.login_s:.0f} s")
        if job.barrier is not None:  # every client process starts its people at once
            await asyncio.to_thread(job.barrier.wait)
        go = time.time()
        start, end = go + job.warmup, go + job.warmup + job.seconds
        w = rec.window = Window(start, end, end + 2)
        log(f"pages and streams opening, nurses going ready; measured from {time.ctime(start)[11:19]}")

        async def person(coro: Any, b: Browser) -> None:
            try:
                await coro
            except Exception as exc:  # one broken browser is counted, the others go on
                rec.errors += 1
                log(f"{b.username}: {type(exc).__name__}: {exc}")

        async def window_cpu() -> None:
            await asyncio.sleep(max(0.0, w.measure_from - time.time()))
            cpu, wall = time.process_time(), time.time()
            serve0, machine0 = [process_cpu_s(p) for p in job.serve_pids], machine_ticks()
            await asyncio.sleep(max(0.0, w.measure_until - time.time()))
            rec.cpu_s, rec.wall_s = time.process_time() - cpu, time.time() - wall
            rec.serve_cpu_s = [process_cpu_s(p) - c for p, c in zip(job.serve_pids, serve0, strict=True)]
            busy, total = (b - a for a, b in zip(machine0, machine_ticks(), strict=True))
            rec.machine_busy = busy / total if total else None

        tasks = [probe_loop(rec, w), window_cpu()]
        tasks += [person(board(b, clock, w), b) for b in boards]
        tasks += [
            person(nurse(b, clock, w, job.talk, random.Random(job.seed * 10_000 + i)), b)
            for i, b in enumerate(nurses)
        ]
        await asyncio.gather(*tasks)
    return rec


@dataclass
class ClientJob:
    nurses: list[tuple[str, str]]  # (base URL, user name)
    boards: list[tuple[str, str]]
    clock: str  # the serve's --clock, to turn its instants into wall time
    warmup: float
    seconds: float
    talk: tuple[float, float]
    seed: int
    serve_pids: list[int] = field(default_factory=list)  # whose CPU the first client process reports
    barrier: Any = None  # a multiprocessing Barrier when there are several client processes


def client_process(job: ClientJob, results: Any) -> None:
    results.put(asyncio.run(run_clients_async(job)))


def run_clients(jobs: list[ClientJob]) -> list[Record]:
    if len(jobs) == 1:
        return [asyncio.run(run_clients_async(jobs[0]))]
    mp = multiprocessing.get_context("spawn")
    barrier, results = mp.Barrier(len(jobs)), mp.Queue()
    procs = []
    for job in jobs:
        job.barrier = barrier
        p = mp.Process(target=client_process, args=(job, results))
        p.start()
        procs.append(p)
    records = [results.get() for _ in procs]
    for p in procs:
        p.join()
    return records


# ---------------------------------------------------------------- the run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--consoles", type=int, default=250, help="nurse consoles (one nurse each)")
    ap.add_argument("--boards", type=int, default=20, help="supervisor boards")
    ap.add_argument("--seconds", type=float, default=120.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds of calls before the window")
    ap.add_argument("--processes", type=int, default=1, help="`carecall serve` processes (--share K/N)")
    ap.add_argument("--client-processes", type=int, default=1, help="client processes (asyncio each)")
    ap.add_argument("--talk-seconds", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    ap.add_argument("--tasks", type=int, default=30_000, help="patients, one due task each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-logs", action="store_true", help="keep the serve processes' logs")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)
    out: dict[str, Any] = {"benchmark": "consoles", "consoles": args.consoles, "boards": args.boards}
    logs = Path(tempfile.mkdtemp(prefix="carecall-bench-consoles-"))
    with bench_database(args) as db:
        log("seeding")
        setup = prepare(db.url, args.consoles, args.boards, args.tasks, args.seed)
        log(f"seeded: {setup['accounts']} accounts in {setup['accounts_s']} s")
        # the serve's clock: a Tuesday 10:00 in Paris from a few seconds from now, at the wall's pace
        real0 = datetime.now(UTC) + timedelta(seconds=2)
        virtual0 = cal.at_local(DAY, AT, "Europe/Paris")
        spec = f"1:{virtual0.isoformat()}@{real0.isoformat()}"
        serves = [Serve(k, args.processes, db.url, spec, logs) for k in range(1, args.processes + 1)]
        key = secrets.token_urlsafe(48)
        load_before = load_average()
        try:
            for s in serves:
                s.start(key)
            for s in serves:
                s.wait_listening()
            log(f"{len(serves)} serve process(es) listening; the clients log in")
            people_n = [(serves[i % len(serves)].base, u) for i, u in enumerate(setup["nurse_users"])]
            people_b = [(serves[i % len(serves)].base, u) for i, u in enumerate(setup["supervisor_users"])]
            c = args.client_processes
            jobs = [
                ClientJob(
                    people_n[i::c],
                    people_b[i::c],
                    spec,
                    args.warmup,
                    args.seconds,
                    (args.talk_seconds[0], args.talk_seconds[1]),
                    args.seed * 100 + i,
                    [s.p.pid for s in serves if s.p is not None] if i == 0 else [],
                )
                for i in range(c)
            ]
            records = run_clients(jobs)
            log("clients done; the serve processes stop")
        finally:
            for s in serves:
                s.stop()
        w = records[0].window
        assert w is not None
        load_after = load_average()
        with psycopg.connect(libpq_conninfo(db.url)) as conn:
            clock = ScaledClock.parse(spec)
            lo = clock.at(datetime.fromtimestamp(w.measure_from, UTC))
            hi = clock.at(datetime.fromtimestamp(w.measure_until, UTC))
            answered, attempts = conn.execute(
                "SELECT count(*) FILTER (WHERE answered_at >= %s AND answered_at < %s), count(*) "
                "FROM call_attempt",
                (lo, hi),
            ).fetchone()  # type: ignore[misc]
        out["database"] = db.settings
    console = [x for r in records for x in r.console]
    boards = [x for r in records for x in r.board]
    seen: dict[tuple[int, str], list[float]] = {}
    for r in records:
        for k, v in r.board_seen.items():
            seen.setdefault(k, []).extend(v)
    every_board = [max(v) for v in seen.values() if len(v) == args.boards]
    lag = [x for r in records for x in r.loop_lag]
    posts: dict[str, int] = {}
    for r in records:
        for path, n in r.posts.items():
            posts[path] = posts.get(path, 0) + n
    out.update(
        {
            "calls_connected": sum(r.connected for r in records),
            "console_latency_ms": summary_ms(console),
            "board_latency_ms": summary_ms(boards),
            "board_changes": len(seen),
            "board_changes_seen_by_every_board": len(every_board),
            "board_latency_until_every_board_ms": summary_ms(every_board),
            # by the state the row shows: a change the dialer makes on a timer (ready after wrap-up)
            # and one it makes on an event (on a call) travel differently
            "board_latency_by_state_ms": {
                state: summary_ms([x for r in records for x in r.board_by_state.get(state, [])])
                for state in sorted({k for r in records for k in r.board_by_state})
            },
        }
    )
    out["targets"] = {
        "console_p99_under_300_ms": bool(console) and summary_ms(console)["p99"] < TARGET_P99_MS,
        "board_p99_under_300_ms": bool(boards) and summary_ms(boards)["p99"] < TARGET_P99_MS,
    }
    out["met"] = all(out["targets"].values())
    out["checks"] = {
        "answered_in_window_per_database": answered,
        "attempts": attempts,
        "call_panels_without_connection_instant": sum(r.unmatched for r in records),
        "client_errors": sum(r.errors for r in records),
        "posts": dict(sorted(posts.items())),
    }
    out["client"] = {
        "processes": args.client_processes,
        "log_in_s": [round(r.login_s, 1) for r in records],
        "cpu_per_wall_second": [round(r.cpu_s / r.wall_s, 2) if r.wall_s else None for r in records],
        "stream_mib": round(sum(r.stream_bytes for r in records) / 2**20, 1),
        "board_nurses_fragment_kib_p50": round(
            percentile([x for r in records for x in r.nurses_fragment_kib], 50) or 0, 1
        ),
        "loop_lag_ms": summary_ms(lag),
    }
    out["machine"] = {
        "cpus": os.cpu_count(),
        "busy_share_in_window": round(records[0].machine_busy or 0, 2),
        "serve_cpu_per_wall_second": [round(x / records[0].wall_s, 2) for x in records[0].serve_cpu_s],
        "load_average_before_after": [load_before, load_after],
        "python": sys.version.split()[0],
    }
    out["settings"] = {
        "serve_processes": args.processes,
        "clock": f"scaled, factor 1, from {virtual0.isoformat()} (Tuesday 10:00 Paris)",
        "telephony": "simulated (config/simulation.toml)",
        "warmup_s": args.warmup,
        "measured_s": args.seconds,
        "talk_s": list(args.talk_seconds),
        "setup": {k: v for k, v in setup.items() if not k.endswith("_users")},
    }
    if args.keep_logs:
        out["settings"]["logs"] = str(logs)
    else:
        shutil.rmtree(logs, ignore_errors=True)
    emit(out, args.json)
    return 0 if out["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
