"""The live feed every board of a process shares: bursts coalesced, only what changed is sent, a
part may follow a channel at a slower pace, one listener whatever the number of boards.

Driven by the real in-process bus (SQLite's), with a compute function that records what it was
asked: what the feed does with the bus's messages is what is under test, not the board's figures
(test_board_pages.py covers those).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dialer.staff.bus import PRESENCE, WAVES, LocalBus
from dialer.web.board.feed import BoardFeed

LONG = 60.0  # seconds no test waits for: what must not happen within it does not happen at all


class Board:
    """What the feed computes: a counter per part, bumped each time the part is read again."""

    def __init__(self) -> None:
        self.asked: list[frozenset[str]] = []
        self.changed: list[dict[str, Mapping[str, frozenset[str]] | None]] = []
        self.reads = {"presence": 0, "waves": 0}
        self.lock = threading.Lock()

    def compute(
        self, parts: frozenset[str], changed: Mapping[str, Mapping[str, frozenset[str]] | None]
    ) -> dict[str, str]:
        with self.lock:
            self.asked.append(parts)
            self.changed.append(dict(changed))
            for p in parts:
                self.reads[p] += 1
            out = {"presence": f"nurses {self.reads['presence']}", "waves": f"waves {self.reads['waves']}"}
            return {"nurses" if p == "presence" else p: out[p] for p in parts}


def feed_of(bus: LocalBus, board: Board, *, waves_follow_presence: float = LONG, **kw: Any) -> BoardFeed:
    routes = {PRESENCE: [("presence", 0.0), ("waves", waves_follow_presence)], WAVES: [("waves", 0.0)]}
    kw.setdefault("refresh", LONG)
    return BoardFeed(bus, board.compute, routes, all_parts=("presence", "waves"), **kw)


async def take(stream: AsyncIterator[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    return [await asyncio.wait_for(anext(stream), 10) for _ in range(n)]


def test_a_burst_of_changes_is_read_once_and_each_board_gets_what_changed() -> None:
    async def scenario() -> None:
        bus, board = LocalBus(), Board()
        feed = feed_of(bus, board, min_interval=0.3)
        first = feed.stream()
        assert sorted(await take(first, 2)) == [("nurses", "nurses 1"), ("waves", "waves 1")]
        for nurse in range(50):  # fifty nurses change at once
            bus.publish(PRESENCE, str(nurse))
        assert await take(first, 1) == [("nurses", "nurses 2")]  # the waves' figures did not change
        # due together, the parts are read apart, each by itself (the waves' figures are slower to
        # read and must not hold a nurse's row up)
        assert sorted(board.asked[:2], key=sorted) == [frozenset({"presence"}), frozenset({"waves"})]
        assert board.asked[2:] == [frozenset({"presence"})]
        # the first read is whole; the next one is told which nurses changed, so it reads only them
        assert sorted(board.changed[:2], key=sorted) == [{"presence": None}, {"waves": None}]
        assert board.changed[2:] == [{"presence": {PRESENCE: frozenset(str(n) for n in range(50))}}]
        # a board opened now gets the whole board at once, read by nobody again
        second = feed.stream()
        assert sorted(await take(second, 2)) == [("nurses", "nurses 2"), ("waves", "waves 1")]
        bus.publish(WAVES, "1")
        assert await take(first, 1) == await take(second, 1) == [("waves", "waves 2")]
        assert len(board.asked) == 4
        # the waves' part heard of the nurses too (it follows them, slowly): each channel apart
        assert board.changed[3] == {"waves": {PRESENCE: frozenset(str(n) for n in range(50)), WAVES: {"1"}}}
        # the bus reconnected (an empty payload): anything may have been missed, so all is read
        bus.publish(PRESENCE, "7")
        bus.publish(PRESENCE, "")
        await take(first, 1)
        assert board.changed[4] == {"presence": None}
        await first.aclose()
        await second.aclose()

    asyncio.run(scenario())


def test_the_waves_follow_presence_at_their_own_pace() -> None:
    async def scenario() -> None:
        bus, board = LocalBus(), Board()
        feed = feed_of(bus, board, min_interval=0.0, waves_follow_presence=0.0)
        stream = feed.stream()
        await take(stream, 2)
        bus.publish(PRESENCE, "3")
        got = dict(await take(stream, 2))
        assert got == {"nurses": "nurses 2", "waves": "waves 2"}  # the call a nurse took moved the wave

        slow, board2 = LocalBus(), Board()
        feed2 = feed_of(slow, board2, min_interval=0.0)  # the waves follow presence once a minute
        stream2 = feed2.stream()
        await take(stream2, 2)
        for _ in range(3):
            slow.publish(PRESENCE, "3")
            await take(stream2, 1)
        assert board2.reads == {"presence": 4, "waves": 1}
        await stream.aclose()
        await stream2.aclose()

    asyncio.run(scenario())


def test_one_listener_for_every_board_and_none_once_they_are_all_closed() -> None:
    async def scenario() -> None:
        bus, board = LocalBus(), Board()
        feed = feed_of(bus, board, min_interval=0.0, refresh=0.05)
        streams = [feed.stream() for _ in range(20)]
        for s in streams:
            await take(s, 2)
        assert feed.clients == 20
        assert len(bus._subs) == 1
        for s in streams:
            await s.aclose()
        for _ in range(100):  # the feed notices at its next refresh
            if not bus._subs:
                break
            await asyncio.sleep(0.05)
        assert feed.clients == 0 and not bus._subs
        again = feed.stream()  # a board opened later starts it again, from a fresh read
        assert dict(await take(again, 2)).keys() == {"nurses", "waves"}
        assert len(bus._subs) == 1
        await again.aclose()

    asyncio.run(scenario())


def test_a_slow_part_does_not_hold_another_up() -> None:
    """While the waves' figures are being read (slowly), a nurse's change is read and pushed all the
    same; the waves' figures follow when their read ends."""

    class SlowWaves(Board):
        def __init__(self) -> None:
            super().__init__()
            self.waves_may_end = threading.Event()
            self.waves_started = threading.Event()

        def compute(
            self, parts: frozenset[str], changed: Mapping[str, Mapping[str, frozenset[str]] | None]
        ) -> dict[str, str]:
            if "waves" in parts and self.reads["waves"] >= 1:  # every read after the first is slow
                self.waves_started.set()
                assert self.waves_may_end.wait(LONG)
            return super().compute(parts, changed)

    async def scenario() -> None:
        bus, board = LocalBus(), SlowWaves()
        feed = feed_of(bus, board, min_interval=0.0)
        stream = feed.stream()
        await take(stream, 2)
        bus.publish(WAVES, "1")
        assert await asyncio.to_thread(board.waves_started.wait, 10)
        for nurse in ("3", "4"):
            bus.publish(PRESENCE, nurse)
            got = await take(stream, 1)
            assert got[0][0] == "nurses", "a nurse's change waits for nobody"
        assert board.reads["waves"] == 1
        board.waves_may_end.set()
        assert await take(stream, 1) == [("waves", "waves 2")]
        await stream.aclose()

    asyncio.run(scenario())
