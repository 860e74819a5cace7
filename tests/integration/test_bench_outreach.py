"""scripts/bench_outreach.py's code path on a tiny population: the JSON has the issue's shape,
and its figures agree with one another (per tier against the whole, curves against counts,
spreads against the per-nurse figures), for every arm."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from campaign import calendar as cal
from campaign.db import make_engine
from campaign.policy import NurseLevel, Tier, load_policy
from campaign.reports.outreach import outreach_figures
from dialer.outreach import ARMS, across_seeds, compare, fifo_depth, gains, render_html
from dialer.outreach_roster import SENIOR_COVER, size_roster, staffed, usable_minutes, wave_days

TIER_KEYS = {
    "patients",
    "reachable",
    "reached_in_window",
    "reached_in_window_of_reachable",
    "attempts_per_reach",
}
ARM_KEYS = {
    "by_tier",
    "attempts_per_reach",
    "referent_share",
    "occupancy",
    "occupancy_spread",
    "max_daily_load_deviation",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outreach")


@pytest.fixture(scope="module")
def result(work: Path) -> dict[str, Any]:
    return compare(load_policy(), work, patients=150, seed=3)


def share(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def test_the_json_has_the_issues_shape(result: dict[str, Any]) -> None:
    assert result["patients"] == 150
    assert set(result["arms"]) == set(ARMS) == {"carecall", "carecall_without_best_time", "fifo"}
    for arm in result["arms"].values():
        assert set(arm) >= ARM_KEYS
        assert set(arm["by_tier"]) == {"high", "medium", "low"}
        for tier in arm["by_tier"].values():
            assert set(tier) >= TIER_KEYS


@pytest.mark.parametrize("name", list(ARMS))
def test_every_figure_agrees_with_the_others(result: dict[str, Any], name: str) -> None:
    arm = result["arms"][name]
    tiers = arm["by_tier"].values()
    assert arm["invariants_ok"]
    # the mailing's recipients: every generated patient the import accepted
    assert sum(t["patients"] for t in tiers) == arm["patients"] <= result["patients"]
    for key in ("reachable", "reached", "reached_in_window", "attempts"):
        assert sum(t[key] for t in tiers) == arm[key]
    for t in [arm, *tiers]:
        assert t["reachable"] <= t["patients"] and t["reached_in_window"] <= t["reached"] <= t["patients"]
        assert t["attempts_per_reach"] == share(t["attempts"], t["reached"])
        curve = list(t["reach_curve"].values())
        assert curve == sorted(curve)
        assert t["reached_in_window_of_reachable"] == share(curve[-1], t["reachable"])
        assert 0 <= (t["referent_share"] or 0) <= 1
    # the population: most patients can be reached in three weeks, not all (away, dead numbers)
    assert arm["reached"] > 0 and 0.7 * arm["patients"] < arm["reachable"] < arm["patients"]
    target = load_policy().dialer.target_occupancy
    assert arm["occupancy_spread"] == round(max(abs(v - target) for v in arm["nurse_occupancy"].values()), 4)
    # the wave report's measure: working days; one loaded though nothing was planned is 100 % off
    working = [d for d in arm["load_by_day"] if d["working"] and (d["planned_min"] or d["actual_min"])]
    assert arm["max_daily_load_deviation"] == pytest.approx(
        max(abs(d["deviation"]) if d["deviation"] is not None else 1.0 for d in working), abs=1e-4
    )
    assert arm["days_loaded_unplanned"] == sum(1 for d in working if d["planned_min"] == 0)
    # attempt by attempt: the tiers' rows add up to the whole's; a task's k-th attempt needs a k-1-th
    rows = arm["by_attempt"]
    assert [r["attempt"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["attempts"] for r in rows] == sorted((r["attempts"] for r in rows), reverse=True)
    for r in rows:
        per_tier = [x["attempts"] for t in tiers for x in t["by_attempt"] if x["attempt"] == r["attempt"]]
        assert sum(per_tier) == r["attempts"] and 0 <= r["answer_rate"] <= 1
    assert sum(r["attempts"] for r in rows) <= arm["attempts"]  # callbacks are not a retry's depth


@pytest.mark.parametrize("name", ["carecall", "fifo"])
def test_answer_rates_by_attempt_number_are_the_databases(
    result: dict[str, Any], work: Path, name: str
) -> None:
    """Each wave task's attempts numbered in time order, counted here in SQL: the report's answer
    rate of the k-th attempts is theirs, and so is its reach rate (a conversation or an escalation:
    a "call me back" is answered and reaches no one yet)."""
    with sqlite3.connect(work / f"{name}.db") as db:
        counted = db.execute(
            "SELECT k, COUNT(*), SUM(result = 'answered'),"
            " SUM(COALESCE(code IN ('reached', 'escalation'), 0)) FROM (SELECT a.result, o.code,"
            " ROW_NUMBER() OVER (PARTITION BY a.task_id ORDER BY a.started_at, a.id) AS k"
            " FROM call_attempt a JOIN call_task t ON t.id = a.task_id"
            " LEFT JOIN outcome o ON o.attempt_id = a.id WHERE t.kind = 'wave')"
            " GROUP BY k ORDER BY k"
        ).fetchall()
    rows = result["arms"][name]["by_attempt"]
    assert [(r["attempt"], r["attempts"]) for r in rows] == [(k, n) for k, n, _, _ in counted]
    assert [r["answer_rate"] for r in rows] == [share(a, n) for _, n, a, _ in counted]
    assert [r["reach_rate"] for r in rows] == [share(reached, n) for _, n, _, reached in counted]
    assert any(r["reach_rate"] < r["answer_rate"] for r in rows)  # some asked to be called back


def test_attempts_per_reach_is_also_compared_up_to_the_last_attempt_fifo_makes() -> None:
    """fifo's depth is the last attempt number it makes for at least 5 % of its tasks; the gain
    compares both arms' attempts per reach counted up to that number."""

    def arm(made: list[int], up_to: list[float]) -> dict[str, Any]:
        rows = [
            {"attempt": k + 1, "attempts": n, "answer_rate": 0.3, "attempts_per_reach_up_to": a}
            for k, (n, a) in enumerate(zip(made, up_to, strict=True))
        ]
        high = {"reached_in_window_of_reachable": 0.5}
        return {"by_tier": {"high": high}, "attempts_per_reach": up_to[-1], "by_attempt": rows}

    fifo = arm([1000, 600, 400, 49], [3.0, 3.2, 3.5, 3.4])
    carecall = arm([1000, 700, 500, 300, 200], [2.9, 3.0, 3.15, 3.5, 3.8])
    assert fifo_depth(fifo["by_attempt"]) == 3  # 49 fourth attempts: under 5 % of 1,000 tasks
    g = gains({"carecall": carecall, "fifo": fifo})
    assert g["fifo_depth"] == 3
    assert g["attempts_per_reach_saved_vs_fifo_at_its_depth"] == round(1 - 3.15 / 3.5, 4)
    assert g["attempts_per_reach_saved_vs_fifo"] == round(1 - 3.8 / 3.4, 4)  # all attempts: more
    assert gains({"carecall": carecall})["attempts_per_reach_saved_vs_fifo_at_its_depth"] is None


