"""The owner's side of the inbound line: a caller given to a nurse, and the callers who hold nurses.

An inbound command (dialer/staff/commands.py `inbound`) gives a ready nurse
with no call a caller the inbound line has identified: the contact is
stored as an answered attempt of an incoming task (campaign's
`start_incoming`) and she talks at once. While a caller waits on the line,
no nurse qualified for them gets an outbound call: inbound comes first.

`InboundDesk` is a part of `Dialer` (dialer/loop.py), split off by seam; the
commands themselves are taken by `NurseDesk` (dialer/staff/desk.py).
"""

from __future__ import annotations

import time as wall
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlmodel import Session

from campaign import calendar as cal
from campaign import services
from campaign.errors import NotFound, PatientInCall
from campaign.model import pathologies_from_text
from campaign.policy import Tier
from campaign.services import incoming
from campaign.states import TaskKind
from dialer.calls import CallState, LiveCall
from dialer.events import CallEvent, CallEventKind, Event
from dialer.inbox import Inbox
from dialer.lines.tracker import LineTracker
from dialer.presence import NurseStatus, PresenceBoard
from dialer.routing import NurseProfile, QueuedTask, may_take
from dialer.staff import store
from dialer.staff.desk import Refused

CALLERS_REAL_SECONDS = 0.5  # how often a dialer reads which inbound callers wait (or when told)


class InboundDesk:
    # what the dialer holds (dialer/loop.py sets them)
    ctx: services.Context
    worker: str
    presence: PresenceBoard
    nurses: dict[int, NurseProfile]
    calls: dict[int, LiveCall]
    call_of_nurse: dict[int, int]
    patients_in_call: set[int]
    inbox: Inbox[Event]
    lines: LineTracker
    on_connected: Callable[[int, LiveCall], None] | None
    on_inbound_hangup: Callable[[int], None] | None
    _command_results: list[tuple[int, str]]
    _callers: list[store.WaitingCaller]
    _callers_read: float
    _holding: bool  # nurses were held for a caller: look again at the next tick
    _dispatch_due: bool

    if TYPE_CHECKING:

        def _ride_along(self, session: Session) -> None: ...
        def _kick(self) -> None: ...

    # ------------------------------------------------------------ inbound calls

    def _inbound_command(self, c: store.PendingCommand) -> str:
        nurse_id = c.nurse_id
        try:
            patient_id = int(c.payload["patient_id"])
        except (KeyError, ValueError, TypeError):
            raise Refused("malformed inbound call") from None
        if self.presence.get(nurse_id) != NurseStatus.ready or nurse_id in self.call_of_nurse:
            raise Refused("not ready")
        if nurse_id in self.presence.leaving or nurse_id in self.presence.pausing:
            raise Refused("leaving")
        try:
            task_id, attempt_id = incoming.start_incoming(self.ctx, patient_id, nurse_id, self.worker)
        except PatientInCall:
            raise Refused("the patient is on another call") from None
        except NotFound:
            raise Refused("no such patient") from None
        with self.ctx.sessions() as s:
            row = store.task_routing(s, task_id)
        place = cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end)
        tier = Tier(row.task_tier)
        task = QueuedTask(
            task_id=task_id,
            patient_id=patient_id,
            tier=tier,
            priority=row.priority,
            not_before=row.not_before,
            place=place,
            skills=services.required_skills(
                pathologies_from_text(row.pathologies), row.theme_code, self.ctx.policy
            ),
            referent_id=row.referent_nurse_id,
        )
        now = self.ctx.clock.now()
        call = LiveCall(attempt_id, task, nurse_id, TaskKind(row.kind), "", inbound=True)
        call.line.accept(CallEvent(attempt_id, CallEventKind.connected, now))
        call.move(CallState.connected)
        self.calls[attempt_id] = call
        self.call_of_nurse[nurse_id] = attempt_id
        self.patients_in_call.add(patient_id)
        self.presence.set(nurse_id, NurseStatus.reserved, at=now)
        self.presence.set(nurse_id, NurseStatus.on_call, at=now)
        with self.ctx.sessions() as s:
            self.lines.opened(s, [(attempt_id, nurse_id)], now)  # its end, heard by any process, finds us
            self._command_results.append((c.id, f"ok:{attempt_id}"))
            self._ride_along(s)
            s.commit()
        if self.on_connected is not None:
            self.on_connected(nurse_id, call)
        return f"ok:{attempt_id}"

    def _hang_up_inbound(self, call: LiveCall) -> None:
        """The nurse ends an inbound call: through the inbound line's hook, or at once (simulated)."""
        if self.on_inbound_hangup is not None:
            self.on_inbound_hangup(call.attempt_id)
        else:
            self.inbox.put(CallEvent(call.attempt_id, CallEventKind.ended, self.ctx.clock.now(), 16))

    # ------------------------------------------------------------ inbound precedence

    def callers_changed(self) -> None:
        """From the owner's thread: an inbound caller started or stopped waiting; read them again."""
        self._callers_read = 0.0
        self._dispatch_due = True
        self._kick()

    def held_for_callers(self, ready: list[int]) -> set[int]:
        """Of these ready nurses, those qualified for a caller waiting on the inbound line."""
        if wall.perf_counter() - self._callers_read >= CALLERS_REAL_SECONDS:
            with self.ctx.sessions() as s:
                self._callers = store.waiting_callers(s)
            self._callers_read = wall.perf_counter()
        self._holding = False
        if not self._callers:
            return set()
        policy = self.ctx.policy
        held: set[int] = set()
        for caller in self._callers:
            if caller.tier is None:
                self._holding = bool(ready)
                return set(ready)  # not identified yet: any nurse may take them
            tier = Tier(caller.tier)
            skills = services.required_skills(list(caller.pathologies), None, policy)
            for n in ready:
                profile = self.nurses.get(n)
                if profile is not None and may_take(profile.level, profile.skills, tier, skills, policy):
                    held.add(n)
        self._holding = bool(held)
        return held
