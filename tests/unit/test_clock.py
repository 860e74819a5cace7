"""The scaled clock that several `carecall serve` processes share.

Its virtual time must be a pure function of wall time and its spec (processes
agree), never go back, run at the busy speed exactly inside the busy hours and
at the idle speed elsewhere, and join the two without a jump. The expected
times are computed here from the busy windows, the time zone and the
`holidays` library, independently of the clock's own segment walk.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.clock import BusyHours, ScaledClock

PARIS = ZoneInfo("Europe/Paris")
REAL0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
BUSY = "mon-fri 08:00-19:30, sat 08:30-12:30"


class Wall:
    """A wall clock the test sets by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def two_speed(
    virtual0: datetime,
    factor: float,
    idle: float,
    busy: str = BUSY,
    holidays: str | None = "75",
    wall: Wall | None = None,
) -> ScaledClock:
    return ScaledClock(
        virtual0, REAL0, factor, wall, idle_factor=idle, busy=BusyHours.parse(busy, "Europe/Paris", holidays)
    )


# ---------------------------------------------------------------- an independent model


def busy_intervals(
    busy: str, holidays: str | None, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    """The busy hours between two local days, from the spec's text, zoneinfo and `holidays`."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    windows: list[tuple[int, time, time]] = []
    for part in busy.split(","):
        span, hours = part.split()
        lo, _, hi = span.partition("-")
        a, b = hours.split("-")
        for d in range(days.index(lo), days.index(hi or lo) + 1):
            windows.append((d, time.fromisoformat(a), time.fromisoformat(b)))
    out = []
    day = first
    while day <= last:
        off = holidays is not None and day in holidays_lib.country_holidays("FR", years=day.year)
        for weekday, a, b in windows:
            if weekday == day.weekday() and not off:
                out.append(
                    (
                        datetime.combine(day, a, PARIS).astimezone(UTC),
                        datetime.combine(day, b, PARIS).astimezone(UTC),
                    )
                )
        day += timedelta(days=1)
    return out


def expected_real(
    virtual0: datetime,
    virtual: datetime,
    factor: float,
    idle: float,
    busy: str = BUSY,
    holidays: str | None = "75",
) -> float:
    """Real seconds from `virtual0` to `virtual`: busy time at `factor`, the rest at `idle`."""
    first = virtual0.astimezone(PARIS).date() - timedelta(days=1)
    last = virtual.astimezone(PARIS).date() + timedelta(days=1)
    busy_s = sum(
        max(0.0, (min(b, virtual) - max(a, virtual0)).total_seconds())
        for a, b in busy_intervals(busy, holidays, first, last)
    )
    total = (virtual - virtual0).total_seconds()
    return busy_s / factor + (total - busy_s) / idle


# ---------------------------------------------------------------- properties

# bounds of hypothesis' st.datetimes are naive by its API; the drawn instants are UTC
anchors = st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001
factors = st.floats(min_value=60, max_value=20_000)
idles = st.floats(min_value=20_000, max_value=300_000)
offsets = st.lists(st.floats(min_value=0, max_value=40), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(anchors, factors, idles, offsets)
def test_real_time_is_busy_time_at_the_busy_speed_plus_the_rest_at_the_idle_speed(
    virtual0: datetime, factor: float, idle: float, walls: list[float]
) -> None:
    clock = two_speed(virtual0, factor, idle)
    for w in walls:
        virtual = clock.at(REAL0 + timedelta(seconds=w))
        assert expected_real(virtual0, virtual, factor, idle) == pytest.approx(w, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(anchors, factors, idles, offsets, st.randoms(use_true_random=False))
def test_processes_agree_and_time_never_goes_back(
    virtual0: datetime, factor: float, idle: float, walls: list[float], rng: random.Random
) -> None:
    """A process reading on, one asked out of order, one started late: the same time."""
    wall = Wall(REAL0)
    running = two_speed(virtual0, factor, idle, wall=wall)
    seen = []
    for w in sorted(walls):
        wall.at = REAL0 + timedelta(seconds=w)
        seen.append(running.now())
    assert seen == sorted(seen)
    other = two_speed(virtual0, factor, idle)
    order = list(range(len(walls)))
    rng.shuffle(order)
    late = two_speed(virtual0, factor, idle)
    for i in order:
        at = REAL0 + timedelta(seconds=sorted(walls)[i])
        assert other.at(at) == seen[i] == late.at(at)


@settings(max_examples=40, deadline=None)
@given(anchors, factors, idles)
def test_no_jump_where_the_speed_changes(virtual0: datetime, factor: float, idle: float) -> None:
    clock = two_speed(virtual0, factor, idle)
    end = virtual0 + timedelta(days=10)
    edges = [
        edge
        for a, b in busy_intervals(BUSY, "75", virtual0.date() - timedelta(days=1), end.date())
        for edge in (a, b)
        if virtual0 < edge < end
    ]
    us = timedelta(microseconds=1)
    for edge in edges:
        real = clock.real_at(edge)
        before, at, after = clock.at(real - us), clock.at(real), clock.at(real + us)
        assert before <= at <= after
        # two microseconds of real time are worth at most 2 x `idle` microseconds; the edge's
        # real instant is rounded to the microsecond, which may add half a microsecond's worth
        assert (after - before) <= us * (2.5 * idle + 2)
        assert abs(at - edge) <= us * idle


def test_busy_hours_run_at_the_busy_speed_and_nights_at_the_idle_speed() -> None:
    monday_7h = datetime(2026, 12, 14, 7, 0, tzinfo=PARIS)
    clock = two_speed(monday_7h, 3600, 200_000)
    eight = clock.real_at(datetime(2026, 12, 14, 8, 0, tzinfo=PARIS))
    assert (eight - REAL0).total_seconds() == pytest.approx(3600 / 200_000)
    # a busy hour takes one real second, a night 12.5 h / 200,000
    assert clock.at(eight + timedelta(seconds=1)) == datetime(2026, 12, 14, 9, 0, tzinfo=PARIS)
    evening = clock.real_at(datetime(2026, 12, 14, 19, 30, tzinfo=PARIS))
    morning = clock.real_at(datetime(2026, 12, 15, 8, 0, tzinfo=PARIS))
    assert (morning - evening).total_seconds() == pytest.approx(12.5 * 3600 / 200_000)


def test_a_holiday_runs_at_the_idle_speed() -> None:
    christmas_eve = datetime(2026, 12, 24, 20, 0, tzinfo=PARIS)  # Thursday; the 25th is a Friday
    clock = two_speed(christmas_eve, 3600, 200_000)
    saturday_830 = clock.real_at(datetime(2026, 12, 26, 8, 30, tzinfo=PARIS))
    assert (saturday_830 - REAL0).total_seconds() == pytest.approx(36.5 * 3600 / 200_000)
    no_holidays = two_speed(christmas_eve, 3600, 200_000, holidays=None)
    assert no_holidays.real_at(datetime(2026, 12, 26, 8, 30, tzinfo=PARIS)) > saturday_830


def test_from_until_on_every_hour_runs_at_the_idle_speed() -> None:
    monday_8h = datetime(2026, 12, 14, 8, 0, tzinfo=PARIS)
    until = datetime(2026, 12, 14, 12, 0, tzinfo=PARIS)
    clock = ScaledClock(
        monday_8h, REAL0, 3600, idle_factor=200_000, busy=BusyHours.parse(BUSY, until=until.isoformat())
    )
    noon = clock.real_at(until)
    assert (noon - REAL0).total_seconds() == pytest.approx(4)
    tuesday_noon = clock.real_at(until + timedelta(days=1))
    assert (tuesday_noon - noon).total_seconds() == pytest.approx(24 * 3600 / 200_000)


def test_the_old_spec_is_one_speed_from_the_anchor() -> None:
    wall = Wall(REAL0)
    clock = ScaledClock.parse(f"14400:2026-12-10T06:00:00+00:00@{REAL0.isoformat()}")
    clock.wall = wall
    assert clock.idle_factor is None and clock.max_factor == 14400
    for seconds in (0, 0.25, 3, 1000.5):
        wall.at = REAL0 + timedelta(seconds=seconds)
        expected = datetime(2026, 12, 10, 6, tzinfo=UTC) + timedelta(seconds=seconds * 14400)
        assert clock.now() == expected
        assert clock.real_at(expected) == wall.at


def test_before_its_start_the_clock_waits_and_it_never_goes_back() -> None:
    wall = Wall(REAL0 - timedelta(seconds=3))
    v0 = datetime(2026, 12, 10, 6, tzinfo=UTC)
    clock = two_speed(v0, 3600, 200_000, wall=wall)
    assert clock.now() == v0
    wall.at = REAL0 + timedelta(seconds=5)
    later = clock.now()
    assert later > v0
    wall.at = REAL0 + timedelta(seconds=1)  # the wall clock is stepped back
    assert clock.now() == later
    assert clock.at(REAL0 + timedelta(seconds=1)) < later  # the function itself is unchanged


def test_a_two_speed_spec_round_trips_its_settings() -> None:
    clock = ScaledClock.parse(
        f"3600:2026-12-10T06:00:00+00:00@{REAL0.isoformat()};idle=200000;"
        "busy=mon-fri 08:00-19:30, sat 08:30-12:30;tz=Europe/Paris;holidays=75;until=2027-01-05T05:00+01:00"
    )
    assert (clock.factor, clock.idle_factor, clock.max_factor) == (3600, 200_000, 200_000)
    assert clock.busy is not None and clock.busy.holidays == "75"
    assert clock.busy.until == datetime(2027, 1, 5, 4, tzinfo=UTC)
    assert len(clock.busy.windows) == 6
    assert clock.describe() == "3600x in busy hours, 200000x outside"


ANCHOR = f"3600:2026-12-10T06:00:00+00:00@{REAL0.isoformat()}"


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("fast", "FACTOR:VIRTUAL_START@REAL_START"),
        ("3600:2026-12-10T06:00:00@2026-11-23T14:00:00", "UTC offset"),
        ("x:2026-12-10T06:00:00+00:00@2026-11-23T14:00:00+00:00", "FACTOR"),
        ("-5:2026-12-10T06:00:00+00:00@2026-11-23T14:00:00+00:00", "positive"),
        (f"{ANCHOR};idle=200000", "idle= and busy= go together"),
        (f"{ANCHOR};busy=mon-fri 08:00-19:00", "idle= and busy= go together"),
        (f"{ANCHOR};tz=Europe/Paris", "only apply with idle="),
        (f"{ANCHOR};idel=200000", "'idel=200000' is not one of idle, busy, tz, holidays, until"),
        (f"{ANCHOR};idle=fast;busy=mon 08:00-19:00", "idle factor 'fast' is not a number"),
        (f"{ANCHOR};idle=0;busy=mon 08:00-19:00", "positive"),
        (f"{ANCHOR};idle=9;idle=8;busy=mon 08:00-19:00", "idle= given twice"),
        (f"{ANCHOR};idle=9;busy=mon-fry 08:00-19:00", "'fry' is not a day"),
        (f"{ANCHOR};idle=9;busy=fri-mon 08:00-19:00", "the days run backwards"),
        (f"{ANCHOR};idle=9;busy=mon 19:00-08:00", "ends before it starts"),
        (f"{ANCHOR};idle=9;busy=mon 25:00-26:00", "not a time range"),
        (f"{ANCHOR};idle=9;busy=mondays", "expected DAY[-DAY] HH:MM-HH:MM"),
        (f"{ANCHOR};idle=9;busy=mon-fri 08:00-12:00, wed 11:00-14:00", "overlap on wed"),
        (f"{ANCHOR};idle=9;busy=mon 08:00-19:00;tz=Mars/Olympus", "time zone 'Mars/Olympus'"),
        (f"{ANCHOR};idle=9;busy=mon 08:00-19:00;holidays=Paris", "holidays 'Paris'"),
        (f"{ANCHOR};idle=9;busy=mon 08:00-19:00;until=soon", "until 'soon' is not an ISO instant"),
        (f"{ANCHOR};idle=9;busy=mon 08:00-19:00;until=2027-01-05T04:00", "until '2027-01-05T04:00' needs"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, names: str) -> None:
    with pytest.raises(ValueError, match="clock") as err:
        ScaledClock.parse(spec)
    assert names in str(err.value)
