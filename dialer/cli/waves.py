"""`carecall mailing` and `carecall wave`: a thematic mailing and the wave of calls after it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dialer.cli.common import console, make_env, option_date
from dialer.cli.render import print_wave, render_text

mailing_app = typer.Typer(help="Thematic mailings.", no_args_is_help=True)
wave_app = typer.Typer(
    help="Call waves: plan, review, launch, pause, resume, cancel, report.", no_args_is_help=True
)


@mailing_app.command("record")
def mailing_record(
    theme: Annotated[str, typer.Option(help="theme code from config/themes.toml")],
    sent_on: Annotated[
        str, typer.Option("--sent-on", help="day the letters were posted (2026-12-07 or 07/12/2026)")
    ],
    segment: Annotated[
        str | None,
        typer.Option(
            help="who got it: 'all', or clauses like 'pathology=diabetes,copd; tier=high; departement=974'. "
            "Default: the theme's pathologies"
        ),
    ] = None,
    late: Annotated[
        bool,
        typer.Option(
            "--late",
            help="the letters went out a while ago: plan the wave from today "
            "(without it, a wave that would have started before today is refused)",
        ),
    ] = False,
) -> None:
    """Record a thematic mailing; the scheduler plans its wave when the letters arrive."""
    from campaign import services

    day = option_date(sent_on, "--sent-on")
    env = make_env()
    rec = services.record_mailing(env.ctx, theme, segment, day, late=late)
    console.print(
        f"mailing {rec.mailing_id}: {rec.recipients} patients; letters arrive {rec.arrives_on}; "
        f"wave {rec.wave_id} calls from {rec.window_start} to {rec.window_end}; "
        f"planned by the scheduler from {rec.plan_after:%Y-%m-%d %H:%M} UTC "
        f"(or now: carecall wave plan {rec.wave_id})"
    )


@wave_app.command("list")
def wave_list() -> None:
    """All waves with their status and window."""
    from campaign import store

    env = make_env()
    table = Table()
    for c in ("wave", "theme", "status", "window", "recipients"):
        table.add_column(c)
    with env.ctx.sessions() as s:
        for w in store.waves_with_mailings(s):
            table.add_row(
                str(w.id), w.theme_code, w.status, f"{w.window_start} → {w.window_end}", str(w.recipients)
            )
    console.print(table)


@wave_app.command("show")
def wave_show(wave_id: int) -> None:
    """The wave's plan per day and tier, its progress, and why tasks are not being dialed now."""
    from campaign.explain import explain_wave

    env = make_env()
    print_wave(explain_wave(env.ctx, wave_id), console)


def _wave_action(action: str, wave_id: int) -> None:
    from campaign import services

    env = make_env()
    wave = services.change_wave(env.ctx, wave_id, action, actor=env.settings.actor)
    console.print(f"wave {wave_id} is now {wave.status}")


@wave_app.command("plan")
def wave_plan(
    wave_id: int, replan: Annotated[bool, typer.Option(help="plan a planned wave again")] = False
) -> None:
    """Plan the wave now, without waiting for the scheduler."""
    from campaign import services

    env = make_env()
    plan = services.plan_wave(env.ctx, wave_id, replan=replan)
    console.print(
        f"wave {wave_id}: {len(plan.assignments)} tasks planned, {len(plan.unplaced)} did not fit, "
        f"{sum(plan.skipped.values())} left out. Review with: carecall wave show {wave_id}"
    )


@wave_app.command("launch")
def wave_launch(wave_id: int) -> None:
    """Start dialing a planned wave."""
    _wave_action("launch", wave_id)


@wave_app.command("pause")
def wave_pause(wave_id: int) -> None:
    """Stop dialing new calls of the wave (calls under way finish)."""
    _wave_action("pause", wave_id)


@wave_app.command("resume")
def wave_resume(wave_id: int) -> None:
    """Dial a paused wave again."""
    _wave_action("resume", wave_id)


@wave_app.command("cancel")
def wave_cancel(wave_id: int) -> None:
    """Cancel the wave: its waiting tasks are cancelled."""
    _wave_action("cancel", wave_id)


@wave_app.command("report")
def wave_report_cmd(
    wave_id: int,
    html: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures as JSON here")] = None,
) -> None:
    """The wave's report: per tier, per nurse, invariants."""
    from campaign import reports

    env = make_env()
    with env.ctx.sessions() as s:
        report = reports.wave_report(s, env.policy, wave_id)
    render_text(report, console)
    if html:
        html.write_text(reports.render_html(report), encoding="utf-8")
        console.print(f"HTML report: {html}")
    if json_path:
        reports.write_json(report, json_path)
        console.print(f"JSON figures: {json_path}")
