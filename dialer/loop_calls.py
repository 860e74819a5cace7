"""What happens to a call once dialed: its line's events, its end, the nurse's outcome.

Backend events arrive from any thread (an AMI reader, a webhook handler)
through the dialer's thread-safe inbox, keyed by attempt. Each flush takes
them all: a call's line moves forward in memory (a repeated or late event
changes nothing, dialer/lines/tracker.py), an answered call is stored as
such and its nurse talks, an ended call's result is read from its line's
furthest state and cause (dialer/causes.py) and stored with its retry, and
the nurses' outcomes are stored before they move on. The line records ride
along in those transactions.

`CallEnds` is a part of `Dialer` (dialer/loop.py), split off by seam: the
dialer hands calls out, this part sees them through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlmodel import Session

from campaign import services
from dialer import causes
from dialer.backends.base import TelephonyBackend
from dialer.calls import CallState, LiveCall
from dialer.events import CallEvent, CallEventKind, Event, NurseCommandsDue, NurseLegEvent
from dialer.inbox import Inbox
from dialer.legs import NurseLegs
from dialer.lines.tracker import LineTracker
from dialer.presence import NurseStatus, PresenceBoard
from dialer.routing import QueuedTask, TaskQueue, lead_for
from dialer.staff.store import PresenceRow

log = structlog.get_logger("carecall.dialer")


class CallEnds:
    # what the dialer holds (dialer/loop.py sets them)
    ctx: services.Context
    backend: TelephonyBackend
    presence: PresenceBoard
    queue: TaskQueue
    calls: dict[int, LiveCall]
    call_of_nurse: dict[int, int]
    patients_in_call: set[int]
    inbox: Inbox[Event]
    lines: LineTracker
    legs: NurseLegs
    stats: dict[str, int]
    deferred: bool
    on_connected: Callable[[int, LiveCall], None] | None
    _events: list[CallEvent]
    _outcomes: list[tuple[int, services.OutcomeEntry]]
    _owner: int
    _commands_due: bool
    _outcome_commands: dict[int, int]

    if TYPE_CHECKING:

        def flush(self) -> None: ...
        def nurse_offline(self, nurse_id: int) -> None: ...
        def nurse_wrapped_up(self, nurse_id: int) -> None: ...
        def _free(self, nurse_id: int) -> None: ...
        def _retry(self, task: QueuedTask, at: datetime | None) -> None: ...
        def _ride_along(self, session: Session, predicted: dict[int, PresenceRow] | None = None) -> None: ...
        def _after_call(self, nurse_id: int, now: datetime) -> PresenceRow: ...
        def _outcomes_stored(self, session: Session, nurse_ids: list[int]) -> None: ...
        def _outcome_refused(self, nurse_id: int, why: str) -> bool: ...

    # ------------------------------------------------------------ line events

    def on_event(self, event: Event) -> None:
        """From any thread: what a line did. Taken by the next flush (at once when not deferred)."""
        self.inbox.put(event)
        if not self.deferred and threading.get_ident() == self._owner:
            self.flush()

    def _take_inbox(self) -> None:
        for e in self.inbox.take_all():
            if isinstance(e, NurseCommandsDue):
                self._commands_due = True
            elif isinstance(e, NurseLegEvent):
                if self.legs.on_event(e, ready=self.presence.get(e.nurse_id) == NurseStatus.ready):
                    self._free(e.nurse_id)
            else:
                self._events.append(e)

    def _apply_events(self) -> None:
        events, self._events = self._events, []
        connected: dict[int, LiveCall] = {}  # by attempt, in the order they were bridged
        ended: list[LiveCall] = []
        for e in events:
            call = self.calls.get(e.attempt_id)
            if call is None:
                # not a call of this process (any more): reconciled, or a stray from the switch
                self.stats["stray_events"] += 1
                log.warning("event for an unknown call", attempt=e.attempt_id, kind=e.kind.value)
                continue
            if not call.line.accept(e):
                continue  # repeated, or later than what the line already said
            self.lines.moved(call.attempt_id, call.line)
            self.presence.touch(call.nurse_id)  # her console shows how far her call got
            if e.kind == CallEventKind.connected and call.state == CallState.dialing:
                connected[call.attempt_id] = call
            elif e.kind == CallEventKind.ended:
                self.patients_in_call.discard(call.task.patient_id)
                ended.append(call)
        # every answer of the batch in one transaction, before the ends: a call answered and over
        # in one breath is a conversation all the same
        self._connect(list(connected.values()))
        unanswered: list[LiveCall] = []
        for call in ended:
            if call.state == CallState.connected:
                # the nurse now records the outcome; the call stays known until she does
                call.move(CallState.wrap_up)
                self.presence.set(call.nurse_id, NurseStatus.wrap_up)
                continue
            call.move(CallState.ended)
            self.calls.pop(call.attempt_id, None)
            self.call_of_nurse.pop(call.nurse_id, None)
            unanswered.append(call)
        if unanswered:
            self._finish_unanswered(unanswered)

    def _connect(self, connected: list[LiveCall]) -> None:
        """Patients bridged to their nurses: stored as answered; the nurse talks."""
        if not connected:
            return
        now = self.ctx.clock.now()
        talking = {
            c.nurse_id: PresenceRow(
                c.nurse_id, NurseStatus.on_call, None, now, c.attempt_id, c.task.patient_id, "connected"
            )
            for c in connected
        }
        stored = services.mark_answered_many(
            self.ctx, [c.attempt_id for c in connected], also=lambda s: self._ride_along(s, talking)
        )
        for call in connected:
            if call.attempt_id not in stored:
                # our lease ran out and the call was reconciled: it may be redialed elsewhere, end it
                log.warning("call reconciled while ringing; hanging up", attempt=call.attempt_id)
                self.backend.hangup(call.attempt_id)
                continue
            call.move(CallState.connected)
            self.presence.set(call.nurse_id, NurseStatus.on_call, at=now)
            if self.on_connected is not None:
                self.on_connected(call.nurse_id, call)

    def _finish_unanswered(self, unanswered: list[LiveCall]) -> None:
        ends = [
            (c.attempt_id, causes.attempt_result(c.line.furthest, c.line.cause), c.line.voicemail_left)
            for c in unanswered
        ]
        now = self.ctx.clock.now()
        free = {c.nurse_id: self._after_call(c.nurse_id, now) for c in unanswered}
        decisions = services.finish_unanswered_many(self.ctx, ends, also=lambda s: self._ride_along(s, free))
        for call, (_, result, _), decision in zip(unanswered, ends, decisions, strict=True):
            if decision is None:  # reconciled meanwhile: its retry was decided there
                self.queue.discard(call.task.task_id)
            else:
                log.debug(
                    "attempt ended",
                    attempt=call.attempt_id,
                    task=call.task.task_id,
                    result=result.value,
                    cause=call.line.cause,
                    closed=decision.close.value if decision.close else None,
                )
                e = decision.estimate
                call.task.lead = lead_for(e.p if e else None, self.ctx.policy)
                self._retry(call.task, decision.next_at)
            self._nurse_free(call.nurse_id)

    def _nurse_free(self, nurse_id: int) -> None:
        """After an unanswered call: ready for the next one, or off if her shift ended meanwhile, or on
        the break she asked for."""
        self.presence.set(nurse_id, NurseStatus.ready)
        if nurse_id in self.presence.leaving:
            self.nurse_offline(nurse_id)
        elif nurse_id in self.presence.pausing:
            self.presence.set(nurse_id, NurseStatus.paused, reason=self.presence.pausing.pop(nurse_id))
        else:
            self.legs.bring(nurse_id)  # her phone back in her conference if it dropped meanwhile
            self._free(nurse_id)

    # ------------------------------------------------------------ outcomes

    def _apply_outcomes(self) -> None:
        # an outcome given before her call's end reached us waits for it (she is not yet in wrap-up)
        pending: list[tuple[int, services.OutcomeEntry]] = []
        waiting: list[tuple[int, services.OutcomeEntry]] = []
        for item in self._outcomes:
            (pending if self.presence.get(item[0]) == NurseStatus.wrap_up else waiting).append(item)
        self._outcomes = waiting
        if not pending:
            return
        entries = [entry for _, entry in pending]
        now = self.ctx.clock.now()
        after = {n: self._after_call(n, now) for n, _ in pending}

        def along(s: Session, nurses: list[int]) -> None:
            self._ride_along(s, {n: after[n] for n in nurses})
            self._outcomes_stored(s, nurses)

        stored: list[tuple[tuple[int, services.OutcomeEntry], services.OutcomeApplied]]
        try:
            applied = services.record_outcomes(
                self.ctx, entries, also=lambda s: along(s, [n for n, _ in pending])
            )
            stored = list(zip(pending, applied, strict=True))
        except Exception:
            self.lines.rolled_back()
            # one bad entry must not cost the others theirs: store them one by one
            stored = []
            for item in pending:
                nurse = item[0]

                def along_one(s: Session, n: int = nurse) -> None:
                    along(s, [n])

                try:
                    one = services.record_outcomes(self.ctx, [item[1]], also=along_one)
                except Exception as exc:
                    self.lines.rolled_back()
                    if not self._outcome_refused(item[0], type(exc).__name__):
                        raise
                    log.exception("outcome refused", attempt=item[1].attempt_id, nurse=item[0])
                    continue
                stored.append((item, one[0]))
        for (nurse_id, entry), result in stored:
            self._outcome_commands.pop(nurse_id, None)
            call = self.calls.pop(self.call_of_nurse.pop(nurse_id))
            call.move(CallState.ended)
            self._after_outcome(nurse_id, call, entry, result)
            self.nurse_wrapped_up(nurse_id)

    def _after_outcome(
        self, nurse_id: int, call: LiveCall, entry: services.OutcomeEntry, applied: services.OutcomeApplied
    ) -> None:
        code = entry.code
        nc = applied.next_contact
        task = call.task
        inbound = call.inbound
        log.info(
            "outcome recorded",
            attempt=call.attempt_id,
            task=task.task_id,
            patient=task.patient_id,
            nurse=nurse_id,
            outcome=code.value,
            next_contact=nc.next_contact_on.isoformat() if nc.next_contact_on else None,
        )
        if nc.retry_at is not None and not inbound:  # the patient's call is never redialed as such
            self._retry(task, nc.retry_at)
        if applied.callback_task_id is not None and nc.callback_at is not None:
            # waiting for the nurse it was promised for (herself, or another qualified nurse)
            promised = entry.promised_to or nurse_id
            self.queue.add(task.callback(applied.callback_task_id, nc.callback_at, promised))
