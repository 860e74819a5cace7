"""The simulated population: probabilities stay probabilities, a patient away or with no working
number never answers, one seed is one population, and each kind of patient is easiest to reach
at the hours their life leaves free."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import calendar as cal
from campaign.policy import Tier, load_policy
from dialer.population import PREFERRED_FLOOR, PROFILES, Hours, LineState, PatientFacts, Population

START = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday
PARIS = "Europe/Paris"
POLICY = load_policy()

facts_st = st.builds(
    PatientFacts,
    key=st.from_regex(r"[0-9]{9}A", fullmatch=True),
    birth_date=st.dates(date(1930, 1, 1), date(1996, 12, 31)),
    tier=st.sampled_from(list(Tier)),
    departement=st.sampled_from(["75", "57", "974", "971"]),
    timezone=st.sampled_from([PARIS, "Indian/Reunion", "America/Guadeloupe"]),
    phones=st.lists(st.from_regex(r"\+3319900[0-9]{4}", fullmatch=True), min_size=1, max_size=2).map(tuple),
)
# bounds of hypothesis' st.datetimes are naive by its API; the drawn instants are UTC
instants = st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001


def _population(seed: int, patients: list[PatientFacts]) -> Population:
    return Population.from_policy(
        POLICY.simulation,
        seed,
        patients=patients,
        as_of=date(2026, 12, 1),
        calling_hours=POLICY.calling_hours,
    )


@settings(max_examples=60, deadline=None)
@given(
    facts=st.lists(facts_st, min_size=1, max_size=6, unique_by=lambda f: f.key),
    at=instants,
    seed=st.integers(),
)
def test_probabilities_are_probabilities_and_absent_or_dead_means_zero(
    facts: list[PatientFacts], at: datetime, seed: int
) -> None:
    population = _population(seed, facts)
    for f in facts:
        p = population.answer_probability(f.key, at)
        assert 0.0 <= p <= 1.0
        assert 0.0 <= population.own_probability(f.key, at) <= POLICY.simulation.population.max_probability
        if not population.present_at(f.key, at) or not population.working_numbers(f.key):
            assert p == 0.0
        for number in f.phones:
            if population.line_state(number) != LineState.working:
                assert population.line_probability(f.key, number, at) == 0.0


@settings(max_examples=40, deadline=None)
@given(facts=st.lists(facts_st, min_size=1, max_size=5, unique_by=lambda f: f.key), seed=st.integers())
def test_one_seed_one_population_whatever_the_order(facts: list[PatientFacts], seed: int) -> None:
    a = _population(seed, facts)
    b = _population(seed, list(reversed(facts)))
    instants_ = [START + timedelta(hours=h * 7) for h in range(60)]
    for f in facts:
        assert (a.people[f.key].hours, a.people[f.key].propensity) == (
            b.people[f.key].hours,
            b.people[f.key].propensity,
        )
        assert a.absences(f.key, 2027) == b.absences(f.key, 2027)
        assert [a.answer_probability(f.key, t) for t in instants_] == [
            b.answer_probability(f.key, t) for t in instants_
        ]


def test_another_seed_another_population() -> None:
    facts = [_facts(f"{i:09d}A", date(1950, 3, 1)) for i in range(200)]
    a, b = _population(1, facts), _population(2, facts)
    assert [p.propensity for p in a.people.values()] != [p.propensity for p in b.people.values()]


@settings(max_examples=40, deadline=None)
@given(key=st.from_regex(r"[0-9]{9}A", fullmatch=True), year=st.integers(2026, 2028), seed=st.integers())
def test_absent_days_answer_nothing(key: str, year: int, seed: int) -> None:
    population = _population(seed, [_facts(key, date(1950, 1, 1))])
    for first, last in population.absences(key, year):
        assert first <= last and (last - first).days < 366
        for day in (first, last):
            noon = cal.at_local(day, time(10, 30), PARIS)
            assert not population.present_at(key, noon)
            assert population.answer_probability(key, noon) == 0.0
            assert not population.reachable(key, cal.at_local(day, time(0), PARIS), noon + timedelta(hours=8))
            # what a dialer that cannot tell an absence from no answer believes: their chance at home
            would_answer = population.people[key].propensity > 0 and population.working_numbers(key)
            assert (population.answer_probability(key, noon, as_if_present=True) > 0) == bool(would_answer)


@pytest.mark.parametrize(
    ("hours", "best", "worst"),
    [
        # working age: weekday evenings and Saturday mornings, not weekday office hours
        (Hours.working, [(0, 18), (3, 19), (5, 10)], [(1, 10), (2, 15), (4, 11)]),
        # retired: weekday mornings and early afternoons, not the evening
        (Hours.retired, [(0, 10), (2, 14), (4, 9)], [(1, 18), (3, 19)]),
    ],
)
def test_profiles_peak_where_their_lives_leave_them_free(
    hours: Hours, best: list[tuple[int, int]], worst: list[tuple[int, int]]
) -> None:
    profile = PROFILES[hours]
    calling = _calling_hours_of_week()
    peak = max(profile[h] for h in calling)
    assert peak == 1.0
    assert {h for h in calling if profile[h] == peak} <= {d * 24 + h for d, h in best} | _peak_band(hours)
    for weekday, hour in best:
        assert profile[weekday * 24 + hour] >= 0.85 * peak
    for weekday, hour in worst:
        assert profile[weekday * 24 + hour] <= 0.6 * peak


def test_age_picks_the_hours_and_the_hours_the_best_time_to_call() -> None:
    facts = [_facts(f"{i:09d}A", date(1990, 6, 1) if i % 2 else date(1945, 6, 1)) for i in range(400)]
    population = _population(3, facts)
    kinds = {f.key: population.people[f.key].hours for f in facts}
    young = [k for f, k in zip(facts, kinds.values(), strict=True) if f.birth_date.year == 1990]
    old = [k for f, k in zip(facts, kinds.values(), strict=True) if f.birth_date.year == 1945]
    assert set(young) == {Hours.working, Hours.irregular} and set(old) == {Hours.retired, Hours.irregular}
    share_irregular = sum(k == Hours.irregular for k in kinds.values()) / len(kinds)
    assert abs(share_irregular - POLICY.simulation.population.irregular) < 0.06
    # over the whole population, a Tuesday at 18:30 reaches the young better, at 10:30 the old
    tuesday = date(2026, 12, 8)
    evening, morning = cal.at_local(tuesday, time(18, 30), PARIS), cal.at_local(tuesday, time(10, 30), PARIS)

    def mean(kind: Hours, at: datetime) -> float:
        keys = [k for k, h in kinds.items() if h == kind]
        return sum(population.answer_probability(k, at) for k in keys) / len(keys)

    assert mean(Hours.working, evening) > 2 * mean(Hours.working, morning)
    assert mean(Hours.retired, morning) > 1.5 * mean(Hours.retired, evening)


def test_a_stated_window_is_when_they_are_home() -> None:
    plain = _facts("000000001A", date(1990, 1, 1))
    asked = replace(plain, key="000000002A", preferred_start=time(9), preferred_end=time(12))
    population = _population(0, [plain, asked])
    for f in (plain, asked):  # the same working-age patient, but for the window one of them gave
        population.people[f.key] = replace(
            population.people[f.key], hours=Hours.working, propensity=0.6, profile=PROFILES[Hours.working]
        )
    at = _when_all_present(population, [plain.key, asked.key], time(10))
    assert population.own_probability(asked.key, at) == pytest.approx(0.6 * PREFERRED_FLOOR)
    assert population.own_probability(plain.key, at) == pytest.approx(0.6 * 0.3)


def test_shared_landline_the_other_one_may_fetch_the_patient() -> None:
    population = _population(0, [])
    home = next(
        n for n in (f"+3319900{i:04d}" for i in range(100)) if population.line_state(n) == LineState.working
    )
    a = _facts("000000010A", date(1948, 1, 1), phones=(home,))
    b = _facts("000000011A", date(1949, 1, 1), phones=(home,))
    alone = _facts("000000012A", date(1948, 1, 1), phones=(home,))
    for f in (a, b):
        population.add(f)
    assert population.household(home) == (a.key, b.key)
    at = _when_all_present(population, [a.key, b.key], time(10, 30))
    own_a, own_b = population.own_probability(a.key, at), population.own_probability(b.key, at)
    handover = POLICY.simulation.population.handover
    assert own_b > 0
    assert population.answer_probability(a.key, at) == pytest.approx(own_a + (1 - own_a) * own_b * handover)
    single = _population(0, [alone])
    assert single.answer_probability(alone.key, at) == pytest.approx(single.own_probability(alone.key, at))


def _when_all_present(population: Population, keys: list[str], at: time) -> datetime:
    """The first weekday from 7 December 2026 at that Paris time when every one of them is at home."""
    for d in range(90):
        day = date(2026, 12, 7) + timedelta(days=d)
        instant = cal.at_local(day, at, PARIS)
        if day.weekday() < 5 and all(population.present_at(k, instant) for k in keys):
            return instant
    raise AssertionError("away for three months")


def test_reachable_is_the_ground_truth() -> None:
    """Reachable in a window when a number works and the patient, present, would answer at some
    calling hour of it with at least the threshold; never outside calling hours."""
    facts = [_facts(f"{i:09d}A", date(1940 + i % 50, 5, 5)) for i in range(300)]
    population = _population(11, facts)
    threshold = POLICY.simulation.population.reachable_min_probability
    start = cal.at_local(date(2026, 12, 7), time(0), PARIS)
    end = start + timedelta(days=21)
    reachable = {f.key: population.reachable(f.key, start, end) for f in facts}
    for f in facts:
        place = cal.Place(f.departement, f.timezone)
        best = max(
            population.answer_probability(f.key, at)
            for day in range(21)
            for s, e in cal.utc_intervals(
                date(2026, 12, 7) + timedelta(days=day), place, POLICY.calling_hours
            )
            for at in _every_half_hour(s, e)
        )
        assert reachable[f.key] == (best >= threshold)
        if population.people[f.key].propensity == 0 or not population.working_numbers(f.key):
            assert not reachable[f.key]
    share = sum(reachable.values()) / len(reachable)
    assert 0.8 <= share <= 0.97
    # a night holds no calling hour: nobody is reachable in it
    night = cal.at_local(date(2026, 12, 8), time(21), PARIS)
    assert not any(population.reachable(f.key, night, night + timedelta(hours=10)) for f in facts)


def test_chances_are_the_answer_probabilities_at_each_calling_hour() -> None:
    """What the benchmark's bounds read: every calling hour of the window, day by day, at the chance
    a call then would have; nothing outside calling hours, nothing on a day away."""
    facts = [_facts(f"{i:09d}A", date(1940 + i % 50, 5, 5)) for i in range(40)]
    population = _population(5, facts)
    start = cal.at_local(date(2026, 12, 7), time(0), PARIS)  # a Monday
    end = start + timedelta(days=7)
    for f in facts:
        days = list(population.chances(f.key, start, end))
        assert len(days) == 8  # the end falls on the next Monday, at midnight
        # 9:00 to 12:00 and 13:30 to 18:00 (17:00 on Fridays), Saturday 9:00 to 11:00, no Sunday
        assert [len(d) for d in days] == [10, 10, 10, 10, 9, 3, 0, 0]
        for day in days:
            for at, p in day:
                assert p == population.answer_probability(f.key, at)
                assert cal.local_time_of(at, PARIS).hour in range(9, 19)
                if not population.present_at(f.key, at):
                    assert p == 0
        # as if at home: the same hours, the same chances on the days they are there
        at_home = list(population.chances(f.key, start, end, as_if_present=True))
        assert [[at for at, _p in d] for d in at_home] == [[at for at, _p in d] for d in days]
        for day, home in zip(days, at_home, strict=True):
            for (at, p), (_at, q) in zip(day, home, strict=True):
                assert q == (
                    p
                    if population.present_at(f.key, at)
                    else population.answer_probability(f.key, at, as_if_present=True)
                )


def _every_half_hour(s: datetime, e: datetime) -> list[datetime]:
    out, at = [], s
    while at < e:
        out.append(at)
        at += timedelta(minutes=30)
    return out


def _calling_hours_of_week() -> set[int]:
    out = set()
    for weekday, windows in enumerate(POLICY.calling_hours.by_weekday):
        for w in windows:
            out.update(weekday * 24 + h for h in range(w.start.hour, w.end.hour + (w.end.minute > 0)))
    return out


def _peak_band(hours: Hours) -> set[int]:
    """Every hour of the week where the kind is at its best."""
    bands = {
        Hours.working: [(d, h) for d in range(5) for h in (18, 19, 20)] + [(5, h) for h in (9, 10, 11)],
        Hours.retired: [(d, h) for d in range(5) for h in (9, 10, 11)],
    }
    return {d * 24 + h for d, h in bands[hours]}


def _facts(key: str, birth: date, phones: tuple[str, ...] | None = None) -> PatientFacts:
    return PatientFacts(
        key=key,
        birth_date=birth,
        tier=Tier.medium,
        departement="75",
        timezone=PARIS,
        phones=phones or (f"+331990{int(key[:9]) % 100_000:05d}",),
    )
