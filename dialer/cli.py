"""The `carecall` command: the supervisor's tool on a terminal.

The composition root: builds settings, engine, policy and clock, and hands
them to the services. Nothing is built at import.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from campaign import services
from campaign.clock import SystemClock
from campaign.errors import CarecallError
from campaign.policy import load_policy
from campaign.settings import Settings
from dialer.terminal import render_text

# Tracebacks never show local variables: they may hold a patient's data (invariant 5).
app = typer.Typer(
    help="carecall: call waves for nurse-led chronic-disease coaching.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
patients_app = typer.Typer(help="Patient registry: import, generate, show, explain.", no_args_is_help=True)
nurses_app = typer.Typer(help="Nurses and their shifts.", no_args_is_help=True)
mailing_app = typer.Typer(help="Thematic mailings.", no_args_is_help=True)
wave_app = typer.Typer(
    help="Call waves: plan, review, launch, pause, resume, cancel, report.", no_args_is_help=True
)
scheduler_app = typer.Typer(help="The scheduler's jobs.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(patients_app, name="patients")
app.add_typer(patients_app, name="patient", hidden=True)
app.add_typer(nurses_app, name="nurses")
app.add_typer(mailing_app, name="mailing")
app.add_typer(wave_app, name="wave")
app.add_typer(scheduler_app, name="scheduler")

console = Console()
err = Console(stderr=True)


class Env:
    """Settings, policy, engine and context, built once per command."""

    def __init__(self) -> None:
        from campaign.db import make_engine, session_factory
        from campaign.logs import configure_logging

        self.settings = Settings()
        configure_logging(self.settings.log_format, self.settings.log_level, stream=sys.stderr)
        self.policy = load_policy(self.settings.config_dir)
        self.engine = make_engine(self.settings.database_url)
        self.ctx = services.Context(session_factory(self.engine), self.policy, SystemClock())

    def ensure_schema(self) -> None:
        from campaign import migrate

        migrate.upgrade(self.engine)


def _env(schema: bool = True) -> Env:
    env = Env()
    if schema:
        env.ensure_schema()
    return env


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a date like 2026-12-07, not {text!r}") from None


# ---------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to the database (CARECALL_DATABASE_URL)."""
    env = _env(schema=False)
    env.ensure_schema()
    from campaign import migrate

    console.print(f"database at revision [bold]{migrate.current(env.engine)}[/]")


# ---------------------------------------------------------------- patients


@patients_app.command("import")
def patients_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file (see README)")],
    accept_similar_ids: Annotated[
        bool,
        typer.Option(
            "--accept-similar-ids",
            help="import member ids equal to a known one once leading zeros are stripped "
            "(0012345 and 12345) as different patients",
        ),
    ] = False,
) -> None:
    """Import or update patients from a CSV file; a bad row never stops the good ones."""
    from campaign.imports import import_patients

    env = _env()
    try:
        with _progress() as bar:
            task = bar.add_task("importing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = import_patients(
                env.ctx.sessions,
                file,
                env.ctx.clock,
                env.policy,
                progress=progress,
                actor=env.settings.actor,
                accept_similar_ids=accept_similar_ids,
            )
    except CarecallError as exc:
        _fail(exc)
        return
    table = Table(title=f"Import of {file.name}")
    for col in ("rows", "imported", "updated", "unchanged", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.total),
        str(summary.inserted),
        str(summary.updated),
        str(summary.unchanged),
        str(len(summary.rejected)),
    )
    console.print(table)
    if summary.rejected:
        rej = Table(title="Rejected rows")
        rej.add_column("line", justify="right")
        rej.add_column("field")
        rej.add_column("reason")
        for r in summary.rejected[:200]:
            rej.add_row(str(r.line), r.field, r.reason)
        console.print(rej)
        if len(summary.rejected) > 200:
            console.print(f"… and {len(summary.rejected) - 200} more")
        raise typer.Exit(1)


