"""Issue 13's comparison of outreach strategies: one population, one roster, three arms.

Each arm runs the production loop (`dialer.demo.run_demo`: import, mailing, planning,
simulation on a virtual clock) on its own SQLite database with the same seed, hence the
same patients, nurses and simulated answers; only `policy.outreach` differs. Every figure
comes from the arm's database through `campaign.reports.outreach`; who was reachable at
all is the simulator's ground truth, which carecall never reads.
"""

from __future__ import annotations

import time as wall
from collections.abc import Callable, Iterable, Sequence
from datetime import time
from pathlib import Path
from typing import Any

from campaign import calendar as cal
from campaign import store, templates
from campaign.policy import Policy, Tier
from campaign.reports import wave_report
from campaign.reports.charts import svg_lines
from campaign.reports.outreach import callable_recipients, outreach_figures
from campaign.services import wave_tasks
from dialer.demo import run_demo
from dialer.outreach_bounds import Bound, bounds_of, reachable_patients
from dialer.outreach_roster import SENT_ON, size_roster, staffed
from dialer.simulation import load_population

ARMS: dict[str, dict[str, Any]] = {
    "carecall": {"strategy": "carecall", "best_time": True},
    "carecall_without_best_time": {"strategy": "carecall", "best_time": False},
    "fifo": {"strategy": "fifo", "best_time": False},
}
HTML_TEMPLATE = "reports/outreach_bench.fr.html.j2"
THEME = "adherence"  # a theme about every pathology: the whole population is in the mailing

Progress = Callable[[str], None]


def arm_policy(policy: Policy, arm: str) -> Policy:
    return policy.model_copy(update={"outreach": policy.outreach.model_copy(update=ARMS[arm])})


def run_arm(
    policy: Policy,
    arm: str,
    database: Path,
    *,
    patients: int,
    nurses: int,
    seniors: int,
    seed: int,
    progress: Progress,
    bounds: dict[int, Bound] | None = None,
) -> dict[str, Any]:
    """One arm on its own database: the whole wave, then its figures from that database.

    `bounds`, when given empty, is filled with each reachable patient's `Bound`; given
    filled (by another arm on the same seed: the same patients), it is read as it is."""
    t0 = wall.perf_counter()
    run = run_demo(
        arm_policy(policy, arm),
        database,
        patients=patients,
        nurses=nurses,
        staff=lambda: staffed(nurses, seniors, seed),
        seed=seed,
        theme=THEME,
        segment="all",
        sent_on=SENT_ON,
        stage=lambda s: progress(f"{arm}: {s}"),
    )
    simulated = wall.perf_counter() - t0
    progress(f"{arm}: reporting")
    with run.ctx.sessions() as s:
        wave = store.wave_row(s, run.wave_id)
        assert wave is not None
        population = load_population(run.ctx, seed)  # the one the arm's simulated lines played
        start = cal.at_local(wave.window_start, time(0), "Europe/Paris")
        truth = reachable_patients(
            store.recipient_numbers(s, wave.mailing_id), population, start, wave.deadline
        )
        if bounds is not None and not bounds:
            progress(f"{arm}: bounds of reach")
            rows = store.recipient_numbers(s, wave.mailing_id)
            # the patients the figures count: the oracle's hours go to them alone
            counted = truth & callable_recipients(s, wave.mailing_id)
            shifts = wave_tasks.nurse_shifts(s)
            bounds.update(bounds_of(rows, counted, population, run.ctx.policy, shifts, start, wave.deadline))
        figures = outreach_figures(s, run.ctx.policy, run.wave_id, truth, bounds)
        report = wave_report(s, run.ctx.policy, run.wave_id)
    figures["invariants_ok"] = report["invariants"]["ok"]
    figures["invariants"] = {
        k: report[k] for k in ("calls_outside_window", "double_dials", "over_daily_cap", "open_tasks")
    }
    figures["wall_seconds"] = {
        "run": round(simulated, 1),
        "report": round(wall.perf_counter() - t0 - simulated, 1),
    }
    return figures


def compare(
    policy: Policy,
    work: Path,
    *,
    patients: int,
    seed: int,
    arms: Iterable[str] = tuple(ARMS),
    progress: Progress = lambda _s: None,
) -> dict[str, Any]:
    """The benchmark's JSON: the roster, then each arm's figures, then the gains between arms."""
    work.mkdir(parents=True, exist_ok=True)
    progress(f"sizing the roster for {patients} patients")
    roster = size_roster(policy, patients, seed, work)
    out: dict[str, Any] = {"patients": patients, "seed": seed, "roster": roster, "arms": {}}
    bounds: dict[int, Bound] = {}  # the same patients in every arm
    for arm in arms:
        out["arms"][arm] = run_arm(
            policy,
            arm,
            work / f"{arm}.db",
            patients=patients,
            nurses=roster["nurses"],
            seniors=roster["seniors"],
            seed=seed,
            progress=progress,
            bounds=bounds,
        )
    out["gains"] = gains(out["arms"])
    return out


def compare_seeds(
    policy: Policy,
    work: Path,
    *,
    patients: int,
    seeds: Sequence[int],
    arms: Iterable[str] = tuple(ARMS),
    progress: Progress = lambda _s: None,
) -> dict[str, Any]:
    """`compare` on several seeds (a population and a roster each), and each figure's mean, least
    and greatest over them: a change that moves one seed's figures by less than they move from
    seed to seed has not been shown to do anything."""
    arms = list(arms)
    runs = {}
    for seed in seeds:

        def told(stage: str, seed: int = seed) -> None:
            progress(f"seed {seed}: {stage}")

        runs[str(seed)] = compare(
            policy, work / f"seed-{seed}", patients=patients, seed=seed, arms=arms, progress=told
        )
    return {"patients": patients, "seeds": list(seeds), "runs": runs, "across_seeds": across_seeds(runs)}


