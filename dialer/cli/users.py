"""`carecall users`: the consoles' accounts (supervisors, nurses)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from dialer.accounts.model import Role
from dialer.cli.common import console, make_env

app = typer.Typer(help="Accounts of the web consoles (supervisors, nurses).", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or asked twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


@app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="the log-in name (letters, digits, '.', '_', '-')")],
    role: Annotated[Role, typer.Option(help="supervisor (the board) or nurse (her console)")],
    nurse: Annotated[
        str | None, typer.Option(help="a nurse account's nurse code (see `carecall nurses list`)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input (one line)")
    ] = False,
) -> None:
    """Create an account; the password is asked twice without echo, or read from standard input."""
    from dialer.accounts import create_account, normalise_username
    from dialer.accounts.passwords import check_new_password

    name = normalise_username(username)  # a bad name is refused before the password is asked
    if role == Role.nurse and not nurse:
        from campaign.errors import InvalidArgument

        raise InvalidArgument("a nurse account needs --nurse CODE (her code, see `carecall nurses list`)")
    password = _read_password(password_stdin)
    check_new_password(password)
    env = make_env()
    create_account(env.ctx, name, role, password, nurse_code=nurse, actor=env.settings.actor)
    console.print(f"account {name} added ({role.value}{f', nurse {nurse}' if nurse else ''})")


@app.command("list")
def users_list() -> None:
    """The accounts, their role, nurse and whether they are locked."""
    from dialer.accounts import list_accounts

    env = make_env()
    now = env.ctx.clock.now()
    table = Table()
    for c in ("user", "role", "nurse", "state", "created"):
        table.add_column(c)
    for a in list_accounts(env.ctx):
        if not a.active:
            state = "inactive"
        elif a.locked_until is not None and a.locked_until > now:
            state = f"locked until {a.locked_until:%Y-%m-%d %H:%M} UTC"
        else:
            state = "active" + (f" ({a.failed_logins} failed log-ins)" if a.failed_logins else "")
        table.add_row(a.username, a.role, a.nurse_code or "-", state, f"{a.created_at:%Y-%m-%d}")
    console.print(table)


@app.command("unlock")
def users_unlock(username: Annotated[str, typer.Argument(help="the account to unlock")]) -> None:
    """Unlock an account locked after too many wrong passwords (and reset its count)."""
    from dialer.accounts import unlock_account

    env = make_env()
    was_locked = unlock_account(env.ctx, username, actor=env.settings.actor)
    console.print(f"account {username.strip().lower()} {'unlocked' if was_locked else 'was not locked'}")
