"""One live feed per process, shared by every board open on it.

Twenty supervisors watching 250 nurses must not cost twenty times the queries: one task listens to
the bus, marks which parts of the board changed, recomputes and renders those parts once (in a
thread: the queries are blocking), and hands the fragments that changed to every connected board.
Each part is computed on its own, one computation at a time: while the waves' figures (the slowest
read) are being read, a nurse's row is read and pushed all the same.

Bursts are coalesced: the first change after a quiet spell is pushed at once, the changes heard
while a part is being computed, or within the part's `min_interval` after, go out together next. A part
may also follow another channel at a slower pace (the waves' figures move with every call, whose
nurse's presence changes, but once a second is enough for them). With nothing on the bus, the
whole board is refreshed every `refresh` seconds (times in state move on).
A slow client never holds the others up: it keeps only the newest version of each fragment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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
        all_parts: Sequence[str],  # in the order they are started when due together
        min_interval: float | Mapping[str, float] = 0.1,  # by part: absent, none
        refresh: float = 5.0,
    ) -> None:
        self._bus = bus
        self._compute = compute
        self._routes = {channel: tuple(parts) for channel, parts in routes.items()}
        self._all = frozenset(all_parts)
        self._rank = {part: k for k, part in enumerate(all_parts)}.__getitem__
        # part -> the least time from the end of one of its computations to the start of the next
        self._intervals = {
            p: min_interval.get(p, 0.0) if isinstance(min_interval, Mapping) else min_interval
            for p in all_parts
        }
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
        async for batch in self.batches():
            for event, html in batch.items():
                yield event, html

    async def batches(self) -> AsyncIterator[Fragments]:
        """The same, as the fragments that changed since the board last took any: every fragment
        first, then those of each push (or of several, for a board slower than the pushes)."""
        client = _Client(self._latest)
        self._clients.add(client)
        self._ensure_running()
        try:
            while not client.ended:
                await client.wake.wait()
                client.wake.clear()
                batch, client.pending = client.pending, {}
                if batch:
                    yield batch
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
        computed: dict[str, float] = {}  # part -> when its last computation ended
        # each part is computed by a task of its own, one at a time: a slow part (the waves' figures)
        # never holds a quick one up (a nurse's row), and what is heard meanwhile waits for the next
        running: dict[asyncio.Task[bool], str] = {}
        listening: asyncio.Task[tuple[str, str] | None] | None = None
        next_refresh = loop.time() + self.refresh
        try:
            while self._clients:
                now = loop.time()
                if now >= next_refresh:
                    due.update(dict.fromkeys(self._all, now))
                    keys.clear()
                    next_refresh = now + self.refresh
                busy = set(running.values())
                waiting = {
                    part: max(t, computed.get(part, -float("inf")) + self._intervals[part])
                    for part, t in due.items()
                    if part not in busy
                }
                for part in sorted((p for p, at in waiting.items() if at <= now), key=self._rank):
                    heard = keys.pop(part, None)
                    changed = None if heard is None else {c: frozenset(v) for c, v in heard.items()}
                    running[loop.create_task(self._push(part, changed))] = part
                    del due[part], waiting[part]
                if listening is None:
                    listening = loop.create_task(subscription.next(timeout=self.refresh))
                at = min([next_refresh, *waiting.values()])
                done, _ = await asyncio.wait(
                    [listening, *running], timeout=max(0.0, at - now), return_when=asyncio.FIRST_COMPLETED
                )
                now = loop.time()
                for task in [t for t in running if t in done]:
                    computed[running.pop(task)] = now
                    if not task.result():  # its read failed: the refresh brought forward reads it whole
                        next_refresh = min(next_refresh, now + FAILED_REFRESH_SECONDS)
                if listening not in done:
                    continue
                message, listening = listening.result(), None
                if message is None:
                    continue
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
            for task in running:
                task.cancel()
            if listening is not None:
                listening.cancel()
            with contextlib.suppress(Exception):
                subscription.close()

    async def _push(self, part: str, heard: Mapping[str, frozenset[str]] | None) -> bool:
        """Computes one part and offers what changed to every board; False if it could not be read."""
        try:
            fragments = await asyncio.to_thread(self._compute, frozenset({part}), {part: heard})
        except Exception:
            # a lost connection or a busy database: what it would have shown is read whole at the next
            # refresh, brought forward
            log.exception("board feed: the board could not be read", part=part)
            return False
        changed = {k: v for k, v in fragments.items() if self._latest.get(k) != v}
        if changed:
            self._latest.update(changed)
            self.pushes += 1
            for client in self._clients:
                client.offer(changed)
        return True
