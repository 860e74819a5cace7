#!/usr/bin/env python3
"""Benchmark: planning a national wave (1,000,000 patients, 250 nurses, 20 working days) on PostgreSQL.

Patients are bulk-loaded with one binary COPY (the import is benchmarked on its
own, scripts/bench_import.py); 250 nurses come from campaign.synthetic; a mailing
to everyone is recorded through campaign.services.record_mailing (segment "all"),
then the production campaign.services.plan_wave is timed, once. The floor is
PostgreSQL COPY of as many rows into call_task as planning inserted (the planned
rows themselves: COPY TO a file, TRUNCATE, COPY FROM, timed, text and binary; the
faster one counts). The ratio is plan_wave's time over the floor's.

plan_wave's time is split, without touching the service, by wrapping the store
and planning functions it calls (timestamps at entry and exit; what lies between
them is the service's own Python work):

    load_candidates  the wave, open tasks and contact caps, the recipients streamed
                     with their rule data into the planning candidates, the nurses
    pure_planning    campaign.planning.plan_wave
    index_states     the gap before the insert (the candidates' states by patient)
    insert_tasks     campaign.store.insert_tasks (COPY), the task rows generated
                     inside it (first calling window, deadline)
    plan_notes       why each left-out recipient was left out (store.set_plan_notes)
    commit_and_rest  the wave's summary, audit, commit

Capacity: 250 nurses x 20 working days cannot hold a first call for 1,000,000
patients at the shipped handle times (about 110,000 fit). So by default every
tier's call_minutes and noanswer_handle_minutes are scaled by --minutes-scale
(0.06) so that everyone fits and the whole 1,000,000-row plan is exercised; the
JSON says so and reports the unplaced count whatever it is. --shipped-minutes
plans with the policy as shipped (most patients then stay unplaced, honestly
reported).

    .venv/bin/python scripts/bench_plan.py [--patients 1000000] [--nurses 250] [--database-url URL]

Prints JSON, with md5 checksums of the stored tasks and plan notes (to compare
two versions of the code on the same data). Target (issue "National scale"):
planning within 3x of the floor, peak RSS under 1 GiB (ru_maxrss of this
process, which also loaded the data; the bulk load streams it).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from datetime import time as dtime
from pathlib import Path
from typing import Any

from _benchdata import bulk_load_patients, copy_floor, emit, load_average, peak_rss_mib
from _pgcluster import add_database_arguments, bench_database
from sqlalchemy import func, select, text
from sqlalchemy.pool import NullPool

from campaign import calendar as cal
from campaign import migrate, planning, services, store
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.logs import configure_logging
from campaign.model import TASK
from campaign.policy import Policy, load_policy
from campaign.synthetic import generate_nurses

SENT_ON = date(2027, 1, 11)  # a Monday; the 20 working days avoid the year-end holidays
TARGET_RATIO = 3.0
TARGET_RSS_MIB = 1024
_TASK_COLUMNS = tuple(c.name for c in TASK.columns if c.name != "id")


class PhaseProbe:
    """Wraps module functions to timestamp their entry and exit; restores them after."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, float]] = []
        self._undo: list[Callable[[], None]] = []

    def wrap(self, module: Any, name: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.events.append((name, started, time.perf_counter()))

        setattr(module, name, timed)
        self._undo.append(lambda: setattr(module, name, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def span(self, name: str) -> tuple[float, float]:
        """(entry, exit) of the first call of `name`."""
        return next((a, b) for n, a, b in self.events if n == name)


def timed_plan(ctx: services.Context, wave_id: int) -> tuple[planning.WavePlan, dict[str, float]]:
    """services.plan_wave, with its time split into phases (see the module docstring)."""
    probe = PhaseProbe()
    for name in ("delete_pending_wave_tasks", "nurses", "insert_tasks", "set_plan_notes"):
        probe.wrap(store, name)
    probe.wrap(planning, "plan_wave")
    started = time.perf_counter()
    try:
        plan = services.plan_wave(ctx, wave_id)
    finally:
        ended = time.perf_counter()
        probe.restore()
    delete = probe.span("delete_pending_wave_tasks")
    nurses = probe.span("nurses")
    pure = probe.span("plan_wave")
    insert = probe.span("insert_tasks")
    notes = probe.span("set_plan_notes")
    phases = {
        "delete_old_tasks": delete[1] - delete[0],
        "load_candidates": nurses[1] - started - (delete[1] - delete[0]),
        "pure_planning": pure[1] - pure[0],
        "index_states": insert[0] - pure[1],
        "insert_tasks": insert[1] - insert[0],
        "plan_notes": notes[1] - insert[1],
        "commit_and_rest": ended - notes[1],
        "total": ended - started,
    }
    return plan, {k: round(v, 3) for k, v in phases.items()}


def checksums(ctx: services.Context, wave_id: int, mailing_id: int) -> dict[str, str]:
    """What the plan stored, independent of ids: the wave's tasks and the recipients' notes."""
    with ctx.sessions() as s:
        tasks = s.execute(
            text(
                "SELECT md5(string_agg(concat_ws('|', patient_id, planned_day, not_before, deadline, "
                "tier, priority, status, kind, theme_code, attempts, created_at), ',' ORDER BY patient_id)) "
                "FROM call_task WHERE wave_id = :w"
            ),
            {"w": wave_id},
        ).scalar_one()
        notes = s.execute(
            text(
                "SELECT md5(string_agg(concat_ws('|', patient_id, plan_note), ',' ORDER BY patient_id)) "
                "FROM mailing_recipient WHERE mailing_id = :m"
            ),
            {"m": mailing_id},
        ).scalar_one()
    return {"tasks": str(tasks), "plan_notes": str(notes)}


def scaled_policy(base: Policy, wave_days: int, scale: float | None) -> Policy:
    mailing = base.mailing.model_copy(update={"wave_working_days": wave_days})
    if scale is None:
        return base.model_copy(update={"mailing": mailing})
    tiers = {t: p.model_copy(update={"call_minutes": p.call_minutes * scale}) for t, p in base.tiers.items()}
    dialer = base.dialer.model_copy(
        update={"noanswer_handle_minutes": base.dialer.noanswer_handle_minutes * scale}
    )
    return base.model_copy(update={"mailing": mailing, "tiers": tiers, "dialer": dialer})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--nurses", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wave-days", type=int, default=20)
    ap.add_argument("--theme", default="adherence", help="a theme for every pathology")
    ap.add_argument("--minutes-scale", type=float, default=0.06)
    ap.add_argument("--shipped-minutes", action="store_true", help="plan with the shipped handle times")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)

    scale = None if args.shipped_minutes else args.minutes_scale
    policy = scaled_policy(load_policy(), args.wave_days, scale)
    clock = VirtualClock(cal.at_local(SENT_ON, dtime(8, 0), "Europe/Paris"))
    out: dict[str, Any] = {
        "benchmark": "plan",
        "patients": args.patients,
        "nurses": args.nurses,
        "wave_working_days": args.wave_days,
        "policy": (
            "shipped handle times"
            if scale is None
            else f"call_minutes and noanswer_handle_minutes x {scale} so that 250 nurses x "
            f"{args.wave_days} days can hold every first call; everything else as shipped"
        ),
    }
    with bench_database(args) as db, tempfile.TemporaryDirectory(prefix="carecall-bench-") as work:
        out["database"] = db.settings
        engine = make_engine(db.url, poolclass=NullPool)
        migrate.upgrade(engine)
        ctx = services.Context(session_factory(engine), policy, clock)
        with ctx.sessions() as s:
            staff = generate_nurses(args.nurses, seed=args.seed)
            s.add_all(staff)
            s.commit()
        out["bulk_load"] = bulk_load_patients(
            db.url,
            args.patients,
            staff=staff,
            policy=policy,
            today=SENT_ON,
            now=clock.now(),
            seed=args.seed,
        )
        with ctx.sessions() as s:
            s.execute(text("ANALYZE"))
            s.commit()

        started = time.perf_counter()
        rec = services.record_mailing(ctx, args.theme, "all", SENT_ON)
        out["record_mailing"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "recipients": rec.recipients,
        }
        with ctx.sessions() as s:
            s.execute(text("ANALYZE"))
            s.commit()
            wave = services.get_wave(s, rec.wave_id)
        clock.advance_to(wave.plan_after)

        load_before = load_average()
        cpu = time.process_time()
        plan, phases = timed_plan(ctx, rec.wave_id)
        cpu = time.process_time() - cpu
        rss_plan = peak_rss_mib()
        with ctx.sessions() as s:
            tasks = s.execute(select(func.count()).select_from(TASK)).scalar_one()
        out["plan"] = {
            "seconds": phases["total"],
            "phases": phases,
            "python_cpu_s": round(cpu, 2),
            "planned": len(plan.assignments),
            "unplaced": len(plan.unplaced),
            "skipped": dict(plan.skipped),
            "tasks_in_db": tasks,
            "days": len(plan.days),
            "peak_rss_mib": rss_plan,
            "load_average_before_after": [load_before, load_average()],
            "checksums": checksums(ctx, rec.wave_id, rec.mailing_id),
        }

        floor = copy_floor(db.url, "call_task", _TASK_COLUMNS, Path(work))
        floor["load_average_after"] = load_average()
        out["floor_copy"] = floor
        engine.dispose()

    ratio = phases["total"] / floor["floor_s"]
    rss = peak_rss_mib()
    out["ratio_plan_to_floor"] = round(ratio, 2)
    out["peak_rss_mib"] = rss
    out["targets"] = {
        "plan_within_3x_floor": ratio <= TARGET_RATIO,
        "peak_rss_under_1_gib": rss < TARGET_RSS_MIB,
        "tasks_stored_equal_planned": tasks == len(plan.assignments) == floor["rows"],
    }
    emit(out, args.json)
    return 0 if all(out["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
