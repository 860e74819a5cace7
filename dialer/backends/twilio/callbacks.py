"""Twilio's callbacks as `dialer.events`, forward only. Pure.

Twilio sends its callbacks in no guaranteed order and retries them, so the
same call may report `completed` before `in-progress`, or its verdict twice.
Each callback proposes the events it stands for (`status_events`,
`verdict_events`, …) and `forward` keeps those that move the call further
than what carecall already knows of it (`Seen`), without contradicting it:
nothing after the end, no second verdict, no bridge after a machine. A
`completed` call was answered, whatever came before: it says so first.

`AnsweredBy`: `human` and `unknown` (the detector could not tell) are a
person, who must not be left in silence; `machine_*` and `fax` a machine. Only
`machine_end_*` (the end of the greeting was heard) may get a message: after
`machine_start` a message would be cut by the greeting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from dialer.causes import twilio_cause
from dialer.events import CallEvent, CallEventKind, LineState

PERSON = frozenset({"human", "unknown"})
MACHINE = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"})
MESSAGE_END = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_AFTER_A_PERSON = (LineState.connected, LineState.nurse_gone)


@dataclass(frozen=True, slots=True)
class Seen:
    """How far carecall knows a call got: the furthest state before its end, and whether it ended."""

    furthest: LineState = LineState.dialing
    ended: bool = False

    def merge(self, other: Seen) -> Seen:
        """What both sources know (this process's memory, the database's line)."""
        furthest = other.furthest if other.furthest.rank > self.furthest.rank else self.furthest
        return Seen(furthest, self.ended or other.ended)


def is_person(answered_by: str | None) -> bool:
    """A verdict that is not a machine's is a person's (a missing one too: never leave one in silence)."""
    return answered_by not in MACHINE


def leaves_message(answered_by: str | None) -> bool:
    return answered_by in MESSAGE_END


def status_events(
    attempt_id: int, call_sid: str, status: str, sip_code: int | None, at: datetime
) -> list[CallEvent]:
    """A call status callback (`CallStatus`, `SipResponseCode`) as the events it stands for."""
    if status == "ringing":
        return [CallEvent(attempt_id, CallEventKind.ringing, at, call_id=call_sid)]
    if status == "in-progress":
        return [CallEvent(attempt_id, CallEventKind.answered, at, call_id=call_sid)]
    if status not in FINAL_STATUSES:
        return []  # queued, initiated: nothing a line shows
    ended = CallEvent(
        attempt_id,
        CallEventKind.ended,
        at,
        cause=twilio_cause(status, sip_code),
        detail=status,
        call_id=call_sid,
    )
    if status == "completed":  # Twilio's "completed" is an answered call that ended
        return [CallEvent(attempt_id, CallEventKind.answered, at, call_id=call_sid), ended]
    return [ended]


def verdict_events(attempt_id: int, call_sid: str, answered_by: str | None, at: datetime) -> list[CallEvent]:
    """The detector's verdict: the call was answered, by a person or by a machine."""
    kind = CallEventKind.human if is_person(answered_by) else CallEventKind.machine
    return [
        CallEvent(attempt_id, CallEventKind.answered, at, call_id=call_sid),
        CallEvent(attempt_id, kind, at, detail=answered_by or "unknown", call_id=call_sid),
    ]


def connected_events(attempt_id: int, call_sid: str, at: datetime) -> list[CallEvent]:
    """The patient joined the nurse's conference: they talk."""
    return [CallEvent(attempt_id, CallEventKind.connected, at, call_id=call_sid)]


def nurse_gone_events(attempt_id: int, call_sid: str, at: datetime) -> list[CallEvent]:
    """A person answered, the nurse's leg was gone: the apology is played."""
    return [CallEvent(attempt_id, CallEventKind.nurse_gone, at, call_id=call_sid)]


def voicemail_left_events(attempt_id: int, call_sid: str, at: datetime) -> list[CallEvent]:
    """The neutral message was played to its end on a machine; carecall hangs up."""
    return [
        CallEvent(
            attempt_id,
            CallEventKind.ended,
            at,
            cause=16,
            detail="voicemail",
            voicemail_left=True,
            call_id=call_sid,
        )
    ]


def forward(seen: Seen, proposed: list[CallEvent]) -> tuple[list[CallEvent], Seen]:
    """The proposed events that move the call forward without contradicting `seen`, and what is seen after."""
    kept: list[CallEvent] = []
    for event in proposed:
        if seen.ended:
            break
        if event.kind == CallEventKind.ended:
            kept.append(event)
            seen = replace(seen, ended=True)
            continue
        target = LineState(event.kind.value)
        if target.rank <= seen.furthest.rank:
            continue
        if target in _AFTER_A_PERSON and seen.furthest == LineState.machine:
            continue  # a machine is never bridged nor apologised to
        kept.append(event)
        seen = replace(seen, furthest=target)
    return kept, seen
