"""Engines and sessions. Built by the caller (CLI, tests), never at import.

A database that cannot be used comes out as one `DatabaseUnavailable` naming the URL
(never its password) and what failed, whether the URL is garbage, names a database
carecall does not work with, or points to a server that does not answer or a file
that is not a database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import Session, create_engine

from campaign.errors import DatabaseUnavailable

SUPPORTED = "sqlite:///FILE or postgresql://USER@HOST/DATABASE"
# a server that swallows packets would otherwise hold a command for minutes (libpq waits forever)
PG_CONNECT_TIMEOUT_SECONDS = 10
_PASSWORD_IN_TEXT = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def safe_url(url: str | URL) -> str:
    """The URL as it may be shown to a person or a log: the password masked."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_TEXT.sub(r"\1:***@", url)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(f"database URL {safe_url(url)!r} is not a URL like {SUPPORTED}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(
            f"database {safe_url(parsed)}: carecall does not work with "
            f"{parsed.get_backend_name()!r} databases; use {SUPPORTED}"
        )
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the pragmas SQLite needs to be a safe single-process store."""
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(url, **kwargs)
        kwargs.setdefault("pool_pre_ping", True)
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {
                "connect_timeout": PG_CONNECT_TIMEOUT_SECONDS,
                **kwargs.get("connect_args", {}),
            }
        return create_engine(url, hide_parameters=True, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUnavailable(
            f"database {safe_url(parsed)}: no driver {parsed.drivername!r} in this installation ({exc}); "
            f"use {SUPPORTED}"
        ) from None


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at each commit in WAL mode
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    return engine


def unavailable(url: str | URL, failed: str, exc: BaseException) -> DatabaseUnavailable:
    """`DatabaseUnavailable` for a driver error: the URL without its password, what failed
    (e.g. "cannot connect"), and the driver's own reason on one line."""
    parsed = url if isinstance(url, URL) else make_url(url)
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            reason += f" (the folder {folder} does not exist)"
    return DatabaseUnavailable(f"database {safe_url(parsed)}: {failed}: {reason}")


def connect(engine: Engine) -> Connection:
    """A connection, or `DatabaseUnavailable` saying why none could be opened."""
    with database_errors(engine, "cannot connect"):
        return engine.connect()


@contextmanager
def database_errors(engine: Engine, failed: str) -> Iterator[None]:
    """Driver errors inside the block become `DatabaseUnavailable` (`failed` says what)."""
    try:
        yield
    except DBAPIError as exc:
        raise unavailable(engine.url, failed, exc) from exc


SessionFactory = Callable[[], Session]


def session_factory(engine: Engine) -> SessionFactory:
    def make() -> Session:
        return Session(engine, expire_on_commit=False)

    return make
