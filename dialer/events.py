"""What a telephony backend tells the dialer about a call. Backend-neutral.

Every backend (simulated, Asterisk, Twilio) speaks these events and nothing
else, keyed by the attempt id carecall gave the call when it asked for it, so
an event finds its attempt in any process and after a restart. A backend
never decides an attempt's result: it reports what the line did (the kinds
below, the network's Q.850 cause, the detector's verdict) and the dialer
reads the result from `dialer.causes`, one table for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CallEventKind(StrEnum):
    ringing = "ringing"  # the patient's phone rings
    answered = "answered"  # the line was picked up; the detector is listening
    human = "human"  # the detector heard a person (a "not sure" verdict counts as a person)
    machine = "machine"  # the detector heard an answering machine
    connected = "connected"  # the patient is bridged into the nurse's conference: they talk
    nurse_gone = "nurse_gone"  # a person answered, the nurse's leg was gone: they heard the apology
    ended = "ended"  # the call is over (cause: the network's Q.850 cause)


class LineState(StrEnum):
    """How far a call got. Ordered: a line only moves forward, so a late or repeated event changes nothing."""

    dialing = "dialing"
    ringing = "ringing"
    answered = "answered"
    human = "human"
    machine = "machine"
    connected = "connected"
    nurse_gone = "nurse_gone"
    ended = "ended"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    LineState.dialing: 0,
    LineState.ringing: 1,
    LineState.answered: 2,
    # a verdict, then what followed it: the two branches never meet, so they share ranks
    LineState.human: 3,
    LineState.machine: 3,
    LineState.connected: 4,
    LineState.nurse_gone: 4,
    LineState.ended: 5,
}


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One thing the line did. No names, no numbers: the attempt id says which call."""

    attempt_id: int
    kind: CallEventKind
    at: datetime
    cause: int | None = None  # on `ended`: the network's Q.850 cause, when the backend knows it
    detail: str | None = None  # the detector's cause (AMDCAUSE, AnsweredBy) or the provider's status
    voicemail_left: bool = False  # on `ended` after `machine`: the neutral message was played
    call_id: str | None = None  # the backend's id of the call (Uniqueid, CallSid), when it is known


@dataclass(frozen=True, slots=True)
class NurseLegEvent:
    """The nurse's own phone joined or left her conference (she waits there while ready)."""

    nurse_id: int
    up: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class NurseCommandsDue:
    """A command for one of this process's nurses may be waiting (the bus said so, or the slow poll)."""


Event = CallEvent | NurseLegEvent | NurseCommandsDue
