"""The one clock of carecall.

Everything that reads the time takes a `Clock`. Production uses `SystemClock`;
the demo, the simulator and the tests use `VirtualClock` to run days of calling
in seconds. Times are always timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Wall time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """Time that only moves when told to, so simulations are fast and repeatable."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, instant: datetime) -> None:
        instant = _aware(instant)
        if instant < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {instant}")
        self._now = instant


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("naive datetime given to a clock; carecall only uses aware UTC times")
    return instant.astimezone(UTC)


class ScaledClock:
    """Wall time sped up: `factor` virtual seconds per real second from an anchor.

    Several processes given the same anchor agree on the time, so a whole
    multi-process deployment can run a wave of weeks in minutes (tests, demos).
    """

    def __init__(
        self, virtual_start: datetime, real_start: datetime, factor: float, wall: Clock | None = None
    ) -> None:
        if factor <= 0:
            raise ValueError("a scaled clock needs a positive factor")
        self.virtual_start = _aware(virtual_start)
        self.real_start = _aware(real_start)
        self.factor = factor
        self.wall = wall or SystemClock()

    def now(self) -> datetime:
        return self.virtual_start + (self.wall.now() - self.real_start) * self.factor

    @classmethod
    def parse(cls, spec: str) -> ScaledClock:
        """'FACTOR:VIRTUAL_START@REAL_START', ISO instants with offsets, e.g.
        '3600:2026-12-07T07:00:00+00:00@2026-11-23T14:00:00+00:00'."""
        try:
            factor, rest = spec.split(":", 1)
            virtual, real = rest.split("@", 1)
            return cls(datetime.fromisoformat(virtual), datetime.fromisoformat(real), float(factor))
        except ValueError as exc:
            raise ValueError(
                f"clock {spec!r}: expected FACTOR:VIRTUAL_START@REAL_START with ISO instants ({exc})"
            ) from None
