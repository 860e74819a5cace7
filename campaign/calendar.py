"""Where and when a patient may be called: time zone, holidays, calling windows.

Pure: no clock, no database. Calling windows are in the patient's local time;
overseas departments are hours from Paris and have holidays of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from campaign.policy import CallingHours, Window

# Overseas departments and collectivities: INSEE code -> (IANA zone, phonenumbers region,
# holidays subdivision). Saint-Barthélemy (977) and Saint-Martin (978) left Guadeloupe in
# 2007: each has its own abolition day and its own zone name, though their postal codes
# (97133, 97150) still sit in Guadeloupe's 971 range.
OVERSEAS: dict[str, tuple[str, str, str]] = {
    "971": ("America/Guadeloupe", "GP", "971"),
    "972": ("America/Martinique", "MQ", "972"),
    "973": ("America/Cayenne", "GF", "973"),
    "974": ("Indian/Reunion", "RE", "974"),
    "976": ("Indian/Mayotte", "YT", "976"),
    "977": ("America/St_Barthelemy", "BL", "BL"),
    "978": ("America/Marigot", "MF", "MF"),
}
# postal codes of the collectivities inside another territory's range
_COLLECTIVITY_POSTAL_CODES = {"97133": "977", "97150": "978"}
METROPOLE_ZONE = "Europe/Paris"
# Alsace-Moselle keeps Good Friday and 26 December.
ALSACE_MOSELLE = {"57": "57", "67": "6AE", "68": "6AE"}


def departement_from_postal_code(postal_code: str) -> str:
    """'97411' -> '974', '20000' -> '2A', '57000' -> '57', '97133' -> '977' (Saint-Barthélemy)."""
    code = postal_code.strip()
    if len(code) != 5 or not code.isdigit():
        raise ValueError(f"{code!r} is not a 5-digit French postal code")
    if code.startswith("97"):
        dep = _COLLECTIVITY_POSTAL_CODES.get(code, code[:3])
        if dep not in OVERSEAS:
            raise ValueError(f"{code!r}: overseas territory {dep} is not served by the programme")
        return dep
    if code.startswith("20"):
        return "2A" if int(code) < 20200 else "2B"
    # 96xxx and 99xxx do not exist, 98xxx is Monaco and the Pacific territories: none is a
    # département (without this they became départements "96", "98", "99" on Paris time).
    if code.startswith(("00", "96", "99")):
        raise ValueError(f"{code!r} is not a French postal code")
    if code.startswith("98"):
        raise ValueError(f"{code!r}: Monaco or a Pacific territory, not served by the programme")
    return code[:2]


def is_departement(code: str) -> bool:
    """A département (or overseas collectivity) code the programme serves: '01'…'95', '2A', '2B', '971'…"""
    if code in OVERSEAS or code in ("2A", "2B"):
        return True
    return len(code) == 2 and code.isdigit() and code not in ("00", "20", "96", "97", "98", "99")


def zone_for(departement: str) -> str:
    return OVERSEAS[departement][0] if departement in OVERSEAS else METROPOLE_ZONE


def phone_region_for(departement: str) -> str:
    """Region hint for phonenumbers: an overseas number only parses right with its own."""
    return OVERSEAS[departement][1] if departement in OVERSEAS else "FR"


def holiday_subdivision(departement: str) -> str | None:
    if departement in OVERSEAS:
        return OVERSEAS[departement][2]
    return ALSACE_MOSELLE.get(departement)


@lru_cache(maxsize=64)
def _holidays(subdivision: str | None, year: int) -> frozenset[date]:
    cal = holidays_lib.country_holidays("FR", subdiv=subdivision, years=year)
    return frozenset(cal.keys())


def is_holiday(day: date, departement: str) -> bool:
    return day in _holidays(holiday_subdivision(departement), day.year)


def holiday_name(day: date, departement: str) -> str | None:
    cal = holidays_lib.country_holidays(
        "FR", subdiv=holiday_subdivision(departement), years=day.year, language="fr"
    )
    return cal.get(day)


@dataclass(frozen=True, slots=True)
class Place:
    """What the calendar needs of a patient: where they live and when they like calls."""

    departement: str
    timezone: str
    preferred_start: time | None = None
    preferred_end: time | None = None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_windows(day: date, place: Place, hours: CallingHours) -> tuple[Window, ...]:
    """The local-time windows in which this patient may be called on `day`.

    The patient's preferred window wins where it lies inside calling hours;
    a preferred window wholly outside them is ignored (calling hours are law).
    """
    if hours.holidays and is_holiday(day, place.departement):
        return ()
    base = hours.by_weekday[day.weekday()]
    if not base or place.preferred_start is None or place.preferred_end is None:
        return base
    if place.preferred_end <= place.preferred_start:
        return base
    clipped = []
    for w in base:
        start = max(w.start, place.preferred_start)
        end = min(w.end, place.preferred_end)
        if start < end:
            clipped.append(Window(start=start, end=end))
    return tuple(clipped) if clipped else base


def utc_intervals(day: date, place: Place, hours: CallingHours) -> list[tuple[datetime, datetime]]:
    """The windows of `day` as UTC instants.

    Built through the zone so a daylight-saving change moves them correctly; a
    local time that does not exist (spring forward) is resolved by zoneinfo's
    fold rules, and the window is clipped to the day it belongs to.
    """
    zone = _zone(place.timezone)
    out = []
    for w in local_windows(day, place, hours):
        start = datetime.combine(day, w.start, zone).astimezone(UTC)
        end = datetime.combine(day, w.end, zone).astimezone(UTC)
        if start < end:
            out.append((start, end))
    return out


def local_date(instant: datetime, place: Place) -> date:
    return instant.astimezone(_zone(place.timezone)).date()


def is_callable_at(instant: datetime, place: Place, hours: CallingHours) -> bool:
    """True when `instant` lies inside one of the patient's windows of that local day."""
    day = local_date(instant, place)
    return any(s <= instant < e for s, e in utc_intervals(day, place, hours))


