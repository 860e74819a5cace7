"""The owner's side of nurse commands: what a console (or the inbound line) asks of a nurse's dialer.

Commands wait in `nurse_command` until the dialer process that owns the
nurse takes them: at once when the bus says one is there, and by a slow
poll in case a notification was lost. Each is applied in the owner's own
thread, like any presence change, and answered "ok" or "refused: why". A
command is marked taken in the transaction that stores what it did (the
outcome's own transaction for an outcome): a process that dies before that
leaves it pending, and its restart takes it again.

`NurseDesk` is a part of `Dialer` (dialer/loop.py), split off by seam; an
inbound command is carried out by `InboundDesk` (dialer/staff/inbound_desk.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlmodel import Session

from campaign import services
from campaign import store as cstore
from campaign.states import OutcomeCode
from dialer.calls import CallState, LiveCall
from dialer.events import Event, NurseCommandsDue
from dialer.inbox import Inbox
from dialer.lines.tracker import LineTracker
from dialer.presence import NurseStatus, PresenceBoard
from dialer.routing import NurseProfile, may_take
from dialer.staff import store
from dialer.staff.bus import COMMAND, PRESENCE, Bus, Subscription
from dialer.staff.txhooks import hooks

log = structlog.get_logger("carecall.dialer")


class Refused(Exception):
    """A command the owner cannot carry out; its message is the reason the console shows."""


class NurseDesk:
    # what the dialer holds (dialer/loop.py sets them)
    ctx: services.Context
    worker: str
    bus: Bus
    presence: PresenceBoard
    nurses: dict[int, NurseProfile]
    calls: dict[int, LiveCall]
    call_of_nurse: dict[int, int]
    patients_in_call: set[int]
    inbox: Inbox[Event]
    lines: LineTracker
    share: tuple[int, int]
    on_connected: Callable[[int, LiveCall], None] | None
    on_inbound_hangup: Callable[[int], None] | None
    on_command: Callable[[int], None] | None  # a console spoke for this nurse (the mixed source)
    nurse_info: dict[int, cstore.NurseInfo]
    _outcomes: list[tuple[int, services.OutcomeEntry]]
    _outcome_commands: dict[int, int]  # nurse -> the command whose outcome waits to be stored
    _command_results: list[tuple[int, str]]  # taken, to mark in the next transaction
    _taking: set[int]  # applied, not yet marked (an outcome waiting for its transaction)
    _command_nurse: dict[int, int]  # command -> nurse, until marked
    _commands_due: bool
    _dispatch_due: bool
    _subscription: Subscription | None

    if TYPE_CHECKING:

        def nurse_ready(self, nurse_id: int) -> None: ...
        def nurse_offline(self, nurse_id: int) -> None: ...
        def nurse_pause(self, nurse_id: int, reason: str) -> None: ...
        def hangup(self, nurse_id: int) -> None: ...
        def submit_outcome(
            self,
            nurse_id: int,
            code: OutcomeCode,
            *,
            callback_at: datetime | None = None,
            note: str = "",
            message_body: str | None = None,
            callback_nurse_id: int | None = None,
            until: date | None = None,
        ) -> None: ...
        def _ride_along(self, session: Session) -> None: ...
        def _kick(self) -> None: ...
        def _take_inbox(self) -> None: ...
        def _inbound_command(self, c: store.PendingCommand) -> str: ...

    # ------------------------------------------------------------ waking up

    def listen_for_commands(self) -> None:
        """Take commands as soon as the bus says one of ours is there (from the bus's thread)."""
        k, n = self.share

        def heard(_channel: str, payload: str) -> None:
            if not payload or not payload.isdigit() or int(payload) % n == k:
                self.inbox.put(NurseCommandsDue())

        self._subscription = self.bus.subscribe(COMMAND, callback=heard)

    def commands_due(self) -> None:
        """From any thread: look for commands at the next flush (the slow poll, a test)."""
        self.inbox.put(NurseCommandsDue())

    # ------------------------------------------------------------ taking commands

    def take_commands(self) -> int:
        """Apply the pending commands of this process's nurses; how many were taken."""
        self._commands_due = False
        with self.ctx.sessions() as s:
            pending = [c for c in store.pending_commands(s, self.share) if c.id not in self._taking]
        for c in pending:
            try:
                result = self._apply_command(c)
            except Refused as why:
                result = f"refused: {why}"
            except Exception as exc:  # a bad command must not stop the dialer of every nurse
                log.exception("command failed", command=c.id, kind=c.kind, nurse=c.nurse_id)
                result = f"refused: {type(exc).__name__}"
            self._taking.add(c.id)
            self._command_nurse[c.id] = c.nurse_id
            if result is not None:
                self._command_results.append((c.id, result))
            log.info("nurse command", command=c.id, kind=c.kind, nurse=c.nurse_id, result=result or "pending")
        if pending:
            self._take_inbox()  # what they set off (a hang-up's end, say) is seen in this flush
            self._kick()
        return len(pending)

    def _write_command_results(self, session: Session) -> None:
        """In the caller's transaction: the results to mark; put back for the next one if it fails."""
        results, self._command_results = self._command_results, []
        if not results:
            return
        store.take_commands(session, results, self.worker, self.ctx.clock.now())
        h = hooks(session)
        h.committed.append(lambda _s: self._results_committed(results))
        h.lost.append(lambda _s: self._results_lost(results))
        for command_id, _ in results:  # whoever waits for a result hears of it with her presence
            nurse_id = self._command_nurse.get(command_id)
            if nurse_id is not None:
                self.bus.notify_in(session, PRESENCE, str(nurse_id))

    def _results_committed(self, results: list[tuple[int, str]]) -> None:
        for command_id, _ in results:
            self._taking.discard(command_id)
            self._command_nurse.pop(command_id, None)

    def _results_lost(self, results: list[tuple[int, str]]) -> None:
        """Its transaction failed: marked with the next one."""
        self._command_results[:0] = results

    def _apply_command(self, c: store.PendingCommand) -> str | None:
        nurse_id = c.nurse_id
        if nurse_id not in self.nurses and not self._adopt(nurse_id):
            raise Refused("not an active nurse")
        if c.kind != "inbound" and self.on_command is not None:
            self.on_command(nurse_id)
        status = self.presence.get(nurse_id)
        if c.kind == "ready":
            if status == NurseStatus.ready:
                return "ok"
            if status in (NurseStatus.offline, NurseStatus.paused):
                self.nurse_ready(nurse_id)
                return "ok"
            if nurse_id in self.presence.leaving or nurse_id in self.presence.pausing:
                self.presence.leaving.discard(nurse_id)  # ready again once her call is over
                self.presence.pausing.pop(nurse_id, None)
                return "ok"
            raise Refused("on a call")
        if c.kind == "pause":
            reason = str(c.payload.get("reason") or "")
            if reason not in self.ctx.policy.web.pause_reasons:
                raise Refused(f"unknown pause reason {reason[:32]!r}")
            self.nurse_pause(nurse_id, reason)
            return "ok"
        if c.kind == "offline":
            self.nurse_offline(nurse_id)
            return "ok"
        if c.kind == "hangup":
            call = self._her_call(nurse_id)
            if call is None or call.state not in (CallState.dialing, CallState.connected):
                raise Refused("no call to hang up")
            self.hangup(nurse_id)
            return "ok"
        if c.kind == "outcome":
            return self._outcome_command(c)
        if c.kind == "inbound":
            return self._inbound_command(c)
        raise Refused(f"unknown command {c.kind[:32]!r}")

    def _adopt(self, nurse_id: int) -> bool:
        """A nurse of this share added since the dialer started (her account, her first command)."""
        with self.ctx.sessions() as s:
            info = next((n for n in cstore.nurses(s) if n.id == nurse_id), None)
        if info is None:
            return False
        self.nurse_info[nurse_id] = info
        self.nurses[nurse_id] = NurseProfile(info.id, info.level, info.skills)
        return True

    def _her_call(self, nurse_id: int) -> LiveCall | None:
        attempt_id = self.call_of_nurse.get(nurse_id)
        return None if attempt_id is None else self.calls.get(attempt_id)

    # ------------------------------------------------------------ outcomes

    def _outcome_command(self, c: store.PendingCommand) -> str | None:
        p = c.payload
        nurse_id = c.nurse_id
        try:
            attempt_id = int(p["attempt_id"])
            code = OutcomeCode(p["code"])
            callback_at = _datetime(p.get("callback_at"))
            callback_nurse_id = None if p.get("callback_nurse_id") is None else int(p["callback_nurse_id"])
            until = _date(p.get("hospitalised_until"))
        except (KeyError, ValueError, TypeError) as exc:
            raise Refused(f"malformed outcome ({type(exc).__name__})") from None
        call = self._her_call(nurse_id)
        if call is None or call.attempt_id != attempt_id:
            raise Refused("not her call")
        if call.state not in (CallState.connected, CallState.wrap_up):
            raise Refused("the call was not answered")
        if nurse_id in self._outcome_commands or any(n == nurse_id for n, _ in self._outcomes):
            raise Refused("an outcome is already recorded for this call")
        if code == OutcomeCode.callback_requested and (
            callback_at is None or callback_at <= self.ctx.clock.now()
        ):
            raise Refused("a callback needs a time to come")
        if callback_nurse_id is not None and callback_nurse_id != nurse_id:
            if code != OutcomeCode.callback_requested:
                raise Refused("a nurse is named only for a callback")
            other = self.nurse_info.get(callback_nurse_id)
            task = call.task
            if other is None or not may_take(
                other.level, other.skills, task.tier, task.skills, self.ctx.policy
            ):
                raise Refused("that nurse may not call this patient")
        self.submit_outcome(
            nurse_id,
            code,
            callback_at=callback_at,
            note=str(p.get("note") or ""),
            message_body=p.get("message") or None,
            callback_nurse_id=callback_nurse_id,
            until=until,
        )
        self._outcome_commands[nurse_id] = c.id
        return None  # answered in the outcome's own transaction

    def _outcomes_stored(self, session: Session, nurse_ids: list[int]) -> None:
        """In the outcomes' transaction: their commands answered "ok" (forgotten once it commits)."""
        for n in nurse_ids:
            command_id = self._outcome_commands.get(n)
            if command_id is not None:
                self._command_results.append((command_id, "ok"))
        self._write_command_results(session)

    def _outcome_refused(self, nurse_id: int, why: str) -> bool:
        """Her console's outcome could not be stored: refused, she stays in wrap-up and may give it
        again. False when it came from no console (a simulated nurse): the caller raises."""
        command_id = self._outcome_commands.pop(nurse_id, None)
        if command_id is None:
            return False
        self._outcomes = [(n, e) for n, e in self._outcomes if n != nurse_id]
        self._command_results.append((command_id, f"refused: could not be stored ({why})"))
        return True


def _datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return at


def _date(value: Any) -> date | None:
    return None if value in (None, "") else date.fromisoformat(str(value))


def new_desk_state() -> dict[str, Any]:
    """The desk's fields (and the inbound desk's), for the dialer's constructor."""
    return {
        "_outcome_commands": {},
        "_command_results": [],
        "_taking": set(),
        "_command_nurse": {},
        "_commands_due": True,  # a restarted owner takes what waited for it
        "_callers": [],
        "_callers_read": 0.0,
        "_holding": False,
        "_subscription": None,
        "on_inbound_hangup": None,
        "on_command": None,
    }
