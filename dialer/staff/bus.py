"""Notifications between processes: a nurse's presence changed, a command waits, a wave moved.

A notification carries no data, only which nurse (or wave) to look at again:
the database holds the truth, so a lost notification costs a delay (every
reader also polls slowly), never a wrong state. On PostgreSQL they are
`NOTIFY`s, sent by the transaction that stores the change and delivered
only if it commits; one listener thread per process (its own autocommit
connection, `LISTEN` on every channel) fans them out to the process's
subscriptions. On SQLite every writer lives in one process: the bus
delivers in process, after the commit.

A subscription is read from a thread (`get`) or from asyncio (`next`, the
web application's live streams); a callback given to `subscribe` runs in
the delivering thread instead (the dialer's inbox), so it must be quick.
After a lost connection the listener reconnects and delivers an empty
payload on every channel: whatever was missed meanwhile, look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dialer.staff.txhooks import TxHooks, hooks

log = structlog.get_logger("carecall.bus")

PRESENCE = "carecall_presence"  # payload: the nurse id
COMMAND = "carecall_command"  # payload: the nurse id
WAVES = "carecall_waves"  # payload: the wave id, or "" (the board refreshes its wave figures)
CHANNELS = (PRESENCE, COMMAND, WAVES)

Message = tuple[str, str]
Callback = Callable[[str, str], None]
_PENDING = "carecall_bus_pending"  # session.info key (with the bus): notifications waiting for the commit
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


class Subscription:
    """Messages of some channels, in the order they were delivered."""

    def __init__(self, bus: Bus, channels: Iterable[str], callback: Callback | None = None) -> None:
        self.bus = bus
        self.channels = frozenset(channels)
        self.callback = callback
        self._lock = threading.Lock()
        self._items: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aqueue: asyncio.Queue[Message] | None = None
        self.closed = False

    def deliver(self, channel: str, payload: str) -> None:
        """From the delivering thread (the listener, or the committing thread on SQLite)."""
        if self.closed or channel not in self.channels:
            return
        if self.callback is not None:
            try:
                self.callback(channel, payload)
            except Exception:  # a subscriber's fault must not stop the listener for the others
                log.exception("bus subscriber failed", channel=channel)
            return
        with self._lock:
            loop, aqueue = self._loop, self._aqueue
            if loop is None or aqueue is None:
                self._items.put((channel, payload))
                return
        with contextlib.suppress(RuntimeError):  # its event loop is closed: nobody reads any more
            loop.call_soon_threadsafe(aqueue.put_nowait, (channel, payload))

    def get(self, timeout: float) -> Message | None:
        """The next message, waiting up to `timeout` seconds (from a thread); None if none came."""
        try:
            return self._items.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    async def next(self, timeout: float) -> Message | None:
        """The next message, waiting up to `timeout` seconds (from asyncio); None if none came.

        The first call binds the subscription to the running event loop: from
        then on messages go to it, never to `get`.
        """
        with self._lock:
            if self._aqueue is None:
                self._loop = asyncio.get_running_loop()
                self._aqueue = asyncio.Queue()
                while True:
                    try:
                        self._aqueue.put_nowait(self._items.get_nowait())
                    except queue.Empty:
                        break
            aqueue = self._aqueue
        try:
            return await asyncio.wait_for(aqueue.get(), max(timeout, 0.0))
        except TimeoutError:
            return None

    def close(self) -> None:
        self.closed = True
        self.bus._remove(self)


class Bus:
    """Fans notifications out to this process's subscriptions; how they travel is the subclass's."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()

    def subscribe(self, *channels: str, callback: Callback | None = None) -> Subscription:
        unknown = set(channels) - set(CHANNELS)
        if unknown or not channels:
            raise ValueError(f"unknown channel(s) {sorted(unknown)}; known: {', '.join(CHANNELS)}")
        sub = Subscription(self, channels, callback)
        with self._subs_lock:
            self._subs.append(sub)
        self._started()
        return sub

    def publish(self, channel: str, payload: str) -> None:
        """Notify now, outside any transaction (after your commit)."""
        raise NotImplementedError

    def notify_in(self, session: Session, channel: str, payload: str) -> None:
        """Notify when `session`'s transaction commits; nothing if it rolls back."""
        if not self._worth_saying(channel):
            return
        key = (_PENDING, id(self))
        pending: list[Message] | None = session.info.get(key)
        if pending is None:
            pending = session.info[key] = []
            h = hooks(session)
            self._hook(h, key)
            h.lost.append(lambda s: s.info.pop(key, None))  # rolled back: what it would have said is void
        if (channel, payload) not in pending:
            pending.append((channel, payload))

    def close(self) -> None:
        with self._subs_lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.closed = True

    # ------------------------------------------------------------ for subclasses

    def _fan_out(self, channel: str, payload: str) -> None:
        with self._subs_lock:
            subs = list(self._subs)
        for sub in subs:
            sub.deliver(channel, payload)

    def _remove(self, sub: Subscription) -> None:
        with self._subs_lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def _started(self) -> None:
        """A subscription exists: start listening if that takes anything."""

    def _worth_saying(self, channel: str) -> bool:
        return True

    def _hook(self, h: TxHooks, key: tuple[str, int]) -> None:
        raise NotImplementedError


