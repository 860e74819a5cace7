"""What the commands draw on the supervisor's terminal (English, as the CLI): the wave
report, a patient's explanation, a wave's plan and progress.

The figures and explanations come computed from `campaign`; this module only lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from campaign.explain import Explanation, WaveExplanation


def _fmt(value: Any, pct: bool = False, digits: int = 2) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{value * 100:.0f}%"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return str(value)


def _count_cell(n: int) -> Text:
    return Text("0", style="bold green") if n == 0 else Text(str(n), style="bold red")


def render_text(report: Mapping[str, Any], console: Console) -> None:
    """The supervisor's view in the terminal: tiers, nurses, invariants, next contacts."""
    w = report["wave"]
    console.print(
        f"[bold]Wave {w['id']}[/bold] · {w['theme_label'] or w['theme']} · {w['status']} · "
        f"{w['window_start']} → {w['window_end']}"
    )
    console.print(
        f"Patients: {report['patients']} recipients · {report['patients_in_wave']} in the wave · "
        f"reached {report['reached']} ({_fmt(report['reached_share'], pct=True)} of those in the wave) · "
        f"spoke with a nurse {report['spoke']} · opted out {report['opted_out']} · "
        f"to fix (no valid number) {report['patients_to_fix']}"
    )
    console.print(
        f"Tasks: {report['tasks']} · done {report['tasks_done']} · unreachable {report['unreachable']} · "
        f"expired {report['expired']} · cancelled {report['cancelled']} · open {report['open']} · "
        f"{report['attempts']} attempts ({_fmt(report['attempts_per_reach'])} per patient reached)"
    )

    tiers = Table(title="Per tier: patients", title_justify="left")
    for head in (
        "tier",
        "patients",
        "reached",
        "share",
        "in window",
        "att./reach",
        "median days",
        "référent",
    ):
        tiers.add_column(head, justify="left" if head == "tier" else "right")
    tasks = Table(title="Per tier: tasks", title_justify="left")
    for head in ("tier", "tasks", "done", "unreachable", "expired", "cancelled", "open"):
        tasks.add_column(head, justify="left" if head == "tier" else "right")
    for tier, t in report["by_tier"].items():
        tiers.add_row(
            tier,
            str(t["patients"]),
            str(t["reached"]),
            _fmt(t["reached_share"], pct=True),
            _fmt(t["reached_in_window_share"], pct=True),
            _fmt(t["attempts_per_reach"]),
            _fmt(t["median_days_to_reach"], digits=1),
            _fmt(t["referent_share"], pct=True),
        )
        tasks.add_row(
            tier, *(str(t[k]) for k in ("tasks", "tasks_done", "unreachable", "expired", "cancelled", "open"))
        )
    console.print(tiers)
    console.print(tasks)

    target = report["policy"]["target_occupancy"]
    nurses = Table(title=f"Per nurse (target occupancy {target * 100:.0f}%)", title_justify="left")
    for head in ("nurse", "attempts", "handled", "answered min", "shift min", "occupancy"):
        nurses.add_column(head, justify="left" if head == "nurse" else "right")
    for code, n in report["nurse_occupancy"].items():
        occ = n["occupancy"]
        style = "red" if occ is not None and occ > target else ""
        nurses.add_row(
            code,
            str(n["attempts"]),
            str(n["handled_calls"]),
            _fmt(n["answered_minutes"], digits=0),
            _fmt(n["shift_minutes"], digits=0),
            Text(_fmt(occ, pct=True), style=style),
        )
    console.print(nurses)
    console.print(
        f"Occupancy spread: {_fmt(report.get('occupancy_spread'), pct=True)} from the target at most · "
        f"daily load: {_fmt(report.get('max_daily_load_deviation'), pct=True)} from the plan at most "
        "(working days)"
    )
    if report.get("load_by_day"):
        # a morning top-up re-plans its day: the plan made before the first call is shown beside it
        replanned = bool(report.get("days_replanned"))
        days = Table(title="Per day: nurse minutes, planned and actual", title_justify="left")
        heads = ("day", "planned at launch", "planned", "actual", "deviation")
        for head in heads if replanned else heads[:1] + heads[2:]:
            days.add_column(head, justify="left" if head == "day" else "right")
        for d in report["load_by_day"]:
            dev = d["deviation"]
            style = "red" if d["working"] and dev is not None and abs(dev) > 0.1 else ""
            launch = [_fmt(d.get("launch_planned_min"), digits=0)] if replanned else []
            days.add_row(
                d["day"] + ("" if d["working"] else " (outside the plan)"),
                *launch,
                _fmt(d["planned_min"], digits=0),
                _fmt(d["actual_min"], digits=0),
                Text(_fmt(dev, pct=True), style=style),
            )
        console.print(days)
        if replanned:
            off = _fmt(report.get("max_daily_load_deviation_from_launch_plan"), pct=True)
            n, filled = report["days_replanned"], report.get("days_filled_by_top_ups", 0)
            apart = (
                f" ({filled} day{'s' * (filled != 1)} mostly of patients the top-ups added, not counted)"
                if filled
                else ""
            )
            console.print(
                f"Morning top-ups re-planned {n} day{'s' * (n != 1)}: 'planned' is that morning's "
                f"plan; from the launch plan, daily load was {off} off at most{apart}"
            )

    checks = Table(title="Invariants", title_justify="left")
    checks.add_column("check")
    checks.add_column("count", justify="right")
    checks.add_column("examples")
    for name, v in report["invariants"]["checks"].items():
        more = "…" if v["count"] > len(v["examples"]) else ""
        examples = ", ".join(str(i) for i in v["examples"]) + more
        if examples:
            examples = f"{v['unit']} {examples}"
        checks.add_row(name.replace("_", " "), _count_cell(v["count"]), examples)
    console.print(checks)

    nc = report["next_contact"]
    spread = Table(title="Next contact (patients per ISO week)", title_justify="left")
    spread.add_column("week")
    spread.add_column("patients", justify="right")
    spread.add_column("")
    peak = max(nc["counts"].values(), default=0)
    for week, n in nc["counts"].items():
        spread.add_row(week, str(n), "█" * max(1, round(30 * n / peak)) if peak else "")
    spread.add_row("none", str(nc["unscheduled"]), "")
    console.print(spread)


