"""The commands that run the programme rather than ask it something: `scheduler run`,
`serve` (a dialer process), `simulate` and `demo` (on a virtual clock)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from campaign.errors import InvalidArgument
from campaign.policy import load_policy
from campaign.settings import load_settings
from dialer.backends.factory import Telephony
from dialer.cli.common import console, err, make_env, option_date, progress_bar
from dialer.cli.render import render_text
from dialer.presence import NurseSource

# a longer run is a typing mistake more often than a wish (and would run for hours)
MAX_SIMULATED_DAYS = 366

scheduler_app = typer.Typer(help="The scheduler's jobs.", no_args_is_help=True)


@scheduler_app.command("run")
def scheduler_run() -> None:
    """Run the scheduler's jobs on the wall clock (plans due waves, closes finished ones)."""
    from campaign.jobs import build_scheduler

    env = make_env()
    scheduler = build_scheduler(env.settings.database_url, str(env.settings.config_dir), env.policy)
    console.print("scheduler running; Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


def serve_cmd(
    worker: Annotated[str, typer.Option(help="this process's name (stable across restarts)")] = "dialer-1",
    share: Annotated[str, typer.Option(help="this process's share of the nurses, K/N")] = "1/1",
    clock: Annotated[
        str,
        typer.Option(
            envvar="CARECALL_CLOCK",
            help=(
                "'system', or FACTOR:VIRTUAL_START@REAL_START for a scaled clock shared by all processes, "
                "optionally ';idle=FACTOR;busy=mon-fri 08:30-19:00[;tz=ZONE][;holidays=DEP][;until=ISO]' "
                "to run faster outside busy hours (see README)"
            ),
        ),
    ] = "system",
    seed: Annotated[int, typer.Option()] = 0,
    auto_launch: Annotated[bool, typer.Option(help="launch waves as soon as they are planned")] = False,
    lease_seconds: Annotated[
        float, typer.Option(help="real seconds a call's claim survives without heartbeat")
    ] = 20.0,
    telephony: Annotated[
        Telephony,
        typer.Option(
            envvar="CARECALL_TELEPHONY",
            help="the lines: simulated, an Asterisk switch (AMI) or Twilio (config/telephony.toml)",
        ),
    ] = Telephony.simulated,
    host: Annotated[
        str, typer.Option(help="where the web application listens (the consoles' pages, Twilio's webhooks)")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="its port: open http://HOST:PORT (each process its own)")
    ] = 8000,
    nurses: Annotated[
        NurseSource,
        typer.Option(
            help="who drives the nurses: their consoles for those with an account and simulated for the "
            "others (mixed), all simulated, or all by their consoles"
        ),
    ] = NurseSource.mixed,
) -> None:
    """Run a dialer process and the web application; the scheduler too while it holds the leadership.

    The web application (--host, --port) serves the nurse console and the
    supervisor board (accounts: `carecall users add`), and Twilio's webhooks
    with --telephony twilio. The lines are simulated by default, or an
    Asterisk switch or Twilio with --telephony. Nurses with a
    nurse account are driven by their consoles, the others are simulated
    (they go ready on their shifts, talk and record an outcome): see --nurses.
    """
    from dialer.backends.factory import telephony_setup
    from dialer.nurse_sources import presence_source
    from dialer.serve import Share, make_clock, serve

    try:
        the_share = Share.parse(share)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    try:
        the_clock = make_clock(clock)
    except ValueError as exc:
        raise InvalidArgument(f"--clock (or CARECALL_CLOCK): {exc}") from None
    env = make_env()
    env.engine.dispose()
    setup = telephony_setup(telephony, env.settings.config_dir)  # bad settings stop start-up here
    serve(
        env.settings.database_url,
        env.policy,
        config_dir=str(env.settings.config_dir),
        worker=worker,
        share=the_share,
        clock=the_clock,
        seed=seed,
        auto_launch=auto_launch,
        lease_real_seconds=lease_seconds,
        telephony=setup,
        host=host,
        port=port,
        presence=presence_source(nurses, seed),
    )


