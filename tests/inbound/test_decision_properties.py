"""Properties of the inbound line's decision, against oracles written apart from it (the line's
hours are recomputed here from the config and the `holidays` library, not the production calendar)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
from factories import policy
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.policy import NurseLevel, Tier
from dialer.inbound.decision import Action, Caller, CallView, ReadyNurse, decide, line_open
from dialer.inbound.prompts import say_hours, say_when

POLICY = policy()
PARIS = ZoneInfo("Europe/Paris")
SKILLS = ("heart_failure", "copd")

# bounds of hypothesis' st.datetimes are naive by its API; the drawn instants are UTC
instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001
skill_sets = st.frozensets(st.sampled_from(SKILLS))


@st.composite
def nurses(draw: st.DrawFn) -> list[ReadyNurse]:
    ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=8))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ReadyNurse(
            i,
            draw(st.sampled_from(list(NurseLevel))),
            draw(skill_sets),
            base + timedelta(seconds=draw(st.integers(0, 10_000))),
        )
        for i in ids
    ]


@st.composite
def callers(draw: st.DrawFn) -> Caller:
    return Caller(
        draw(st.integers(1, 10**6)),
        draw(st.sampled_from(list(Tier))),
        draw(skill_sets),
        draw(st.none() | st.integers(1, 40)),
    )


def open_oracle(now: datetime) -> bool:
    """Paris wall time inside a configured window of that weekday, and not a French public holiday."""
    local = now.astimezone(PARIS)
    if local.date() in holidays.country_holidays("FR", years=local.year):
        return False
    windows = POLICY.calling_hours.by_weekday[local.weekday()]
    return any(w.start <= local.time().replace(tzinfo=None) < w.end for w in windows)


def qualified(n: ReadyNurse, c: Caller) -> bool:
    return n.level in POLICY.tiers[c.tier].nurse_levels and c.skills <= n.skills


@given(now=instants, tries=st.integers(0, 10), ready=nurses())
def test_an_unrecognised_caller_is_only_ever_asked_to_identify_or_let_go(
    now: datetime, tries: int, ready: list[ReadyNurse]
) -> None:
    """Catches a line that routes, or records a task for, someone it does not know, or that
    asks more than identify_tries times."""
    decision = decide(CallView(now, None, tries), ready, POLICY)
    expected = Action.ask_member if tries < POLICY.inbound.identify_tries else Action.unknown
    assert decision.action == expected and decision.nurses == ()


@settings(max_examples=400)
@given(now=instants, caller=callers(), ready=nurses(), waited=st.none() | st.integers(-600, 600))
def test_a_recognised_caller_is_routed_only_in_hours_and_only_to_qualified_ready_nurses(
    now: datetime, caller: Caller, ready: list[ReadyNurse], waited: int | None
) -> None:
    """Catches routing outside hours or on a holiday, to an unqualified nurse, skipping a
    qualified one, not putting the référent first, or giving up on a caller before the wait ends."""
    wait_until = None if waited is None else now + timedelta(seconds=waited)
    decision = decide(CallView(now, caller, 0, wait_until), ready, POLICY)
    if not open_oracle(now):
        assert decision.action == Action.closed
        return
    fit = [n for n in ready if qualified(n, caller)]
    if not fit:
        over = wait_until is not None and now >= wait_until
        assert decision.action == (Action.callback if over else Action.wait)
        return
    assert decision.action == Action.route
    assert sorted(decision.nurses) == sorted(n.nurse_id for n in fit)
    referent_fit = any(n.nurse_id == caller.referent_id for n in fit)
    if referent_fit:
        assert decision.nurses[0] == caller.referent_id
    others = [i for i in decision.nurses if i != caller.referent_id]
    since = {n.nurse_id: n.since for n in fit}
    assert [since[i] for i in others] == sorted(since[i] for i in others), "longest ready first"


@given(now=instants)
def test_line_open_agrees_with_the_oracle(now: datetime) -> None:
    assert line_open(now, POLICY.calling_hours) == open_oracle(now)


def test_the_hours_are_said_from_the_config() -> None:
    assert say_hours(POLICY.calling_hours) == (
        "du lundi au jeudi de 9 h à 12 h 30 et de 13 h 30 à 19 h, "
        "le vendredi de 9 h à 12 h 30 et de 13 h 30 à 18 h et le samedi de 9 h à 12 h, "
        "sauf les jours fériés"
    )


def test_when_a_callback_comes_is_said_in_the_patient_time() -> None:
    now = datetime(2026, 12, 8, 21, tzinfo=UTC)
    assert say_when(datetime(2026, 12, 9, 8, tzinfo=UTC), now, "Europe/Paris") == (
        "le mercredi 9 décembre, à partir de 9 h"
    )
    assert say_when(now, now, "Europe/Paris") == "dans la journée"
    assert date(2026, 12, 9).weekday() == 2
