"""`carecall db`: the database schema."""

from __future__ import annotations

import typer

from dialer.cli.common import console, make_env

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to the database (CARECALL_DATABASE_URL)."""
    env = make_env(schema=False)
    env.ensure_schema()
    from campaign import migrate

    console.print(f"database at revision [bold]{migrate.current(env.engine)}[/]")