def simulate(
    until: Annotated[
        str,
        typer.Option(help="run the programme on a virtual clock until this day (2027-01-10 or 10/01/2027)"),
    ],
    start: Annotated[str | None, typer.Option(help="virtual start day, default today")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Run scheduler, dialer and simulated telephony/nurses on the current database, on a virtual clock."""
    from campaign import calendar as cal
    from campaign import services
    from campaign.clock import SystemClock, VirtualClock
    from dialer.simulation import run_simulation

    first = option_date(start, "--start") if start else SystemClock().now().date()
    last = option_date(until, "--until")
    if not 0 < (last - first).days <= MAX_SIMULATED_DAYS:
        raise InvalidArgument(
            f"--until {last} must be after --start {first}, and at most {MAX_SIMULATED_DAYS} days after it"
        )
    try:
        begin, end = (cal.at_local(d, datetime.min.time(), "Europe/Paris") for d in (first, last))
    except OverflowError:
        raise InvalidArgument(f"--start {first} is outside the calendar's range") from None
    env = make_env()
    clock = VirtualClock(begin)
    ctx = services.Context(env.ctx.sessions, env.policy, clock)
    result = run_simulation(ctx, clock, end, seed=seed)
    services.expire_and_close(ctx)
    console.print(f"simulated {result.dials} dials from {first} to {last}")


def demo(
    patients: Annotated[int, typer.Option(min=10, help="synthetic patients")] = 5000,
    nurses: Annotated[int, typer.Option(min=2, help="synthetic nurses")] = 12,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    theme: Annotated[str, typer.Option(help="theme of the mailing")] = "foot_care",
    database: Annotated[Path, typer.Option("--db", help="SQLite file (recreated)")] = Path("out/demo.db"),
    html: Annotated[Path, typer.Option(help="HTML report")] = Path("out/demo-report.html"),
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures as JSON here")] = None,
    log_file: Annotated[Path, typer.Option(help="the run's logs (JSON lines)")] = Path("out/demo.log"),
    log_level: Annotated[str, typer.Option(help="debug shows every dial")] = "info",
) -> None:
    """Generate patients and nurses, record a mailing, run its whole wave on a virtual clock, report."""
    from campaign import reports
    from campaign.logs import configure_logging
    from dialer.demo import demo_figures, run_demo

    settings = load_settings()
    policy = load_policy(settings.config_dir)
    if database.is_dir():
        raise InvalidArgument(f"--db {database} is a folder: give the SQLite file to (re)create")
    # every output's folder before the run, so a bad path fails now rather than after it
    for path in (database, html, log_file, json_path):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    log_stream = log_file.open("w", encoding="utf-8")
    configure_logging("json", log_level, stream=log_stream)
    with progress_bar() as bar:
        stage_task = bar.add_task("starting", total=None)
        imp = bar.add_task("importing patients", total=patients, visible=False)
        sim = bar.add_task("calling (virtual days)", total=1.0, visible=False)

        def stage(text: str) -> None:
            bar.update(stage_task, description=text)

        def import_progress(done: int, total: int) -> None:
            bar.update(imp, visible=True, completed=done, total=total)

        def sim_progress(start: datetime, now: datetime, end: datetime) -> None:
            span = (end - start).total_seconds() or 1
            bar.update(
                sim,
                visible=True,
                total=round(span / 86400, 1),
                completed=round((now - start).total_seconds() / 86400, 1),
                description=f"calling — {now:%a %d %b %H:%M} UTC",
            )

        run = run_demo(
            policy,
            database,
            patients=patients,
            nurses=nurses,
            seed=seed,
            theme=theme,
            import_progress=import_progress,
            sim_progress=sim_progress,
            stage=stage,
        )
        stage("done")
    report = demo_figures(run)
    render_text(report, console)
    html.write_text(reports.render_html(report), encoding="utf-8")
    console.print(
        f"HTML report: {html}   database: {database}   logs: {log_file}   wall time: {run.wall_seconds:.1f} s"
    )
    if json_path:
        reports.write_json(report, json_path)
        console.print(f"JSON figures: {json_path}")
    inv = report.get("invariants", {})
    if not inv.get("ok", True):
        err.print("[bold red]invariant violations found[/]")
        raise typer.Exit(1)
