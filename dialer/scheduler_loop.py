"""A discrete-event loop on the virtual clock: days of calling run in seconds."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from campaign.clock import VirtualClock


class EventLoop:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.processed = 0
        self._stopped = False

    def stop(self) -> None:
        """Stop after the current event (the simulation has nothing left to do)."""
        self._stopped = True

    def call_at(self, at: datetime, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (max(at, self.clock.now()), next(self._seq), fn, args))

    def next_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, until: datetime, on_step: Callable[[datetime], None] | None = None) -> None:
        while self._heap and self._heap[0][0] <= until and not self._stopped:
            at, _, fn, args = heapq.heappop(self._heap)
            self.clock.advance_to(at)
            fn(*args)
            self.processed += 1
            if on_step is not None and self.processed % 500 == 0:
                on_step(at)
        if self.clock.now() < until and not self._stopped:
            self.clock.advance_to(until)
