"""The one interface every telephony backend implements (simulated, Asterisk, Twilio).

A backend places calls and reports what their lines do as `dialer.events`;
it never touches the database nor decides a result. Its methods are called
from the dialer's own thread and must not block it on the network: a backend
that talks to a switch or a provider does so from its own threads, and what
comes back (including a failure to place the call) arrives as events through
the sink, from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dialer.events import Event


@dataclass(frozen=True, slots=True)
class DialRequest:
    """A call to place. No names or medical data: the line needs only a number."""

    attempt_id: int  # the key of every event about this call
    task_id: int
    number: str  # E.164
    nurse_id: int
    nurse_endpoint: str | None  # her phone (PJSIP endpoint, Twilio client identity or number)
    ring_timeout_seconds: int
    voicemail_text: str | None  # neutral message to leave on a machine, or None
    # whom it is for (the database's id, no personal data): only the simulated lines use it, to tell
    # which of the two patients sharing a landline is asked for
    patient_id: int | None = None


@dataclass(frozen=True, slots=True)
class NurseLine:
    """A ready nurse's phone, to keep in her own conference while she takes calls."""

    nurse_id: int
    endpoint: str | None


EventSink = Callable[[Event], None]


class TelephonyBackend(Protocol):
    name: str  # "simulated", "asterisk", "twilio", …: stored with each line
    # True: a patient is dialed only for a nurse whose leg is up in her conference (real lines);
    # the simulated lines have no nurse legs
    needs_nurse_leg: bool
    # True: its calls live beyond this process (a switch, a provider), so the dialer records their
    # lines (call_line): a restart can hang up what a crash left, any process's webhook finds its
    # call. Simulated lines die with their process and are not recorded.
    remote: bool

    def connect(self, sink: EventSink) -> None:
        """Start delivering events to `sink` (from any thread)."""

    def nurse_ready(self, nurse: NurseLine) -> None:
        """Bring her phone into her conference unless it is there; a `NurseLegEvent` follows."""

    def nurse_away(self, nurse_id: int) -> None:
        """Hang her leg up (end of shift, pause); a `NurseLegEvent(up=False)` follows."""

    def dial(self, request: DialRequest) -> None:
        """Place the call without waiting for the network; a failure comes back as an `ended` event."""

    def hangup(self, attempt_id: int) -> None:
        """End the call (the nurse hung up, or a lease ran out); an `ended` event follows."""

    def hangup_orphan(self, call_id: str) -> None:
        """Hang up a call a crashed process left alive on the switch (by the backend's call id)."""

    def close(self) -> None:
        """Stop threads and connections; calls in progress are left to reconciliation."""
