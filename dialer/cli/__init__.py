"""The `carecall` command: the supervisor's tool on a terminal.

One module per command group, all sharing `common` (the composition root that
builds settings, engine, policy and clock and hands them to the services;
nothing is built at import) and `render` (what is drawn on the terminal):

    db         db upgrade
    patients   patients import | generate | why | show | to-fix
    nurses     nurses generate | list
    waves      mailing record; wave list | plan | show | launch | pause | resume | cancel | report
    processes  scheduler run; serve; simulate; demo
    users      users add | list | unlock (the web consoles' accounts)
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from campaign.errors import CarecallError
from dialer.cli import db, nurses, patients, processes, users, waves
from dialer.cli.common import report_error

# what a failure the user can fix exits with (as click's usage errors)
EXIT_USAGE = 2


class _CarecallGroup(TyperGroup):
    """Every command runs inside this group's `invoke`: a CarecallError (bad config, bad
    database URL, unknown wave, bad option value…) or a file that cannot be read or
    written ends as one line on stderr and exit code 2, whatever the command, in the
    console script and under CliRunner alike."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click.Context
        try:
            return super().invoke(ctx)
        except (CarecallError, OSError) as exc:
            report_error(exc)
        raise typer.Exit(EXIT_USAGE)


# Tracebacks (of bugs) never show local variables: they may hold a patient's data (invariant 5).
app = typer.Typer(
    cls=_CarecallGroup,
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
app.add_typer(users.app, name="users")
app.command("serve")(processes.serve_cmd)
app.command("simulate")(processes.simulate)
app.command("demo")(processes.demo)


def main() -> None:
    """The `carecall` console script."""
    app(prog_name="carecall")


__all__ = ["app", "main"]
