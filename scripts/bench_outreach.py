#!/usr/bin/env python3
"""Benchmark: carecall's outreach against a FIFO dialer, on one population and one roster.

Three arms (`carecall`, `carecall_without_best_time`, `fifo`), each a whole simulated wave
on its own SQLite database, same seed, same patients, same nurses, same hours: a roster
sized to about 70 % of the hours the whole wave needs. Prints JSON per arm and per tier
(issue 13); every figure is read back from each arm's database by the report code.

    .venv/bin/python scripts/bench_outreach.py [--patients 20000] [--seed 0] \
        [--html out/outreach.html] [--json out/outreach.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from campaign.logs import configure_logging
from campaign.policy import load_policy
from campaign.reports import write_json
from dialer.outreach import ARMS, compare, render_html


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--html", type=Path, help="write the French comparison page here")
    ap.add_argument("--json", type=Path, help="write the JSON here too")
    ap.add_argument("--keep", type=Path, help="keep each arm's database in this directory")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run")
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        print(f"error: --arms: unknown arm {unknown[0]!r} (known: {', '.join(ARMS)})", file=sys.stderr)
        return 2
    configure_logging("json", "warning", stream=sys.stderr)
    t0 = time.perf_counter()

    def progress(stage: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {stage}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        result = compare(
            load_policy(), work, patients=args.patients, seed=args.seed, arms=arms, progress=progress
        )
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        write_json(result, args.json)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(result), encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if all(a["invariants_ok"] for a in result["arms"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
