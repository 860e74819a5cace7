#!/usr/bin/env python3
"""Benchmark: 250 nurses taking dialer-assigned calls with zero talk time for 60 s, on PostgreSQL.

The production dispatch path is measured: `--processes` dialer processes (as
`carecall serve --share K/N` runs them), each a dialer.loop.Dialer for its share
of the nurses, deferred and flushed in a tight loop, so every flush claims a call
for each of its ready nurses in one transaction (services.claim_and_start_many:
conditional UPDATE with SKIP LOCKED, patients locked, rules, attempts stored
before any dial), stores the results of the calls that ended in another
(finish_unanswered_many), and the outcomes in a third (record_outcomes). The
telephony answers every other call at once and leaves the others unanswered at
once; a nurse hangs up and records "reached" at once. The task queue is the
dialer's own (swept page by page from store.dialable_page as `serve` does), routing included.

Claim latency is what a nurse waits: from the moment she is free (her previous
call's result or outcome stored) until her next call's attempt is stored.
Afterwards the database is checked for double claims: tasks with more than one
attempt, patients dialed more than once, patients with two attempts in flight.

The floor, on the same table with the same number of loops (threads, one
connection each, spread over the same processes), is a bare claim loop, each
loop running in autocommit
    UPDATE call_task SET status = 'in_progress', claimed_by = …, lease_until = …,
           attempts = attempts + 1
    WHERE id = (SELECT id FROM call_task WHERE status = 'pending' AND not_before <= …
                ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
(the tasks are reset to pending first). With 250 always-busy loops its latency
is mostly queueing: by Little's law a loop goes round in 250 / (claims per
second).

Setup: a weekday at 10:00 in Paris on a virtual clock that does not move,
metropolitan patients only, all enrolled and consenting, no preferred window,
one task per patient, all due in a running wave; --tasks defaults to 600,000.

    .venv/bin/python scripts/bench_dispatch.py [--nurses 250] [--seconds 60] [--processes 2]
        [--database-url URL] [--no-floor]

Prints JSON. Target (issue "National scale"): at least 1,000 claims per second,
p99 claim latency under 25 ms, zero double claims.
"""

from __future__ import annotations

import argparse
import collections
import gc
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import psycopg
from _benchdata import bulk_load_patients, emit, load_average, peak_rss_mib, running_wave
from _pgcluster import add_database_arguments, bench_database, libpq_conninfo

from campaign import calendar as cal
from campaign import migrate, services
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.logs import configure_logging
from campaign.policy import Policy, Tier, load_policy
from campaign.states import OutcomeCode
from campaign.synthetic import generate_nurses
from dialer.backends.scripted import ScriptedLines, every_other_answered
from dialer.calls import LiveCall
from dialer.loop import Dialer
from dialer.serve import dialer_engine
from dialer.step import settle_gc, step

