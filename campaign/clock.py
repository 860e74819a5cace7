"""The one clock of carecall.

Everything that reads the time takes a `Clock`. Production uses `SystemClock`;
the demo, the simulator and the tests use `VirtualClock` to run days of calling
in seconds, and several `carecall serve` processes share a `ScaledClock`.
Times are always timezone-aware UTC.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaign import calendar as cal


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


def _instant(text: str, what: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO instant") from None
    if instant.tzinfo is None:
        raise ValueError(f"{what} {text!r} needs a UTC offset, e.g. +00:00")
    return instant.astimezone(UTC)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FOREVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BusyHours:
    """When a two-speed `ScaledClock` runs at its busy speed: local windows on some weekdays.

    Outside them nobody works (nurses are off shift), so the clock may rush
    through. A public holiday of `holidays` (a département code) is idle all day,
    and so is everything from `until` on (a test's wave is over, say).
    """

    windows: tuple[tuple[int, time, time], ...]  # (weekday 0=Monday, start, end), local time
    timezone: str = "Europe/Paris"
    holidays: str | None = None
    until: datetime | None = None

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        if self.holidays is not None and cal.is_holiday(day, self.holidays):
            return []
        out = []
        for weekday, start, end in self.windows:
            if weekday == day.weekday():
                a, b = cal.at_local(day, start, self.timezone), cal.at_local(day, end, self.timezone)
                if self.until is not None:
                    b = min(b, self.until)
                if a < b:  # a window squeezed out by a daylight-saving change (or `until`) is skipped
                    out.append((a, b))
        return sorted(out)

    def next_change(self, instant: datetime) -> tuple[bool, datetime]:
        """Whether `instant` is busy, and the next instant at which that changes (always later)."""
        if self.until is not None and instant >= self.until:
            return False, instant + timedelta(days=366)  # idle for good: one long segment after another
        day = cal.local_time_of(instant, self.timezone).date() - timedelta(days=1)
        for k in range(16):
            for start, end in self.intervals_on(day + timedelta(days=k)):
                if end <= instant:
                    continue
                return (True, end) if start <= instant else (False, start)
        # no busy hour for two weeks (holidays): idle until then, and look again
        return False, cal.at_local(day + timedelta(days=16), time(0), self.timezone)

    @classmethod
    def parse(
        cls, text: str, timezone: str = "Europe/Paris", holidays: str | None = None, until: str | None = None
    ) -> BusyHours:
        """'mon-fri 08:00-19:30, sat 08:30-12:30' (weekdays or a range of them, then a local window)."""
        windows: list[tuple[int, time, time]] = []
        for part in (p.strip() for p in text.split(",")):
            m = re.fullmatch(r"([a-z]{3})(?:-([a-z]{3}))?\s+(\d{1,2}:\d{2})-(\d{1,2}:\d{2})", part.lower())
            if m is None:
                raise ValueError(
                    f"busy hours {part!r}: expected DAY[-DAY] HH:MM-HH:MM, e.g. 'mon-fri 08:00-19:30'"
                )
            first, last, a, b = m.groups()
            for name in (first, last or first):
                if name not in DAYS:
                    raise ValueError(f"busy hours {part!r}: {name!r} is not a day ({', '.join(DAYS)})")
            lo, hi = DAYS.index(first), DAYS.index(last or first)
            if hi < lo:
                raise ValueError(f"busy hours {part!r}: the days run backwards")
            try:
                start, end = time.fromisoformat(a.zfill(5)), time.fromisoformat(b.zfill(5))
            except ValueError:
                raise ValueError(f"busy hours {part!r}: {a}-{b} is not a time range") from None
            if end <= start:
                raise ValueError(f"busy hours {part!r}: the window ends before it starts")
            windows.extend((d, start, end) for d in range(lo, hi + 1))
        windows.sort()
        for (d1, _s1, e1), (d2, s2, _e2) in itertools.pairwise(windows):
            if d1 == d2 and s2 < e1:
                raise ValueError(f"busy hours {text!r}: two windows overlap on {DAYS[d1]}")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time zone {timezone!r} is unknown") from None
        if holidays is not None and not re.fullmatch(r"\d{2}|2[AB]|97[1-46]", holidays):
            raise ValueError(f"holidays {holidays!r}: expected a département code, e.g. 75, 57 or 974")
        return cls(tuple(windows), timezone, holidays, None if until is None else _instant(until, "until"))


@dataclass(frozen=True, slots=True)
class _Segment:
    """A stretch of virtual time run at one speed, and when it runs in real time."""

    virtual_start: datetime
    virtual_end: datetime
    real_start: datetime
    real_end: datetime
    factor: float


def _virtual_start(seg: _Segment) -> datetime:
    return seg.virtual_start


def _real_start(seg: _Segment) -> datetime:
    return seg.real_start


class ScaledClock:
    """Wall time sped up from an anchor: `factor` virtual seconds per real second.

    With `idle_factor` and `busy` hours the speed is `factor` inside the busy
    hours and `idle_factor` outside (nights, Sundays, holidays), so the hours
    in which nothing happens take next to no real time. Virtual time is a pure
    function of wall time and these settings: several processes given the
    same spec agree on the time, so a whole multi-process deployment can run
    a wave of weeks in minutes (tests, demos). Before `real_start` the clock
    reads `virtual_start`; it never goes back, even if the wall clock does.
    """

    def __init__(
        self,
        virtual_start: datetime,
        real_start: datetime,
        factor: float,
        wall: Clock | None = None,
        *,
        idle_factor: float | None = None,
        busy: BusyHours | None = None,
    ) -> None:
        for f in (factor, factor if idle_factor is None else idle_factor):
            if not (math.isfinite(f) and f > 0):
                raise ValueError(f"a clock factor must be a positive number, not {f:g}")
        if (idle_factor is None) != (busy is None):
            raise ValueError("an idle factor and busy hours go together")
        if busy is not None and not busy.windows:
            raise ValueError("busy hours need at least one window")
        self.virtual_start = _aware(virtual_start)
        self.real_start = _aware(real_start)
        self.factor = factor
        self.idle_factor = idle_factor
        self.busy = busy
        self.wall = wall or SystemClock()
        # segments are computed once, in order, as time reaches them (a few per virtual day)
        self._segments = [self._segment_from(self.virtual_start, self.real_start)]
        self._seg = self._segments[0]
        self._last = self.virtual_start

    @property
    def max_factor(self) -> float:
        """The fastest speed: what a real-time span may cost in virtual time (leases)."""
        return max(self.factor, self.idle_factor or self.factor)

    def now(self) -> datetime:
        wall = self.wall.now()
        seg = self._seg
        if not seg.real_start <= wall < seg.real_end:
            if wall <= self.real_start:
                return self._last
            seg = self._seg = self._segment_at(wall)
        virtual = seg.virtual_start + (wall - seg.real_start) * seg.factor
        if virtual < self._last:  # the wall clock was stepped back
            return self._last
        self._last = virtual
        return virtual

    def at(self, wall: datetime) -> datetime:
        """The virtual time when the wall clock reads `wall` (what `now()` then returns)."""
        wall = _aware(wall)
        if wall <= self.real_start:
            return self.virtual_start
        seg = self._segment_at(wall)
        return seg.virtual_start + (wall - seg.real_start) * seg.factor

    def real_at(self, virtual: datetime) -> datetime:
        """The wall time at which the clock reads `virtual` (the inverse of `at`)."""
        virtual = _aware(virtual)
        if virtual <= self.virtual_start:
            return self.real_start
        seg = self._seg
        if not seg.virtual_start <= virtual < seg.virtual_end:
            self._extend(lambda last: virtual >= last.virtual_end)
            seg = self._segments[bisect.bisect_right(self._segments, virtual, key=_virtual_start) - 1]
        return seg.real_start + (virtual - seg.virtual_start) / seg.factor

    def _segment_at(self, wall: datetime) -> _Segment:
        """The segment running at `wall`."""
        self._extend(lambda last: wall >= last.real_end)
        return self._segments[bisect.bisect_right(self._segments, wall, key=_real_start) - 1]

    def _extend(self, short: Callable[[_Segment], bool]) -> None:
        """Compute the segments that follow while `short(last segment)` holds."""
        while short(last := self._segments[-1]):
            self._segments.append(self._segment_from(last.virtual_end, last.real_end))

    def _segment_from(self, virtual: datetime, real: datetime) -> _Segment:
        if self.busy is None or self.idle_factor is None:
            return _Segment(virtual, _FOREVER, real, _FOREVER, self.factor)
        busy, until = self.busy.next_change(virtual)
        factor = self.factor if busy else self.idle_factor
        return _Segment(virtual, until, real, real + (until - virtual) / factor, factor)

    def describe(self) -> str:
        if self.busy is None:
            return f"{self.factor:g}x"
        return f"{self.factor:g}x in busy hours, {self.idle_factor:g}x outside"

    @classmethod
    def parse(cls, spec: str) -> ScaledClock:
        """'FACTOR:VIRTUAL_START@REAL_START[;idle=FACTOR;busy=HOURS[;tz=ZONE][;holidays=DEP][;until=I]]'.

        Instants are ISO with offsets, e.g. '3600:2026-12-07T07:00:00+00:00@2026-11-23T14:00:00+00:00'
        runs 3,600 times faster than the wall clock; adding
        ';idle=200000;busy=mon-fri 08:30-19:00, sat 09:00-12:00;holidays=75' runs 200,000 times
        faster outside those hours (local time of `tz`, Europe/Paris by default), on the
        public holidays of département 75, and from the instant `until` on if given.
        """
        head, *options = spec.split(";")
        try:
            factor, rest = head.split(":", 1)
            virtual, real = rest.split("@", 1)
            anchor = (datetime.fromisoformat(virtual.strip()), datetime.fromisoformat(real.strip()))
            busy_factor = float(factor)
        except ValueError as exc:
            raise ValueError(
                f"clock {spec!r}: expected FACTOR:VIRTUAL_START@REAL_START with ISO instants ({exc})"
            ) from None
        if anchor[0].tzinfo is None or anchor[1].tzinfo is None:
            raise ValueError(f"clock {spec!r}: the instants need a UTC offset, e.g. +00:00")
        known = ("idle", "busy", "tz", "holidays", "until")
        values: dict[str, str] = {}
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(f"clock {spec!r}: {option.strip()!r} is not one of {', '.join(known)}=…")
            if key in values:
                raise ValueError(f"clock {spec!r}: {key}= given twice")
            values[key] = value.strip()
        if ("idle" in values) != ("busy" in values):
            raise ValueError(f"clock {spec!r}: idle= and busy= go together")
        if "idle" not in values and values:
            raise ValueError(f"clock {spec!r}: {', '.join(values)}= only apply with idle= and busy=")
        idle: float | None = None
        busy: BusyHours | None = None
        try:
            if "idle" in values:
                try:
                    idle = float(values["idle"])
                except ValueError:
                    raise ValueError(f"idle factor {values['idle']!r} is not a number") from None
                busy = BusyHours.parse(
                    values["busy"],
                    values.get("tz", "Europe/Paris"),
                    values.get("holidays"),
                    values.get("until"),
                )
            return cls(anchor[0], anchor[1], busy_factor, idle_factor=idle, busy=busy)
        except ValueError as exc:
            raise ValueError(f"clock {spec!r}: {exc}") from None
