#!/usr/bin/env python3
"""Benchmark: importing a national registry (1,000,000 patients) into PostgreSQL.

Measures carecall's import (campaign.imports.import_patients: read, validate,
upsert) of a synthetic CSV against its floor: PostgreSQL COPY of the same rows,
already parsed into the patient table's columns. The floor is taken in the same
run, on the same server, from the rows the import itself stored (COPY TO a file,
TRUNCATE, then COPY FROM that file, timed; in text and in binary format, the
faster one is the floor), so the result is a ratio that does not depend much on
the machine. A re-import of the same file (every row unchanged: the monthly
refresh) is timed too. The load average is reported: on a shared 2-core machine,
other work running at the same time skews both sides of the ratio.

The CSV (campaign.synthetic.generate_patients_csv, 250 nurses' codes as référents)
is cached in --cache-dir: generating 1,000,000 rows takes a minute and is not what
is measured.

    .venv/bin/python scripts/bench_import.py [--patients 1000000] [--database-url URL]

Prints JSON. Target (issue "National scale"): import within 3x of the floor, peak
RSS under 1 GiB (the benchmark process: ru_maxrss).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from _benchdata import copy_floor, emit, load_average, peak_rss_mib
from _pgcluster import add_database_arguments, bench_database
from sqlalchemy import func, select, text
from sqlalchemy.pool import NullPool

from campaign import migrate
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.imports import import_patients
from campaign.logs import configure_logging
from campaign.model import PATIENT
from campaign.policy import load_policy
from campaign.synthetic import generate_nurses, generate_patients_csv, trained_codes

REFERENCE_DATE = date(2026, 12, 7)
TARGET_RATIO = 3.0
TARGET_RSS_MIB = 1024


def cached_csv(cache_dir: Path, n: int, seed: int, nurses: int) -> tuple[Path, float | None]:
    """The synthetic file, generated once per (n, seed, nurses); seconds if generated now."""
    path = cache_dir / f"patients-{n}-seed{seed}-nurses{nurses}.csv"
    if path.exists():
        return path, None
    cache_dir.mkdir(parents=True, exist_ok=True)
    staff = generate_nurses(nurses, seed=seed)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    generate_patients_csv(
        partial,
        n,
        seed=seed,
        nurse_codes=[x.code for x in staff],
        senior_codes=[x.code for x in staff if x.level == "senior"],
        trained=trained_codes(staff),
        reference_date=REFERENCE_DATE,
    )
    partial.rename(path)
    return path, round(time.perf_counter() - started, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--nurses", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "carecall-bench-cache")
    ap.add_argument("--no-reimport", action="store_true", help="skip the re-import (all unchanged)")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)

    csv_path, generated_s = cached_csv(args.cache_dir, args.patients, args.seed, args.nurses)
    policy = load_policy()
    clock = VirtualClock(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
    out: dict[str, Any] = {
        "benchmark": "import",
        "patients": args.patients,
        "csv": {"path": str(csv_path), "bytes": csv_path.stat().st_size, "generated_s": generated_s},
    }
    with bench_database(args) as db, tempfile.TemporaryDirectory(prefix="carecall-bench-") as work:
        out["database"] = db.settings
        engine = make_engine(db.url, poolclass=NullPool)
        migrate.upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as s:
            s.add_all(generate_nurses(args.nurses, seed=args.seed))
            s.commit()

        load_before = load_average()
        cpu = time.process_time()
        started = time.perf_counter()
        summary = import_patients(sessions, csv_path, clock, policy)
        import_s = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rss_import = peak_rss_mib()
        with sessions() as s:
            stored = s.execute(select(func.count()).select_from(PATIENT)).scalar_one()
            s.execute(text("ANALYZE patient"))
            s.commit()
        out["import"] = {
            "seconds": round(import_s, 2),
            "rows_per_s": round(summary.total / import_s),
            "total": summary.total,
            "inserted": summary.inserted,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "rejected": len(summary.rejected),
            "stored": stored,
            "python_cpu_s": round(cpu, 2),
            "peak_rss_mib": rss_import,
            "load_average_before_after": [load_before, load_average()],
        }

        columns = [c.name for c in PATIENT.columns if c.name != "id" and c.computed is None]
        floor = copy_floor(db.url, "patient", columns, Path(work))
        floor["load_average_after"] = load_average()
        out["floor_copy"] = floor

        if not args.no_reimport:
            clock.advance_to(datetime(2026, 12, 8, 8, 0, tzinfo=UTC))
            started = time.perf_counter()
            again = import_patients(sessions, csv_path, clock, policy)
            reimport_s = time.perf_counter() - started
            out["reimport"] = {
                "seconds": round(reimport_s, 2),
                "rows_per_s": round(again.total / reimport_s),
                "inserted": again.inserted,
                "updated": again.updated,
                "unchanged": again.unchanged,
                "rejected": len(again.rejected),
                "ratio_to_floor": round(reimport_s / floor["floor_s"], 2),
            }
        engine.dispose()

    ratio = import_s / floor["floor_s"]
    rss = peak_rss_mib()
    out["ratio_import_to_floor"] = round(ratio, 2)
    out["peak_rss_mib"] = rss
    out["targets"] = {
        "import_within_3x_floor": ratio <= TARGET_RATIO,
        "peak_rss_under_1_gib": rss < TARGET_RSS_MIB,
        "every_row_stored": stored == summary.total - len(summary.rejected) == floor["rows"],
    }
    emit(out, args.json)
    return 0 if all(out["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
