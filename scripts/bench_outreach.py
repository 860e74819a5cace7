#!/usr/bin/env python3
"""Benchmark: carecall's outreach against a FIFO dialer, on one population and one roster.

Three arms (`carecall`, `carecall_without_best_time`, `fifo`), each a whole simulated wave
on its own SQLite database, same seed, same patients, same nurses, same hours: a roster
sized to about 70 % of the hours the whole wave needs. Prints JSON per arm and per tier
(issue 13); every figure is read back from each arm's database by the report code.

    .venv/bin/python scripts/bench_outreach.py [--patients 20000] [--seed 0 | --seeds 0,1,2] \
        [--html out/outreach.html] [--json out/outreach.json] [--keep DIR] [--arms carecall,fifo]

With `--seeds`, every arm runs on each seed (its own population and roster), and `across_seeds`
gives each figure's mean, min and max: a change that moves one seed's figures less than they move
from seed to seed has not been shown to do anything.
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
from dialer.outreach import ARMS, compare, compare_seeds, render_html


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20_000)
    seeds = ap.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument(
        "--seeds",
        help="comma-separated seeds (0,1,2): every arm on each, then each figure's mean, min and max",
    )
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
    try:
        seed_list = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else None
    except ValueError:
        print(f"error: --seeds: {args.seeds!r} is not a comma-separated list of integers", file=sys.stderr)
        return 2
    if seed_list is not None and (not seed_list or len(set(seed_list)) != len(seed_list)):
        print(f"error: --seeds: {args.seeds!r} names no seed, or one twice", file=sys.stderr)
        return 2
    configure_logging("json", "warning", stream=sys.stderr)
    t0 = time.perf_counter()

    def progress(stage: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {stage}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        if seed_list is None:
            result = compare(
                load_policy(), work, patients=args.patients, seed=args.seed, arms=arms, progress=progress
            )
            runs = {str(args.seed): result}
        else:
            result = compare_seeds(
                load_policy(), work, patients=args.patients, seeds=seed_list, arms=arms, progress=progress
            )
            runs = result["runs"]
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        write_json(result, args.json)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        for seed, run in runs.items():  # one page per seed: seed 2's beside page.html is page-seed2.html
            path = args.html if seed_list is None else args.html.with_stem(f"{args.html.stem}-seed{seed}")
            path.write_text(render_html(run), encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if all(a["invariants_ok"] for run in runs.values() for a in run["arms"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
