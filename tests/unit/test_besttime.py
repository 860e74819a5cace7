"""Best time to call (campaign.besttime) stated as properties (hypothesis).

The band of an instant is checked against the patient's wall clock computed
here; the Beta-Binomial estimate against what a posterior mean must do: stay a
probability, never fall when a band gets one more answer, sit on the prior while
history is thin and move away from it only as attempts accumulate.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from facts import WHERE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign import besttime
from campaign.besttime import AnswerModel, BandCounts, band_label, band_of, best_band, estimate

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

probabilities = st.floats(0, 1, allow_nan=False)
weights = st.floats(0.1, 50, allow_nan=False)


@st.composite
def counts(draw: st.DrawFn, most: int = 60) -> BandCounts:
    attempts = draw(st.integers(0, most))
    return BandCounts(attempts, draw(st.integers(0, attempts)))


bands = st.integers(0, 3 * besttime.BANDS_PER_DAY - 1)
band_maps = st.dictionaries(bands, counts(), max_size=8)


@st.composite
def models(draw: st.DrawFn) -> AnswerModel:
    return AnswerModel(
        draw(band_maps),
        tuple(draw(st.lists(band_maps, max_size=2))),
        draw(st.floats(0.01, 0.99)),
        draw(weights),
    )


@SETTINGS
@given(counts(), probabilities, weights)
def test_an_estimate_is_a_probability(c: BandCounts, prior: float, weight: float) -> None:
    """Whatever the history and the prior: a broken formula (answers over attempts plus a prior
    added, not averaged) goes above 1 for a patient who always answers."""
    assert 0.0 <= estimate(c, prior, weight) <= 1.0


@SETTINGS
@given(models(), bands)
def test_every_band_of_a_model_is_a_probability(model: AnswerModel, band: int) -> None:
    e = model.at(band)
    assert 0.0 <= e.p <= 1.0
    assert 0.0 <= e.prior <= 1.0
    assert e.own == model.own.get(band, BandCounts())


@SETTINGS
@given(counts(), probabilities, weights)
def test_one_more_answer_never_lowers_the_estimate(c: BandCounts, prior: float, weight: float) -> None:
    """An answered attempt in a band raises (or keeps) its estimate; an unanswered one lowers (or
    keeps) it; turning an unanswered attempt into an answered one raises it. A model that counted
    attempts as answers, or answers as misses, fails one of the three."""
    p = estimate(c, prior, weight)
    assert estimate(c.plus(True), prior, weight) >= p - 1e-12
    assert estimate(c.plus(False), prior, weight) <= p + 1e-12
    if c.answers < c.attempts:
        better = BandCounts(c.attempts, c.answers + 1)
        assert estimate(better, prior, weight) > p


@SETTINGS
@given(counts(), probabilities, weights)
def test_thin_history_stays_near_the_prior(c: BandCounts, prior: float, weight: float) -> None:
    """No attempt: exactly the prior; n attempts move it by at most n / (n + weight). A model
    that took a patient's own rate as soon as they had one attempt (0 % or 100 %) fails here."""
    assert math.isclose(estimate(BandCounts(), prior, weight), prior, abs_tol=1e-12)
    moved = abs(estimate(c, prior, weight) - prior)
    assert moved <= c.attempts / (c.attempts + weight) + 1e-12


@SETTINGS
@given(band_maps, bands, st.floats(0.01, 0.99), weights)
def test_a_patient_with_no_history_gets_their_cohorts_rate(
    cohort: dict[int, BandCounts], band: int, base: float, weight: float
) -> None:
    """The cohort prior, shrunk toward the base rate: with no cohort data either, the base rate."""
    alone = AnswerModel({}, (cohort,), base, weight)
    assert math.isclose(alone.at(band).p, estimate(cohort.get(band, BandCounts()), base, weight))
    assert math.isclose(AnswerModel({}, (), base, weight).at(band).p, base, abs_tol=1e-12)
    assert not AnswerModel({}, ({},), base, weight).informative()


@SETTINGS
@given(models(), st.lists(bands, min_size=1, max_size=12, unique=True))
def test_best_band_is_the_highest_estimate(model: AnswerModel, candidates: list[int]) -> None:
    best = best_band(model, candidates)
    assert best is not None and best.band in candidates
    assert all(model.at(b).p <= best.p + besttime.TIE for b in candidates)


DEPS = tuple(WHERE)


@SETTINGS
@given(
    st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31)),  # noqa: DTZ001 (hypothesis' bounds)
    st.sampled_from(DEPS),
)
def test_the_band_is_two_hours_of_the_patients_wall_clock(naive: datetime, dep: str) -> None:
    """Weekday, Saturday or Sunday of the patient's own day, and two hours starting at an odd hour."""
    instant = naive.replace(tzinfo=UTC)
    zone = WHERE[dep][0]
    here = instant.astimezone(ZoneInfo(zone))
    start_hour = here.hour if here.hour % 2 == 1 else (here.hour - 1) % 24
    day = here.date() if here.hour != 0 else here.date() - timedelta(days=1)
    kind = "weekday" if day.weekday() < 5 else ("saturday" if day.weekday() == 5 else "sunday")
    label = band_label(band_of(instant, zone))
    assert label == f"{kind} {start_hour:02d}:00-{(start_hour + 2) % 24:02d}:00", (here, label)


def test_slots_cut_windows_at_band_boundaries() -> None:
    zone = "Europe/Paris"
    day = date(2026, 12, 8)  # a Tuesday
    at = lambda h, m=0: datetime(2026, 12, 8, h, m, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # noqa: E731
    got = [
        (s, e, band_label(b))
        for s, e, b, _ in besttime.slots([(at(9), at(12, 30)), (at(13, 30), at(19))], zone)
    ]
    assert got[0] == (at(9), at(11), "weekday 09:00-11:00")
    assert got[1] == (at(11), at(12, 30), "weekday 11:00-13:00")
    assert got[2] == (at(13, 30), at(15), "weekday 13:00-15:00")
    assert got[-1] == (at(17), at(19), "weekday 17:00-19:00")
    assert len(got) == 5
    assert day.weekday() == 1


def test_age_bands_split_the_working_age_from_the_retired() -> None:
    on = date(2026, 12, 8)
    assert besttime.age_band(date(1965, 12, 9), on) == "55-61"  # 60, a day before turning 61
    assert besttime.age_band(date(1964, 12, 8), on) == "62-69"  # 62 today
    assert besttime.age_band(date(1940, 1, 1), on) == "80+"
    assert besttime.cohort_keys(date(1990, 5, 5), on, "974", "high") == ("18-39|974|high", "18-39|high")
