"""Nurses' own phones, waiting in their conferences while they take calls.

On a real line a patient is dialed only once the nurse's phone waits in her
own conference, so a patient who answers is bridged to her at once, never
to silence. The simulated lines have no such legs (`needs_nurse_leg`).
"""

from __future__ import annotations

import structlog

from campaign.store import NurseInfo
from dialer.backends.base import NurseLine, TelephonyBackend
from dialer.events import NurseLegEvent

log = structlog.get_logger("carecall.dialer")


class NurseLegs:
    def __init__(self, backend: TelephonyBackend, nurse_info: dict[int, NurseInfo]) -> None:
        self.backend = backend
        self.needed = backend.needs_nurse_leg
        self.nurse_info = nurse_info
        self.up: set[int] = set()

    def can_dial_for(self, nurse_id: int) -> bool:
        return not self.needed or nurse_id in self.up

    def bring(self, nurse_id: int) -> None:
        """Her phone into her conference, unless it is there (she is ready)."""
        if self.needed and nurse_id not in self.up:
            info = self.nurse_info.get(nurse_id)
            self.backend.nurse_ready(NurseLine(nurse_id, info.phone_endpoint if info else None))

    def release(self, nurse_id: int) -> None:
        """Her phone out of her conference (end of shift)."""
        if self.needed and nurse_id in self.up:
            self.backend.nurse_away(nurse_id)

    def on_event(self, e: NurseLegEvent, ready: bool) -> bool:
        """Her leg joined or left; True when she, ready, may now be given a call."""
        if e.up:
            self.up.add(e.nurse_id)
            return ready
        self.up.discard(e.nurse_id)
        if ready:
            # her phone dropped out of her conference while she waits: call it back in
            log.warning("nurse's line dropped; calling her phone back", nurse=e.nurse_id)
            self.bring(e.nurse_id)
        return False