DAY = date(2027, 1, 12)  # a Tuesday, no holiday anywhere in metropolitan France
AT = dtime(10, 0)  # Paris
TARGET_CLAIMS_PER_S = 1000
TARGET_P99_MS = 25.0
SWEEP_EVERY_CLAIMS = 20_000  # the dialer sweeps the due tasks (50,000 at most, by pages) this often


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
    policy = bench_policy()
    ctx = services.Context(session_factory(engine), policy, clock)
    with ctx.sessions() as s:
        staff = generate_nurses(nurses, seed=seed)
        s.add_all(staff)
        s.commit()
        ids = [n.id for n in staff if n.id is not None]
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
    started = time.perf_counter()
    with psycopg.connect(libpq_conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO call_task (wave_id, patient_id, kind, status, tier, priority, planned_day, "
            "not_before, deadline, theme_code, attempts, created_at) "
            "SELECT %(wave)s, p.id, 'wave', 'pending', p.tier, t.priority, %(day)s, "
            "%(due)s - (p.id %% 600) * interval '1 second', %(deadline)s, 'adherence', 0, %(now)s "
            "FROM patient p JOIN unnest(%(tiers)s::text[], %(priorities)s::int[]) AS t(tier, priority) "
            "ON t.tier = p.tier ORDER BY p.id",
            {
                # each tier's dial order from config/programme.toml, as planning gives it
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
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        # as the floor's run gets it: measured on settled tables, not while autovacuum
        # works through the rows just loaded
        conn.execute("VACUUM ANALYZE")
    engine.dispose()
    return {
        "patients": loaded,
        "tasks": tasks,
        "tasks_insert_s": round(time.perf_counter() - started, 2),
        "wave_id": wave_id,
        "nurse_ids": ids,
        "clock": now.isoformat(),
    }


# ---------------------------------------------------------------- carecall's dialer


def bench_policy() -> Policy:
    """The shipped policy, every task open to all nurses at once.

    The clock does not move here, so a référent's reservation (45 minutes)
    would never lapse and her colleagues would idle beside her patients' tasks
    while she is busy. Routing still offers each nurse her own patients first.
    """
    policy = load_policy()
    return policy.model_copy(update={"dialer": policy.dialer.model_copy(update={"referent_wait_minutes": 0})})


def run_dialer(
    url: str, nurse_ids: list[int], seconds: float, share: tuple[int, int], start_at: float
) -> dict[str, Any]:
    """One dialer process with its share of the nurses, flushed in a tight loop for `seconds`."""
    clock = VirtualClock(cal.at_local(DAY, AT, "Europe/Paris"))
    engine = dialer_engine(url)  # as `serve` makes it
    ctx = services.Context(session_factory(engine), bench_policy(), clock)
    # zero talk time: every other call is answered at once, the others ring out at once
    lines = ScriptedLines(clock, every_other_answered)
    waits: list[float] = []
    dialer: Dialer

    def connected(nurse_id: int, _call: LiveCall) -> None:
        dialer.hangup(nurse_id)
        dialer.submit_outcome(nurse_id, OutcomeCode.reached)

    dialer = Dialer(
        ctx,
        lines,
        f"bench-{share[0]}",
        None,
        on_connected=connected,
        deferred=True,
        on_claim_wait=lambda _n, s: waits.append(s),
        share=share,
    )
    dialer.start(nurse_ids=set(nurse_ids))
    dialer.tick()
    settle_gc()  # as `serve` does
    while time.time() < start_at:  # every process starts at the same instant
        time.sleep(0.001)
    for n in nurse_ids:
        dialer.nurse_ready(n)
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)
    started = time.perf_counter()
    cpu = time.process_time()
    refreshed_at = 0
    refresh_s = 0.0
    refresh_steps: list[float] = []
    sweeping = False
    end = started + seconds
    while time.perf_counter() < end:
        # the step `serve` takes, every pass: the queue topped up as it empties, a page of a
        # sweep of the due tasks now and then, the flush, and the garbage collected after it
        sweeping = sweeping or dialer.stats["claims"] - refreshed_at >= SWEEP_EVERY_CLAIMS
        done = step(dialer, tick=True, sweep=sweeping, collect_garbage=True)
        if done.sweep_over:
            sweeping = False
            refreshed_at = dialer.stats["claims"]
        if done.loaded or done.sweep_over is not None:
            refresh_steps.append(done.queue_seconds)
            refresh_s += done.queue_seconds
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    gc.callbacks.remove(on_gc)
    claims = dialer.stats["claims"]
    dialer.flush()  # what the nurses said is stored before the process ends
    engine.dispose()
    return {
        "elapsed_s": elapsed,
        "python_cpu_s": cpu,
        "claims": claims,
        "latencies": waits,
        "lost_claims": dialer.stats["lost_claims"],
        "refused_by_rules": dialer.stats["refused_by_rules"],
        "flushes": dialer.stats["flushes"],
        "queue_refresh_s": refresh_s,
        "queue_refresh_steps": refresh_steps,
        "pruned": dialer.stats["pruned"],
        "gc_pauses": gc_pauses,
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- the floor


FLOOR_CLAIM = (
    "UPDATE call_task SET status = 'in_progress', claimed_by = %(w)s, lease_until = %(lease)s, "
    "attempts = attempts + 1 "
    "WHERE id = (SELECT id FROM call_task WHERE status = 'pending' AND not_before <= %(now)s "
    "ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
)


def run_floor(
    url: str, loops: int, seconds: float, share: tuple[int, int], start_at: float
) -> dict[str, Any]:
    """`loops` threads, each on its own autocommit connection, claiming with the bare statement."""
    now = cal.at_local(DAY, AT, "Europe/Paris")
    conninfo = libpq_conninfo(url)
    conns = [psycopg.connect(conninfo, autocommit=True) for _ in range(loops)]
    stop = threading.Event()
    results: list[tuple[list[float], list[int]]] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        latencies: list[float] = []
        claimed: list[int] = []
        params = {"lease": now + timedelta(minutes=90), "now": now, "w": f"floor{share[0]}-{index}"}
        conn = conns[index]
        while not stop.is_set():
            started = time.perf_counter()
            row = conn.execute(FLOOR_CLAIM, params, prepare=True).fetchone()
            latencies.append(time.perf_counter() - started)
            if row is None:
                break
            claimed.append(row[0])
        with lock:
            results.append((latencies, claimed))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(loops)]
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.perf_counter()
    cpu = time.process_time()
    for t in threads:
        t.start()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for c in conns:
        c.close()
    claimed_all = [x for _, c in results for x in c]
    return {
        "elapsed_s": elapsed,
        "python_cpu_s": cpu,
        "claims": len(claimed_all),
        "claimed": claimed_all,
        "latencies": [x for lat, _ in results for x in lat],
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- processes and checks


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], out: Any) -> None:
    configure_logging("json", "warning", stream=sys.stderr)
    out.put(target(*args))


def run_in_processes(
    target: Callable[..., dict[str, Any]], processes: int, make_args: Callable[[int, float], tuple[Any, ...]]
) -> dict[str, Any]:
    """One part per process, all starting at the same instant; the figures merged."""
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    start_at = time.time() + 15 + 2 * processes  # time for every process to connect and load its queue
    procs = [mp.Process(target=_child, args=(target, make_args(i, start_at), out)) for i in range(processes)]
    for p in procs:
        p.start()
    parts = []
    while len(parts) < len(procs):
        try:
            parts.append(out.get(timeout=5))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                raise SystemExit("a benchmark process failed (its traceback is above)") from None
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
        "tasks_with_more_than_one_attempt": (
            "SELECT count(*) FROM (SELECT task_id FROM call_attempt GROUP BY task_id HAVING count(*) > 1) x"
        ),
        "patients_dialed_more_than_once": (
            "SELECT count(*) FROM (SELECT patient_id FROM call_attempt GROUP BY patient_id "
            "HAVING count(*) > 1) x"
        ),
        "patients_with_two_attempts_in_flight": (
            "SELECT count(*) FROM (SELECT patient_id FROM call_attempt WHERE state = 'in_flight' "
            "GROUP BY patient_id HAVING count(*) > 1) x"
        ),
        "attempts": "SELECT count(*) FROM call_attempt",
        "attempts_in_flight_at_the_end": "SELECT count(*) FROM call_attempt WHERE state = 'in_flight'",
        "tasks_in_progress_at_the_end": "SELECT count(*) FROM call_task WHERE status = 'in_progress'",
        "tasks_done": "SELECT count(*) FROM call_task WHERE status = 'done'",
        "outcomes": "SELECT count(*) FROM outcome",
    }
    with psycopg.connect(libpq_conninfo(url)) as conn:
        return {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}  # type: ignore[index]


