"""`carecall patients`: the registry: import, generate, show a file, explain a day, list the
files to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dialer.cli.common import console, make_env, option_date, progress_bar
from dialer.cli.render import print_explanation

app = typer.Typer(
    help="Patient registry: import, generate, show, explain, the files to fix.", no_args_is_help=True
)

# rows listed after an import; the rest are counted
MAX_REJECTED_SHOWN = 200


@app.command("import")
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

    env = make_env()
    with progress_bar() as bar:
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
    if summary.contacts_restored:
        console.print(
            f"{summary.contacts_restored} patients who had no valid number left got one: "
            "they have a next contact again"
        )
    if summary.rejected:
        rej = Table(title="Rejected rows")
        rej.add_column("line", justify="right")
        rej.add_column("field")
        rej.add_column("reason")
        for r in summary.rejected[:MAX_REJECTED_SHOWN]:
            rej.add_row(str(r.line), r.field, r.reason)
        console.print(rej)
        if len(summary.rejected) > MAX_REJECTED_SHOWN:
            console.print(f"… and {len(summary.rejected) - MAX_REJECTED_SHOWN} more")
        raise typer.Exit(1)


@app.command("generate")
def patients_generate(
    n: Annotated[int, typer.Argument(min=1, help="how many patients")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write")] = Path("patients.csv"),
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Write a CSV of synthetic, fictional patients (fiction phone ranges only)."""
    from campaign.synthetic import generate_patients_csv

    generate_patients_csv(output, n, seed=seed)
    console.print(f"wrote {n} fictional patients to {output}")


@app.command("why")
def patient_why(
    member_id: str,
    on: Annotated[
        str | None, typer.Option("--on", help="day to explain (2026-12-25 or 25/12/2026), default today")
    ] = None,
) -> None:
    """Why this patient is, or is not, due to be called on a day, and what would change it."""
    from campaign.explain import explain_patient

    day = option_date(on, "--on") if on else None
    env = make_env()
    print_explanation(explain_patient(env.ctx, member_id, day, actor=env.settings.actor), console)


@app.command("show")
def patient_show(member_id: str) -> None:
    """Show a patient's file (recorded in the audit trail)."""
    from campaign.explain import patient_file

    env = make_env()
    data = patient_file(env.ctx, member_id, actor=env.settings.actor)
    table = Table(show_header=False)
    for k, v in data.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command("to-fix")
def patients_to_fix() -> None:
    """Patients whose every number was flagged wrong: nowhere to call them (audited).

    They stay out of every wave until their file gets a good number (re-import it).
    """
    from campaign.explain import patients_to_fix as to_fix

    env = make_env()
    items = to_fix(env.ctx, actor=env.settings.actor)
    if items:
        table = Table(title="Patients with no number left to call")
        for col in ("member id", "tier", "status", "numbers flagged", "since"):
            table.add_column(col, justify="right" if col == "numbers flagged" else "left")
        for p in items:
            since = p.since.isoformat() if p.since else "-"
            table.add_row(p.member_id, p.tier, p.status, str(p.flagged), since)
        console.print(table)
    console.print(f"{len(items)} patient{'' if len(items) == 1 else 's'} to fix")