def test_the_same_population_and_roster_in_every_arm(result: dict[str, Any]) -> None:
    arms = result["arms"].values()
    assert len({(a["patients"], a["reachable"]) for a in arms}) == 1
    assert len({tuple(a["nurse_occupancy"]) for a in arms}) == 1
    assert result["roster"]["share_of_needed"] >= 0.7


def test_each_tier_is_measured_against_what_its_attempts_could_reach(result: dict[str, Any]) -> None:
    """The bounds are the population's (the same in every arm), with the tier's own attempts; the
    page shows them beside each arm's reach."""
    policy = load_policy()
    bounds = [{t: v["reach_bound"] for t, v in a["by_tier"].items()} for a in result["arms"].values()]
    assert all(b == bounds[0] for b in bounds)
    for tier, bound in bounds[0].items():
        assert bound["attempts"] == policy.max_attempts(Tier(tier))
        assert 0 < bound["at_random_hours"] < bound["at_best_hours"] <= 1
        # the oracle on the roster's hours: for the seniors' tier only (the others share every nurse)
        assert (bound["on_the_roster"] is not None) == (tier == Tier.high.value)
        assert (bound["blind_to_absences"] is not None) == (tier == Tier.high.value)
    high = bounds[0][Tier.high.value]
    # blind to stays away, the oracle rings out on patients away, whose calls it would have kept
    assert 0 < high["blind_to_absences"] < high["on_the_roster"] <= 1
    page = render_html(result)
    assert "Ce que le moment de l'appel permet" in page and "Aux meilleures heures" in page
    assert "Un oracle sur les heures des infirmières" in page and "sans savoir qui est absent" in page


def test_the_roster_staffs_seniors_for_the_tiers_only_they_may_take(tmp_path: Path) -> None:
    """A programme staffs for its sickest patients first: the seniors' hours cover what the high tier
    needs (one senior fewer would not), and the roster's shortfall falls on the tiers any nurse may
    call: the smallest roster reaching 70 % of the wave's need."""
    policy, days = load_policy(), wave_days(load_policy())
    roster = size_roster(policy, 5_000, 0, tmp_path)
    nurses, seniors = roster["nurses"], roster["seniors"]
    need = SENIOR_COVER * roster["senior_only_hours_needed"]
    assert 1 < seniors < nurses
    assert roster["senior_usable_hours"] >= round(need, 1)
    assert usable_minutes(staffed(nurses, seniors - 1, 0), days, policy)[NurseLevel.senior] / 60 < need
    assert roster["usable_hours"] >= 0.7 * roster["hours_needed"]
    assert sum(usable_minutes(staffed(nurses - 1, seniors, 0), days, policy).values()) / 60 < (
        0.7 * roster["hours_needed"]
    )


