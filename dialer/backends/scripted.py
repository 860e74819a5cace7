"""Telephone lines whose calls end at once with a scripted result, for tests and benchmarks.

No ringing and no talk time: a call's answer or its end reaches the dialer
during the dial itself, so a dialer on these lines runs its dispatch path and
nothing else. A script gives each call its scenario from the call's rank (1,
2, …) and its request; `None` leaves the call ringing until it is hung up,
for a test that needs a patient in a call.
"""

from __future__ import annotations

from collections.abc import Callable

from campaign.clock import Clock
from dialer.backends.base import DialRequest, EventSink, NurseLine
from dialer.events import CallEvent, CallEventKind, NurseLegEvent
from dialer.scenarios import EVENTS, Scenario

# the rank of the call (1, 2, …) and its request -> how it goes (None: it rings until hung up)
Script = Callable[[int, DialRequest], Scenario | None]


def nobody_answers(_rank: int, _request: DialRequest) -> Scenario | None:
    return Scenario.no_answer


def every_other_answered(rank: int, _request: DialRequest) -> Scenario | None:
    return Scenario.human if rank % 2 else Scenario.no_answer


class ScriptedLines:
    """A `TelephonyBackend` whose calls are answered, or end, the moment they are dialed."""

    name = "scripted"
    needs_nurse_leg = False
    remote = False  # nothing outlives the process: no line records

    def __init__(self, clock: Clock, script: Script = nobody_answers) -> None:
        self.clock = clock
        self.script = script
        self.dials = 0
        self._sink: EventSink | None = None
        self._live: dict[int, bool] = {}  # calls not over yet -> connected to the nurse

    def connect(self, sink: EventSink) -> None:
        self._sink = sink

    def nurse_ready(self, nurse: NurseLine) -> None:
        assert self._sink is not None, "connect() first"
        self._sink(NurseLegEvent(nurse.nurse_id, True, self.clock.now()))

    def nurse_away(self, nurse_id: int) -> None:
        assert self._sink is not None, "connect() first"
        self._sink(NurseLegEvent(nurse_id, False, self.clock.now()))

    def dial(self, request: DialRequest) -> None:
        assert self._sink is not None, "connect() first"
        self.dials += 1
        scenario = self.script(self.dials, request)
        now, attempt = self.clock.now(), request.attempt_id
        if scenario is None:
            self._live[attempt] = False
            return
        kinds, cause = EVENTS[scenario]
        if scenario == Scenario.human:
            # straight to the conversation: its end comes when the nurse hangs up
            self._live[attempt] = True
            self._sink(CallEvent(attempt, CallEventKind.connected, now))
            return
        voicemail = scenario == Scenario.machine_message and request.voicemail_text is not None
        for kind in kinds:
            ended = kind == CallEventKind.ended
            self._sink(
                CallEvent(attempt, kind, now, cause if ended else None, voicemail_left=ended and voicemail)
            )

    def hangup(self, attempt_id: int) -> None:
        """End a call not over yet: a conversation normally, a ringing call as unanswered."""
        assert self._sink is not None, "connect() first"
        if attempt_id in self._live:
            connected = self._live.pop(attempt_id)
            self._sink(CallEvent(attempt_id, CallEventKind.ended, self.clock.now(), 16 if connected else 19))

    def hangup_orphan(self, call_id: str) -> None:
        """Scripted calls die with their process: nothing is left on a switch."""

    def close(self) -> None:
        self._live.clear()
