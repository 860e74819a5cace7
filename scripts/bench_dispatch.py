#!/usr/bin/env python3
"""Benchmark: 250 nurse loops claiming, "calling" and closing tasks for 60 s on PostgreSQL.

Each loop is a thread that, until the time is up: takes the next candidate task
id, claims it through the production path (campaign.services.claim_and_start
with its own worker id: conditional UPDATE of the task, lock on the patient, the
rules, the attempt stored before any dial), "calls" with zero talk time, and
closes the attempt: every other task as answered (services.mark_answered then
services.record_outcome "reached": the task is done) and the others unanswered
(services.finish_unanswered "no_answer": the task waits for its retry, hours
later). Claim latency is the wall time of claim_and_start, as a nurse would wait
for it. Afterwards the database is checked for double claims: tasks with more
than one attempt, patients dialed more than once, and patients with two
attempts in flight; ids claimed twice in the run are counted too.

Candidate ids come the way the dialer gets them: store.dialable_candidates
(pending tasks of running waves, due, with the patients' rule data), loaded in
batches into a queue shared by the loops of one process (the dialer's in-memory
hopper); nurse routing (tier, skills, référent) is in-memory and not what is
measured here, so every loop takes the next id. Several processes (--processes)
each load their own queue, as several dialer processes would, and then compete
for the same tasks (--partition-tasks gives each its own share of task ids).

Two paths are measured (--path): "services", the production path above, and
"lean", the path proposed for production when the first is too heavy: the same
contract and the same rules, written as store-level functions on the loop's own
psycopg connection (lean_claim_and_start: three round trips instead of eight;
lean_finish_unanswered, lean_mark_answered, lean_record_reached: one each, the
service taking over whenever the outcome is anything but the common case). Each
path is also run alone with one loop (--unloaded-seconds), for the claim's own
cost without queueing.

The floor, on the same table with the same number of loops, is a bare claim
loop: each loop runs, in autocommit,
    UPDATE call_task SET status = 'in_progress', claimed_by = …, lease_until = …,
           attempts = attempts + 1
    WHERE id = (SELECT id FROM call_task WHERE status = 'pending' AND not_before <= …
                ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
(the tasks are reset to pending first).

Connections: one per loop by default (250 backends); --db-connections N gives
the loops of a process N connections to share, handed out first come first
served (an unfair pool starves some loops for the whole run and flatters every
percentile but the maximum).

Threads, not asyncio: the production path (campaign.services) is synchronous
SQLAlchemy, so it can only be driven from threads; the floor uses threads too,
so both sides pay the same scheduling. On 2 cores one Python process has one
core's worth of Python (the GIL); --processes spreads the loops over processes.

Setup: a weekday at 10:00 in Paris on a virtual clock that does not move,
metropolitan patients only (no overseas zones), all enrolled and consenting,
no preferred window, one task per patient (the minimum gap between two dials
of a patient would otherwise refuse the second), all tasks pending and due in
a running wave. --tasks defaults to 600,000: more than 60 s of the floor uses.

With 250 loops and zero talk time every loop is always busy, so by Little's law
the mean time round one loop is 250 / (loops completed per second): the claim
latency percentiles are mostly queueing (the JSON gives that bound), and a p99
under 25 ms at 250 loops needs well over 10,000 loops per second.

    .venv/bin/python scripts/bench_dispatch.py [--loops 250] [--seconds 60] [--path both]
        [--processes 1] [--db-connections 0] [--database-url URL]

Prints JSON. Target (issue "National scale"): at least 1,000 claims per second,
p99 claim latency under 25 ms, zero double claims.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import psycopg
from _benchdata import bulk_load_patients, load_average, peak_rss_mib
from _pgcluster import add_database_arguments, bench_database, libpq_conninfo
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from campaign import calendar as cal
from campaign import migrate, rules, services, store
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.errors import ClaimLost
from campaign.logs import configure_logging
from campaign.model import Mailing, Wave
from campaign.policy import Policy, Tier, load_policy
from campaign.states import (
    AttemptResult,
    AttemptState,
    EnrolmentStatus,
    OutcomeCode,
    TaskKind,
    TaskStatus,
    WaveStatus,
)
from campaign.synthetic import generate_nurses

DAY = date(2027, 1, 12)            # a Tuesday, no holiday anywhere in metropolitan France
AT = dtime(10, 0)                  # Paris
TARGET_CLAIMS_PER_S = 1000
TARGET_P99_MS = 25.0


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def latency_summary(latencies_s: list[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50) or 0, 2),
        "p90_ms": round(percentile(ms, 90) or 0, 2),
        "p99_ms": round(percentile(ms, 99) or 0, 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
    }


# ---------------------------------------------------------------- set-up


def prepare(url: str, tasks: int, nurses: int, seed: int) -> dict[str, Any]:
    """Nurses, patients (one per task), a running wave and its tasks, all due now."""
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    now = clock.now()
    engine = make_engine(url)
    migrate.upgrade(engine)
    ctx = services.Context(session_factory(engine), load_policy(), clock)
    with ctx.sessions() as s:
        staff = generate_nurses(nurses, seed=seed)
        s.add_all(staff)
        s.commit()
        ids = [n.id for n in staff if n.id is not None]
        seniors = [n.id for n in staff if n.id is not None and n.level == "senior"]
    loaded = bulk_load_patients(
        url, tasks, nurse_ids=ids, senior_ids=seniors, today=DAY, now=now, seed=seed,
        overseas=False, all_enrolled=True, windows=False,
    )
    services.sync_themes(ctx)
    with ctx.sessions() as s:
        mailing = Mailing(theme_code="adherence", segment="all", sent_on=DAY - timedelta(days=7),
                          arrives_on=DAY, recipients=tasks, created_at=now)
        s.add(mailing)
        s.flush()
        assert mailing.id is not None
        wave = Wave(mailing_id=mailing.id, status=WaveStatus.running, plan_after=now,
                    window_start=DAY, window_end=DAY + timedelta(days=28),
                    deadline=now + timedelta(days=30), launched_at=now, planned_at=now)
        s.add(wave)
        s.commit()
        wave_id = wave.id
    started = time.perf_counter()
    with psycopg.connect(libpq_conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO call_task (wave_id, patient_id, kind, status, tier, priority, planned_day, "
            "not_before, deadline, theme_code, attempts, created_at) "
            "SELECT %(wave)s, p.id, 'wave', 'pending', p.tier, "
            "CASE p.tier WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END, %(day)s, "
            "%(due)s - (p.id %% 600) * interval '1 second', %(deadline)s, 'adherence', 0, %(now)s "
            "FROM patient p ORDER BY p.id",
            {"wave": wave_id, "day": DAY, "due": now - timedelta(minutes=1),
             "deadline": now + timedelta(days=29), "now": now},
        )
        conn.execute("ANALYZE")
        conn.commit()
    engine.dispose()
    return {
        "patients": loaded,
        "tasks": tasks,
        "tasks_insert_s": round(time.perf_counter() - started, 2),
        "wave_id": wave_id,
        "nurse_ids": ids,
        "clock": now.isoformat(),
    }


# ---------------------------------------------------------------- carecall's path


class CandidateFeed:
    """The dialer's hopper: due task ids from store.dialable_candidates, shared by this process's loops."""

    def __init__(self, ctx: services.Context, batch: int = 20_000,
                 share: tuple[int, int] = (0, 1)) -> None:
        self.ctx = ctx
        self.batch = batch
        self.share = share           # (k, n): keep the task ids with id % n == k
        self.queue: collections.deque[int] = collections.deque()
        self.seen: set[int] = set()
        self.lock = threading.Lock()
        self.refills = 0
        self.refill_s = 0.0
        self.exhausted = False

    def next_id(self) -> int | None:
        while True:
            try:
                return self.queue.popleft()
            except IndexError:
                pass
            with self.lock:
                if self.queue:
                    continue
                if self.exhausted:
                    return None
                started = time.perf_counter()
                k, n = self.share
                with self.ctx.sessions() as s:
                    rows = store.dialable_candidates(
                        s, self.ctx.clock.now(), exclude=self.seen, limit=self.batch * n
                    )
                fresh = [r.task_id for r in rows if r.task_id not in self.seen and r.task_id % n == k]
                self.seen.update(fresh)
                self.queue.extend(fresh)
                self.refills += 1
                self.refill_s += time.perf_counter() - started
                if not fresh:
                    self.exhausted = True


def run_services_loops(url: str, loops: int, seconds: float, nurse_ids: list[int],
                       worker_prefix: str, db_connections: int = 0,
                       share: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """This process's share of the nurse loops, through campaign.services (the production path)."""
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    # as production builds it (campaign.db.make_engine: pre-ping on); one connection per
    # loop, or a pool of `db_connections` the loops wait for
    if db_connections:
        # the loops take turns (fairly) for the pool's connections
        engine = make_engine(url, poolclass=QueuePool, pool_size=db_connections, max_overflow=0,
                             pool_timeout=300)
        gate: FairGate | None = FairGate(db_connections)
    else:
        engine = make_engine(url, poolclass=QueuePool, pool_size=loops + 4, max_overflow=8)
        gate = None
    turn = gate.held if gate is not None else contextlib.nullcontext
    ctx = services.Context(session_factory(engine), load_policy(), clock)
    feed = CandidateFeed(ctx, share=share)
    stop = threading.Event()
    ready = threading.Barrier(loops + 1)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        worker = f"{worker_prefix}-{index}"
        nurse = nurse_ids[index % len(nurse_ids)]
        latencies: list[float] = []
        claimed: list[int] = []
        lost = refused = answered = unanswered = errors = 0
        if not db_connections:
            with ctx.sessions() as s:    # open this loop's connection before the clock starts
                s.execute(text("SELECT 1"))
        ready.wait()
        n = 0
        while not stop.is_set():
            task_id = feed.next_id()
            if task_id is None:
                break
            started = time.perf_counter()
            try:
                with turn():
                    result = services.claim_and_start(ctx, task_id, nurse, worker)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            if result is None:
                lost += 1
                continue
            if isinstance(result, services.NotDialable):
                refused += 1
                continue
            claimed.append(task_id)
            n += 1
            try:
                if n % 2:
                    with turn():
                        services.mark_answered(ctx, result.attempt_id)
                    with turn():
                        services.record_outcome(ctx, result.attempt_id, OutcomeCode.reached, nurse)
                    answered += 1
                else:
                    with turn():
                        services.finish_unanswered(ctx, result.attempt_id, AttemptResult.no_answer)
                    unanswered += 1
            except Exception:
                errors += 1
        with lock:
            results.append({"latencies": latencies, "claimed": claimed, "lost": lost,
                            "refused": refused, "answered": answered, "unanswered": unanswered,
                            "errors": errors})

    return _drive(loop, loops, seconds, ready, stop, results, feed, engine)


