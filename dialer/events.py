"""What a telephony backend tells the dialer about a call. Backend-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from campaign.states import AttemptResult


class CallEventKind(StrEnum):
    answered = "answered"  # a person picked up; the nurse is connected
    ended = "ended"  # the call is over, with a result


@dataclass(frozen=True, slots=True)
class CallEvent:
    call_id: str
    kind: CallEventKind
    at: datetime
    result: AttemptResult | None = None  # on `ended`: what the line said
    voicemail_left: bool = False
