"""The dialing loop: progressive dialing, one call per ready nurse.

Event-driven so it runs the same on the virtual clock (simulation) and on the
wall clock (real backends): the owner calls `tick()` periodically and feeds
nurse actions and backend events in. Every attempt is stored before it is
dialed and every result before the nurse moves on (invariant 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from campaign import calendar as cal
from campaign import services, store
from campaign.errors import BackendError, ClaimLost
from campaign.model import pathologies_from_text
from campaign.policy import Tier
from campaign.states import AttemptResult, OutcomeCode, TaskKind
from dialer.backends.base import DialRequest, TelephonyBackend
from dialer.events import CallEvent, CallEventKind
from dialer.presence import NurseStatus, PresenceBoard
from dialer.routing import NurseProfile, QueuedTask, TaskQueue

log = structlog.get_logger("carecall.dialer")


@dataclass(slots=True)
class LiveCall:
    call_id: str
    attempt_id: int
    task: QueuedTask
    nurse_id: int
    kind: TaskKind
    number: str
    answered: bool = False


ConnectedHook = Callable[[int, LiveCall], None]


class Dialer:
    def __init__(
        self,
        ctx: services.Context,
        backend: TelephonyBackend,
        worker: str,
        voicemail_text: str | None,
        on_connected: ConnectedHook | None = None,
        lookahead: timedelta = timedelta(minutes=30),
    ) -> None:
        self.ctx = ctx
        self.policy = ctx.policy
        self.backend = backend
        self.worker = worker
        self.voicemail_text = voicemail_text if ctx.policy.retry.leave_voicemail else None
        self.on_connected = on_connected
        self.lookahead = lookahead
        self.presence = PresenceBoard()
        self.queue = TaskQueue(ctx.policy, on_shift=self._available_until)
        self.nurse_info: dict[int, store.NurseInfo] = {}
        self.nurses: dict[int, NurseProfile] = {}
        self.calls: dict[str, LiveCall] = {}
        self.call_of_nurse: dict[int, str] = {}
        self.patients_in_call: set[int] = set()
        self._dispatched_version = -1
        self.stats = {"claims": 0, "lost_claims": 0, "refused_by_rules": 0, "dials": 0}

    # ------------------------------------------------------------ lifecycle

    def start(self, nurse_ids: set[int] | None = None) -> None:
        """Reconcile this worker's calls left in flight, then take its nurses (all by default)."""
        services.reconcile_in_flight(self.ctx, self.worker)
        with self.ctx.sessions() as s:
            for n in store.nurses(s):
                self.nurse_info[n.id] = n
                if nurse_ids is None or n.id in nurse_ids:
                    self.nurses[n.id] = NurseProfile(n.id, n.level, n.skills)
        self.backend.connect(self.on_event)
        self.refresh()

    def refresh(self) -> int:
        """Load newly due tasks from the database into the queue."""
        now = self.ctx.clock.now()
        with self.ctx.sessions() as s:
            rows = store.dialable_candidates(s, now + self.lookahead, exclude=set(self.queue.items))
        live_tasks = {c.task.task_id for c in self.calls.values()}
        added = 0
        for r in rows:
            if r.task_id in live_tasks:
                continue
            task = QueuedTask(
                task_id=r.task_id,
                patient_id=r.id,
                tier=Tier(r.task_tier),
                priority=r.priority,
                not_before=r.not_before,
                place=cal.Place(r.departement, r.timezone, r.preferred_start, r.preferred_end),
                skills=services.required_skills(
                    pathologies_from_text(r.pathologies), r.theme_code, self.policy
                ),
                referent_id=r.referent_nurse_id if r.kind != TaskKind.callback else None,
                assigned_id=r.assigned_nurse_id if r.kind == TaskKind.callback else None,
            )
            self.queue.add(task)
            added += 1
        return added

    # ------------------------------------------------------------ nurses

    def _available_until(self, nurse_id: int, until: datetime) -> bool:
        """On shift now, or her shift starts before `until` (back from a break, say)."""
        if self.presence.on_shift(nurse_id):
            return True
        info = self.nurse_info.get(nurse_id)
        if info is None:
            return False
        now = self.ctx.clock.now()
        day = cal.local_time_of(now, info.timezone).date()
        if cal.is_holiday(day, "75"):
            return False
        for weekday, start, _end in info.shifts:
            if weekday == day.weekday() and now <= cal.at_local(day, start, info.timezone) <= until:
                return True
        return False

    def nurse_ready(self, nurse_id: int) -> None:
        self.presence.set(nurse_id, NurseStatus.ready)
        self.presence.leaving.discard(nurse_id)
        self._offer(nurse_id)

    def nurse_offline(self, nurse_id: int) -> None:
        """End of shift: at once if idle, after the current call and its outcome otherwise.

        A nurse in wrap-up still owes the outcome of her call: she leaves once it
        is recorded, so a new shift can never hand her a second call meanwhile.
        """
        status = self.presence.get(nurse_id)
        if status in (NurseStatus.ready, NurseStatus.paused):
            self.presence.set(nurse_id, NurseStatus.offline)
        elif status != NurseStatus.offline:
            self.presence.leaving.add(nurse_id)

    def nurse_wrapped_up(self, nurse_id: int) -> None:
        if nurse_id in self.presence.leaving:
            self.presence.leaving.discard(nurse_id)
            self.presence.set(nurse_id, NurseStatus.offline)
        else:
            self.nurse_ready(nurse_id)

    # ------------------------------------------------------------ dispatch

    def tick(self) -> None:
        self.queue.advance(self.ctx.clock.now())
        if self.queue.version != self._dispatched_version:
            self._dispatched_version = self.queue.version
            for nurse_id in self.presence.ready():
                self._offer(nurse_id)

    def _offer(self, nurse_id: int) -> None:
        profile = self.nurses.get(nurse_id)
        if profile is None:
            return
        now = self.ctx.clock.now()
        hours = self.policy.calling_hours
        # one call at a time per nurse, whatever her presence says
        while self.presence.get(nurse_id) == NurseStatus.ready and nurse_id not in self.call_of_nurse:
            task = self.queue.pop_for(profile)
            if task is None:
                return
            if task.patient_id in self.patients_in_call:
                self.queue.requeue(task, now + timedelta(minutes=self.policy.retry.min_gap_minutes))
                continue
            if not cal.is_callable_at(now, task.place, hours):
                nxt = cal.next_open(now, task.place, hours)
                if nxt is not None:
                    self.queue.requeue(task, nxt[0])
                continue
            self._claim_and_dial(nurse_id, task)

    def _claim_and_dial(self, nurse_id: int, task: QueuedTask) -> None:
        result = services.claim_and_start(self.ctx, task.task_id, nurse_id, self.worker)
        if result is None:
            self.stats["lost_claims"] += 1
            return
        if isinstance(result, services.NotDialable):
            self.stats["refused_by_rules"] += 1
            if result.decision.retry_at is not None:
                self.queue.requeue(task, result.decision.retry_at)
            return
        self.stats["claims"] += 1
        self.presence.set(nurse_id, NurseStatus.reserved)
        request = DialRequest(
            attempt_id=result.attempt_id,
            number=result.number,
            nurse_id=nurse_id,
            ring_timeout_seconds=self.policy.retry.ring_timeout_seconds,
            voicemail_text=self.voicemail_text,
        )
        try:
            call_id = self.backend.dial(request)
        except BackendError:
            log.warning("dial failed", attempt=result.attempt_id)
            decision = services.finish_unanswered(self.ctx, result.attempt_id, AttemptResult.failed)
            self._after_unanswered(task, decision.next_at)
            self.presence.set(nurse_id, NurseStatus.ready)
            return
        self.stats["dials"] += 1
        log.debug(
            "dialing", attempt=result.attempt_id, task=task.task_id, nurse=nurse_id, tier=task.tier.value
        )
        call = LiveCall(call_id, result.attempt_id, task, nurse_id, result.kind, result.number)
        self.calls[call_id] = call
        self.call_of_nurse[nurse_id] = call_id
        self.patients_in_call.add(task.patient_id)

    def _after_unanswered(self, task: QueuedTask, next_at: datetime | None) -> None:
        if next_at is not None:
            self.queue.requeue(task, next_at)
        else:
            self.queue.discard(task.task_id)

    # ------------------------------------------------------------ backend events

    def on_event(self, event: CallEvent) -> None:
        call = self.calls.get(event.call_id)
        if call is None:
            log.warning("event for an unknown call", call=event.call_id, kind=event.kind.value)
            return
        if event.kind == CallEventKind.answered:
            try:
                services.mark_answered(self.ctx, call.attempt_id)
            except ClaimLost:
                # our lease ran out and the call was reconciled: it may be redialed elsewhere, end it
                log.warning("call reconciled while ringing; hanging up", attempt=call.attempt_id)
                self.backend.hangup(call.call_id)
                return
            call.answered = True
            self.presence.set(call.nurse_id, NurseStatus.on_call)
            if self.on_connected is not None:
                self.on_connected(call.nurse_id, call)
            return
        # ended
        self.patients_in_call.discard(call.task.patient_id)
        if call.answered:
            # the nurse now records the outcome; the call stays known until she does
            self.presence.set(call.nurse_id, NurseStatus.wrap_up)
            return
        self.calls.pop(event.call_id, None)
        self.call_of_nurse.pop(call.nurse_id, None)
        result = event.result or AttemptResult.failed
        try:
            decision = services.finish_unanswered(self.ctx, call.attempt_id, result, event.voicemail_left)
        except ClaimLost:
            self.queue.discard(call.task.task_id)
            self._nurse_free(call.nurse_id)
            return
        log.debug(
            "attempt ended",
            attempt=call.attempt_id,
            task=call.task.task_id,
            result=result.value,
            closed=decision.close.value if decision.close else None,
        )
        self._after_unanswered(call.task, decision.next_at)
        self._nurse_free(call.nurse_id)

    def _nurse_free(self, nurse_id: int) -> None:
        """After an unanswered call: ready for the next one, or off if her shift ended meanwhile."""
        self.presence.set(nurse_id, NurseStatus.ready)
        if nurse_id in self.presence.leaving:
            self.nurse_offline(nurse_id)
        else:
            self._offer(nurse_id)

    def heartbeat(self) -> None:
        """Renew the leases of this worker's calls, so no one reconciles a live call."""
        services.renew_leases(self.ctx, self.worker)

    def hangup(self, nurse_id: int) -> None:
        call_id = self.call_of_nurse.get(nurse_id)
        if call_id is not None:
            self.backend.hangup(call_id)

    def record_outcome(
        self,
        nurse_id: int,
        code: OutcomeCode,
        *,
        callback_at: datetime | None = None,
        note: str = "",
        message_body: str | None = None,
    ) -> services.OutcomeApplied:
        """The nurse's outcome for her last answered call, stored before she moves on."""
        call_id = self.call_of_nurse.pop(nurse_id)
        call = self.calls.pop(call_id)
        applied = services.record_outcome(
            self.ctx,
            call.attempt_id,
            code,
            nurse_id,
            callback_at=callback_at,
            note=note,
            message_body=message_body,
        )
        nc = applied.next_contact
        task = call.task
        log.info(
            "outcome recorded",
            attempt=call.attempt_id,
            task=task.task_id,
            patient=task.patient_id,
            nurse=nurse_id,
            outcome=code.value,
            next_contact=nc.next_contact_on.isoformat() if nc.next_contact_on else None,
        )
        if nc.retry_at is not None:
            self.queue.requeue(task, nc.retry_at)
        if applied.callback_task_id is not None and nc.callback_at is not None:
            cb = QueuedTask(
                applied.callback_task_id,
                task.patient_id,
                task.tier,
                100,
                nc.callback_at,
                task.place,
                task.skills,
                None,
                nurse_id,
            )
            self.queue.add(cb)
        return applied