def _drive(loop: Callable[[int], None], loops: int, seconds: float, ready: threading.Barrier,
           stop: threading.Event, results: list[dict[str, Any]], feed: CandidateFeed,
           engine: Any) -> dict[str, Any]:
    """Start the loops, let them run `seconds` once all are connected, merge their figures."""
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(loops)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    cpu = time.process_time()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    timer.cancel()
    engine.dispose()
    return {
        "elapsed_s": elapsed,
        "python_cpu_s": cpu,
        "latencies": [x for r in results for x in r["latencies"]],
        "claimed": [x for r in results for x in r["claimed"]],
        **{k: sum(r[k] for r in results) for k in ("lost", "refused", "answered", "unanswered", "errors")},
        "candidate_refills": feed.refills,
        "candidate_refill_s": feed.refill_s,
        "peak_rss_mib": peak_rss_mib(),
    }



class FairGate:
    """At most `n` holders; waiters are served first come, first served.

    A plain lock or queue lets the same few threads win again and again while others
    starve for the whole run, which flatters every percentile but the maximum.
    """

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self._free = n
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()                    # released by release(): the permit is handed over

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class ConnPool:
    """psycopg connections shared by loops, handed out fairly; the wait for one is latency."""

    def __init__(self, conninfo: str, size: int, autocommit: bool) -> None:
        self.gate = FairGate(size)
        self.free: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        self.all = [psycopg.connect(conninfo, autocommit=autocommit) for _ in range(size)]
        for conn in self.all:
            conn.execute("SELECT 1")
            if not autocommit:
                conn.rollback()
            self.free.put(conn)

    @contextlib.contextmanager
    def take(self) -> Iterator[psycopg.Connection[Any]]:
        with self.gate.held():
            conn = self.free.get()        # a permit guarantees a free connection
            try:
                yield conn
            finally:
                self.free.put(conn)

    def close(self) -> None:
        for conn in self.all:
            conn.close()