def summarise(run: dict[str, Any], loops: int) -> dict[str, Any]:
    elapsed = run["elapsed_s"]
    out: dict[str, Any] = {
        "elapsed_s": round(elapsed, 2),
        "claims": run["claims"],
        "claims_per_s": round(run["claims"] / elapsed, 1),
        "claim_latency": latency_summary(run["latencies"]),
        "python_cpu_s": round(run["python_cpu_s"], 2),
        "peak_rss_mib": run["peak_rss_mib"],
    }
    if run["claims"]:
        # Little's law: with every loop always busy, a loop goes round in loops / rate seconds
        out["littles_law_mean_loop_ms"] = round(loops / (run["claims"] / elapsed) * 1000, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nurses", type=int, default=250, help="nurse loops (one nurse each)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--tasks", type=int, default=600_000)
    ap.add_argument("--processes", type=int, default=2, help="dialer processes sharing the nurses")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)
    out: dict[str, Any] = {
        "benchmark": "dispatch",
        "nurse_loops": args.nurses,
        "processes": args.processes,
        "seconds": args.seconds,
        "virtual_clock": f"{DAY.isoformat()} {AT:%H:%M} Europe/Paris (does not move)",
    }
    with bench_database(args) as db:
        out["database"] = db.settings
        setup = prepare(db.url, args.tasks, args.nurses, args.seed)
        out["setup"] = {k: v for k, v in setup.items() if k != "nurse_ids"}
        nurse_ids = setup["nurse_ids"]
        n = args.processes
        load_before = load_average()
        run = run_in_processes(
            run_dialer, n, lambda i, start_at: (db.url, nurse_ids[i::n], args.seconds, (i, n), start_at)
        )
        figures = summarise(run, args.nurses)
        figures.update({k: run[k] for k in ("lost_claims", "refused_by_rules", "flushes")})
        figures["claims_per_flush"] = round(run["claims"] / run["flushes"], 1) if run["flushes"] else None
        figures["queue_refresh_s"] = round(run["queue_refresh_s"], 2)
        steps_ms = [x * 1000 for x in run["queue_refresh_steps"]]
        figures["queue_refresh_step_ms"] = {
            "count": len(steps_ms),
            "p50": round(percentile(steps_ms, 50) or 0, 2),
            "p99": round(percentile(steps_ms, 99) or 0, 2),
            "max": round(max(steps_ms, default=0), 2),
        }
        figures["pruned_from_queue"] = run["pruned"]
        gc_ms = [x * 1000 for x in run["gc_pauses"]]
        figures["gc_pause_ms"] = {
            "count": len(gc_ms),
            "total": round(sum(gc_ms), 1),
            "p99": round(percentile(gc_ms, 99) or 0, 2),
            "max": round(max(gc_ms, default=0), 2),
        }
        checks = database_checks(db.url, setup["wave_id"])
        figures["database_checks"] = checks
        figures["double_claims"] = (
            checks["tasks_with_more_than_one_attempt"]
            + checks["patients_dialed_more_than_once"]
            + checks["patients_with_two_attempts_in_flight"]
        )
        figures["load_average_before_after"] = [load_before, load_average()]
        out["carecall_dialer"] = figures

        if not args.no_floor:
            with psycopg.connect(libpq_conninfo(db.url), autocommit=True) as conn:
                conn.execute(
                    "UPDATE call_task SET status = 'pending', claimed_by = NULL, lease_until = NULL, "
                    "attempts = 0, closed_at = NULL, close_reason = NULL"
                )
                conn.execute("VACUUM ANALYZE call_task")
            load_before = load_average()
            shares = [args.nurses // n + (1 if i < args.nurses % n else 0) for i in range(n)]
            floor_run = run_in_processes(
                run_floor, n, lambda i, start_at: (db.url, shares[i], args.seconds, (i, n), start_at)
            )
            floor = summarise(floor_run, args.nurses)
            counts = collections.Counter(floor_run["claimed"])
            floor["double_claims"] = sum(1 for c in counts.values() if c > 1)
            floor["load_average_before_after"] = [load_before, load_average()]
            out["floor_skip_locked"] = floor

    c = out["carecall_dialer"]
    if "floor_skip_locked" in out:
        f = out["floor_skip_locked"]
        c["ratios_to_floor"] = {
            "claims_per_s": round(c["claims_per_s"] / f["claims_per_s"], 3) if f["claims_per_s"] else None,
            "p99_latency": round(c["claim_latency"]["p99_ms"] / f["claim_latency"]["p99_ms"], 3)
            if f["claim_latency"]["p99_ms"]
            else None,
        }
    out["targets"] = {
        name: {
            "claims_per_s_at_least_1000": fig["claims_per_s"] >= TARGET_CLAIMS_PER_S,
            "p99_claim_latency_under_25_ms": fig["claim_latency"]["p99_ms"] < TARGET_P99_MS,
            "zero_double_claims": fig["double_claims"] == 0,
            "peak_rss_under_1_gib": fig["peak_rss_mib"] < 1024,
        }
        for name, fig in out.items()
        if name in ("carecall_dialer", "floor_skip_locked")
    }
    emit(out, args.json)
    return 0 if all(out["targets"]["carecall_dialer"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
