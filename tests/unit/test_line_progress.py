"""A line only moves forward: repeated and late events cannot change an attempt's result.

Providers retry callbacks and switches reorder events (shared/fixtures/ami
README: OriginateResponse between the Hangups, ConfbridgeJoin before the
verdict's UserEvent). Whatever arrives twice, or out of order before the
call's end, the dialer must store the result the scenario stands for.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from campaign.states import AttemptResult
from dialer import causes
from dialer.events import CallEvent, CallEventKind, LineState
from dialer.inbox import Inbox
from dialer.lines.tracker import LineProgress
from dialer.scenarios import EVENTS, RESULT, Scenario

AT = datetime(2026, 12, 7, 9, tzinfo=UTC)


def _events(scenario: Scenario) -> list[CallEvent]:
    kinds, cause = EVENTS[scenario]
    return [CallEvent(7, k, AT, cause if k == CallEventKind.ended else None) for k in kinds]


def _result(events: list[CallEvent]) -> AttemptResult | None:
    line = LineProgress()
    for e in events:
        line.accept(e)
    return causes.attempt_result(line.furthest, line.cause) if line.over else None


@given(
    scenario=st.sampled_from(list(Scenario)),
    data=st.data(),
)
def test_repeats_and_reordering_before_the_end_change_no_result(
    scenario: Scenario, data: st.DataObject
) -> None:
    """Catches a line that moves backwards (a late `ringing` after `connected`) or counts a
    repeated `ended` twice: the result is the scenario's, whatever came twice or late."""
    events = _events(scenario)
    before_end, end = events[:-1], events[-1]
    shuffled = data.draw(st.permutations(before_end))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=6))
    # the end comes after everything the line did; repeats may come anywhere after it too
    assert _result([*shuffled, *[r for r in repeats if r is not end], end, *repeats]) == RESULT[scenario]


def test_nothing_after_the_end_moves_the_line() -> None:
    line = LineProgress()
    assert line.accept(CallEvent(7, CallEventKind.ringing, AT))
    assert line.accept(CallEvent(7, CallEventKind.ended, AT, 17))
    assert not line.accept(CallEvent(7, CallEventKind.connected, AT))
    assert not line.accept(CallEvent(7, CallEventKind.ended, AT, 16))
    assert (line.furthest, line.cause) == (LineState.ringing, 17)


def test_the_call_id_is_kept_from_whichever_event_names_it() -> None:
    line = LineProgress()
    line.accept(CallEvent(7, CallEventKind.ringing, AT))
    line.accept(CallEvent(7, CallEventKind.ringing, AT, call_id="att-7-1"))  # a repeat, with the id
    assert line.call_id == "att-7-1"


def test_an_event_put_from_another_thread_wakes_the_owner_at_once() -> None:
    """The dialer's loop sleeps on its inbox: a backend's thread must wake it, not its next tick."""
    inbox: Inbox[int] = Inbox()
    threading.Timer(0.05, inbox.put, args=(1,)).start()
    started = time.monotonic()
    assert inbox.wait(30.0)
    assert time.monotonic() - started < 15.0, "woken by the put, not by the 30 s timeout"
    assert inbox.take_all() == [1]
    assert not inbox.wait(0.01)