# ---------------------------------------------------------------- the proposed lean path


LEAN_CLAIM = """
WITH t AS (
    UPDATE call_task SET status = 'in_progress', claimed_by = %(w)s, lease_until = %(lease)s,
           attempts = attempts + 1
    WHERE id = %(id)s AND status = 'pending' AND not_before <= %(now)s
      AND (wave_id IS NULL OR wave_id IN (SELECT id FROM wave WHERE status = 'running'))
    RETURNING id, patient_id, kind, attempts, tier, deadline
)
SELECT t.patient_id, t.kind, t.attempts, t.tier, t.deadline,
       p.status, p.tier, p.departement, p.timezone, p.preferred_start, p.preferred_end, p.consent,
       p.suspended_until, p.phone, p.phone_alt, p.flagged_numbers, p.next_contact_on
FROM t JOIN patient p ON p.id = t.patient_id
FOR UPDATE OF p
"""
LEAN_HISTORY = (
    "SELECT state, started_at FROM call_attempt WHERE patient_id = %(p)s AND started_at >= %(since)s"
)
LEAN_INSERT_ATTEMPT = (
    "INSERT INTO call_attempt (task_id, patient_id, nurse_id, number, state, started_at, worker, "
    "voicemail_left) VALUES (%(t)s, %(p)s, %(n)s, %(num)s, 'in_flight', %(now)s, %(w)s, false) RETURNING id"
)
LEAN_RELEASE = (
    "UPDATE call_task SET status = %(status)s, claimed_by = NULL, lease_until = NULL, "
    "not_before = coalesce(%(not_before)s, not_before), attempts = attempts - %(undo)s, "
    "closed_at = CASE WHEN %(closing)s THEN %(now)s ELSE closed_at END, "
    "close_reason = CASE WHEN %(closing)s THEN %(reason)s ELSE close_reason END WHERE id = %(t)s"
)