# (name, the figure in an arm's figures) summed up over seeds
_SEED_FIGURES: tuple[tuple[str, Callable[[dict[str, Any]], float | None]], ...] = (
    ("high_reached_of_reachable", lambda a: a["by_tier"][Tier.high.value]["reached_in_window_of_reachable"]),
    ("reached_of_reachable", lambda a: a["reached_in_window_of_reachable"]),
    ("attempts_per_reach", lambda a: a["attempts_per_reach"]),
    ("referent_share", lambda a: a["referent_share"]),
    ("occupancy_spread", lambda a: a["occupancy_spread"]),
    ("max_daily_load_deviation", lambda a: a["max_daily_load_deviation"]),
    ("high_bound_at_random_hours", lambda a: _bound(a, "at_random_hours")),
    ("high_bound_at_best_hours", lambda a: _bound(a, "at_best_hours")),
    ("high_bound_on_the_roster", lambda a: _bound(a, "on_the_roster")),
    ("high_bound_blind_to_absences", lambda a: _bound(a, "blind_to_absences")),
)


def _bound(arm: dict[str, Any], key: str) -> float | None:
    bound = arm["by_tier"][Tier.high.value].get("reach_bound")
    return None if bound is None else bound[key]


def across_seeds(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per arm (and for the gains between arms), each figure's {mean, min, max, n} over the runs that
    have it; an arm missing from some run is summed up over the others."""

    def stats(values: Iterable[float | None]) -> dict[str, float | int] | None:
        got = [v for v in values if v is not None]
        if not got:
            return None
        return {"mean": round(sum(got) / len(got), 4), "min": min(got), "max": max(got), "n": len(got)}

    arms = dict.fromkeys(arm for run in runs.values() for arm in run["arms"])
    out: dict[str, Any] = {"arms": {}, "gains": {}}
    for arm in arms:
        figures = [run["arms"][arm] for run in runs.values() if arm in run["arms"]]
        out["arms"][arm] = {name: stats(get(f) for f in figures) for name, get in _SEED_FIGURES}
    keys = dict.fromkeys(k for run in runs.values() for k in run["gains"])
    out["gains"] = {k: stats(run["gains"].get(k) for run in runs.values()) for k in keys}
    return out


def gains(arms: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """What carecall's choices buy: high-tier reach over fifo's, attempts per reach saved."""

    def high(arm: str) -> float | None:
        return (
            arms[arm]["by_tier"][Tier.high.value]["reached_in_window_of_reachable"] if arm in arms else None
        )

    def apr(arm: str) -> float | None:
        return arms[arm]["attempts_per_reach"] if arm in arms else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    def saved(a: float | None, b: float | None) -> float | None:
        return round(1 - a / b, 4) if a is not None and b else None

    depth = fifo_depth(arms["fifo"]["by_attempt"]) if "fifo" in arms else None

    def apr_at(arm: str) -> float | None:
        if depth is None or arm not in arms:
            return None
        rows = [r for r in arms[arm]["by_attempt"] if r["attempt"] <= depth]
        return rows[-1]["attempts_per_reach_up_to"] if rows else None

    return {
        "high_reach_vs_fifo": ratio(high("carecall"), high("fifo")),
        "attempts_per_reach_saved_vs_fifo": saved(apr("carecall"), apr("fifo")),
        "attempts_per_reach_saved_by_best_time": saved(apr("carecall"), apr("carecall_without_best_time")),
        "fifo_depth": depth,
        "attempts_per_reach_saved_vs_fifo_at_its_depth": saved(apr_at("carecall"), apr_at("fifo")),
    }


# an attempt number fifo makes for fewer than this share of its tasks is not its depth
DEPTH_SHARE = 0.05


def fifo_depth(by_attempt: list[dict[str, Any]]) -> int | None:
    """How deep fifo goes: the last attempt number it makes for at least DEPTH_SHARE of its tasks.
    Its fixed retry spacing leaves no time for more in the window, so its attempts per reach
    never counts the later attempts carecall makes (up to 8), those that answer least; compared up to
    that number, the arms' attempts do the same work."""
    if not by_attempt:
        return None
    first = by_attempt[0]["attempts"]
    deep = [r["attempt"] for r in by_attempt if r["attempts"] >= DEPTH_SHARE * first]
    return max(deep) if deep else None


_COLOURS = {"carecall": "#15803d", "carecall_without_best_time": "#2563eb", "fifo": "#b91c1c"}


def render_html(result: dict[str, Any]) -> str:
    """The French page: figures per arm and tier, and the reach curves of the arms."""
    arms = result["arms"]
    days = list(next(iter(arms.values()))["reach_curve"]) if arms else []
    labels = [f"{d[8:10]}/{d[5:7]}" for d in days]

    def curve(key: str | None, title: str) -> Any:
        series = []
        for arm, figs in arms.items():
            src = figs if key is None else figs["by_tier"][key]
            den = src["reachable"] or 1
            series.append((arm, _COLOURS.get(arm, "#6b7280"), [src["reach_curve"][d] / den for d in days]))
        return svg_lines(labels, series, title=title, percent=True)

    charts = {
        "all": curve(None, "Patients joignables joints, cumulés par jour"),
        "high": curve(Tier.high.value, "Patients à risque élevé joignables joints, cumulés par jour"),
    }
    return templates.render(HTML_TEMPLATE, r=result, charts=charts)
