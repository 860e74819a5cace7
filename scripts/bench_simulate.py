#!/usr/bin/env python3
"""Benchmark: a whole simulated wave at national-pilot scale, on SQLite.

Prints JSON: wall time per phase, peak memory, simulated calls and calls per
wall second. Default: 100,000 patients, 200 nurses, every patient in the
mailing's segment. The wave window is widened to 30 working days because 200
nurses cannot call 100,000 patients in the default 15 (the plan would leave
patients out); the figure measured is throughput, not the policy.

    .venv/bin/python scripts/bench_simulate.py [--patients N] [--nurses N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import func, select

from campaign import calendar as cal
from campaign import migrate, services
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.imports import import_patients
from campaign.logs import configure_logging
from campaign.model import ATTEMPT, TASK
from campaign.policy import load_policy
from campaign.reports import wave_report
from campaign.synthetic import generate_nurses, generate_patients_for
from dialer.simulation import run_simulation


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--nurses", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wave-days", type=int, default=30)
    ap.add_argument("--theme", default="adherence", help="a theme for all pathologies")
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)

    base = load_policy()
    policy = base.model_copy(
        update={"mailing": base.mailing.model_copy(update={"wave_working_days": args.wave_days})}
    )
    phases: dict[str, float] = {}
    sent_on = date(2026, 12, 7)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite:///{db}")
        migrate.upgrade(engine)
        clock = VirtualClock(cal.at_local(sent_on, dtime(8, 0), "Europe/Paris"))
        ctx = services.Context(session_factory(engine), policy, clock)

        t = time.perf_counter()
        nurses = generate_nurses(args.nurses, seed=args.seed)
        with ctx.sessions() as s:
            s.add_all(nurses)
            s.commit()
        csv_path = Path(tmp) / "patients.csv"
        generate_patients_for(nurses, csv_path, args.patients, seed=args.seed, reference_date=sent_on)
        phases["generate_s"] = time.perf_counter() - t

        t = time.perf_counter()
        summary = import_patients(ctx.sessions, csv_path, clock, policy)
        phases["import_s"] = time.perf_counter() - t

        t = time.perf_counter()
        rec = services.record_mailing(ctx, args.theme, "all", sent_on)
        with ctx.sessions() as s:
            wave = services.get_wave(s, rec.wave_id)
        clock.advance_to(wave.plan_after)
        plan = services.plan_wave(ctx, rec.wave_id)
        services.change_wave(ctx, rec.wave_id, "launch")
        phases["plan_s"] = time.perf_counter() - t

        def finished() -> bool:
            with ctx.sessions() as s:
                return services.get_wave(s, rec.wave_id).status == "done"

        t = time.perf_counter()
        virtual_start = clock.now()
        result = run_simulation(
            ctx, clock, wave.deadline + timedelta(days=30), seed=args.seed, stop_when=finished
        )
        services.expire_and_close(ctx)
        phases["simulate_s"] = time.perf_counter() - t

        t = time.perf_counter()
        with ctx.sessions() as s:
            report = wave_report(s, policy, rec.wave_id)
            attempts = s.execute(select(func.count()).select_from(ATTEMPT)).scalar_one()
            tasks = s.execute(select(func.count()).select_from(TASK)).scalar_one()
        phases["report_s"] = time.perf_counter() - t

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "patients": args.patients,
        "nurses": args.nurses,
        "imported": summary.inserted,
        "wave_working_days": args.wave_days,
        "tasks": tasks,
        "unplaced": len(plan.unplaced),
        "simulated_calls": attempts,
        "reached": report["reached"],
        "virtual_days": round((clock.now() - virtual_start).total_seconds() / 86400, 1),
        "events": result.events,
        "wall_s": round(sum(phases.values()), 1),
        **{k: round(v, 1) for k, v in phases.items()},
        "calls_per_wall_s": round(attempts / phases["simulate_s"], 1),
        "peak_rss_mib": round(peak_mib, 1),
        "invariants_ok": report["invariants"]["ok"],
        "calls_outside_window": report["calls_outside_window"],
        "double_dials": report["double_dials"],
        "open_tasks": report["open_tasks"],
    }
    print(json.dumps(out, indent=2))
    return 0 if out["invariants_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