class LeanClaim:
    """What the proposed claim keeps of a claimed task for closing it without re-reading."""

    __slots__ = ("attempt_id", "attempts", "deadline", "number", "patient_id", "state", "task_id")

    def __init__(self, task_id: int, attempt_id: int, patient_id: int, attempts: int,
                 deadline: datetime, state: rules.PatientState, number: str) -> None:
        self.task_id, self.attempt_id, self.patient_id = task_id, attempt_id, patient_id
        self.attempts, self.deadline, self.state, self.number = attempts, deadline, state, number


def lean_claim_and_start(
    conn: psycopg.Connection[Any], policy: Policy, now: datetime, task_id: int, nurse_id: int,
    worker: str, lease: timedelta,
) -> LeanClaim | rules.Decision | None:
    """Proposed store-level claim (services.claim_and_start's contract, three round trips).

    1. claim the task (conditional UPDATE: pending, due, wave running) and lock its
       patient, returning the patient's rule data, in one statement. "Due" is new:
       store.claim_task does not check not_before, so a stale id from a dialer's queue
       (a task another process tried and moved hours later) is claimed, then refused
       by the rules and released: two wasted transactions;
    2. read the patient's recent attempts (a statement of its own, so its snapshot is
       taken after the lock: a dial committed by another process meanwhile is seen);
    3. the rules (campaign.rules.may_dial, unchanged), then the attempt and the commit
       sent together (pipeline). The unique in-flight index still guards invariant 1.
    Returns None when another worker had the task, the refusing Decision when the
    rules say no (the task is released as claim_and_start releases it).
    """
    row = conn.execute(
        LEAN_CLAIM, {"w": worker, "lease": now + lease, "id": task_id, "now": now}, prepare=True
    ).fetchone()
    if row is None:
        conn.rollback()
        return None
    (patient_id, kind, attempts, _task_tier, deadline, status, tier, departement, zone, pref_start,
     pref_end, consent, suspended_until, phone, phone_alt, flagged, next_contact_on) = row
    place = cal.Place(departement, zone, pref_start, pref_end)
    numbers = store.dialable_numbers(phone, phone_alt, flagged)
    state = rules.PatientState(
        status=EnrolmentStatus(status), tier=Tier(tier), place=place, consent=bool(consent),
        suspended_until=suspended_until, dialable_numbers=len(numbers), next_contact_on=next_contact_on,
    )
    day = cal.local_date(now, place)
    day_start = cal.at_local(day, dtime(0), zone)
    day_end = cal.at_local(day + timedelta(days=1), dtime(0), zone)
    history_rows = conn.execute(
        LEAN_HISTORY, {"p": patient_id, "since": min(day_start, now - timedelta(days=1))}, prepare=True
    ).fetchall()
    history = rules.DialHistory(
        in_call=any(r[0] == AttemptState.in_flight for r in history_rows),
        last_dial_at=max((r[1] for r in history_rows), default=None),
        dials_on_day=sum(1 for r in history_rows if day_start <= r[1] < day_end),
    )
    decision = rules.may_dial(state, history, now, policy, callback=kind == TaskKind.callback)
    if not decision.allowed:
        closing = decision.retry_at is None
        conn.execute(LEAN_RELEASE, {
            "status": TaskStatus.cancelled if closing else TaskStatus.pending,
            "not_before": decision.retry_at, "undo": 1, "closing": closing, "now": now,
            "reason": decision.reason.value, "t": task_id,
        })
        conn.commit()
        return decision
    number = numbers[(attempts - 1) % len(numbers)]
    try:
        with conn.pipeline():
            cur = conn.execute(LEAN_INSERT_ATTEMPT, {
                "t": task_id, "p": patient_id, "n": nurse_id, "num": number, "now": now, "w": worker,
            }, prepare=True)
            conn.commit()
        attempt_id = cur.fetchone()[0]  # type: ignore[index]
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        retry_at = now + timedelta(minutes=policy.retry.min_gap_minutes)
        conn.execute(LEAN_RELEASE, {
            "status": TaskStatus.pending, "not_before": retry_at, "undo": 1, "closing": False,
            "now": now, "reason": None, "t": task_id,
        })
        conn.commit()
        return rules.Decision(False, rules.Reason.in_call, "the patient is already in a call", retry_at)
    return LeanClaim(task_id, attempt_id, patient_id, attempts, deadline, state, number)


