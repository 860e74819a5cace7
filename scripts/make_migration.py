#!/usr/bin/env python3
"""Autogenerate the next Alembic revision from campaign.model.

Alembic compares the model with a *database*, so this builds a throwaway
SQLite file, upgrades it to the current head and autogenerates against it:
no developer database is needed or touched.  Revisions are numbered
0001, 0002, ... and written to campaign/migrations/versions/.  Review the
file it writes before committing.

    .venv/bin/python scripts/make_migration.py "add wave notes"
    .venv/bin/python scripts/make_migration.py --rewrite-initial   # while 0001 is the only one
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from alembic.script import ScriptDirectory

from campaign.migrate import MIGRATIONS_DIR, make_config, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", nargs="?", help="what the revision does, e.g. 'add wave notes'")
    parser.add_argument(
        "--rewrite-initial",
        action="store_true",
        help="delete 0001_initial.py and generate it again (only while it is the only revision)",
    )
    args = parser.parse_args(argv)
    versions = MIGRATIONS_DIR / "versions"
    existing = sorted(p for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))

    if args.rewrite_initial:
        if [p.name for p in existing] not in ([], ["0001_initial.py"]):
            parser.error(f"--rewrite-initial needs 0001_initial.py alone, found {existing}")
        for p in existing:
            p.unlink()
        message = "initial"
    elif not args.message:
        parser.error("give a message, or --rewrite-initial")
    else:
        message = args.message

    scripts = ScriptDirectory.from_config(make_config())
    if len(scripts.get_heads()) > 1:
        parser.error(f"several heads {scripts.get_heads()}: merge them first")
    rev_id = f"{len(list(scripts.walk_revisions())) + 1:04d}"

    with tempfile.TemporaryDirectory(prefix="carecall-mig-") as tmp:
        url = f"sqlite:///{tmp}/autogen.db"
        upgrade(url)
        cfg = make_config(url)
        script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    paths = [s.path for s in (script if isinstance(script, list) else [script]) if s is not None]
    for path in paths:
        print(f"wrote {path}")
    print("review it, then run ./scripts/test (the migration tests compare it with the model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
