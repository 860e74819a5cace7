"""`carecall nurses`: the nurses and their shifts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dialer.cli.common import console, make_env

app = typer.Typer(help="Nurses and their shifts.", no_args_is_help=True)


@app.command("generate")
def nurses_generate(
    n: Annotated[int, typer.Argument(min=1)],
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Add n synthetic nurses with realistic shifts (for pilots and demos)."""
    from campaign import store
    from campaign.synthetic import generate_nurses

    env = make_env()
    with env.ctx.sessions() as s:
        added = store.add_new_nurses(s, generate_nurses(n, seed=seed))
        s.commit()
    console.print(f"added {len(added)} nurses ({n - len(added)} already present)")


@app.command("list")
def nurses_list() -> None:
    """The nurses, their level, skills and weekly shift hours."""
    from campaign import store

    env = make_env()
    with env.ctx.sessions() as s:
        rows = store.nurses(s)
    table = Table()
    for c in ("code", "level", "skills", "hours/week", "phone"):
        table.add_column(c)
    for n in rows:
        minutes = sum((e.hour * 60 + e.minute) - (b.hour * 60 + b.minute) for _, b, e in n.shifts)
        table.add_row(
            n.code,
            n.level.value,
            ", ".join(sorted(n.skills)) or "-",
            f"{minutes / 60:.1f}",
            n.phone_endpoint or "-",
        )
    console.print(table)


@app.command("phone")
def nurses_phone(
    code: Annotated[str, typer.Argument(help="the nurse's code")],
    endpoint: Annotated[
        str | None,
        typer.Argument(
            help=(
                "her phone: a PJSIP endpoint (Asterisk), 'client:IDENTITY' or an E.164 number "
                "(Twilio); omit it with --clear"
            )
        ),
    ] = None,
    clear: Annotated[bool, typer.Option(help="forget her phone")] = False,
) -> None:
    """Set the phone the dialer keeps in her conference while she is ready (real telephony)."""
    from campaign import store
    from campaign.errors import InvalidArgument, NotFound

    if (endpoint is None) != clear:
        raise InvalidArgument("give the nurse's phone endpoint, or --clear (not both)")
    if endpoint is not None and (not endpoint.strip() or len(endpoint) > 128):
        raise InvalidArgument("the phone endpoint must be 1 to 128 characters")
    env = make_env()
    with env.ctx.sessions() as s:
        if not store.set_nurse_phone(s, code, endpoint.strip() if endpoint else None):
            raise NotFound(f"no nurse with code {code!r}")
        s.commit()
    console.print(f"nurse {code}: phone {endpoint or 'cleared'}")