def lean_finish_unanswered(conn: psycopg.Connection[Any], ctx: services.Context, claim: LeanClaim,
                           result: AttemptResult) -> None:
    """Proposed services.finish_unanswered for the common case, one round trip.

    The first attempt of a task that gets a retry (no close): the attempt's result and
    the task's next time, with the same rules.after_attempt; anything else (a later
    attempt, a close, a reconciled attempt, a cancelled wave) goes to the service.
    """
    now, policy = ctx.clock.now(), ctx.policy
    decision = rules.after_attempt(
        result, now, rules.TaskState(claim.attempts, claim.deadline, (now,)), claim.state, policy
    )
    if claim.attempts != 1 or decision.close is not None or decision.next_at is None:
        services.finish_unanswered(ctx, claim.attempt_id, result)
        return
    with conn.pipeline():
        done = conn.execute(
            "UPDATE call_attempt SET result = %(r)s, ended_at = %(now)s, state = 'completed', "
            "voicemail_left = false WHERE id = %(a)s AND state = 'in_flight' RETURNING id",
            {"r": result.value, "now": now, "a": claim.attempt_id}, prepare=True,
        )
        moved = conn.execute(
            "UPDATE call_task SET status = 'pending', claimed_by = NULL, lease_until = NULL, "
            "not_before = %(nb)s WHERE id = %(t)s AND (wave_id IS NULL OR wave_id NOT IN "
            "(SELECT id FROM wave WHERE status = 'cancelled')) RETURNING id",
            {"nb": decision.next_at, "t": claim.task_id}, prepare=True,
        )
    if done.fetchone() is None or moved.fetchone() is None:
        conn.rollback()
        services.finish_unanswered(ctx, claim.attempt_id, result)
        return
    conn.commit()


def lean_mark_answered(conn: psycopg.Connection[Any], ctx: services.Context, claim: LeanClaim) -> None:
    """Proposed services.mark_answered: the answer and the lease renewal in one round trip."""
    now = ctx.clock.now()
    with conn.pipeline():
        done = conn.execute(
            "UPDATE call_attempt SET result = 'answered', answered_at = %(now)s "
            "WHERE id = %(a)s AND state = 'in_flight' RETURNING id",
            {"now": now, "a": claim.attempt_id}, prepare=True,
        )
        conn.execute("UPDATE call_task SET lease_until = %(l)s WHERE id = %(t)s",
                     {"l": now + ctx.lease, "t": claim.task_id}, prepare=True)
    if done.fetchone() is None:
        conn.rollback()
        raise ClaimLost(f"attempt {claim.attempt_id} was reconciled (lease expired): hang up")
    conn.commit()


def lean_record_reached(conn: psycopg.Connection[Any], ctx: services.Context, claim: LeanClaim,
                        nurse_id: int) -> None:
    """Proposed services.record_outcome for "reached" when it only closes the task and moves the date.

    Same rules.next_contact; one round trip (attempt, outcome, patient, task, commit).
    Anything more (a callback, a withdrawal, a flagged number, a physician message,
    a retry) goes to the service.
    """
    now, policy, code = ctx.clock.now(), ctx.policy, OutcomeCode.reached
    decision = rules.next_contact(claim.state, code, now, policy, nurse_id=nurse_id, callback_at=None,
                                  task_deadline=claim.deadline)
    if (decision.callback_at is not None or decision.withdraw or decision.flag_number
            or decision.message_physician or decision.task_status is None):
        services.record_outcome(ctx, claim.attempt_id, code, nurse_id)
        return
    with conn.pipeline():
        conn.execute(
            "UPDATE call_attempt SET ended_at = %(now)s, state = 'completed', result = 'answered' "
            "WHERE id = %(a)s", {"now": now, "a": claim.attempt_id}, prepare=True,
        )
        conn.execute(
            "INSERT INTO outcome (attempt_id, task_id, patient_id, nurse_id, code, callback_at, note, "
            "next_contact_on, recorded_at) "
            "VALUES (%(a)s, %(t)s, %(p)s, %(n)s, %(c)s, NULL, '', %(nc)s, %(now)s)",
            {"a": claim.attempt_id, "t": claim.task_id, "p": claim.patient_id, "n": nurse_id,
             "c": code.value, "nc": decision.next_contact_on, "now": now}, prepare=True,
        )
        conn.execute(
            "UPDATE patient SET updated_at = %(now)s, last_contact_at = %(now)s, "
            "next_contact_on = %(nc)s WHERE id = %(p)s",
            {"now": now, "nc": decision.next_contact_on, "p": claim.patient_id}, prepare=True,
        )
        conn.execute(
            "UPDATE call_task SET status = %(s)s, claimed_by = NULL, lease_until = NULL, "
            "closed_at = %(now)s, close_reason = %(c)s WHERE id = %(t)s",
            {"s": decision.task_status.value, "now": now, "c": code.value, "t": claim.task_id},
            prepare=True,
        )
        conn.commit()


