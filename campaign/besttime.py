"""Best time to call: a patient's answer probability by hour band, learnt from their attempts.

Pure: no clock, no database. A band is two hours of the patient's local time on a
class of day (weekday, Saturday, Sunday): bands start at odd hours (09-11, 11-13…)
so the default calling hours fall into whole bands.

The model is Beta-Binomial, shrunk level by level: a constant base rate, then the
broad cohort (age band and tier), then the narrow one (age band, département,
tier), then the patient's own attempts. Each level's estimate is the posterior
mean of a Beta prior worth `weight` attempts centred on the level above:

    p = (answers + weight * prior) / (attempts + weight)

so a patient with no history gets their cohort's rate, and their own answers take
over as attempts accumulate. An attempt counts as answered when a person picked
up (answered, or heard the no-nurse apology); no answer, busy and machine count as
not answered; failed and interrupted calls say nothing about the hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from campaign import calendar as cal
from campaign.states import AttemptResult

BAND_HOURS = 2
BANDS_PER_DAY = 24 // BAND_HOURS
DAY_CLASSES = ("weekday", "saturday", "sunday")
# a slot a day later is worth this much less: a better hour is worth waiting for, not for ever
DAY_DISCOUNT = 0.85
# how far a retry looks for a better hour: a week holds every band once
HORIZON_DAYS = 7
# two estimates closer than this are a tie: the rule without best time decides
TIE = 0.005
MIN_SLOT = timedelta(minutes=5)

ANSWERED = frozenset({AttemptResult.answered, AttemptResult.no_nurse})
NOT_ANSWERED = frozenset({AttemptResult.no_answer, AttemptResult.busy, AttemptResult.machine})

# (lowest age, label): retirement (62 in France) splits the working-age from the retired
AGE_BANDS = ((0, "18-39"), (40, "40-54"), (55, "55-61"), (62, "62-69"), (70, "70-79"), (80, "80+"))


def counts_as_answer(result: AttemptResult) -> bool | None:
    """True: a person picked up; False: nobody did; None: the attempt says nothing of the hour."""
    if result in ANSWERED:
        return True
    if result in NOT_ANSWERED:
        return False
    return None


# ---------------------------------------------------------------- bands


def band_of(instant: datetime, zone: str) -> int:
    """The band an instant (UTC) falls in, in that zone's local time."""
    local = cal.local_time_of(instant, zone)
    weekday = local.weekday()
    if local.hour == 0:  # 23:00-01:00 belongs to the day it starts on
        weekday = (weekday - 1) % 7
    day_class = 0 if weekday < 5 else weekday - 4
    return day_class * BANDS_PER_DAY + ((local.hour - 1) % 24) // BAND_HOURS


def band_label(band: int) -> str:
    """'weekday 17:00-19:00'."""
    day_class, index = divmod(band, BANDS_PER_DAY)
    start = (index * BAND_HOURS + 1) % 24
    end = (start + BAND_HOURS) % 24
    return f"{DAY_CLASSES[day_class]} {start:02d}:00-{end:02d}:00"


def _band_end(instant: datetime, zone: str) -> datetime:
    local = cal.local_time_of(instant, zone)
    start = local.replace(minute=0, second=0, microsecond=0) - timedelta(hours=(local.hour - 1) % BAND_HOURS)
    end = start.replace(tzinfo=None) + timedelta(hours=BAND_HOURS)
    return cal.at_local(end.date(), end.time(), zone)


def slots(
    windows: Iterable[tuple[datetime, datetime]], zone: str
) -> Iterator[tuple[datetime, datetime, int, date]]:
    """Calling windows cut at band boundaries: (start, end, band, local day), each at least MIN_SLOT long."""
    for start, end in windows:
        yield from _window_slots(start, end, zone)


@lru_cache(maxsize=4096)
def _window_slots(
    start: datetime, end: datetime, zone: str
) -> tuple[tuple[datetime, datetime, int, date], ...]:
    """One window's slots. Cached: the windows of a day in a zone are the same for every patient
    there but those with a preferred window, and the retry planner asks for a week of them."""
    out = []
    at = start
    while at < end:
        cut = min(end, _band_end(at, zone))
        if cut <= at:  # a daylight-saving fold: never loop
            break
        if cut - at >= MIN_SLOT:
            out.append((at, cut, band_of(at, zone), cal.local_time_of(at, zone).date()))
        at = cut
    return tuple(out)


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class BandCounts:
    """Attempts in a band, and how many of them a person answered."""

    attempts: int = 0
    answers: int = 0

    def plus(self, answered: bool) -> BandCounts:
        return BandCounts(self.attempts + 1, self.answers + int(answered))


NONE = BandCounts()


