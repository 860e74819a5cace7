"""Schema migrations, driven from code.

The Alembic scripts live inside the package (`campaign/migrations`) and the
Config is built here, so an installed carecall can upgrade its own database
with no alembic.ini and no working-directory assumptions.  Works for SQLite
files and PostgreSQL (`postgresql+psycopg://`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from campaign.db import connect, database_errors, make_engine
from campaign.errors import CarecallError

# Modules whose tables the schema's one migration history covers: the programme's, and the
# dialer's own line tables (dialer/lines). Named, not imported, so campaign code never depends
# on the dialer's.
MODEL_MODULES = (
    "campaign.model",
    "dialer.lines.model",
    "dialer.staff.model",
    "dialer.accounts.model",
    "dialer.inbound.model",
)


def load_models() -> None:
    """Register every table on SQLModel.metadata."""
    for module in MODEL_MODULES:
        importlib.import_module(module)


load_models()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Several dialer processes may start at once against one PostgreSQL: only one
# may run the migrations, the others wait and then find nothing to do.
_PG_MIGRATION_LOCK = 0x63617265  # "care"


class SchemaOutOfDate(CarecallError):
    """The database is not at the revision this version of carecall expects."""


def make_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged scripts (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is configparser interpolation: escape it (URL-encoded passwords).
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _engine(engine_or_url: Engine | str) -> Iterator[Engine]:
    """Use the caller's engine as is; build (and dispose of) one from a URL."""
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _migration_connection(engine_or_url: Engine | str) -> Iterator[tuple[Config, Connection]]:
    """A connection in a transaction (under the migration lock on PostgreSQL); a database that
    cannot be reached or migrated comes out as DatabaseUnavailable naming what failed."""
    with (
        _engine(engine_or_url) as engine,
        connect(engine) as conn,
        database_errors(engine, "migrating it failed"),
        conn.begin(),
    ):
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg = make_config(engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        yield cfg, conn


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the latest). Idempotent."""
    with _migration_connection(engine_or_url) as (cfg, _conn):
        command.upgrade(cfg, revision)


def downgrade(engine_or_url: Engine | str, revision: str) -> None:
    """Step the database back to `revision` ("base" drops every table)."""
    with _migration_connection(engine_or_url) as (cfg, _conn):
        command.downgrade(cfg, revision)


def head() -> str:
    """The revision this code expects (the single head of the scripts)."""
    heads = ScriptDirectory.from_config(make_config()).get_heads()
    if len(heads) != 1:
        raise SchemaOutOfDate(f"migration scripts have {len(heads)} heads {heads}: merge them")
    return heads[0]


def current(engine_or_url: Engine | str) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    with (
        _engine(engine_or_url) as engine,
        connect(engine) as conn,
        database_errors(engine, "reading its schema revision failed"),
    ):
        return MigrationContext.configure(conn).get_current_revision()


def check_up_to_date(engine_or_url: Engine | str) -> str:
    """Refuse to run against a database at another revision than the code's.

    Returns the revision; raises SchemaOutOfDate (saying what to do) otherwise,
    so a process started before the upgrade fails at once rather than mid-call.
    """
    expected = head()
    found = current(engine_or_url)
    if found != expected:
        where = "an empty (unmigrated) database" if found is None else f"revision {found}"
        raise SchemaOutOfDate(
            f"the database is at {where}, this carecall needs revision {expected}: "
            "upgrade it first (campaign.migrate.upgrade)"
        )
    return expected


def schema_diff(engine_or_url: Engine | str) -> list[Any]:
    """Differences between the database and the model (empty when in sync)."""
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


__all__ = [
    "MIGRATIONS_DIR",
    "SchemaOutOfDate",
    "check_up_to_date",
    "current",
    "downgrade",
    "head",
    "make_config",
    "schema_diff",
    "upgrade",
]
