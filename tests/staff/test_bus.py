"""The bus: a notification is delivered when its transaction commits, never when it rolls back,
to a thread (`get`) and to asyncio (`next`), across processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import date

import pytest
from factories import dispose, engine_of, make_ctx, paris
from sqlalchemy import text

from campaign.db import make_engine
from dialer.staff.bus import COMMAND, PRESENCE, WAVES, Bus, PgBus, make_bus

MONDAY = date(2026, 12, 7)


@pytest.fixture
def buses(db_url: str) -> Iterator[tuple[object, Bus, Bus]]:
    """(ctx, the writer's bus, the listener's bus): two processes on PostgreSQL, one on SQLite."""
    ctx, _clock = make_ctx(db_url, paris(MONDAY, 10))
    writer = make_bus(engine_of(ctx))
    if isinstance(writer, PgBus):
        other_engine = make_engine(db_url)
        listener = make_bus(other_engine)
    else:
        other_engine, listener = None, writer
    yield ctx, writer, listener
    listener.close()
    writer.close()
    if other_engine is not None:
        other_engine.dispose()
    dispose(ctx)


def _ready(bus: Bus) -> None:
    if isinstance(bus, PgBus):
        assert bus.wait_listening(10)


def test_delivered_on_commit_only(buses) -> None:  # type: ignore[no-untyped-def]
    ctx, writer, listener = buses
    sub = listener.subscribe(PRESENCE, WAVES)
    _ready(listener)
    with ctx.sessions() as s:
        writer.notify_in(s, PRESENCE, "7")
        s.execute(text("SELECT 1"))
        s.rollback()
    with ctx.sessions() as s:
        writer.notify_in(s, PRESENCE, "8")
        # closed without commit: nothing said
    with ctx.sessions() as s:
        writer.notify_in(s, PRESENCE, "9")
        writer.notify_in(s, PRESENCE, "9")  # said twice in one transaction: heard once
        writer.notify_in(s, COMMAND, "9")  # a channel this subscription does not follow
        writer.notify_in(s, WAVES, "")
        assert sub.get(0.3) is None, "nothing before the commit"
        s.commit()
    got = []
    while (m := sub.get(2.0 if not got else 0.3)) is not None:
        got.append(m)
    assert got == [(PRESENCE, "9"), (WAVES, "")]
    writer.publish(WAVES, "3")
    assert sub.get(5.0) == (WAVES, "3")
    sub.close()


def test_asyncio_subscribers_are_woken(buses) -> None:  # type: ignore[no-untyped-def]
    ctx, writer, listener = buses
    sub = listener.subscribe(PRESENCE)
    _ready(listener)

    async def scenario() -> list[object]:
        out: list[object] = [await sub.next(0.1)]  # nothing yet: None after the timeout

        def commit() -> None:
            with ctx.sessions() as s:
                writer.notify_in(s, PRESENCE, "12")
                s.commit()

        await asyncio.get_running_loop().run_in_executor(None, commit)  # another thread writes
        out.append(await sub.next(5.0))
        return out

    assert asyncio.run(scenario()) == [None, (PRESENCE, "12")]
    sub.close()


def test_a_callback_subscription_runs_in_the_delivering_thread(buses) -> None:  # type: ignore[no-untyped-def]
    _ctx, writer, listener = buses
    heard: list[tuple[str, str]] = []
    sub = listener.subscribe(COMMAND, callback=lambda c, p: heard.append((c, p)))
    _ready(listener)
    writer.publish(COMMAND, "4")
    probe = listener.subscribe(COMMAND)
    _ready(listener)
    writer.publish(COMMAND, "5")
    while (m := probe.get(5.0)) != (COMMAND, "5"):
        assert m is not None, "the probe heard the second one"
    assert heard == [(COMMAND, "4"), (COMMAND, "5")], "the callback heard both, in order, before the probe"
    sub.close()
    probe.close()


def test_unknown_channels_are_refused() -> None:
    from dialer.staff.bus import LocalBus

    with pytest.raises(ValueError, match="unknown channel"):
        LocalBus().subscribe("carecall_nope")


def test_the_listener_reconnects_and_says_look_again(pg_url: str) -> None:
    """Its connection killed: it reconnects, tells every subscriber to look again, and hears on."""
    ctx, _clock = make_ctx(pg_url, paris(MONDAY, 10))
    bus = make_bus(engine_of(ctx))
    assert isinstance(bus, PgBus)
    sub = bus.subscribe(PRESENCE)
    assert bus.wait_listening(10)
    try:
        with ctx.sessions() as s:
            killed = s.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            ).all()
        assert killed, "the listener's connection was found"
        assert sub.get(10.0) == (PRESENCE, ""), "after reconnecting: look again, whatever was missed"
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            bus.publish(PRESENCE, "31")
            got = sub.get(0.5)
        assert got == (PRESENCE, "31")
    finally:
        sub.close()
        bus.close()
        dispose(ctx)