def run_lean_loops(url: str, loops: int, seconds: float, nurse_ids: list[int],
                   worker_prefix: str, db_connections: int = 0,
                   share: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """This process's share of the nurse loops, through the proposed lean path.

    One connection per loop, or `db_connections` shared by all the loops of the process.
    """
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    engine = make_engine(url, poolclass=QueuePool, pool_size=8, max_overflow=loops)
    policy = load_policy()
    ctx = services.Context(session_factory(engine), policy, clock)
    feed = CandidateFeed(ctx, share=share)
    conninfo = libpq_conninfo(url)
    shared = ConnPool(conninfo, db_connections, autocommit=False) if db_connections else None
    stop = threading.Event()
    ready = threading.Barrier(loops + 1)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        worker = f"{worker_prefix}-{index}"
        nurse = nurse_ids[index % len(nurse_ids)]
        latencies: list[float] = []
        claimed: list[int] = []
        lost = refused = answered = unanswered = errors = 0
        n = 0
        pool = shared or ConnPool(conninfo, 1, autocommit=False)
        ready.wait()
        while not stop.is_set():
            task_id = feed.next_id()
            if task_id is None:
                break
            started = time.perf_counter()
            with pool.take() as conn:
                try:
                    result = lean_claim_and_start(conn, policy, clock.now(), task_id, nurse, worker,
                                                  ctx.lease)
                except Exception:
                    conn.rollback()
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)
            if result is None:
                lost += 1
                continue
            if isinstance(result, rules.Decision):
                refused += 1
                continue
            claimed.append(task_id)
            n += 1
            with pool.take() as conn:
                try:
                    if n % 2:
                        lean_mark_answered(conn, ctx, result)
                        lean_record_reached(conn, ctx, result, nurse)
                        answered += 1
                    else:
                        lean_finish_unanswered(conn, ctx, result, AttemptResult.no_answer)
                        unanswered += 1
                except Exception:
                    conn.rollback()
                    errors += 1
        if pool is not shared:
            pool.close()
        with lock:
            results.append({"latencies": latencies, "claimed": claimed, "lost": lost,
                            "refused": refused, "answered": answered, "unanswered": unanswered,
                            "errors": errors})

    try:
        return _drive(loop, loops, seconds, ready, stop, results, feed, engine)
    finally:
        if shared is not None:
            shared.close()


# ---------------------------------------------------------------- the floor

FLOOR_CLAIM = (
    "UPDATE call_task SET status = 'in_progress', claimed_by = %(w)s, lease_until = %(lease)s, "
    "attempts = attempts + 1 "
    "WHERE id = (SELECT id FROM call_task WHERE status = 'pending' AND not_before <= %(now)s "
    "ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
)


def run_floor_loops(url: str, loops: int, seconds: float, worker_prefix: str,
                    db_connections: int = 0) -> dict[str, Any]:
    now = cal.at_local(DAY, AT, "Europe/Paris")
    params_base = {"lease": now + timedelta(minutes=90), "now": now}
    conninfo = libpq_conninfo(url)
    shared = ConnPool(conninfo, db_connections, autocommit=True) if db_connections else None
    stop = threading.Event()
    ready = threading.Barrier(loops + 1)
    results: list[tuple[list[float], list[int]]] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        latencies: list[float] = []
        claimed: list[int] = []
        params = {**params_base, "w": f"{worker_prefix}-{index}"}
        pool = shared or ConnPool(conninfo, 1, autocommit=True)
        ready.wait()
        while not stop.is_set():
            started = time.perf_counter()
            with pool.take() as conn:
                row = conn.execute(FLOOR_CLAIM, params, prepare=True).fetchone()
            latencies.append(time.perf_counter() - started)
            if row is None:
                break
            claimed.append(row[0])
        if pool is not shared:
            pool.close()
        with lock:
            results.append((latencies, claimed))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(loops)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    cpu = time.process_time()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    timer.cancel()
    return {
        "elapsed_s": elapsed,
        "python_cpu_s": cpu,
        "latencies": [x for lat, _ in results for x in lat],
        "claimed": [x for _, c in results for x in c],
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- processes and checks


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], out: Any) -> None:
    configure_logging("json", "warning", stream=sys.stderr)
    out.put(target(*args))


