"""The simulated patients: who picks up, when, on which line. The ground truth of a simulation.

Real programmes reach far fewer patients than a model in which every patient of
a tier answers alike (README, "Simulated patients"). Here each patient has a
latent propensity to answer, an hour-of-week profile (working age: weekday
evenings and Saturday mornings; retired: mornings and early afternoons; some
irregular), absences (hospital stays, time away) as date ranges, and numbers
that may be out of service, belong to a stranger now, or be a landline shared
with another enrolled patient.

A patient is known by their key: the member id as stored (`Patient.member_id`),
which is the same in every database the same file was imported into, so one
seed gives one population whatever the run. Every trait is drawn from the seed
and that key, and from what a line and a register show of the patient (age from
the birth date, tier, address, stated window): pure, no I/O, no clock. The
simulated lines (dialer/backends/simulated.py) play it; benchmarks read the
ground truth (`reachable`); nothing in campaign/ reads it.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from campaign import calendar as cal
from campaign.policy import CallingHours, PopulationPolicy, SimulationPolicy, Tier


class Hours(StrEnum):
    """Which hours of the week a patient is at home and free to talk."""

    working = "working"  # weekday evenings, Saturday mornings; lunch a little
    retired = "retired"  # weekday mornings and early afternoons
    irregular = "irregular"  # hours of their own (shift work, caring for someone)


class LineState(StrEnum):
    working = "working"
    out_of_service = "out_of_service"  # no longer attributed: the network refuses the call
    wrong = "wrong"  # attributed to someone else now: a stranger answers


NIGHT = 0.05  # asleep or out: outside calling hours anyway


def _week(days: dict[int, dict[tuple[int, int], float]]) -> tuple[float, ...]:
    """168 multipliers (weekday * 24 + local hour) from {weekday: {(from hour, to hour): value}}."""
    out = [NIGHT] * 168
    for weekday, spans in days.items():
        for (start, end), value in spans.items():
            for hour in range(start, end):
                out[weekday * 24 + hour] = value
    return tuple(out)


_WORKDAY = {(8, 9): 0.5, (9, 12): 0.3, (12, 14): 0.55, (14, 17): 0.3, (17, 18): 0.65, (18, 21): 1.0}
_RETIRED_DAY = {(8, 9): 0.6, (9, 12): 1.0, (12, 13): 0.7, (13, 16): 0.9, (16, 17): 0.7, (17, 19): 0.55}
# the fraction of their best chance a patient has at each hour of the week, the best being 1
PROFILES: dict[Hours, tuple[float, ...]] = {
    Hours.working: _week(
        {
            **{d: _WORKDAY for d in range(5)},
            5: {(9, 12): 1.0, (12, 14): 0.8, (14, 19): 0.7},
            6: {(10, 19): 0.7},
        }
    ),
    Hours.retired: _week(
        {
            **{d: {**_RETIRED_DAY, (19, 21): 0.45} for d in range(5)},
            5: {(9, 12): 0.8, (12, 19): 0.6},
            6: {(10, 19): 0.6},
        }
    ),
}
_IRREGULAR_LEVELS = (0.15, 0.4, 0.7, 1.0)
PREFERRED_FLOOR = 0.9  # inside the window they asked to be called in, they are mostly there
STRANGER = 0.45  # the chance that whoever now has a wrong number picks up


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the simulator may see of a patient: their register entry, never the programme's state."""

    key: str  # member id as stored
    birth_date: date
    tier: Tier
    departement: str
    timezone: str
    phones: tuple[str, ...]  # E.164, main number first
    preferred_start: time | None = None
    preferred_end: time | None = None
    patient_id: int | None = None  # this database's id, so a line can tell whom it was dialed for


@dataclass(frozen=True, slots=True)
class Person:
    facts: PatientFacts
    hours: Hours
    propensity: float  # chance to pick up at the best hours of their week, when present
    profile: tuple[float, ...]  # 168 multipliers in [0, 1]


def is_wrong_number(seed: int, number: str, rate: float) -> bool:
    """Stable per number: the same stranger answers every time (simulated nurses find out)."""
    return zlib.crc32(f"{seed}:{number}".encode()) / 2**32 < rate