def window_containing(
    instant: datetime, place: Place, hours: CallingHours
) -> tuple[datetime, datetime] | None:
    day = local_date(instant, place)
    for s, e in utc_intervals(day, place, hours):
        if s <= instant < e:
            return s, e
    return None


def next_windows(
    after: datetime, place: Place, hours: CallingHours, horizon_days: int = 60
) -> Iterator[tuple[datetime, datetime]]:
    """Callable intervals from `after` on (the first one may start at `after`)."""
    day = local_date(after, place)
    for offset in range(horizon_days + 1):
        for s, e in utc_intervals(day + timedelta(days=offset), place, hours):
            if e <= after:
                continue
            yield max(s, after), e


def next_open(
    after: datetime, place: Place, hours: CallingHours, horizon_days: int = 60
) -> tuple[datetime, datetime] | None:
    """The first callable interval at or after `after`, or None within the horizon."""
    return next(next_windows(after, place, hours, horizon_days), None)


def is_working_day(day: date, hours: CallingHours, departement: str = "75") -> bool:
    """A day with calling hours that is not a holiday (for mailing delays and wave length)."""
    if not hours.by_weekday[day.weekday()]:
        return False
    return not (hours.holidays and is_holiday(day, departement))


def add_working_days(start: date, n: int, hours: CallingHours, departement: str = "75") -> date:
    """The n-th working day after `start` (n=0: `start` itself if working, else the next)."""
    day = start
    while not is_working_day(day, hours, departement):
        day += timedelta(days=1)
    for _ in range(n):
        day += timedelta(days=1)
        while not is_working_day(day, hours, departement):
            day += timedelta(days=1)
    return day


def working_days(start: date, end: date, hours: CallingHours, departement: str = "75") -> list[date]:
    out = []
    day = start
    while day <= end:
        if is_working_day(day, hours, departement):
            out.append(day)
        day += timedelta(days=1)
    return out


def local_time_of(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(_zone(zone))


def at_local(day: date, at: time, zone: str) -> datetime:
    return datetime.combine(day, at, _zone(zone)).astimezone(UTC)
