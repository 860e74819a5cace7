"""A call the dialer placed, and the states it goes through until the dialer forgets it.

Pure: a transition returns the next state or refuses; the dialer acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from campaign.errors import InvalidTransition
from campaign.states import TaskKind
from dialer.events import LineState
from dialer.lines.tracker import LineProgress
from dialer.routing import QueuedTask


class CallState(StrEnum):
    dialing = "dialing"  # placed and ringing; its nurse is reserved
    connected = "connected"  # a person answered; the nurse talks with the patient
    wrap_up = "wrap_up"  # over after an answer; the nurse records the outcome
    ended = "ended"  # over, its result or outcome stored


ALLOWED: dict[CallState, frozenset[CallState]] = {
    # an unanswered call ends at once; one answered after its lease ran out is hung up, then ends
    CallState.dialing: frozenset({CallState.connected, CallState.ended}),
    # a conversation always ends in wrap-up: its outcome is owed before the nurse moves on
    CallState.connected: frozenset({CallState.wrap_up}),
    CallState.wrap_up: frozenset({CallState.ended}),
    CallState.ended: frozenset(),
}


def transition(current: CallState, target: CallState) -> CallState:
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"a call cannot go from {current} to {target}")
    return target


@dataclass(slots=True)
class LiveCall:
    attempt_id: int  # the key of every event about this call, whatever the backend
    task: QueuedTask
    nurse_id: int
    kind: TaskKind
    number: str
    state: CallState = CallState.dialing
    line: LineProgress = field(default_factory=LineProgress)  # how far the line got
    inbound: bool = False  # the patient called the programme's number; the inbound line ends it
    nurse_hung_up: bool = False  # she ended it; otherwise a connected call's end is the patient's

    def call_state(self) -> str:
        """What her console shows of it: dialing, ringing, connected, ended, patient_hung_up."""
        if self.state == CallState.dialing:
            furthest = self.line.furthest
            if furthest == LineState.dialing:
                return "dialing"
            return "connected" if furthest == LineState.connected else "ringing"
        if self.state == CallState.connected:
            return "connected"
        return "ended" if self.nurse_hung_up else "patient_hung_up"

    def move(self, target: CallState) -> None:
        self.state = transition(self.state, target)
