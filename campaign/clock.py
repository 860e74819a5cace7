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
