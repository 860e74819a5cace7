"""The one interface every telephony backend implements (simulated, Asterisk, Twilio)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dialer.events import CallEvent


@dataclass(frozen=True, slots=True)
class DialRequest:
    """A call to place. No names or medical data: the line needs only a number."""

    attempt_id: int
    number: str  # E.164
    nurse_id: int
    ring_timeout_seconds: int
    voicemail_text: str | None  # neutral message to leave on a machine, or None


EventSink = Callable[[CallEvent], None]


class TelephonyBackend(Protocol):
    def connect(self, sink: EventSink) -> None:
        """Start delivering call events to `sink`."""

    def dial(self, request: DialRequest) -> str:
        """Place the call; return the backend's call id. Raises BackendError."""

    def hangup(self, call_id: str) -> None:
        """End the call (the nurse hung up); an `ended` event follows."""
