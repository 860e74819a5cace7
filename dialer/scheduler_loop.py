"""A discrete-event loop: on a virtual clock days of calling run in seconds
(`run_until`); on a wall or scaled clock it runs in real time (`run_due`)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from campaign.clock import Clock, VirtualClock


class EventLoop:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.processed = 0
        self._stopped = False
        self._after_step: list[Callable[[], None]] = []

    def after_step(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the events of one instant (virtual time) or one pass (real time) have run.

        A dialer flushes there: what those events did is stored in a few batched
        transactions instead of one per event.
        """
        self._after_step.append(fn)

    def _step_done(self) -> None:
        for fn in self._after_step:
            fn()

    def stop(self) -> None:
        """Stop after the current event (the simulation has nothing left to do)."""
        self._stopped = True

    def call_at(self, at: datetime, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (max(at, self.clock.now()), next(self._seq), fn, args))

    def run_due(self, limit: int = 10_000) -> int:
        """Real time: run the events whose time has come (at most `limit`); the clock moves by itself.

        Events scheduled during the pass wait for the next one, after the flush:
        work split into steps (a queue sweep, say) lets the nurses' calls through
        between its steps.
        """
        n = 0
        fence = next(self._seq)
        while (
            self._heap
            and n < limit
            and not self._stopped
            and self._heap[0][1] < fence
            and self._heap[0][0] <= self.clock.now()
        ):
            _, _, fn, args = heapq.heappop(self._heap)
            fn(*args)
            self.processed += 1
            n += 1
        if n:
            self._step_done()
        return n

    def run_until(self, until: datetime, on_step: Callable[[datetime], None] | None = None) -> None:
        """Virtual time: jump from event to event until `until`."""
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise TypeError("run_until needs a VirtualClock; use run_due in real time")
        while self._heap and self._heap[0][0] <= until and not self._stopped:
            at, _, fn, args = heapq.heappop(self._heap)
            if at > clock.now():  # an event already past (another loop moved a shared clock) runs now
                clock.advance_to(at)
            fn(*args)
            self.processed += 1
            if not self._heap or self._heap[0][0] > at:
                self._step_done()  # the next event is later: this instant is over
            if on_step is not None and self.processed % 500 == 0:
                on_step(at)
        if clock.now() < until and not self._stopped:
            clock.advance_to(until)

    def next_at(self) -> datetime | None:
        """When the next event is due: a real-time owner sleeps until then, and is late after."""
        return self._heap[0][0] if self._heap else None
