"""A nurse's day as her dialer sees it: ready, paused, offline, in wrap-up, and the row stored for her.

What a nurse (a simulated one, her console, a shift) asks is applied at
once when she is idle and after her call otherwise: a nurse leaving or
pausing in the middle of a call keeps it, records its outcome, then goes.
Her presence row (dialer/staff/writer.py stores it) is read off the board
and her current call; a transaction that ends her call carries the row she
will have after it (`_after_call`).

`NurseStates` is a part of `Dialer` (dialer/loop.py), split off by seam: the
dialer hands calls out to the nurses this part keeps track of.
"""

from __future__ import annotations

import time as wall
from datetime import date, datetime
from typing import TYPE_CHECKING

from campaign import services, store
from campaign.policy import Policy, Tier
from campaign.states import OutcomeCode
from dialer.calls import LiveCall
from dialer.legs import NurseLegs
from dialer.presence import NurseStatus, PresenceBoard, shift_starts_between
from dialer.routing import NurseProfile, dispatch_order, may_take
from dialer.staff.store import PresenceRow


class NurseStates:
    # what the dialer holds (dialer/loop.py sets them)
    ctx: services.Context
    policy: Policy
    presence: PresenceBoard
    nurse_info: dict[int, store.NurseInfo]
    nurses: dict[int, NurseProfile]
    calls: dict[int, LiveCall]
    call_of_nurse: dict[int, int]
    legs: NurseLegs
    _outcomes: list[tuple[int, services.OutcomeEntry]]
    _free_since: dict[int, float]
    _dispatch_due: bool

    if TYPE_CHECKING:

        def _kick(self) -> None: ...

    def _may_take(self, nurse_id: int, tier: Tier, skills: frozenset[str]) -> bool:
        """An active nurse (of any process) whose level and skills allow this call."""
        info = self.nurse_info.get(nurse_id)
        return info is not None and may_take(info.level, info.skills, tier, skills, self.policy)

    def _free_to_dial(self, ready: list[int], held: set[int]) -> list[int]:
        """Of the ready nurses, those a call may be dialed for now, in the order they choose."""
        return [
            n
            for n in dispatch_order(ready, self.nurses, self._free_since, self.policy)
            # a patient is dialed only once her phone waits in her conference
            if n in self.nurses
            and n not in self.call_of_nurse
            and n not in held
            and self.legs.can_dial_for(n)
        ]

    def _available_until(self, nurse_id: int, until: datetime) -> bool:
        """On shift now, or her shift starts before `until` (back from a break, say)."""
        if self.presence.on_shift(nurse_id):
            return True
        info = self.nurse_info.get(nurse_id)
        now = self.ctx.clock.now()
        return info is not None and shift_starts_between(info.shifts, info.timezone, now, until)

    def _presence_row(self, nurse_id: int) -> PresenceRow:
        """Her row as this dialer knows her now (dialer/staff/writer.py stores it)."""
        board = self.presence
        call = self.calls.get(self.call_of_nurse.get(nurse_id, -1))
        return PresenceRow(
            nurse_id,
            board.get(nurse_id),
            board.reason.get(nurse_id),
            board.since.get(nurse_id) or self.ctx.clock.now(),
            call.attempt_id if call else None,
            call.task.patient_id if call else None,
            call.call_state() if call else None,
        )

    def nurse_ready(self, nurse_id: int) -> None:
        self.presence.set(nurse_id, NurseStatus.ready)
        self.presence.leaving.discard(nurse_id)
        self.presence.pausing.pop(nurse_id, None)
        self.legs.bring(nurse_id)
        self._free(nurse_id)

    def nurse_offline(self, nurse_id: int) -> None:
        """End of shift: at once if idle, after the current call and its outcome otherwise.

        A nurse in wrap-up still owes the outcome of her call: she leaves once it
        is recorded, so a new shift can never hand her a second call meanwhile.
        """
        status = self.presence.get(nurse_id)
        self.presence.pausing.pop(nurse_id, None)
        if status in (NurseStatus.ready, NurseStatus.paused):
            self.presence.set(nurse_id, NurseStatus.offline)
            self._free_since.pop(nurse_id, None)
            self.legs.release(nurse_id)
        elif status != NurseStatus.offline:
            self.presence.leaving.add(nurse_id)

    def nurse_pause(self, nurse_id: int, reason: str) -> None:
        """A break (reason: a key of config [web.pause_reasons]): at once if idle, after her call otherwise.

        Her phone stays in her conference: a pause is short, and she comes back ready at once.
        """
        status = self.presence.get(nurse_id)
        if status == NurseStatus.paused:
            self.presence.repause(nurse_id, reason)
        elif status in (NurseStatus.offline, NurseStatus.ready):
            self.presence.set(nurse_id, NurseStatus.paused, reason=reason)
            self._free_since.pop(nurse_id, None)
        else:
            self.presence.leaving.discard(nurse_id)
            self.presence.pausing[nurse_id] = reason

    def nurse_wrapped_up(self, nurse_id: int) -> None:
        if nurse_id in self.presence.leaving:
            self.presence.leaving.discard(nurse_id)
            self.presence.set(nurse_id, NurseStatus.offline)
            self.legs.release(nurse_id)
        elif nurse_id in self.presence.pausing:
            self.presence.set(nurse_id, NurseStatus.paused, reason=self.presence.pausing.pop(nurse_id))
        else:
            self.nurse_ready(nurse_id)

    def _after_call(self, nurse_id: int, now: datetime) -> PresenceRow:
        """The row she will have once her call is done with (`nurse_wrapped_up`), for its transaction."""
        board = self.presence
        if nurse_id in board.leaving:
            return PresenceRow(nurse_id, NurseStatus.offline, None, now, None, None, None)
        if nurse_id in board.pausing:
            return PresenceRow(nurse_id, NurseStatus.paused, board.pausing[nurse_id], now, None, None, None)
        return PresenceRow(nurse_id, NurseStatus.ready, None, now, None, None, None)

    def _free(self, nurse_id: int) -> None:
        """Ready for a call: one is looked for at the next flush."""
        self._free_since.setdefault(nurse_id, wall.perf_counter())
        self._dispatch_due = True
        self._kick()

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
    ) -> None:
        """The nurse's outcome for her last answered call; she moves on once it is stored.

        `callback_nurse_id`: a callback promised for another qualified nurse; `until`: the last day
        of a hospital stay (OutcomeCode.hospitalised).
        """
        call = self.calls[self.call_of_nurse[nurse_id]]
        entry = services.OutcomeEntry(
            call.attempt_id, code, nurse_id, callback_at, note, message_body, callback_nurse_id, until
        )
        self._outcomes.append((nurse_id, entry))
        self._kick()