@patients_app.command("generate")
def patients_generate(
    n: Annotated[int, typer.Argument(min=1, help="how many patients")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write")] = Path("patients.csv"),
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Write a CSV of synthetic, fictional patients (fiction phone ranges only)."""
    from campaign.synthetic import generate_patients_csv

    generate_patients_csv(output, n, seed=seed)
    console.print(f"wrote {n} fictional patients to {output}")


@patients_app.command("why")
def patient_why(
    member_id: str,
    on: Annotated[str | None, typer.Option("--on", help="day to explain (YYYY-MM-DD), default today")] = None,
) -> None:
    """Why this patient is, or is not, due to be called on a day, and what would change it."""
    from campaign.explain import explain_patient

    env = _env()
    day = _date(on, "--on") if on else None
    try:
        exp = explain_patient(env.ctx, member_id, day, actor=env.settings.actor)
    except CarecallError as exc:
        _fail(exc)
        return
    _print_explanation(exp)


def _print_explanation(exp: Any) -> None:
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


@patients_app.command("show")
def patient_show(member_id: str) -> None:
    """Show a patient's file (recorded in the audit trail)."""
    from campaign.explain import patient_file

    env = _env()
    try:
        data = patient_file(env.ctx, member_id, actor=env.settings.actor)
    except CarecallError as exc:
        _fail(exc)
        return
    table = Table(show_header=False)
    for k, v in data.items():
        table.add_row(k, str(v))
    console.print(table)


# ---------------------------------------------------------------- nurses


@nurses_app.command("generate")
def nurses_generate(
    n: Annotated[int, typer.Argument(min=1)],
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Add n synthetic nurses with realistic shifts (for pilots and demos)."""
    from campaign.synthetic import generate_nurses

    env = _env()
    with env.ctx.sessions() as s:
        from sqlmodel import select

        from campaign.model import Nurse

        existing = {c for (c,) in s.execute(select(Nurse.code)).all()}
        added = [x for x in generate_nurses(n, seed=seed) if x.code not in existing]
        s.add_all(added)
        s.commit()
    console.print(f"added {len(added)} nurses ({n - len(added)} already present)")


@nurses_app.command("list")
def nurses_list() -> None:
    """The nurses, their level, skills and weekly shift hours."""
    from campaign import store

    env = _env()
    with env.ctx.sessions() as s:
        rows = store.nurses(s)
    table = Table()
    for c in ("code", "level", "skills", "hours/week"):
        table.add_column(c)
    for n in rows:
        minutes = sum((e.hour * 60 + e.minute) - (b.hour * 60 + b.minute) for _, b, e in n.shifts)
        table.add_row(n.code, n.level.value, ", ".join(sorted(n.skills)) or "-", f"{minutes / 60:.1f}")
    console.print(table)


# ---------------------------------------------------------------- mailings and waves


@mailing_app.command("record")
def mailing_record(
    theme: Annotated[str, typer.Option(help="theme code from config/themes.toml")],
    sent_on: Annotated[str, typer.Option("--sent-on", help="day the letters were posted (YYYY-MM-DD)")],
    segment: Annotated[
        str | None,
        typer.Option(
            help="who got it: 'all', or clauses like 'pathology=diabetes,copd; tier=high; departement=974'. "
            "Default: the theme's pathologies"
        ),
    ] = None,
) -> None:
    """Record a thematic mailing; the scheduler plans its wave when the letters arrive."""
    env = _env()
    try:
        rec = services.record_mailing(env.ctx, theme, segment, _date(sent_on, "--sent-on"))
    except (CarecallError, ValueError) as exc:
        _fail(exc)
        return
    console.print(
        f"mailing {rec.mailing_id}: {rec.recipients} patients; letters arrive {rec.arrives_on}; "
        f"wave {rec.wave_id} calls from {rec.window_start} to {rec.window_end}; "
        f"planned by the scheduler from {rec.plan_after:%Y-%m-%d %H:%M} UTC "
        f"(or now: carecall wave plan {rec.wave_id})"
    )


@wave_app.command("list")
def wave_list() -> None:
    """All waves with their status and window."""
    from sqlmodel import select

    from campaign.model import MAILING, WAVE, Mailing, Wave

    env = _env()
    table = Table()
    for c in ("wave", "theme", "status", "window", "recipients"):
        table.add_column(c)
    with env.ctx.sessions() as s:
        for w, m in s.execute(select(Wave, Mailing).join(MAILING, MAILING.c.id == WAVE.c.mailing_id)).all():
            table.add_row(
                str(w.id), m.theme_code, w.status, f"{w.window_start} → {w.window_end}", str(m.recipients)
            )
    console.print(table)


@wave_app.command("show")
def wave_show(wave_id: int) -> None:
    """The wave's plan per day and tier, its progress, and why tasks are not being dialed now."""
    from campaign.explain import explain_wave

    env = _env()
    try:
        exp = explain_wave(env.ctx, wave_id)
    except CarecallError as exc:
        _fail(exc)
        return
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
        if plan.get("unplaced"):
            console.print(
                f"[yellow]{plan['unplaced']} patients did not fit in the window's nurse capacity[/]"
            )
    if exp.tasks:
        console.print("tasks: " + ", ".join(f"{k}: {v}" for k, v in sorted(exp.tasks.items())))
    for line in exp.reasons:
        console.print(f"  • {line}")


def _wave_action(action: str, wave_id: int) -> None:
    env = _env()
    try:
        wave = services.change_wave(env.ctx, wave_id, action, actor=env.settings.actor)
    except CarecallError as exc:
        _fail(exc)
        return
    console.print(f"wave {wave_id} is now {wave.status}")


@wave_app.command("plan")
def wave_plan(
    wave_id: int, replan: Annotated[bool, typer.Option(help="plan a planned wave again")] = False
) -> None:
    """Plan the wave now, without waiting for the scheduler."""
    env = _env()
    try:
        plan = services.plan_wave(env.ctx, wave_id, replan=replan)
    except CarecallError as exc:
        _fail(exc)
        return
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

    env = _env()
    with env.ctx.sessions() as s:
        try:
            report = reports.wave_report(s, env.policy, wave_id)
        except CarecallError as exc:
            _fail(exc)
            return
    render_text(report, console)
    if html:
        html.write_text(reports.render_html(report), encoding="utf-8")
        console.print(f"HTML report: {html}")
    if json_path:
        reports.write_json(report, json_path)
        console.print(f"JSON figures: {json_path}")


@scheduler_app.command("run")
def scheduler_run() -> None:
    """Run the scheduler's jobs on the wall clock (plans due waves, closes finished ones)."""
    from campaign.jobs import build_scheduler

    env = _env()
    scheduler = build_scheduler(env.settings.database_url, str(env.settings.config_dir), env.policy)
    console.print("scheduler running; Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


@app.command("serve")
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
) -> None:
    """Run a dialer process (simulated telephony); the scheduler too while it holds the leadership."""
    from dialer.serve import Share, make_clock, serve

    env = _env()
    try:
        the_share = Share.parse(share)
        the_clock = make_clock(clock)
    except ValueError as exc:
        _fail(exc)
        return
    env.engine.dispose()
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
    )


@app.command("simulate")
def simulate(
    until: Annotated[
        str, typer.Option(help="run the programme on a virtual clock until this day (YYYY-MM-DD)")
    ],
    start: Annotated[str | None, typer.Option(help="virtual start day, default today")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Run scheduler, dialer and simulated telephony/nurses on the current database, on a virtual clock."""
    from campaign import calendar as cal
    from campaign.clock import VirtualClock
    from dialer.simulation import run_simulation

    env = _env()
    first = _date(start, "--start") if start else SystemClock().now().date()
    clock = VirtualClock(cal.at_local(first, datetime.min.time(), "Europe/Paris"))
    ctx = services.Context(env.ctx.sessions, env.policy, clock)
    end = cal.at_local(_date(until, "--until"), datetime.min.time(), "Europe/Paris")
    result = run_simulation(ctx, clock, end, seed=seed)
    services.expire_and_close(ctx)
    console.print(f"simulated {result.dials} dials from {first} to {_date(until, '--until')}")


@app.command("demo")
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

    settings = Settings()
    policy = load_policy(settings.config_dir)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_stream = log_file.open("w", encoding="utf-8")
    configure_logging("json", log_level, stream=log_stream)
    with _progress() as bar:
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
    html.parent.mkdir(parents=True, exist_ok=True)
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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def main() -> None:  # pragma: no cover
    try:
        app()
    except CarecallError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
