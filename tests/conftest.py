"""Shared fixtures: real databases for the tests.

Tests run against the real thing: a SQLite file and a throwaway PostgreSQL 15
cluster that the tests start and remove themselves (no server to install or
configure by hand, nothing left behind).

    def test_x(pg_url): ...       # one PostgreSQL database for the session
    def test_y(db_url): ...       # runs twice: fresh SQLite file, fresh PostgreSQL database

Tests that use PostgreSQL are marked `postgresql`, so `pytest -m "not postgresql"`
runs the SQLite half only.  Without the binaries those tests skip, except under
CI=true where they fail: a CI run must not go green by testing less.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("CARECALL_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SUPERUSER = "postgres"
DB_BACKENDS = ["sqlite", "postgresql"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The unprivileged account to run postgres as when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PgCluster:
    """A private PostgreSQL cluster in a temporary directory, on 127.0.0.1."""

    def __init__(self, bin_dir: Path = PG_BIN) -> None:
        self.bin_dir = bin_dir
        self.user = _server_user()
        # Not under pytest's basetemp: that is 0700 root, the server user could not enter it.
        self.root = Path(tempfile.mkdtemp(prefix="carecall-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, check=False, timeout=120)

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL {what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )

    def start(self) -> None:
        self._check(
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            "initdb",
        )
        last: Exception | None = None
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            # fsync off: a test cluster that dies with the machine is deleted anyway.
            opts = (
                f"-h 127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            proc = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            )
            try:
                self._check(proc, "start")
                return
            except RuntimeError as exc:
                last = exc
        raise RuntimeError(f"could not start PostgreSQL after 5 tries: {last}")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_SUPERUSER,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    cluster = PgCluster()
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
