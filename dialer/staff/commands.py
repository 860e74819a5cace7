"""What a person asks of a nurse's dialer, from any process: ready, pause, offline, hang up, an outcome.

A command is a `nurse_command` row and a `COMMAND` notification, stored in
one transaction; the dialer process that owns the nurse takes it at once
(dialer/staff/desk.py) and answers "ok" or "refused: why". `wait` gives the
answer to whoever asked (a web request), woken by the owner's `PRESENCE`
notification for that nurse, with a short poll besides.
"""

from __future__ import annotations

import time as wall
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from campaign import services
from campaign.errors import NotFound
from campaign.states import OutcomeCode
from dialer.staff import store
from dialer.staff.bus import COMMAND, PRESENCE, Bus

WAIT_POLL_SECONDS = 0.25  # a wait looks at the row this often even if no notification came


@dataclass(frozen=True)
class OutcomeRequest:
    """What a nurse says of her call, from her console."""

    attempt_id: int
    code: OutcomeCode
    callback_at: datetime | None = None
    callback_nurse_id: int | None = None  # a callback for another qualified nurse (None: herself)
    note: str = ""
    message: str | None = None  # to the physician (escalation)
    hospitalised_until: date | None = None


class NurseCommands:
    def __init__(self, ctx: services.Context, bus: Bus) -> None:
        self.ctx = ctx
        self.bus = bus

    def ready(self, nurse_id: int) -> int:
        return self._add(nurse_id, "ready", {})

    def pause(self, nurse_id: int, reason: str) -> int:
        return self._add(nurse_id, "pause", {"reason": reason})

    def offline(self, nurse_id: int) -> int:
        return self._add(nurse_id, "offline", {})

    def hangup(self, nurse_id: int) -> int:
        return self._add(nurse_id, "hangup", {})

    def outcome(self, nurse_id: int, request: OutcomeRequest) -> int:
        return self._add(
            nurse_id,
            "outcome",
            {
                "attempt_id": request.attempt_id,
                "code": request.code.value,
                "callback_at": request.callback_at.isoformat() if request.callback_at else None,
                "callback_nurse_id": request.callback_nurse_id,
                "note": request.note,
                "message": request.message,
                "hospitalised_until": (
                    request.hospitalised_until.isoformat() if request.hospitalised_until else None
                ),
            },
        )

    def inbound(self, nurse_id: int, inbound_call_id: int, patient_id: int) -> int:
        """Give her this inbound call if she is ready and free; answered "ok:<attempt id>" or refused."""
        return self._add(nurse_id, "inbound", {"inbound_call_id": inbound_call_id, "patient_id": patient_id})

    def result(self, command_id: int) -> str | None:
        """Its result if its owner has taken it ("ok", "ok:<attempt id>" or "refused: why"), else None."""
        return self._result(command_id)[1]

    def _result(self, command_id: int) -> tuple[int, str | None]:
        with self.ctx.sessions() as s:
            found = store.command_result(s, command_id)
        if found is None:
            raise NotFound(f"nurse command {command_id} does not exist")
        return found

    def wait(self, command_id: int, timeout_seconds: float) -> str | None:
        """Its result ("ok", "ok:<attempt id>" or "refused: why"); None if not taken within the timeout.

        It holds the calling thread: the web pages await the answer instead (dialer.web.console)."""
        deadline = wall.monotonic() + timeout_seconds
        sub = self.bus.subscribe(PRESENCE)
        try:
            while True:
                nurse, result = self._result(command_id)
                if result is not None:
                    return result
                if wall.monotonic() >= deadline:
                    return None
                # the row is read again when her presence changes (the answer comes with it), after a
                # reconnection (""), or at the poll; other nurses' changes (hundreds a second with
                # hundreds of consoles) do not cost every waiting request a query
                poll = min(deadline, wall.monotonic() + WAIT_POLL_SECONDS)
                while (left := poll - wall.monotonic()) > 0:
                    message = sub.get(left)
                    if message is None or message[1] in ("", str(nurse)):
                        break
        finally:
            sub.close()

    def _add(self, nurse_id: int, kind: str, payload: dict[str, Any]) -> int:
        with self.ctx.sessions() as s:
            command_id = store.add_command(s, nurse_id, kind, payload, self.ctx.clock.now())
            self.bus.notify_in(s, COMMAND, str(nurse_id))
            s.commit()
        return command_id
