"""What every command shares: the composition root (`Env`), the two consoles, the error
line, the progress bar and the parsing of option values.

Nothing is built at import: a command builds its `Env` when it runs.
"""

from __future__ import annotations

import sys
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from campaign.errors import InvalidArgument
from campaign.policy import load_policy
from campaign.settings import load_settings

# what a command answers goes to stdout; errors, progress bars and logs to stderr
console = Console()
err = Console(stderr=True)


class Env:
    """Settings, policy, engine and context, built once per command."""

    def __init__(self) -> None:
        # imported here, not at the top: `--help` and a bad setting need none of the database code
        from campaign import services
        from campaign.clock import SystemClock
        from campaign.db import make_engine, session_factory
        from campaign.logs import configure_logging

        self.settings = load_settings()
        configure_logging(self.settings.log_format, self.settings.log_level, stream=sys.stderr)
        self.policy = load_policy(self.settings.config_dir)
        self.engine = make_engine(self.settings.database_url)
        self.ctx = services.Context(session_factory(self.engine), self.policy, SystemClock())

    def ensure_schema(self) -> None:
        from campaign import migrate

        migrate.upgrade(self.engine)


def make_env(schema: bool = True) -> Env:
    """The command's Env; its database migrated unless `schema` is False."""
    env = Env()
    if schema:
        env.ensure_schema()
    return env


def report_error(exc: Exception) -> None:
    """The failure as one line on stderr, `error: ` and what is wrong and where.

    Never wrapped (a long message stays one line for whoever greps it) and never read
    as Rich markup (a key like `tiers.urgent.[key]` is printed as is).
    """
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = " ".join(str(exc).split()) or type(exc).__name__
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


# how a date may be typed, as in the import file
DATE_FORMS = "2026-12-07, 07/12/2026, 07-12-2026 or 07.12.2026"


def option_date(text: str, option: str) -> date:
    """A date option in any of the import file's forms (a supervisor types dates the way
    she reads them in her files), or InvalidArgument naming the option."""
    from campaign.imports import parse_date

    try:
        return parse_date(text)
    except ValueError as exc:
        raise InvalidArgument(f"{option} {text!r}: {exc}; give a date like {DATE_FORMS}") from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