def print_explanation(exp: Explanation, console: Console) -> None:
    """`patients why`: the verdict, every check with its detail, and what would change it."""
    colour = "green" if exp.due else "yellow"
    console.print(f"[bold]{exp.member_id}[/] on {exp.day.isoformat()}: [bold {colour}]{exp.verdict}[/]")
    table = Table(show_header=True)
    table.add_column("check")
    table.add_column("")
    table.add_column("detail")
    for f in exp.findings:
        mark = "[green]ok[/]" if f.ok else "[red]blocks[/]" if f.blocking else "[yellow]note[/]"
        table.add_row(f.check, mark, f.detail)
    console.print(table)
    if exp.changes:
        console.print("[bold]What would change it:[/]")
        for c in exp.changes:
            console.print(f"  • {c}")


def print_wave(exp: WaveExplanation, console: Console) -> None:
    """`wave show`: the plan per day and tier, what was left out, the tasks, why nothing dials."""
    console.print(
        f"[bold]Wave {exp.wave_id}[/] — theme {exp.theme}, status [bold]{exp.status}[/], "
        f"window {exp.window_start} → {exp.window_end}"
    )
    plan = exp.plan
    if plan.get("days"):
        table = Table(title="Plan (first calls per day)")
        table.add_column("day")
        for t in ("high", "medium", "low"):
            table.add_column(t, justify="right")
        table.add_column("nurse minutes", justify="right")
        table.add_column("capacity", justify="right")
        for day, load in plan["days"].items():
            tasks = load["tasks"]
            table.add_row(
                day,
                *(str(tasks.get(t, 0)) for t in ("high", "medium", "low")),
                f"{load['minutes']:.0f}",
                f"{load['capacity']:.0f}",
            )
        console.print(table)
        if plan.get("skipped"):
            console.print("left out: " + ", ".join(f"{k}: {v}" for k, v in plan["skipped"].items()))
        if plan.get("top_ups"):
            added = ", ".join(f"{day}: {n}" for day, n in plan["top_ups"].items())
            console.print(f"added on the mornings of spare nurse time (patients left out before): {added}")
        if plan.get("unplaced"):
            console.print(
                f"[yellow]{plan['unplaced']} patients did not fit in the window's nurse capacity[/]"
            )
            for tier, need in plan.get("unplaced_by_tier", {}).items():
                hours, levels = need["hours"], " or ".join(need["levels"])
                console.print(
                    f"  {tier}: {need['patients']} patients, about {hours:.0f} h of {levels} nurse time"
                )
    if exp.tasks:
        console.print("tasks: " + ", ".join(f"{k}: {v}" for k, v in sorted(exp.tasks.items())))
    for line in exp.reasons:
        console.print(f"  • {line}")
