"""A nurse's presence (dialer/presence.py): the moves a nurse's day allows, and those it refuses.

The allowed moves are written here as the nurse's day, not copied from the
module: a change to the table that lets, say, a nurse leave a conversation
without recording its outcome fails here.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.errors import InvalidTransition
from dialer.presence import NurseStatus, PresenceBoard, shift_starts_between, transition

S = NurseStatus
# (from, to): why a nurse makes that move
ALLOWED = {
    (S.offline, S.ready): "her shift starts",
    (S.offline, S.paused): "she logs in on a break",
    (S.ready, S.reserved): "the dialer reserves her before dialing her patient",
    (S.ready, S.paused): "she takes a break",
    (S.ready, S.offline): "her shift ends while she waits",
    (S.reserved, S.on_call): "the patient answers",
    (S.reserved, S.ready): "nobody answers: the next call",
    (S.reserved, S.wrap_up): "the call ends as it is answered: its outcome is owed",
    (S.on_call, S.wrap_up): "the conversation ends: she records its outcome",
    (S.wrap_up, S.ready): "outcome recorded: the next call",
    (S.wrap_up, S.paused): "outcome recorded: a break",
    (S.wrap_up, S.offline): "outcome recorded: end of shift",
    (S.paused, S.ready): "back from her break",
    (S.paused, S.offline): "end of shift during a break",
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_move_of_a_nurses_day_is_allowed_and_every_other_refused(
    current: NurseStatus, target: NurseStatus
) -> None:
    if (current, target) in ALLOWED:
        assert transition(current, target) == target
    else:
        with pytest.raises(InvalidTransition, match=f"from {current} to {target}"):
            transition(current, target)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(list(S))), max_size=60))
def test_the_board_only_ever_shows_a_day_a_nurse_can_have(moves: list[tuple[int, NurseStatus]]) -> None:
    """Whatever is asked of it, the board refuses a wrong move and keeps the nurse where she was."""
    board = PresenceBoard()
    history: dict[int, list[NurseStatus]] = {n: [S.offline] for n in (1, 2, 3)}
    for nurse, target in moves:
        before = board.get(nurse)
        try:
            board.set(nurse, target)
        except InvalidTransition:
            assert board.get(nurse) == before, "a refused move changes nothing"
            continue
        history[nurse].append(target)
        assert set(board.ready()) == {n for n in (1, 2, 3) if board.get(n) == S.ready}
        assert board.on_shift(nurse) == (target != S.offline)
    for days in history.values():
        for a, b in itertools.pairwise(days):
            if b == S.on_call:
                assert a == S.reserved, "nobody is put through to a patient without being reserved first"
            if a == S.on_call:
                assert b == S.wrap_up, "a conversation always ends with its outcome to record"
            if a in (S.reserved, S.on_call):
                assert b not in (S.offline, S.paused), "nobody leaves while a call is hers"


def test_a_nurse_leaving_mid_call_is_not_on_shift_for_the_queue() -> None:
    board = PresenceBoard()
    for status in (S.ready, S.reserved, S.on_call):
        board.set(7, status)
    assert board.on_shift(7)
    board.leaving.add(7)  # her shift ended during the call: she leaves after its outcome
    assert not board.on_shift(7), "her patients do not wait for her any more"
    assert board.ready() == []


PARIS_TUESDAY = [(1, time(9), time(17))]  # Tuesdays 09:00-17:00 Paris


def utc(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "until", "expected", "why"),
    [
        (utc(2027, 1, 12, 7, 30), utc(2027, 1, 12, 8, 0), True, "09:00 Paris"),
        (utc(2027, 1, 12, 7, 30), utc(2027, 1, 12, 7, 59), False, "too late"),
        (utc(2027, 1, 12, 8, 1), utc(2027, 1, 12, 9, 0), False, "started"),
        (utc(2027, 1, 13, 7, 30), utc(2027, 1, 13, 8, 0), False, "Wednesday"),
        (utc(2026, 12, 22, 7, 30), utc(2026, 12, 22, 8, 0), True, "Tuesday"),
        # Tuesday 15 August 2028 (Assumption), 09:00 Paris is 07:00 UTC in summer
        (utc(2028, 8, 15, 6, 30), utc(2028, 8, 15, 7, 30), False, "holiday"),
    ],
)
def test_a_shift_starting_soon_counts_only_on_its_day_before_it_starts_and_never_on_a_holiday(
    now: datetime, until: datetime, expected: bool, why: str
) -> None:
    assert shift_starts_between(PARIS_TUESDAY, "Europe/Paris", now, until) is expected, why
