"""Exactly one scheduler: leadership through a PostgreSQL advisory lock.

APScheduler's job store cannot be shared by several running schedulers
(nothing stops two of them running the same job), so every `carecall serve`
process competes for one session-level advisory lock and only its holder runs
the scheduler. The lock lives as long as the holder's connection: a process
that dies, even by SIGKILL, loses it when PostgreSQL notices the closed
socket, and a follower polling every few seconds takes over.

SQLite has a single process by design: there, leadership is always granted.
"""

from __future__ import annotations

import contextlib
import zlib

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = structlog.get_logger("carecall.leader")

# A stable 64-bit key derived from a name, so other applications' locks don't collide.
SCHEDULER_LOCK = zlib.crc32(b"carecall.scheduler") + (1 << 32)


class Leadership:
    """Try to become, stay and stop being the scheduler leader."""

    def __init__(self, engine: Engine, key: int = SCHEDULER_LOCK) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None
        self.is_postgres = engine.dialect.name == "postgresql"

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """True if this process is (now) the leader. Cheap to call repeatedly."""
        if self._conn is not None:
            return self.still_held()
        if not self.is_postgres:
            self._conn = self.engine.connect()
            return True
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            log.info("scheduler leadership acquired")
        else:
            conn.close()
        return got

    def still_held(self) -> bool:
        """The lock goes with the connection: check the connection is alive."""
        if self._conn is None:
            return False
        if not self.is_postgres:
            return True
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except Exception:
            log.warning("scheduler leadership lost (connection closed)")
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        if self.is_postgres:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:  # the lock dies with the connection anyway
                pass
        self._drop()
        log.info("scheduler leadership released")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
