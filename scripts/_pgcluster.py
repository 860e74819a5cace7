"""One throwaway PostgreSQL 15 cluster, for the tests and the benchmarks.

Both start a private cluster the same way, each with its own settings:

    cluster = PgCluster(settings={"max_connections": "200"}, fsync=False)
    cluster.start()
    url = cluster.create_database()     # "postgresql+psycopg://postgres@127.0.0.1:PORT/t_…"
    cluster.drop_database(url.rsplit("/", 1)[1])
    cluster.stop()                      # the server is stopped and its files deleted

The cluster is initialised in a temporary directory (not under pytest's basetemp:
that is 0700 root, and as root the server runs as `postgres`, or `nobody`, since
initdb refuses root), listens on a free port of 127.0.0.1 only, and takes its
settings from postgresql.auto.conf. tests/conftest.py imports it (pytest puts
scripts/ on sys.path, see pyproject.toml); the benchmarks import it as a sibling.

For the benchmarks, a fresh database on a throwaway cluster or a given server:

    from _pgcluster import add_database_arguments, bench_database

    ap = argparse.ArgumentParser()
    add_database_arguments(ap)
    args = ap.parse_args()
    with bench_database(args) as db:
        db.url       # "postgresql+psycopg://postgres@127.0.0.1:PORT/carecall_bench"
        db.settings  # what the JSON should say about the server (fsync, shared_buffers…)

Without `--database-url`, the cluster is stopped and deleted at exit: on return, on
an exception, on Ctrl-C (SIGINT) and on SIGTERM/SIGHUP. Its settings
(SERVER_SETTINGS) are sized for 250+ concurrent connections on a 24 GiB machine.
`fsync` is off by default (a benchmark cluster that dies with the machine is
deleted anyway); `--pg-fsync` turns it back on, and the JSON always says which it
was. Every other durability setting keeps its default (synchronous_commit on,
full_page_writes on, wal_level replica), so a commit still writes its WAL and the
floors are not flattered.

With `--database-url URL` (any database on a running server, role with CREATEDB),
a fresh database `carecall_bench_<random>` is created on that server and dropped at
exit: the benchmarks truncate tables and never touch the database named in the URL.

Standalone, it starts a benchmark cluster and prints its URL until Ctrl-C:

    .venv/bin/python scripts/_pgcluster.py
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

PG_BIN = Path(os.environ.get("CARECALL_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
BENCH_DB = "carecall_bench"

# 24 GiB of RAM, 2 cores, 250 nurse loops + a floor run + admin connections.
SERVER_SETTINGS: dict[str, str] = {
    "max_connections": "400",
    "shared_buffers": "4GB",  # ~1/6 of RAM: the whole 1M-patient working set fits
    "effective_cache_size": "12GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "16GB",  # no checkpoint storm in the middle of a bulk load
    "checkpoint_timeout": "30min",
    "wal_buffers": "64MB",
    "max_locks_per_transaction": "128",
    "max_worker_processes": "4",
    "max_parallel_workers_per_gather": "1",
    "random_page_cost": "1.1",
    "jit": "off",  # JIT compile time dominates short OLTP queries
    "log_min_messages": "warning",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_user() -> str | None:
    """The account postgres runs as when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PgCluster:
    """A private PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only.

    `settings` go to postgresql.auto.conf (the server's defaults otherwise);
    `fsync` is a field of its own so that every caller decides it.
    """

    settings: dict[str, str] = field(default_factory=dict)
    fsync: bool = False
    bin_dir: Path = PG_BIN
    prefix: str = "carecall-pg-"
    port: int = field(default=0, init=False)
    root: Path = field(init=False)
    _started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not (self.bin_dir / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL server binaries not found in {self.bin_dir} "
                "(Debian package postgresql-15, or set CARECALL_PG_BIN)"
            )
        self.user = server_user()
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(
            cmd,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            # own process group: a Ctrl-C in the terminal reaches us, not the server,
            # so the server is stopped in order by stop() rather than killed mid-way
            start_new_session=True,
        )

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL {what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{tail}"
            )

    def start(self) -> None:
        self._check(
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            "initdb",
        )
        settings = {**self.settings, "fsync": "on" if self.fsync else "off"}
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")
        last: Exception | None = None
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = free_port()
            opts = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
            proc = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "120",
                "-o",
                opts,
                "start",
            )
            try:
                self._check(proc, "start")
                self._started = True
                return
            except RuntimeError as exc:
                last = exc
        raise RuntimeError(f"could not start PostgreSQL after 5 tries: {last}")

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call twice."""
        if self._started and self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=120)
        self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (a random name unless given); returns its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        _admin(self.url(), f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it even if connections are left open (a test that failed half-way)."""
        _admin(self.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy URL ("postgresql+psycopg://…") as a libpq conninfo for psycopg.connect."""
    u = make_url(url)
    parts = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": u.database,
        **{k: v for k, v in u.query.items() if isinstance(v, str)},
    }
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v is not None})


def server_settings(url: str) -> dict[str, Any]:
    """The settings the JSON reports, read back from the server itself."""
    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_level",
        "shared_buffers",
        "max_connections",
        "work_mem",
    )
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        return {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in names
        }


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute(sql.encode())


@dataclass
class BenchDatabase:
    url: str
    settings: dict[str, Any]


class _Cleanup:
    """Runs its actions once, whichever comes first: normal exit, exception, or signal."""

    def __init__(self) -> None:
        self.actions: list[Any] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        atexit.register(self.run)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        # SIGINT keeps Python's default: KeyboardInterrupt unwinds through `finally`.

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds `finally` blocks, then atexit

    def run(self) -> None:
        while self.actions:
            action = self.actions.pop()
            with contextlib.suppress(Exception):
                action()
        for sig, handler in self._previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
        self._previous.clear()


def add_database_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--database-url",
        help="a PostgreSQL server to use instead of a throwaway cluster "
        "(postgresql+psycopg://user@host:port/db); a fresh database is created there and dropped after",
    )
    ap.add_argument(
        "--pg-fsync",
        action="store_true",
        help="throwaway cluster only: keep fsync on (default off, reported in the JSON)",
    )


@contextlib.contextmanager
def bench_database(args: argparse.Namespace) -> Iterator[BenchDatabase]:
    """A fresh, empty database for one benchmark run; everything is removed afterwards."""
    cleanup = _Cleanup()
    cleanup.install()
    try:
        if args.database_url:
            admin_url = args.database_url
            name = f"{BENCH_DB}_{uuid.uuid4().hex[:8]}"
            _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            cleanup.actions.append(lambda: _admin(admin_url, drop))
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            where = "existing server (--database-url), fresh database"
        else:
            cluster = PgCluster(settings=SERVER_SETTINGS, fsync=args.pg_fsync, prefix="carecall-bench-pg-")
            cleanup.actions.append(cluster.stop)
            cluster.start()
            url = cluster.create_database(BENCH_DB)
            where = "throwaway cluster (scripts/_pgcluster.py)"
        settings = {"server": where, **server_settings(url)}
        yield BenchDatabase(url, settings)
    finally:
        cleanup.run()


def main() -> int:
    ap = argparse.ArgumentParser(description="Start a throwaway PostgreSQL cluster until Ctrl-C.")
    add_database_arguments(ap)
    args = ap.parse_args()
    with bench_database(args) as db:
        print(db.url, db.settings, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