def run_in_processes(target: Callable[..., dict[str, Any]], processes: int, loops: int,
                     make_args: Callable[[int, int], tuple[Any, ...]]) -> dict[str, Any]:
    """`loops` spread over `processes` (1: in this process); the figures merged."""
    shares = [loops // processes + (1 if i < loops % processes else 0) for i in range(processes)]
    if processes == 1:
        parts = [target(*make_args(0, shares[0]))]
    else:
        mp = multiprocessing.get_context("spawn")
        queue = mp.Queue()
        procs = [mp.Process(target=_child, args=(target, make_args(i, n), queue))
                 for i, n in enumerate(shares)]
        for p in procs:
            p.start()
        parts = [queue.get() for _ in procs]
        for p in procs:
            p.join()
    merged: dict[str, Any] = {"elapsed_s": max(p["elapsed_s"] for p in parts)}
    for key, value in parts[0].items():
        if key == "elapsed_s":
            continue
        if isinstance(value, list):
            merged[key] = [x for p in parts for x in p[key]]
        elif key == "peak_rss_mib":
            merged[key] = max(p[key] for p in parts)
        else:
            merged[key] = sum(p[key] for p in parts)
    return merged


def database_checks(url: str, wave_id: int) -> dict[str, int]:
    """Double claims as the database sees them after the run."""
    queries = {
        "tasks_with_more_than_one_attempt":
            "SELECT count(*) FROM (SELECT task_id FROM call_attempt GROUP BY task_id "
            "HAVING count(*) > 1) x",
        "patients_dialed_more_than_once":
            "SELECT count(*) FROM (SELECT patient_id FROM call_attempt GROUP BY patient_id "
            "HAVING count(*) > 1) x",
        "patients_with_two_attempts_in_flight":
            "SELECT count(*) FROM (SELECT patient_id FROM call_attempt WHERE state = 'in_flight' "
            "GROUP BY patient_id HAVING count(*) > 1) x",
        "attempts": "SELECT count(*) FROM call_attempt",
        "attempts_in_flight_at_the_end": "SELECT count(*) FROM call_attempt WHERE state = 'in_flight'",
        "tasks_in_progress_at_the_end": "SELECT count(*) FROM call_task WHERE status = 'in_progress'",
        "tasks_done": "SELECT count(*) FROM call_task WHERE status = 'done'",
        "outcomes": "SELECT count(*) FROM outcome",
    }
    with psycopg.connect(libpq_conninfo(url)) as conn:
        return {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}  # type: ignore[index]


def summarise(run: dict[str, Any], loops: int, claim_share: float | None = None) -> dict[str, Any]:
    claimed = run["claimed"]
    elapsed = run["elapsed_s"]
    counts = collections.Counter(claimed)
    out = {
        "elapsed_s": round(elapsed, 2),
        "claims": len(claimed),
        "claims_per_s": round(len(claimed) / elapsed, 1),
        "claim_latency": latency_summary(run["latencies"]),
        "ids_claimed_twice_in_run": sum(1 for c in counts.values() if c > 1),
        "python_cpu_s": round(run["python_cpu_s"], 2),
        "peak_rss_mib": run["peak_rss_mib"],
    }
    # Little's law: with every loop always busy, a loop goes round in loops / rate seconds.
    cycles = len(run["latencies"]) / elapsed if elapsed else 0
    if cycles:
        out["littles_law_mean_loop_ms"] = round(loops / cycles * 1000, 1)
    return out


PATHS: dict[str, Callable[..., dict[str, Any]]] = {
    "services": run_services_loops,
    "lean": run_lean_loops,
}


def measure_path(url: str, path: str, loops: int, seconds: float, processes: int,
                 nurse_ids: list[int], wave_id: int, db_connections: int = 0,
                 partition: bool = False) -> dict[str, Any]:
    load_before = load_average()
    run = run_in_processes(
        PATHS[path], processes, loops,
        lambda i, n: (url, n, seconds, nurse_ids, f"{path}{i}", db_connections,
                      (i, processes) if partition else (0, 1)),
    )
    figures = summarise(run, loops)
    figures.update({k: run[k] for k in ("lost", "refused", "answered", "unanswered", "errors")})
    figures["candidate_refills"] = run["candidate_refills"]
    figures["candidate_refill_s"] = round(run["candidate_refill_s"], 2)
    figures["database_checks_so_far"] = database_checks(url, wave_id)
    figures["load_average_before_after"] = [load_before, load_average()]
    return figures


def double_claims(figures: dict[str, Any]) -> int:
    checks = figures["database_checks_so_far"]
    return int(
        figures["ids_claimed_twice_in_run"] + checks["tasks_with_more_than_one_attempt"]
        + checks["patients_dialed_more_than_once"] + checks["patients_with_two_attempts_in_flight"]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=250)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--tasks", type=int, default=600_000)
    ap.add_argument("--nurses", type=int, default=250)
    ap.add_argument("--processes", type=int, default=1, help="spread the loops over processes")
    ap.add_argument("--path", choices=["services", "lean", "both"], default="both",
                    help="services: the production path; lean: the proposed one (see the docstring)")
    ap.add_argument("--unloaded-seconds", type=float, default=5.0,
                    help="also run each path with one loop this long: the claim's own cost (0: skip)")
    ap.add_argument(
        "--db-connections", type=int, default=0,
        help="connections per process shared by its loops (0: one per loop, the default)",
    )
    ap.add_argument(
        "--partition-tasks", action="store_true",
        help="with --processes N: process k only loads task ids with id %% N == k (a proposal; "
        "today every dialer process loads the same candidates and they collide)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)

    paths = ["services", "lean"] if args.path == "both" else [args.path]
    out: dict[str, Any] = {
        "benchmark": "dispatch",
        "loops": args.loops,
        "processes": args.processes,
        "db_connections_per_process": args.db_connections or "one per loop",
        "tasks_partitioned_between_processes": args.partition_tasks,
        "seconds": args.seconds,
        "virtual_clock": f"{DAY.isoformat()} {AT:%H:%M} Europe/Paris (does not move)",
    }
    with bench_database(args) as db:
        out["database"] = db.settings
        setup = prepare(db.url, args.tasks, args.nurses, args.seed)
        out["setup"] = {k: v for k, v in setup.items() if k != "nurse_ids"}
        nurse_ids, wave_id = setup["nurse_ids"], setup["wave_id"]

        for path in paths:
            name = "carecall_services" if path == "services" else "proposed_lean_path"
            if args.unloaded_seconds > 0:
                alone = measure_path(db.url, path, 1, args.unloaded_seconds, 1, nurse_ids, wave_id)
                out[f"{name}_one_loop"] = {
                    k: alone[k] for k in ("claims", "claims_per_s", "claim_latency", "python_cpu_s")
                }
            out[name] = measure_path(
                db.url, path, args.loops, args.seconds, args.processes, nurse_ids, wave_id,
                args.db_connections, args.partition_tasks,
            )

        if not args.no_floor:
            with psycopg.connect(libpq_conninfo(db.url), autocommit=True) as conn:
                conn.execute(
                    "UPDATE call_task SET status = 'pending', claimed_by = NULL, lease_until = NULL, "
                    "attempts = 0, closed_at = NULL, close_reason = NULL"
                )
                conn.execute("VACUUM ANALYZE call_task")
            load_before = load_average()
            floor_run = run_in_processes(
                run_floor_loops, args.processes, args.loops,
                lambda i, n: (db.url, n, args.seconds, f"floor{i}", args.db_connections),
            )
            floor = summarise(floor_run, args.loops)
            floor["load_average_before_after"] = [load_before, load_average()]
            out["floor_skip_locked"] = floor

    out["targets"] = {}
    for name in ("carecall_services", "proposed_lean_path"):
        if name not in out:
            continue
        c = out[name]
        if "floor_skip_locked" in out:
            f = out["floor_skip_locked"]
            c["ratios_to_floor"] = {
                "claims_per_s":
                    round(c["claims_per_s"] / f["claims_per_s"], 3) if f["claims_per_s"] else None,
                "p99_latency": round(c["claim_latency"]["p99_ms"] / f["claim_latency"]["p99_ms"], 2)
                if f["claim_latency"]["p99_ms"] else None,
            }
        out["targets"][name] = {
            "claims_per_s_at_least_1000": c["claims_per_s"] >= TARGET_CLAIMS_PER_S,
            "p99_claim_latency_under_25_ms": c["claim_latency"]["p99_ms"] < TARGET_P99_MS,
            "zero_double_claims": double_claims(c) == 0,
        }
    if "floor_skip_locked" in out:
        f = out["floor_skip_locked"]
        out["targets"]["floor_skip_locked"] = {
            "claims_per_s_at_least_1000": f["claims_per_s"] >= TARGET_CLAIMS_PER_S,
            "p99_claim_latency_under_25_ms": f["claim_latency"]["p99_ms"] < TARGET_P99_MS,
            "zero_double_claims": f["ids_claimed_twice_in_run"] == 0,
        }
    text_out = json.dumps(out, indent=2, default=str)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n")
    production = out["targets"].get("carecall_services", {})
    return 0 if production and all(production.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
