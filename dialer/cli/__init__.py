"""The `carecall` command: the supervisor's tool on a terminal.

One module per command group, all sharing `common` (the composition root that
builds settings, engine, policy and clock and hands them to the services;
nothing is built at import) and `render` (what is drawn on the terminal):

    db         db upgrade
    patients   patients import | generate | why | show
    nurses     nurses generate | list
    waves      mailing record; wave list | plan | show | launch | pause | resume | cancel | report
    processes  scheduler run; serve; simulate; demo
"""

from __future__ import annotations

import sys

import typer

from campaign.errors import CarecallError
from dialer.cli import db, nurses, patients, processes, waves
from dialer.cli.common import err

# Tracebacks never show local variables: they may hold a patient's data (invariant 5).
app = typer.Typer(
    help="carecall: call waves for nurse-led chronic-disease coaching.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(patients.app, name="patients")
app.add_typer(patients.app, name="patient", hidden=True)
app.add_typer(nurses.app, name="nurses")
app.add_typer(waves.mailing_app, name="mailing")
app.add_typer(waves.wave_app, name="wave")
app.add_typer(processes.scheduler_app, name="scheduler")
app.command("serve")(processes.serve_cmd)
app.command("simulate")(processes.simulate)
app.command("demo")(processes.demo)


def main() -> None:  # pragma: no cover
    try:
        app()
    except CarecallError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


__all__ = ["app", "main"]
