"""`carecall demo`: a whole wave on a fresh SQLite file, on a virtual clock."""

from __future__ import annotations

import tempfile
import time as wall
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import structlog

from campaign import calendar as cal
from campaign import migrate, services, store
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.imports import ImportSummary, import_patients
from campaign.model import Nurse
from campaign.policy import Policy
from campaign.states import WaveStatus
from campaign.synthetic import generate_nurses, generate_patients_for
from dialer.simulation import SimulationResult, run_simulation

log = structlog.get_logger("carecall.demo")


@dataclass
class DemoRun:
    database: Path
    wave_id: int
    imported: ImportSummary
    simulation: SimulationResult
    wall_seconds: float
    ctx: services.Context


def run_demo(
    policy: Policy,
    database: Path,
    *,
    patients: int = 5000,
    nurses: int = 12,
    staff: Callable[[], list[Nurse]] | None = None,
    seed: int = 0,
    theme: str = "foot_care",
    segment: str | None = None,
    sent_on: date = date(2026, 12, 7),
    import_progress: Callable[[int, int], None] | None = None,
    sim_progress: Callable[[datetime, datetime, datetime], None] | None = None,
    stage: Callable[[str], None] = lambda _s: None,
) -> DemoRun:
    t0 = wall.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{database}")
    stage("creating the database")
    migrate.upgrade(engine)
    clock = VirtualClock(cal.at_local(sent_on, time(8, 0), "Europe/Paris"))
    ctx = services.Context(session_factory(engine), policy, clock)

    stage(f"generating {nurses} nurses and {patients} patients")
    with ctx.sessions() as s:
        nurse_rows = store.add_new_nurses(s, staff() if staff else generate_nurses(nurses, seed=seed))
        s.commit()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "patients.csv"
        generate_patients_for(nurse_rows, csv_path, patients, seed=seed, reference_date=sent_on)
        stage("importing patients")
        summary = import_patients(ctx.sessions, csv_path, clock, policy, progress=import_progress)

    stage("recording the mailing")
    rec = services.record_mailing(ctx, theme, segment, sent_on)
    with ctx.sessions() as s:
        wave = services.get_wave(s, rec.wave_id)
        # callbacks promised on the last days may run a few days past the window
        end = wave.deadline + timedelta(days=30)
    start = clock.now()

    def progress(now: datetime) -> None:
        if sim_progress is not None:
            sim_progress(start, now, end)

    stage("running the wave on the virtual clock")

    def wave_finished() -> bool:
        with ctx.sessions() as s:
            return services.get_wave(s, rec.wave_id).status in (WaveStatus.done, WaveStatus.cancelled)

    result = run_simulation(ctx, clock, end, seed=seed, progress=progress, stop_when=wave_finished)
    end = clock.now()
    services.expire_and_close(ctx)
    if sim_progress is not None:
        sim_progress(start, end, end)
    return DemoRun(database, rec.wave_id, summary, result, wall.perf_counter() - t0, ctx)


def demo_figures(run: DemoRun) -> dict[str, Any]:
    from campaign.reports import wave_report

    with run.ctx.sessions() as s:
        report = wave_report(s, run.ctx.policy, run.wave_id)
    report["simulation"] = {
        "virtual_start": run.simulation.started.isoformat(),
        "virtual_end": run.simulation.ended.isoformat(),
        "events": run.simulation.events,
        "dials": run.simulation.dials,
        "wall_seconds": round(run.wall_seconds, 2),
    }
    report["import"] = {
        "inserted": run.imported.inserted,
        "updated": run.imported.updated,
        "rejected": len(run.imported.rejected),
    }
    return report