def estimate(counts: BandCounts, prior: float, weight: float) -> float:
    """Posterior mean of a Beta(weight*prior, weight*(1-prior)) prior after `counts`."""
    if counts.attempts <= 0:
        return prior
    answers = min(max(counts.answers, 0), max(counts.attempts, 0))
    return (answers + weight * prior) / (max(counts.attempts, 0) + weight)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What placed a call: the band, its probability, the patient's own counts and the prior."""

    band: int
    p: float
    own: BandCounts
    prior: float

    def describe(self) -> str:
        own = (
            f"{self.own.answers} answered of {self.own.attempts} of their own attempts"
            if self.own.attempts
            else "no attempt of their own yet"
        )
        return (
            f"{band_label(self.band)}: estimated answer probability {self.p:.0%} "
            f"({own}; patients like them {self.prior:.0%})"
        )


@dataclass(frozen=True)
class AnswerModel:
    """One patient's estimates: their own counts per band and their cohorts', narrow to broad."""

    own: Mapping[int, BandCounts] = field(default_factory=dict)
    cohorts: Sequence[Mapping[int, BandCounts]] = ()
    base: float = 0.3
    weight: float = 4.0

    def prior(self, band: int) -> float:
        p = self.base
        for level in reversed(self.cohorts):
            p = estimate(level.get(band, NONE), p, self.weight)
        return p

    def at(self, band: int) -> Estimate:
        prior = self.prior(band)
        own = self.own.get(band, NONE)
        return Estimate(band, estimate(own, prior, self.weight), own, prior)

    def informative(self) -> bool:
        """False when nothing is known: every band has the base rate, and best time changes nothing."""
        return bool(self.own) or any(self.cohorts)


def best_band(model: AnswerModel, bands: Iterable[int]) -> Estimate | None:
    """The band of highest estimate; the first given wins a tie."""
    best: Estimate | None = None
    for band in bands:
        e = model.at(band)
        if best is None or e.p > best.p + TIE:
            best = e
    return best


def best_slot(
    windows: Iterable[tuple[datetime, datetime]],
    zone: str,
    model: AnswerModel,
    *,
    deadline: datetime,
    default: datetime | None = None,
    horizon_days: int = HORIZON_DAYS,
) -> tuple[datetime, Estimate] | None:
    """The slot to call in: highest estimate, discounted by DAY_DISCOUNT for each day of waiting,
    within `horizon_days` of the first slot (HORIZON_DAYS, a whole week: every band of the week is
    there; the retry planner gives less near the wave's end).

    `windows` are those the rules allow (spacing, caps, hours), in time order.
    `default` is what the rules would choose without best time: kept when no slot
    beats it by more than TIE, so a model that knows nothing changes nothing.
    """
    first_day: date | None = None
    best: tuple[float, datetime, Estimate] | None = None
    kept: tuple[float, datetime, Estimate] | None = None
    known: dict[int, Estimate] = {}
    for start, end, band, day in slots(windows, zone):
        if start >= deadline:
            break
        first_day = first_day or day
        waited = (day - first_day).days
        if waited >= horizon_days:
            break
        e = known.get(band)
        if e is None:
            e = known[band] = model.at(band)
        score = e.p * DAY_DISCOUNT**waited
        if best is None or score > best[0] + TIE:
            best = (score, start, e)
        if default is not None and kept is None and start <= default < end:
            kept = (score, default, e)
    if best is None:
        return None
    if kept is not None and kept[0] + TIE >= best[0]:
        return kept[1], kept[2]
    return best[1], best[2]


# ---------------------------------------------------------------- cohorts


def age_band(birth: date, on: date) -> str:
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    label = AGE_BANDS[0][1]
    for lowest, name in AGE_BANDS:
        if age >= lowest:
            label = name
    return label


def cohort_keys(birth: date, on: date, departement: str, tier: str) -> tuple[str, ...]:
    """The patient's cohorts, narrow to broad: (age band, département, tier), then (age band, tier)."""
    age = age_band(birth, on)
    return f"{age}|{departement}|{tier}", f"{age}|{tier}"


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """One attempt's verdict on its band, to be counted for the patient and their cohorts."""

    patient_id: int
    band: int
    answered: bool
    cohorts: tuple[str, ...]


def event_for(
    patient_id: int, started_at: datetime, result: AttemptResult, birth: date, place: cal.Place, tier: str
) -> AnswerEvent | None:
    """The event an attempt makes, or None when its result says nothing of the hour."""
    answered = counts_as_answer(result)
    if answered is None:
        return None
    on = cal.local_date(started_at, place)
    return AnswerEvent(
        patient_id,
        band_of(started_at, place.timezone),
        answered,
        cohort_keys(birth, on, place.departement, tier),
    )


def first_call(
    day: date, place: cal.Place, windows: Sequence[tuple[datetime, datetime]], model: AnswerModel
) -> tuple[datetime, Estimate | None]:
    """The first call's time on its planned day: the start of the day's best band (first window
    when nothing is known)."""
    if not windows:
        raise ValueError(f"no calling window on {day.isoformat()}")
    if not model.informative():
        return windows[0][0], None
    chosen = best_slot(windows, place.timezone, model, deadline=windows[-1][1], default=windows[0][0])
    if chosen is None:
        return windows[0][0], None
    return chosen