def test_fifo_plans_the_whole_list_for_the_first_day(result: dict[str, Any], work: Path) -> None:
    """The fifo arm's plan comes from the production planning service with the switch on: every
    patient on the wave's first day, but one suspended then, on the day after the suspension."""
    first = date.fromisoformat(result["arms"]["fifo"]["load_by_day"][0]["day"])
    with sqlite3.connect(work / "fifo.db") as db:
        planned = db.execute(
            "SELECT t.planned_day, p.suspended_until FROM call_task t JOIN patient p ON p.id = t.patient_id"
            " WHERE t.kind = 'wave'"
        ).fetchall()
    assert len(planned) > 100
    hours = load_policy().calling_hours
    for day, suspended_until in planned:
        later = date.fromisoformat(suspended_until) + timedelta(days=1) if suspended_until else first
        assert date.fromisoformat(day) == cal.add_working_days(max(first, later), 0, hours), suspended_until
    carecall = [d for d in result["arms"]["carecall"]["load_by_day"] if d["planned_min"] > 0]
    assert len(carecall) > 1


def test_first_calls_made_ahead_are_counted_from_the_database(
    result: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    """Work ahead is carecall's: the fifo arm brings nothing forward; carecall's count is its
    database's tasks that keep the time their first call had been planned at (three marked so in
    a copy of the arm's database are three more)."""
    assert result["arms"]["fifo"]["first_calls_ahead"] == 0
    copy = tmp_path / "carecall.db"
    shutil.copy(work / "carecall.db", copy)
    with sqlite3.connect(copy) as db:
        (kept,) = db.execute("SELECT count(*) FROM call_task WHERE ahead_of IS NOT NULL").fetchone()
        assert result["arms"]["carecall"]["first_calls_ahead"] == kept
        db.execute(
            "UPDATE call_task SET ahead_of = not_before WHERE id IN"
            " (SELECT id FROM call_task WHERE kind = 'wave' AND ahead_of IS NULL ORDER BY id LIMIT 3)"
        )
    with Session(make_engine(f"sqlite:///{copy}")) as s:
        again = outreach_figures(s, load_policy(), 1, set())
    assert again["first_calls_ahead"] == kept + 3


def test_the_page_is_french_and_draws_the_curves(result: dict[str, Any], tmp_path: Path) -> None:
    page = render_html(result)
    assert '<html lang="fr">' in page and page.count("<polyline") == 2 * len(ARMS)
    assert "carecall sans meilleure heure" in page and "<script" not in page


def test_across_seeds_gives_each_figures_mean_and_range(result: dict[str, Any]) -> None:
    other = copy.deepcopy(result)
    other["arms"]["carecall"]["attempts_per_reach"] = result["arms"]["carecall"]["attempts_per_reach"] + 1
    del other["arms"]["fifo"]  # a run without an arm: that arm is summed up over the others
    other["gains"] = gains(other["arms"])
    summary = across_seeds({"3": result, "4": other})

    apr = summary["arms"]["carecall"]["attempts_per_reach"]
    low = result["arms"]["carecall"]["attempts_per_reach"]
    assert (apr["min"], apr["max"], apr["n"]) == (low, low + 1, 2)
    assert apr["mean"] == pytest.approx(low + 0.5, abs=1e-4)
    assert summary["arms"]["fifo"]["referent_share"]["n"] == 1
    assert summary["gains"]["high_reach_vs_fifo"]["n"] == 1  # the run without fifo has no such gain


def test_the_script_runs_several_seeds_and_refuses_a_bad_list(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_outreach.py"
    out, page = tmp_path / "out.json", tmp_path / "page.html"
    cmd = [sys.executable, str(script), "--patients", "80", "--arms", "carecall", "--json", str(out)]
    done = subprocess.run([*cmd, "--seeds", "3,4", "--html", str(page)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["seeds"] == [3, 4] and set(figures["runs"]) == {"3", "4"}
    assert figures["runs"]["3"]["arms"]["carecall"] != figures["runs"]["4"]["arms"]["carecall"]
    assert figures["across_seeds"]["arms"]["carecall"]["attempts_per_reach"]["n"] == 2
    assert "seed 4: carecall" in done.stderr  # progress says which seed it is on
    assert (tmp_path / "page-seed3.html").exists() and (tmp_path / "page-seed4.html").exists()

    bad = subprocess.run([*cmd, "--seeds", "3,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--seeds" in bad.stderr and "'3,x'" in bad.stderr
