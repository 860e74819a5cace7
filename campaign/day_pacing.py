"""When in its day a planned first call falls due: as the nurses who will take it get to it.

Pure. A task due at the day's first calling hour joins a morning backlog that the
nurses on shift early drain, and those who work late find little left: in the demo
the late-shift juniors sat at 54-62 % occupancy while the day-shift seniors ran at
92-96 %. So the planner makes each first call due at the instant the nurse time of
its pool, worked at the target occupancy, reaches the minutes planned in that pool
before it (retries already charged to the day included): the day's work arrives
as the nurses can take it, and every nurse on shift, early or late, gets her share.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class PoolTimeline:
    """A pool's cumulative nurse minutes over one day (shift minutes x occupancy), piecewise linear."""

    instants: tuple[datetime, ...]  # breakpoints, in order
    minutes: tuple[float, ...]  # cumulative minutes at each breakpoint

    @classmethod
    def of(cls, shifts: Iterable[tuple[datetime, datetime]], occupancy: float) -> PoolTimeline:
        changes: dict[datetime, int] = {}
        for start, end in shifts:
            if end > start:
                changes[start] = changes.get(start, 0) + 1
                changes[end] = changes.get(end, 0) - 1
        instants: list[datetime] = []
        minutes: list[float] = []
        on_shift, total, last = 0, 0.0, None
        for at in sorted(changes):
            if last is not None:
                total += on_shift * occupancy * (at - last).total_seconds() / 60
            instants.append(at)
            minutes.append(total)
            on_shift += changes[at]
            last = at
        return cls(tuple(instants), tuple(minutes))

    def reached(self, planned: float) -> datetime | None:
        """The instant the pool's cumulative minutes reach `planned`; None for a pool without shifts."""
        if not self.instants:
            return None
        if planned <= 0:
            return self.instants[0]
        k = bisect.bisect_left(self.minutes, planned)
        if k >= len(self.minutes):
            return self.instants[-1]
        before, after = self.minutes[k - 1], self.minutes[k]
        start, end = self.instants[k - 1], self.instants[k]
        if after <= before:  # nobody on shift in between: the next shift's start
            return end
        share = (planned - before) / (after - before)
        return start + timedelta(seconds=(end - start).total_seconds() * share)

    def at(self, instant: datetime) -> float:
        """The pool's cumulative minutes at `instant` (the inverse of `reached`)."""
        if not self.instants or instant <= self.instants[0]:
            return 0.0
        k = bisect.bisect_right(self.instants, instant)
        if k >= len(self.instants):
            return self.minutes[-1]
        start, end = self.instants[k - 1], self.instants[k]
        before, after = self.minutes[k - 1], self.minutes[k]
        return before + (after - before) * (instant - start).total_seconds() / (end - start).total_seconds()

    @property
    def total(self) -> float:
        return self.minutes[-1] if self.minutes else 0.0


def doable(arrivals: Iterable[tuple[datetime, float]], timeline: PoolTimeline) -> float:
    """Minutes of work the pool gets through by its day's end, each piece arriving at its instant
    and taken as soon as the pool has time (a fluid queue): min over s of A(s) + C(end) - C(s),
    A the work arrived before s, C the pool's cumulative minutes. Work piled up where few nurses
    work is not done that day, however long the day's total hours."""
    total = timeline.total
    best, arrived = total, 0.0
    for at, minutes in sorted(arrivals):
        best = min(best, arrived + total - timeline.at(at))
        arrived += minutes
    return min(best, arrived)
