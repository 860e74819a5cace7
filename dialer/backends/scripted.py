"""Telephone lines whose calls end at once with a scripted result, for tests and benchmarks.

No ringing and no talk time: a call's answer or its end reaches the dialer
during the dial itself, so a dialer on these lines runs its dispatch path and
nothing else. A script gives each call its result from the call's rank (1,
2, …) and its request; `None` leaves the call ringing until it is hung up,
for a test that needs a patient in a call.
"""

from __future__ import annotations

from collections.abc import Callable

from campaign.clock import Clock
from campaign.states import AttemptResult
from dialer.backends.base import DialRequest, EventSink
from dialer.events import CallEvent, CallEventKind

# the rank of the call (1, 2, …) and its request -> how it goes (None: it rings until hung up)
Script = Callable[[int, DialRequest], AttemptResult | None]


def nobody_answers(_rank: int, _request: DialRequest) -> AttemptResult | None:
    return AttemptResult.no_answer


def every_other_answered(rank: int, _request: DialRequest) -> AttemptResult | None:
    return AttemptResult.answered if rank % 2 else AttemptResult.no_answer


class ScriptedLines:
    """A `TelephonyBackend` whose calls are answered, or end, the moment they are dialed."""

    def __init__(self, clock: Clock, script: Script = nobody_answers) -> None:
        self.clock = clock
        self.script = script
        self.dials = 0
        self._sink: EventSink | None = None
        self._live: dict[str, bool] = {}  # calls not over yet -> answered

    def connect(self, sink: EventSink) -> None:
        self._sink = sink

    def dial(self, request: DialRequest) -> str:
        assert self._sink is not None, "connect() first"
        self.dials += 1
        call_id = f"c{self.dials}"
        result = self.script(self.dials, request)
        now = self.clock.now()
        if result is None:
            self._live[call_id] = False
        elif result == AttemptResult.answered:
            self._live[call_id] = True
            self._sink(CallEvent(call_id, CallEventKind.answered, now))
        else:
            self._sink(CallEvent(call_id, CallEventKind.ended, now, result))
        return call_id

    def hangup(self, call_id: str) -> None:
        """End a call not over yet: a conversation as answered, a ringing call as unanswered."""
        assert self._sink is not None, "connect() first"
        if call_id in self._live:
            answered = self._live.pop(call_id)
            result = AttemptResult.answered if answered else AttemptResult.no_answer
            self._sink(CallEvent(call_id, CallEventKind.ended, self.clock.now(), result))
