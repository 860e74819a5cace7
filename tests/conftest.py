"""Shared fixtures: real databases for the tests.

Tests run against the real thing: a SQLite file and a throwaway PostgreSQL 15
cluster that the tests start and remove themselves (no server to install or
configure by hand, nothing left behind).

    def test_x(pg_url): ...       # one PostgreSQL database for the session
    def test_y(db_url): ...       # runs twice: fresh SQLite file, fresh PostgreSQL database

Tests that use PostgreSQL are marked `postgresql`, so `pytest -m "not postgresql"`
runs the SQLite half only.  Without the binaries those tests skip, except under
CI=true where they fail: a CI run must not go green by testing less.

The cluster is scripts/_pgcluster.py's PgCluster, the one the benchmarks start
too (pyproject.toml puts scripts/ on pytest's sys.path).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from _pgcluster import PG_BIN, PgCluster

DB_BACKENDS = ["sqlite", "postgresql"]
# a test cluster that dies with the machine is deleted anyway: no durability, many connections
TEST_SERVER_SETTINGS = {"synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's throwaway PostgreSQL 15 cluster (started on first use)."""
    if not (PG_BIN / "initdb").exists():
        msg = (
            f"PostgreSQL 15 server binaries not found in {PG_BIN} "
            "(install the Debian package postgresql-15, or run ./scripts/test which does)"
        )
        if _in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    cluster = PgCluster(settings=TEST_SERVER_SETTINGS, fsync=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    """URL ("postgresql+psycopg://…") of an empty database shared by the session."""
    return pg_cluster.create_database("carecall_test")


@pytest.fixture(params=DB_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test, on each backend in turn.

    PostgreSQL is only started when a test actually asks for it.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'carecall.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(name)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[Any, Any]]:
    """A migrated database on each backend, and a context on a virtual clock at 08:00 in Paris on
    Monday 7 December 2026, the day the factories' mailings are posted: (ctx, clock)."""
    from factories import SENT_ON, dispose, make_ctx, paris

    ctx, clock = make_ctx(db_url, paris(SENT_ON, 8))
    yield ctx, clock
    dispose(ctx)


@pytest.fixture
def pg_env(pg_cluster: PgCluster) -> Iterator[tuple[Any, Any]]:
    """`env` on PostgreSQL alone, for what only PostgreSQL does (row locks, SKIP LOCKED)."""
    from factories import SENT_ON, dispose, make_ctx, paris

    url = pg_cluster.create_database()
    ctx, clock = make_ctx(url, paris(SENT_ON, 8))
    try:
        yield ctx, clock
    finally:
        dispose(ctx)
        pg_cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """An in-process `carecall` command (CliRunner) points the log handler at its own stream and
    sets the libraries' levels: the next tests get theirs back. Modules that run the CLI in process
    use it (`pytestmark = pytest.mark.usefixtures("restore_logging")`)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    chatty = ("alembic", "sqlalchemy", "apscheduler", "faker")
    libraries = {name: logging.getLogger(name).level for name in chatty}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for name, lib_level in libraries.items():
        logging.getLogger(name).setLevel(lib_level)
    structlog.reset_defaults()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: needs the throwaway PostgreSQL cluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        on_pg = {"pg_url", "pg_cluster"} & set(fixtures) or (
            callspec is not None and callspec.params.get("db_url") == "postgresql"
        )
        if on_pg:
            item.add_marker(pytest.mark.postgresql)
