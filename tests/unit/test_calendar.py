"""Table tests for the calendar: where a patient lives decides their clock and their holidays.

Every expected value below was worked out by hand from the facts (IANA zones,
the French holiday law incl. Alsace-Moselle and the overseas abolition days,
the default calling hours of config/programme.toml), not read back from the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import holidays as holidays_lib
import phonenumbers
import pytest

from campaign import calendar as cal
from campaign.policy import CallingHours, Window, load_policy

POLICY = load_policy()
HOURS = POLICY.calling_hours  # Mon-Thu 09:00-12:30 + 13:30-19:00, Fri ... 18:00, Sat 09:00-12:00


def place(dep: str, pref: tuple[str, str] | None = None) -> cal.Place:
    if pref is None:
        return cal.Place(dep, cal.zone_for(dep))
    return cal.Place(dep, cal.zone_for(dep), time.fromisoformat(pref[0]), time.fromisoformat(pref[1]))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def w(text: str) -> Window:
    return Window.parse(text)


def windows(*texts: str) -> tuple[Window, ...]:
    return tuple(w(t) for t in texts)


# ------------------------------------------------------------------ where the patient lives


@pytest.mark.parametrize(
    ("dep", "zone", "subdivision", "region"),
    [
        ("75", "Europe/Paris", None, "FR"),
        ("13", "Europe/Paris", None, "FR"),
        ("57", "Europe/Paris", "57", "FR"),  # Moselle
        ("67", "Europe/Paris", "6AE", "FR"),  # Bas-Rhin: holidays knows Alsace as 6AE, 67 raises
        ("68", "Europe/Paris", "6AE", "FR"),  # Haut-Rhin
        ("2A", "Europe/Paris", None, "FR"),  # Corse-du-Sud
        ("2B", "Europe/Paris", None, "FR"),  # Haute-Corse
        ("971", "America/Guadeloupe", "971", "GP"),
        ("972", "America/Martinique", "972", "MQ"),
        ("973", "America/Cayenne", "973", "GF"),  # phonenumbers says GF, holidays says 973 (alias GY)
        ("974", "Indian/Reunion", "974", "RE"),
        ("976", "Indian/Mayotte", "976", "YT"),
        # the collectivities that left Guadeloupe in 2007 keep their own calendars
        ("977", "America/St_Barthelemy", "BL", "BL"),  # Saint-Barthélemy
        ("978", "America/Marigot", "MF", "MF"),  # Saint-Martin
    ],
)
def test_zone_subdivision_and_phone_region_per_departement(
    dep: str, zone: str, subdivision: str | None, region: str
) -> None:
    assert cal.zone_for(dep) == zone
    assert cal.holiday_subdivision(dep) == subdivision
    assert cal.phone_region_for(dep) == region
    # the subdivision is one the holidays library accepts, and the region one phonenumbers knows
    holidays_lib.country_holidays("FR", subdiv=subdivision, years=2026)
    assert phonenumbers.country_code_for_region(region) != 0


@pytest.mark.parametrize(
    ("postal_code", "dep"),
    [
        ("75001", "75"),
        ("01000", "01"),
        ("13001", "13"),
        ("57000", "57"),
        ("67000", "67"),
        ("68100", "68"),
        ("20000", "2A"),  # Ajaccio
        ("20090", "2A"),
        ("20167", "2A"),
        ("20200", "2B"),  # Bastia
        ("20600", "2B"),
        ("97100", "971"),  # Basse-Terre
        ("97200", "972"),  # Fort-de-France
        ("97300", "973"),  # Cayenne
        ("97411", "974"),  # Saint-Paul
        ("97400", "974"),
        ("97600", "976"),  # Mamoudzou
        ("97133", "977"),  # Saint-Barthélemy: in Guadeloupe's postal range, not Guadeloupe
        ("97150", "978"),  # Saint-Martin
        ("97139", "971"),  # Les Abymes, Guadeloupe
        (" 75001 ", "75"),
    ],
)
def test_departement_from_postal_code(postal_code: str, dep: str) -> None:
    assert cal.departement_from_postal_code(postal_code) == dep


@pytest.mark.parametrize(
    "postal_code",
    [
        "7500",  # too short
        "750011",  # too long
        "75O01",  # letter O
        "",
        "00100",
        "97500",  # Saint-Pierre-et-Miquelon: not a département the programme serves
        "98000",  # Monaco: not a French département
        "98800",  # Nouvelle-Calédonie: own social security, not served
        "96000",  # no such postal codes
        "99100",
    ],
)
def test_departement_from_bad_postal_code_raises(postal_code: str) -> None:
    with pytest.raises(ValueError, match=r"postal code|not served|overseas"):
        cal.departement_from_postal_code(postal_code)


# ------------------------------------------------------------------ holidays where they live


@pytest.mark.parametrize(
    ("day", "holiday_in", "working_in"),
    [
        # Good Friday: Alsace-Moselle only (of the metropole)
        (date(2026, 4, 3), ["57", "67", "68"], ["75", "2A", "13", "974", "972"]),
        (date(2027, 3, 26), ["57", "67", "68"], ["75", "2B", "974"]),
        (date(2028, 4, 14), ["57", "67", "68"], ["75", "973"]),
        # 26 December (Saint-Étienne): Alsace-Moselle only
        (date(2026, 12, 26), ["57", "67", "68"], ["75", "2A", "971", "974"]),
        (date(2028, 12, 26), ["57", "67", "68"], ["75", "972"]),
        # national holidays: everywhere
        (date(2026, 1, 1), ["75", "57", "67", "2A", "971", "972", "973", "974", "976"], []),
        (date(2026, 7, 14), ["75", "68", "2B", "971", "972", "973", "974", "976"], []),
        (date(2026, 12, 25), ["75", "57", "974", "976"], []),
        (date(2026, 4, 6), ["75", "57", "972"], []),  # Easter Monday
        # abolition of slavery: each overseas département on its own day
        (date(2027, 12, 20), ["974"], ["75", "57", "971", "972", "973", "976"]),
        (date(2026, 5, 22), ["972"], ["75", "57", "971", "973", "974", "976"]),
        (date(2026, 5, 27), ["971"], ["75", "972", "974", "977", "978"]),
        (date(2026, 5, 28), ["978"], ["75", "971", "977"]),  # Saint-Martin
        (date(2026, 10, 9), ["977"], ["75", "971", "978"]),  # Saint-Barthélemy
        # Guadeloupe keeps Good Friday and Mi-Carême; its former communes do not
        (date(2026, 4, 3), ["971"], ["977", "978"]),
        (date(2026, 3, 12), ["971"], ["977", "978", "75"]),
        (date(2026, 6, 10), ["973"], ["75", "972", "974"]),
        (date(2026, 4, 27), ["976"], ["75", "974"]),
        # an ordinary Tuesday
        (date(2026, 3, 10), [], ["75", "57", "67", "68", "2A", "971", "972", "973", "974", "976"]),
    ],
)
def test_holidays_where_the_patient_lives(day: date, holiday_in: list[str], working_in: list[str]) -> None:
    for dep in holiday_in:
        assert cal.is_holiday(day, dep), f"{day} should be a holiday in {dep}"
        assert cal.local_windows(day, place(dep), HOURS) == (), f"{day}: no windows in {dep}"
        assert cal.holiday_name(day, dep)
    for dep in working_in:
        assert not cal.is_holiday(day, dep), f"{day} should be an ordinary day in {dep}"
        assert cal.holiday_name(day, dep) is None
        if day.weekday() < 6:
            assert cal.local_windows(day, place(dep), HOURS) == HOURS.by_weekday[day.weekday()]


def test_holidays_can_be_switched_off_by_policy() -> None:
    no_holidays = HOURS.model_copy(update={"holidays": False})
    assert cal.local_windows(date(2026, 12, 25), place("75"), no_holidays) == windows(
        "09:00-12:30", "13:30-18:00"
    )


# ------------------------------------------------------------------ UTC and daylight saving


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # the Monday before the last Sunday of March 2026: still CET, UTC+1
        (
            date(2026, 3, 23),
            [
                (utc(2026, 3, 23, 8), utc(2026, 3, 23, 11, 30)),
                (utc(2026, 3, 23, 12, 30), utc(2026, 3, 23, 18)),
            ],
        ),
        # 29 March 2026 is the change; the Monday after is CEST, UTC+2
        (
            date(2026, 3, 30),
            [
                (utc(2026, 3, 30, 7), utc(2026, 3, 30, 10, 30)),
                (utc(2026, 3, 30, 11, 30), utc(2026, 3, 30, 17)),
            ],
        ),
        # the Saturday before the change (CET) and the change Sunday (no windows)
        (date(2026, 3, 28), [(utc(2026, 3, 28, 8), utc(2026, 3, 28, 11))]),
        (date(2026, 3, 29), []),
        # 25 October 2026 back to CET: the Monday before is UTC+2, the Monday after UTC+1
        (
            date(2026, 10, 19),
            [
                (utc(2026, 10, 19, 7), utc(2026, 10, 19, 10, 30)),
                (utc(2026, 10, 19, 11, 30), utc(2026, 10, 19, 17)),
            ],
        ),
        (
            date(2026, 10, 26),
            [
                (utc(2026, 10, 26, 8), utc(2026, 10, 26, 11, 30)),
                (utc(2026, 10, 26, 12, 30), utc(2026, 10, 26, 18)),
            ],
        ),
        # 2027: 28 March and 31 October (the Monday after the March change is Easter Monday)
        (date(2027, 3, 29), []),  # Easter Monday 2027
        (
            date(2027, 3, 30),
            [
                (utc(2027, 3, 30, 7), utc(2027, 3, 30, 10, 30)),
                (utc(2027, 3, 30, 11, 30), utc(2027, 3, 30, 17)),
            ],
        ),
        (
            date(2027, 11, 2),
            [
                (utc(2027, 11, 2, 8), utc(2027, 11, 2, 11, 30)),  # 1 Nov is a holiday
                (utc(2027, 11, 2, 12, 30), utc(2027, 11, 2, 18)),
            ],
        ),
        # 2028: 26 March and 29 October
        (
            date(2028, 3, 27),
            [
                (utc(2028, 3, 27, 7), utc(2028, 3, 27, 10, 30)),
                (utc(2028, 3, 27, 11, 30), utc(2028, 3, 27, 17)),
            ],
        ),
        (
            date(2028, 10, 30),
            [
                (utc(2028, 10, 30, 8), utc(2028, 10, 30, 11, 30)),
                (utc(2028, 10, 30, 12, 30), utc(2028, 10, 30, 18)),
            ],
        ),
    ],
)
def test_utc_intervals_across_daylight_saving_in_paris(
    day: date, expected: list[tuple[datetime, datetime]]
) -> None:
    assert cal.utc_intervals(day, place("75"), HOURS) == expected


def test_utc_offsets_on_the_mondays_around_the_changes() -> None:
    """The same 09:00 Paris is 08:00 UTC in winter and 07:00 UTC in summer (first working day after)."""
    paris = place("75")
    for monday, offset in [
        (date(2026, 3, 23), 1),
        (date(2026, 3, 30), 2),
        (date(2026, 10, 19), 2),
        (date(2026, 10, 26), 1),
        (date(2027, 3, 22), 1),
        (date(2027, 3, 30), 2),  # 29 March 2027: Easter Monday
        (date(2027, 10, 25), 2),
        (date(2027, 11, 8), 1),
        (date(2028, 3, 20), 1),
        (date(2028, 3, 27), 2),
        (date(2028, 10, 23), 2),
        (date(2028, 10, 30), 1),
    ]:
        first_start = cal.utc_intervals(monday, paris, HOURS)[0][0]
        assert first_start == datetime.combine(monday, time(9 - offset), UTC), monday
        assert cal.local_time_of(first_start, "Europe/Paris").utcoffset() == timedelta(hours=offset)


def test_a_window_through_the_missing_hour_keeps_its_real_length() -> None:
    """Spring forward: 02:00-03:00 does not exist on 29 March 2026 in Paris.

    A (hypothetical) window 01:00-04:00 is two real hours long that night,
    from 00:00 to 02:00 UTC; on a night without a change it is three.
    """
    night = CallingHours.model_validate({"sunday": ["01:00-04:00"], "holidays": False})
    assert cal.utc_intervals(date(2026, 3, 29), place("75"), night) == [
        (utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    ]
    assert cal.utc_intervals(date(2026, 3, 22), place("75"), night) == [
        (utc(2026, 3, 22, 0), utc(2026, 3, 22, 3))
    ]
    # fall back: 02:00-03:00 happens twice on 25 October 2026, the window lasts four hours
    assert cal.utc_intervals(date(2026, 10, 25), place("75"), night) == [
        (utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    ]


@pytest.mark.parametrize(
    ("dep", "offset_hours"),
    [("974", 4), ("976", 3), ("972", -4), ("971", -4), ("973", -3)],
)
def test_overseas_windows_are_in_local_time_all_year(dep: str, offset_hours: int) -> None:
    """No daylight saving overseas: 09:00 local is the same UTC time in March and October."""
    for monday in (date(2026, 3, 23), date(2026, 3, 30), date(2026, 10, 19), date(2026, 10, 26)):
        got = cal.utc_intervals(monday, place(dep), HOURS)
        assert got == [
            (
                datetime.combine(monday, time(9), UTC) - timedelta(hours=offset_hours),
                datetime.combine(monday, time(12, 30), UTC) - timedelta(hours=offset_hours),
            ),
            (
                datetime.combine(monday, time(13, 30), UTC) - timedelta(hours=offset_hours),
                datetime.combine(monday, time(19), UTC) - timedelta(hours=offset_hours),
            ),
        ], (dep, monday)


def test_overseas_callable_instants() -> None:
    monday = date(2026, 3, 23)
    # 06:00 UTC: 10:00 in Réunion (callable), 02:00 in Martinique, 03:00 in Guyane, 07:00 in Paris
    at = utc(2026, 3, 23, 6)
    assert cal.is_callable_at(at, place("974"), HOURS)
    assert not cal.is_callable_at(at, place("972"), HOURS)
    assert not cal.is_callable_at(at, place("973"), HOURS)
    assert not cal.is_callable_at(at, place("75"), HOURS)
    # 22:30 UTC: 18:30 in Martinique (callable), 19:30 in Guyane (not), 02:30 next day in Réunion
    late = utc(2026, 3, 23, 22, 30)
    assert cal.is_callable_at(late, place("972"), HOURS)
    assert not cal.is_callable_at(late, place("973"), HOURS)
    assert not cal.is_callable_at(late, place("974"), HOURS)
    # the local day of a Martinique patient at 02:00 UTC Tuesday is still Monday
    assert cal.local_date(utc(2026, 3, 24, 2), place("972")) == monday
    assert cal.local_date(utc(2026, 3, 23, 21), place("974")) == date(2026, 3, 24)


def test_overseas_holiday_is_the_local_day() -> None:
    """20 December 2027 in Réunion runs from 19 Dec 20:00 UTC to 20 Dec 20:00 UTC."""
    reunion = place("974")
    assert not cal.is_callable_at(utc(2027, 12, 20, 6), reunion, HOURS)  # 10:00 local, holiday
    assert cal.is_callable_at(utc(2027, 12, 21, 6), reunion, HOURS)  # next day
    assert cal.is_callable_at(utc(2027, 12, 20, 8), place("75"), HOURS)  # Paris works
    # Martinique on 22 May 2026 (Friday): 14:00 UTC is 10:00 local, a holiday there
    assert not cal.is_callable_at(utc(2026, 5, 22, 14), place("972"), HOURS)
    assert cal.is_callable_at(utc(2026, 5, 22, 14), place("971"), HOURS)


# ------------------------------------------------------------------ preferred windows


MONDAY = date(2026, 3, 23)
SATURDAY = date(2026, 3, 28)


@pytest.mark.parametrize(
    ("day", "pref", "expected"),
    [
        # inside calling hours: the preferred window wins
        (MONDAY, ("10:00", "11:00"), ("10:00-11:00",)),
        (MONDAY, ("14:00", "16:30"), ("14:00-16:30",)),
        (MONDAY, ("09:00", "19:00"), ("09:00-12:30", "13:30-19:00")),
        # partial overlap: clipped to calling hours
        (MONDAY, ("07:00", "10:00"), ("09:00-10:00",)),
        (MONDAY, ("18:00", "21:00"), ("18:00-19:00",)),
        (MONDAY, ("12:00", "14:00"), ("12:00-12:30", "13:30-14:00")),
        (MONDAY, ("06:00", "23:00"), ("09:00-12:30", "13:30-19:00")),
        (SATURDAY, ("11:00", "15:00"), ("11:00-12:00",)),
        # wholly outside: ignored, the default windows apply
        (MONDAY, ("20:00", "22:00"), ("09:00-12:30", "13:30-19:00")),
        (MONDAY, ("06:00", "08:30"), ("09:00-12:30", "13:30-19:00")),
        (MONDAY, ("12:40", "13:20"), ("09:00-12:30", "13:30-19:00")),  # the lunch gap
        (SATURDAY, ("14:00", "16:00"), ("09:00-12:00",)),
        # malformed (ends before it starts): ignored
        (MONDAY, ("16:00", "10:00"), ("09:00-12:30", "13:30-19:00")),
        # Sunday and holidays: nothing, whatever the patient prefers
        (date(2026, 3, 29), ("10:00", "11:00"), ()),
        (date(2026, 4, 6), ("10:00", "11:00"), ()),
    ],
)
def test_preferred_windows(day: date, pref: tuple[str, str], expected: tuple[str, ...]) -> None:
    assert cal.local_windows(day, place("75", pref), HOURS) == windows(*expected)


def test_preferred_window_is_in_the_patients_own_time() -> None:
    """A Réunion patient who prefers 17:00-18:00 is called 13:00-14:00 UTC (15:00 Paris)."""
    reunion = place("974", ("17:00", "18:00"))
    assert cal.utc_intervals(MONDAY, reunion, HOURS) == [(utc(2026, 3, 23, 13), utc(2026, 3, 23, 14))]
    assert cal.is_callable_at(utc(2026, 3, 23, 13, 30), reunion, HOURS)
    assert not cal.is_callable_at(utc(2026, 3, 23, 6), reunion, HOURS)  # 10:00 there: not preferred


def test_window_boundaries_start_inclusive_end_exclusive() -> None:
    paris = place("75")
    assert cal.is_callable_at(utc(2026, 3, 23, 8), paris, HOURS)  # 09:00
    assert not cal.is_callable_at(utc(2026, 3, 23, 7, 59), paris, HOURS)
    assert cal.is_callable_at(utc(2026, 3, 23, 11, 29), paris, HOURS)  # 12:29
    assert not cal.is_callable_at(utc(2026, 3, 23, 11, 30), paris, HOURS)  # 12:30
    assert cal.window_containing(utc(2026, 3, 23, 12, 30), paris, HOURS) == (
        utc(2026, 3, 23, 12, 30),
        utc(2026, 3, 23, 18),
    )
    assert cal.window_containing(utc(2026, 3, 23, 18), paris, HOURS) is None


@pytest.mark.parametrize(
    ("dep", "after", "expected_start"),
    [
        # Saturday 12:30 Paris -> Monday 09:00
        ("75", utc(2026, 3, 28, 11, 30), utc(2026, 3, 30, 7)),
        # Thursday 24 Dec 2026 evening: Paris works on Saturday 26 ...
        ("75", utc(2026, 12, 24, 19), utc(2026, 12, 26, 8)),
        # ... Moselle and Alsace do not: Monday 28
        ("57", utc(2026, 12, 24, 19), utc(2026, 12, 28, 8)),
        ("67", utc(2026, 12, 24, 19), utc(2026, 12, 28, 8)),
        # inside a window: now
        ("75", utc(2026, 3, 23, 9, 17), utc(2026, 3, 23, 9, 17)),
        # Réunion, Sunday 19 Dec 2027 evening: Monday 20 is a holiday there, Tuesday 09:00 local
        ("974", utc(2027, 12, 19, 15), utc(2027, 12, 21, 5)),
    ],
)
def test_next_open(dep: str, after: datetime, expected_start: datetime) -> None:
    got = cal.next_open(after, place(dep), HOURS)
    assert got is not None
    assert got[0] == expected_start


def test_next_open_none_when_never_callable() -> None:
    never = CallingHours.model_validate({})
    assert cal.next_open(utc(2026, 3, 23), place("75"), never) is None


def test_at_local_and_local_time_of_round_trip() -> None:
    at = cal.at_local(date(2026, 7, 1), time(9), "Indian/Reunion")
    assert at == utc(2026, 7, 1, 5)
    assert cal.local_time_of(at, "Indian/Reunion").time() == time(9)
    assert cal.at_local(date(2026, 7, 1), time(9), "Europe/Paris") == utc(2026, 7, 1, 7)
    assert cal.at_local(date(2026, 1, 5), time(9), "Europe/Paris") == utc(2026, 1, 5, 8)


# ------------------------------------------------------------------ working days


@pytest.mark.parametrize(
    ("start", "n", "dep", "expected"),
    [
        (date(2026, 3, 23), 0, "75", date(2026, 3, 23)),  # Monday is a working day
        (date(2026, 3, 29), 0, "75", date(2026, 3, 30)),  # Sunday -> Monday
        (date(2026, 4, 6), 0, "75", date(2026, 4, 7)),  # Easter Monday -> Tuesday
        (date(2026, 3, 23), 3, "75", date(2026, 3, 26)),
        (date(2026, 3, 26), 3, "75", date(2026, 3, 30)),  # Thu -> Fri, Sat, (Sun) Mon
        (date(2026, 4, 2), 1, "75", date(2026, 4, 3)),  # Good Friday works in Paris
        (date(2026, 4, 2), 1, "57", date(2026, 4, 4)),  # ... not in Moselle: Saturday
        (date(2026, 4, 2), 2, "57", date(2026, 4, 7)),  # Sat, (Sun, Easter Monday) Tue
        (date(2026, 12, 24), 1, "75", date(2026, 12, 26)),  # (Christmas) Saturday
        (date(2026, 12, 24), 1, "68", date(2026, 12, 28)),  # (Christmas, St Stephen, Sunday)
        (date(2026, 5, 21), 1, "972", date(2026, 5, 23)),  # Martinique: 22 May off
        (date(2026, 5, 21), 1, "75", date(2026, 5, 22)),
    ],
)
def test_add_working_days(start: date, n: int, dep: str, expected: date) -> None:
    assert cal.add_working_days(start, n, HOURS, dep) == expected


def test_add_working_days_defaults_to_the_metropole() -> None:
    assert cal.add_working_days(date(2026, 4, 2), 1, HOURS) == date(2026, 4, 3)


@pytest.mark.parametrize(
    ("start", "end", "dep", "expected"),
    [
        # 1-8 April 2026: Wed Thu Fri Sat (Sun, Easter Monday) Tue Wed
        (date(2026, 4, 1), date(2026, 4, 8), "75", [date(2026, 4, d) for d in (1, 2, 3, 4, 7, 8)]),
        (date(2026, 4, 1), date(2026, 4, 8), "57", [date(2026, 4, d) for d in (1, 2, 4, 7, 8)]),
        (
            date(2026, 12, 24),
            date(2026, 12, 28),
            "75",
            [date(2026, 12, 24), date(2026, 12, 26), date(2026, 12, 28)],
        ),
        (date(2026, 12, 24), date(2026, 12, 28), "67", [date(2026, 12, 24), date(2026, 12, 28)]),
        (date(2026, 3, 29), date(2026, 3, 29), "75", []),
        (date(2026, 3, 30), date(2026, 3, 23), "75", []),  # empty range
    ],
)
def test_working_days(start: date, end: date, dep: str, expected: list[date]) -> None:
    assert cal.working_days(start, end, HOURS, dep) == expected


def test_working_days_and_add_working_days_agree() -> None:
    days = cal.working_days(date(2026, 1, 1), date(2026, 12, 31), HOURS, "57")
    for i, d in enumerate(days[:-1]):
        assert cal.add_working_days(days[0], i, HOURS, "57") == d
    assert len(days) == len(set(days))
    # 2026 in Moselle: 313 Mon-Sat days, minus the holidays that fall Mon-Sat
    mon_to_sat = sum(1 for k in range(365) if (date(2026, 1, 1) + timedelta(days=k)).weekday() < 6)
    hol = [d for d in holidays_lib.country_holidays("FR", subdiv="57", years=2026) if d.weekday() < 6]
    assert len(days) == mon_to_sat - len(hol)