def _is_out_of_service(seed: int, number: str, rate: float) -> bool:
    return zlib.crc32(f"{seed}:out-of-service:{number}".encode()) / 2**32 < rate


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's: few events a year, so the loop is short."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass
class Population:
    """Every simulated patient of a run, by key, and every line, by number."""

    policy: PopulationPolicy
    seed: int
    as_of: date  # ages are counted on this day, so a patient keeps their hours through a run
    wrong_number: float  # share of numbers that belong to a stranger ([results] wrong_number)
    calling_hours: CallingHours | None = None  # for `reachable`
    people: dict[str, Person] = field(default_factory=dict)
    households: dict[str, tuple[str, ...]] = field(default_factory=dict)  # number -> keys
    keys_by_id: dict[int, str] = field(default_factory=dict)
    _away: dict[tuple[str, int], tuple[tuple[date, date], ...]] = field(default_factory=dict)

    @classmethod
    def from_policy(
        cls,
        sim: SimulationPolicy,
        seed: int,
        *,
        patients: Iterable[PatientFacts] = (),
        as_of: date = date(2026, 1, 1),
        calling_hours: CallingHours | None = None,
    ) -> Population:
        population = cls(sim.population, seed, as_of, sim.wrong_number, calling_hours)
        for facts in patients:
            population.add(facts)
        return population

    def add(self, facts: PatientFacts) -> Person:
        """The patient's traits, drawn from the seed and their key alone (not the order of adding)."""
        pol = self.policy
        rng = random.Random(f"{self.seed}:{facts.key}")
        if rng.random() < pol.irregular:
            hours, profile = Hours.irregular, _irregular_profile(rng)
        else:
            retired = age_on(facts.birth_date, self.as_of) >= pol.retired_from_age
            hours = Hours.retired if retired else Hours.working
            profile = PROFILES[hours]
        propensity = 0.0
        if rng.random() >= pol.never_answers:
            mean, k = pol.propensity_by_tier[facts.tier], pol.propensity_concentration
            propensity = rng.betavariate(mean * k, (1 - mean) * k)
        person = Person(facts, hours, propensity, profile)
        self.people[facts.key] = person
        if facts.patient_id is not None:
            self.keys_by_id[facts.patient_id] = facts.key
        for number in dict.fromkeys(facts.phones):
            self.households[number] = (*self.households.get(number, ()), facts.key)
        return person

    def __contains__(self, key: object) -> bool:
        return key in self.people

    def __len__(self) -> int:
        return len(self.people)

    # ------------------------------------------------------------------ lines

    def line_state(self, number: str) -> LineState:
        if _is_out_of_service(self.seed, number, self.policy.out_of_service):
            return LineState.out_of_service
        if is_wrong_number(self.seed, number, self.wrong_number):
            return LineState.wrong
        return LineState.working

    def household(self, number: str) -> tuple[str, ...]:
        """The patients whose number this is (two on a shared landline)."""
        return self.households.get(number, ())

    def working_numbers(self, key: str) -> list[str]:
        return [n for n in self.people[key].facts.phones if self.line_state(n) == LineState.working]

    # ------------------------------------------------------------------ people

    def absences(self, key: str, year: int) -> tuple[tuple[date, date], ...]:
        """The patient's stays away overlapping `year`, as [first day, last day] in local dates."""
        cached = self._away.get((key, year))
        if cached is None:
            spans = [s for y in (year - 1, year) for s in self._drawn_absences(key, y)]
            cached = tuple(sorted(s for s in spans if s[1].year >= year and s[0].year <= year))
            self._away[(key, year)] = cached
        return cached

    def _drawn_absences(self, key: str, year: int) -> list[tuple[date, date]]:
        pol, person = self.policy, self.people[key]
        rng = random.Random(f"{self.seed}:{key}:away:{year}")
        out = []
        kinds = (
            (pol.hospital_stays_per_year[person.facts.tier], pol.hospital_days),
            (pol.holidays_per_year, pol.holiday_days),
        )
        for rate, (shortest, longest) in kinds:
            for _ in range(_poisson(rng, rate)):
                first = date(year, 1, 1) + timedelta(days=rng.randrange(365))
                out.append((first, first + timedelta(days=rng.randint(shortest, longest) - 1)))
        return out

    def is_present(self, key: str, day: date) -> bool:
        """At home on that local day (not in hospital, not away)."""
        return not any(a <= day <= b for a, b in self.absences(key, day.year))

    def present_at(self, key: str, at_utc: datetime) -> bool:
        return self.is_present(key, at_utc.astimezone(_zone(self.people[key].facts.timezone)).date())

    def own_probability(self, key: str, at_utc: datetime, *, as_if_present: bool = False) -> float:
        """The chance the patient picks up their own phone at that instant (0 when away, unless
        asked `as_if_present`: what a dialer that cannot know the patient is away believes)."""
        person = self.people[key]
        local = at_utc.astimezone(_zone(person.facts.timezone))
        if person.propensity == 0 or not (as_if_present or self.is_present(key, local.date())):
            return 0.0
        level = person.profile[local.weekday() * 24 + local.hour]
        start, end = person.facts.preferred_start, person.facts.preferred_end
        if start is not None and end is not None and start <= local.time() < end:
            level = max(level, PREFERRED_FLOOR)
        return min(self.policy.max_probability, person.propensity * level)

    def line_probability(
        self, key: str, number: str, at_utc: datetime, *, as_if_present: bool = False
    ) -> float:
        """The chance a call for the patient at that number reaches them (0: out of service, wrong)."""
        if self.line_state(number) != LineState.working:
            return 0.0
        own = self.own_probability(key, at_utc, as_if_present=as_if_present)
        others = [k for k in self.household(number) if k != key]
        if not others:
            return own
        if not (as_if_present or self.present_at(key, at_utc)):
            return 0.0
        nobody_else = math.prod(1 - self.own_probability(k, at_utc) for k in others)
        return own + (1 - own) * (1 - nobody_else) * self.policy.handover

    def answer_probability(self, patient_key: str, at_utc: datetime, *, as_if_present: bool = False) -> float:
        """The chance a call at that instant reaches the patient on their best number; 0 when they
        are away (unless asked `as_if_present`) or no number of theirs works."""
        numbers = self.working_numbers(patient_key)
        return max(
            (self.line_probability(patient_key, n, at_utc, as_if_present=as_if_present) for n in numbers),
            default=0.0,
        )

    def reachable(self, patient_key: str, start_utc: datetime, end_utc: datetime) -> bool:
        """The ground truth: a number works, and at some calling hour of [start, end) the patient is
        present and would answer with at least `reachable_min_probability`."""
        if not self.working_numbers(patient_key):
            return False
        threshold = self.policy.reachable_min_probability
        return any(p >= threshold for day in self.chances(patient_key, start_utc, end_utc) for _at, p in day)

    def chances(
        self, patient_key: str, start_utc: datetime, end_utc: datetime, *, as_if_present: bool = False
    ) -> Iterator[list[tuple[datetime, float]]]:
        """Per local day of [start, end), (instant, chance a call then reaches the patient) at each
        calling hour (the window's first instant, then each whole hour; 0 when away, unless asked
        `as_if_present`): what a dialer could get at best, for `reachable` and the benchmark's
        bounds. Day by day, so `reachable` stops at the first day that answers."""
        if self.calling_hours is None:
            raise ValueError("chances need the calling hours: Population.from_policy(calling_hours=…)")
        facts = self.people[patient_key].facts
        place = cal.Place(facts.departement, facts.timezone, facts.preferred_start, facts.preferred_end)
        day, last = cal.local_date(start_utc, place), cal.local_date(end_utc, place)
        while day <= last:
            present = as_if_present or self.is_present(patient_key, day)
            yield [
                (
                    at,
                    self.answer_probability(patient_key, at, as_if_present=as_if_present) if present else 0.0,
                )
                for s, e in cal.utc_intervals(day, place, self.calling_hours)
                for at in _hours(s, e, start_utc, end_utc)
            ]
            day += timedelta(days=1)


def _hours(s: datetime, e: datetime, start: datetime, end: datetime) -> Iterable[datetime]:
    """The window's first instant within [start, end), then each whole hour after it."""
    at, stop = max(s, start), min(e, end)
    while at < stop:
        yield at
        at = (at + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)


def _irregular_profile(rng: random.Random) -> tuple[float, ...]:
    """Two-hour blocks of their own each day from 8:00 to 22:00, the best of the week being 1."""
    out = [NIGHT] * 168
    for weekday in range(7):
        for start in range(8, 22, 2):
            level = rng.choices(_IRREGULAR_LEVELS, weights=(3, 3, 2, 2))[0]
            out[weekday * 24 + start] = out[weekday * 24 + start + 1] = level
    best = max(out)
    return tuple(v / best for v in out)