class LocalBus(Bus):
    """SQLite: every writer is in this process, so a notification is delivered here, after the commit."""

    def publish(self, channel: str, payload: str) -> None:
        self._fan_out(channel, payload)

    def _worth_saying(self, channel: str) -> bool:
        # nobody in this process listens on the channel: nobody anywhere does (a dialer alone
        # listens for commands only, so its presence changes cost no bookkeeping)
        return any(channel in sub.channels for sub in self._subs)

    def _hook(self, h: TxHooks, key: tuple[str, int]) -> None:
        def committed(s: Session) -> None:
            for channel, payload in s.info.pop(key, None) or []:
                self._fan_out(channel, payload)

        h.committed.append(committed)


class PgBus(Bus):
    """PostgreSQL: `NOTIFY` in the storing transaction; one listener thread per process."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._conn: Any = None

    def publish(self, channel: str, payload: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
            conn.commit()

    def _hook(self, h: TxHooks, key: tuple[str, int]) -> None:
        def before_commit(s: Session) -> None:
            pending = s.info.pop(key, None)
            if pending:
                # one statement for every notification of the transaction: sent when it commits
                s.execute(
                    text(
                        "SELECT pg_notify(c, p) "
                        "FROM unnest(CAST(:c AS text[]), CAST(:p AS text[])) AS t(c, p)"
                    ),
                    {"c": [c for c, _ in pending], "p": [p for _, p in pending]},
                )

        h.before_commit.append(before_commit)

    def wait_listening(self, timeout: float) -> bool:
        """True once the listener's LISTEN is in place (tests; a notification before it is missed)."""
        return self._listening.wait(timeout)

    def _started(self) -> None:
        with self._subs_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._listen, name="carecall-bus", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import psycopg

        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    self._conn = conn
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    self._listening.set()
                    if not first:  # what was said while we were away is lost: everyone looks again
                        for channel in CHANNELS:
                            self._fan_out(channel, "")
                    first, failures = False, 0
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            self._fan_out(n.channel, n.payload)
            except psycopg.Error as exc:
                self._listening.clear()
                if self._stop.is_set():
                    break
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("bus listener lost its connection; reconnecting", error=type(exc).__name__)
                self._stop.wait(delay)
            finally:
                self._conn = None

    def close(self) -> None:
        self._stop.set()
        super().close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)


def make_bus(engine: Engine) -> Bus:
    """PostgreSQL: LISTEN/NOTIFY between processes; SQLite: in process."""
    return PgBus(engine) if engine.dialect.name == "postgresql" else LocalBus()
