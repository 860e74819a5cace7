"""One live feed per process, shared by every board open on it.

Twenty supervisors watching 250 nurses must not cost twenty times the queries: one task listens to
the bus, marks which parts of the board changed, recomputes and renders those parts once (in a
thread: the queries are blocking), and hands the fragments that changed to every connected board.

Bursts are coalesced: the first change after a quiet spell is pushed at once, the changes that
follow within `min_interval` go out together at its end (at most one push per interval). A part
may also follow another channel at a slower pace (the waves' figures move with every call, whose
nurse's presence changes, but once a second is enough for them). With nothing on the bus, the
whole board is refreshed every `refresh` seconds (times in state move on).
A slow client never holds the others up: it keeps only the newest version of each fragment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Protocol

import structlog

log = structlog.get_logger("carecall.web.board")

Fragments = dict[str, str]
FAILED_REFRESH_SECONDS = 1.0
# per part, the payloads heard on each channel (e.g. nurse ids) since it was last computed; None:
# anything may have changed (a first read, a refresh, a reconnection)
Changed = Mapping[str, Mapping[str, frozenset[str]] | None]
# what the feed recomputes for a set of changed parts: the fragments by event name
Compute = Callable[[frozenset[str], Changed], Fragments]


class _Subscription(Protocol):
    async def next(self, timeout: float) -> tuple[str, str] | None: ...

    def close(self) -> None: ...


class _Bus(Protocol):
    def subscribe(self, *channels: str) -> _Subscription: ...


class _Client:
    __slots__ = ("ended", "pending", "wake")

    def __init__(self, initial: Mapping[str, str]) -> None:
        self.pending: Fragments = dict(initial)
        self.wake = asyncio.Event()
        self.ended = False
        if self.pending:
            self.wake.set()

    def offer(self, fragments: Mapping[str, str]) -> None:
        self.pending.update(fragments)
        self.wake.set()


class BoardFeed:
    """Listens to the channels of `routes` on `bus`: a message on a channel makes each of its parts
    due again, no sooner than `spacing` seconds after that part was last computed (a part another
    channel keeps up to date can follow this one at a slower pace)."""

    def __init__(
        self,
        bus: _Bus,
        compute: Compute,
        routes: Mapping[str, Sequence[tuple[str, float]]],
        *,
        all_parts: Collection[str],
        min_interval: float = 0.1,
        refresh: float = 5.0,
    ) -> None:
        self._bus = bus
        self._compute = compute
        self._routes = {channel: tuple(parts) for channel, parts in routes.items()}
        self._all = frozenset(all_parts)
        self.min_interval = min_interval
        self.refresh = refresh
        self._clients: set[_Client] = set()
        self._latest: Fragments = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pushes = 0  # computations pushed, for tests and operators

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def stream(self) -> AsyncIterator[tuple[str, str]]:
        """(event, html) for one board: every fragment first, then each one that changes."""
        client = _Client(self._latest)
        self._clients.add(client)
        self._ensure_running()
        try:
            while not client.ended:
                await client.wake.wait()
                client.wake.clear()
                batch, client.pending = client.pending, {}
                for event, html in batch.items():
                    yield event, html
        finally:
            self._clients.discard(client)

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._latest = {}
            self._loop = loop
            self._task = loop.create_task(self._run(), name="carecall-board-feed")

    async def _run(self) -> None:
        subscription = self._bus.subscribe(*self._routes)
        loop = asyncio.get_running_loop()
        due: dict[str, float] = dict.fromkeys(self._all, loop.time())  # part -> when to compute it
        # part -> channel -> the payloads heard since it was last computed; absent: everything (a first
        # read, a refresh, a reconnection), so the computation may read only what a notification named
        keys: dict[str, dict[str, set[str]]] = {}
        computed: dict[str, float] = {}
        last_push = -float("inf")
        next_refresh = loop.time() + self.refresh
        try:
            while self._clients:
                now = loop.time()
                if now >= next_refresh:
                    due.update(dict.fromkeys(self._all, now))
                    keys.clear()
                    next_refresh = now + self.refresh
                at = max(min(due.values(), default=next_refresh), last_push + self.min_interval)
                if due and now >= at:
                    parts = frozenset(p for p, t in due.items() if t <= now)
                    heard: dict[str, Mapping[str, frozenset[str]] | None] = {p: None for p in parts}
                    for p in parts & keys.keys():
                        heard[p] = {channel: frozenset(v) for channel, v in keys.pop(p).items()}
                    try:
                        await self._push(parts, heard)
                    except Exception:
                        # a lost connection or a busy database: what it would have shown is read whole
                        # at the next refresh, brought forward
                        log.exception("board feed: the board could not be read")
                        next_refresh = min(next_refresh, loop.time() + FAILED_REFRESH_SECONDS)
                    last_push = loop.time()
                    for part in parts:
                        computed[part] = last_push
                        del due[part]
                    continue
                message = await subscription.next(timeout=max(0.0, min(at, next_refresh) - now))
                if message is None:
                    continue
                now = loop.time()
                for part, spacing in self._routes.get(message[0], ()):
                    when = max(now, computed.get(part, -float("inf")) + spacing)
                    if part not in due:  # computed since: only this payload is new
                        keys[part] = {}
                    if message[1] == "":  # the bus reconnected: anything may have changed
                        keys.pop(part, None)
                    elif part in keys:
                        keys[part].setdefault(message[0], set()).add(message[1])
                    due[part] = min(due.get(part, when), when)
        except Exception:
            # the boards' streams end: their browsers reconnect at once, and start a new feed
            log.exception("board feed stopped")
            for client in self._clients:
                client.ended = True
                client.wake.set()
        finally:
            # no await from the loop's last check to here: a board that connects now starts a new task
            self._latest = {}
            with contextlib.suppress(Exception):
                subscription.close()

    async def _push(self, parts: frozenset[str], heard: Changed) -> None:
        fragments = await asyncio.to_thread(self._compute, parts, heard)
        changed = {k: v for k, v in fragments.items() if self._latest.get(k) != v}
        if not changed:
            return
        self._latest.update(changed)
        self.pushes += 1
        for client in self._clients:
            client.offer(changed)
