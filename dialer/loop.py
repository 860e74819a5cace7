"""The dialing loop: progressive dialing, one call per ready nurse.

Event-driven so it runs the same on the virtual clock (simulation) and on the
wall clock (real backends): the owner feeds nurse actions and backend events
in and calls `tick()` periodically. Work is gathered and stored in batches by
`flush()`: the claims of every ready nurse in one transaction, the results of
every call that ended in another, the outcomes nurses recorded in a third.
Every attempt is stored before it is dialed and every result before the nurse
moves on (invariant 3); a nurse whose outcome is not yet stored stays in
wrap-up. With `deferred=False` each input is flushed at once (tests, tools);
a runtime that owns an event loop defers and flushes after each step, so
a busy process pays a few statements per step instead of several per call.

Backend events arrive from any thread (an AMI reader, a webhook handler)
through a thread-safe inbox, keyed by attempt; each flush records them on the
dialer's line table (dialer/lines), where repeated and late events drop out,
and reads an ended call's result from the line's furthest state and cause
(dialer/causes). Dialing never waits for the network: a backend places calls
from its own threads and reports failures as events.

This module is the calls' state machine (claims, dials, call events,
outcomes, presence changes); which tasks the queue holds is dialer/feed.py's.
"""

from __future__ import annotations

import threading
import time as wall
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlmodel import Session

from campaign import calendar as cal
from campaign import services, store
from campaign.errors import BackendError
from campaign.policy import Tier
from campaign.states import OutcomeCode
from dialer import causes, lines
from dialer.backends.base import DialRequest, TelephonyBackend
from dialer.calls import CallState, LiveCall
from dialer.events import CallEvent, CallEventKind, Event, NurseLegEvent
from dialer.feed import TaskFeed
from dialer.inbox import Inbox
from dialer.legs import NurseLegs
from dialer.lines.tracker import LineTracker
from dialer.presence import NurseStatus, PresenceBoard, shift_starts_between
from dialer.routing import NurseProfile, QueuedTask, TaskQueue, may_take

log = structlog.get_logger("carecall.dialer")

ConnectedHook = Callable[[int, LiveCall], None]
# seconds from a nurse being free to her next call being stored (a nurse's wait, for benchmarks)
ClaimWaitHook = Callable[[int, float], None]


FLUSH_ROUNDS = 10  # a flush stops after this many rounds; the rest waits for the next one


class Dialer:
    def __init__(
        self,
        ctx: services.Context,
        backend: TelephonyBackend,
        worker: str,
        voicemail_text: str | None,
        on_connected: ConnectedHook | None = None,
        lookahead: timedelta = timedelta(minutes=30),
        *,
        deferred: bool = False,
        on_claim_wait: ClaimWaitHook | None = None,
        share: tuple[int, int] = (0, 1),
        refresh_page: int = 1_000,
        queue_horizon: int = 50_000,
    ) -> None:
        self.ctx = ctx
        self.policy = ctx.policy
        self.backend = backend
        self.worker = worker
        self.voicemail_text = voicemail_text if ctx.policy.retry.leave_voicemail else None
        self.on_connected = on_connected
        self.lookahead = lookahead
        self.deferred = deferred
        self.on_claim_wait = on_claim_wait
        self.presence = PresenceBoard()
        self.queue = TaskQueue(ctx.policy, on_shift=self._available_until, lookahead=lookahead)
        self.nurse_info: dict[int, store.NurseInfo] = {}
        self.nurses: dict[int, NurseProfile] = {}
        self.calls: dict[int, LiveCall] = {}  # by attempt
        self.call_of_nurse: dict[int, int] = {}  # nurse -> attempt
        self.patients_in_call: set[int] = set()
        self._dispatched_version = -1
        self.inbox: Inbox[Event] = Inbox()
        self.lines = LineTracker(backend.name, worker)
        self.legs = NurseLegs(backend, self.nurse_info)
        self._events: list[CallEvent] = []
        self._outcomes: list[tuple[int, services.OutcomeEntry]] = []
        self._dispatch_due = False
        self._flushing = False
        self._free_since: dict[int, float] = {}
        self._owner = threading.get_ident()  # the thread that flushes; others only put in the inbox
        self.stats = dict.fromkeys(
            ("claims", "lost_claims", "refused_by_rules", "dials", "flushes", "pruned", "stray_events"), 0
        )
        self.feed = TaskFeed(
            ctx,
            self.queue,
            share=share,
            lookahead=lookahead,
            refresh_page=refresh_page,
            queue_horizon=queue_horizon,
            has_nurse=self.nurses.__contains__,
            may_take=self._may_take,
            live_tasks=lambda: {c.task.task_id for c in self.calls.values()},
            stats=self.stats,
        )

    # ------------------------------------------------------------ lifecycle

    def start(self, nurse_ids: set[int] | None = None) -> None:
        """Reconcile this worker's calls left in flight, then take its nurses (all by default).

        Calls a crash left alive on the switch are hung up first, so a patient
        is never left talking to nobody while the attempt is closed.
        """
        self._owner = threading.get_ident()
        self.backend.connect(self.on_event)
        self.reconcile()
        with self.ctx.sessions() as s:
            for n in store.nurses(s):
                self.nurse_info[n.id] = n
                if nurse_ids is None or n.id in nurse_ids:
                    self.nurses[n.id] = NurseProfile(n.id, n.level, n.skills)
        self.refresh()

    def reconcile(self) -> int:
        """This worker's calls left in flight by a crash: hung up on the switch, closed as interrupted."""
        with self.ctx.sessions() as s:
            self._write_lines(s)  # what this process knows of its lines, before it reads them
            orphans = lines.orphan_lines(s, self.worker)
            s.commit()
        for line in orphans:
            if line.call_id:
                log.warning("hanging up a call left by a crash", attempt=line.attempt_id)
                self.backend.hangup_orphan(line.call_id)
        n = services.reconcile_in_flight(self.ctx, self.worker)
        if orphans:
            with self.ctx.sessions() as s:
                lines.end_lines(s, [line.attempt_id for line in orphans], self.ctx.clock.now())
                s.commit()
        return n

    def refresh(self) -> int:
        """A whole sweep of the due tasks in one go (start-up, tools, tests); how many were added."""
        return self.feed.refresh()

    # ------------------------------------------------------------ nurses

    def _may_take(self, nurse_id: int, tier: Tier, skills: frozenset[str]) -> bool:
        """An active nurse (of any process) whose level and skills allow this call."""
        info = self.nurse_info.get(nurse_id)
        return info is not None and may_take(info.level, info.skills, tier, skills, self.policy)

    def _available_until(self, nurse_id: int, until: datetime) -> bool:
        """On shift now, or her shift starts before `until` (back from a break, say)."""
        if self.presence.on_shift(nurse_id):
            return True
        info = self.nurse_info.get(nurse_id)
        now = self.ctx.clock.now()
        return info is not None and shift_starts_between(info.shifts, info.timezone, now, until)

    def nurse_ready(self, nurse_id: int) -> None:
        self.presence.set(nurse_id, NurseStatus.ready)
        self.presence.leaving.discard(nurse_id)
        self.legs.bring(nurse_id)
        self._free(nurse_id)

    def nurse_offline(self, nurse_id: int) -> None:
        """End of shift: at once if idle, after the current call and its outcome otherwise.

        A nurse in wrap-up still owes the outcome of her call: she leaves once it
        is recorded, so a new shift can never hand her a second call meanwhile.
        """
        status = self.presence.get(nurse_id)
        if status in (NurseStatus.ready, NurseStatus.paused):
            self.presence.set(nurse_id, NurseStatus.offline)
            self._free_since.pop(nurse_id, None)
            self.legs.release(nurse_id)
        elif status != NurseStatus.offline:
            self.presence.leaving.add(nurse_id)

    def nurse_wrapped_up(self, nurse_id: int) -> None:
        if nurse_id in self.presence.leaving:
            self.presence.leaving.discard(nurse_id)
            self.presence.set(nurse_id, NurseStatus.offline)
            self.legs.release(nurse_id)
        else:
            self.nurse_ready(nurse_id)

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
    ) -> None:
        """The nurse's outcome for her last answered call; she moves on once it is stored."""
        call = self.calls[self.call_of_nurse[nurse_id]]
        entry = services.OutcomeEntry(call.attempt_id, code, nurse_id, callback_at, note, message_body)
        self._outcomes.append((nurse_id, entry))
        self._kick()

    # ------------------------------------------------------------ batching

    def _kick(self) -> None:
        if not self.deferred:
            self.flush()

    def flush(self) -> None:
        """Store what happened since the last flush, then hand calls to the ready nurses."""
        if self._flushing:
            return  # called back from inside a flush (a hangup, say): the running one takes it
        self._flushing = True
        try:
            for _ in range(FLUSH_ROUNDS):
                self._take_inbox()
                if not (self._events or self._outcomes or self._dispatch_due):
                    break
                self.stats["flushes"] += 1
                # nurses freed by a step get their next call before the next step runs:
                # what a nurse waits for is her claim, not the rest of the batch
                for step in (self._apply_events, self._apply_outcomes):
                    step()
                    if self._dispatch_due:
                        self._dispatch_due = False
                        self._dispatch()
        finally:
            self._flushing = False

    # ------------------------------------------------------------ dispatch

    def tick(self) -> None:
        self.queue.advance(self.ctx.clock.now())
        if self.queue.version != self._dispatched_version:
            self._dispatched_version = self.queue.version
            self._dispatch_due = True
        self._kick()

    def _dispatch(self) -> None:
        """One task for each ready nurse without a call, claimed in one transaction."""
        now = self.ctx.clock.now()
        hours = self.policy.calling_hours
        offers: list[tuple[QueuedTask, int]] = []
        offered_patients: set[int] = set()
        for nurse_id in self.presence.ready():
            profile = self.nurses.get(nurse_id)
            if profile is None or nurse_id in self.call_of_nurse:
                continue
            if not self.legs.can_dial_for(nurse_id):
                continue  # a patient is dialed only once her phone waits in her conference
            while True:
                task = self.queue.pop_for(profile)
                if task is None:
                    break
                if task.patient_id in self.patients_in_call or task.patient_id in offered_patients:
                    self.queue.requeue(task, now + timedelta(minutes=self.policy.retry.min_gap_minutes))
                    continue
                if not cal.is_callable_at(now, task.place, hours):
                    nxt = cal.next_open(now, task.place, hours)
                    if nxt is not None:
                        self.queue.requeue(task, nxt[0])
                    continue
                offers.append((task, nurse_id))
                offered_patients.add(task.patient_id)
                break
        if not offers:
            return
        results = services.claim_and_start_many(
            self.ctx, [(task.task_id, nurse_id) for task, nurse_id in offers], self.worker, self._open_lines
        )
        for (task, nurse_id), result in zip(offers, results, strict=True):
            if result is None:
                self.stats["lost_claims"] += 1
                self._dispatch_due = True  # she is still free: another task at the next round
            elif isinstance(result, services.NotDialable):
                self.stats["refused_by_rules"] += 1
                if result.decision.retry_at is not None:
                    self.queue.requeue(task, result.decision.retry_at)
                self._dispatch_due = True
            else:
                self._dial(nurse_id, task, result)

    def _open_lines(self, session: Session, opened: list[tuple[int, int]]) -> None:
        """In the claim's transaction: a line record per call about to be dialed."""
        self.lines.opened(session, opened, self.ctx.clock.now())

    def _dial(self, nurse_id: int, task: QueuedTask, claimed: services.Claimed) -> None:
        self.stats["claims"] += 1
        free_since = self._free_since.pop(nurse_id, None)
        if self.on_claim_wait is not None and free_since is not None:
            self.on_claim_wait(nurse_id, wall.perf_counter() - free_since)
        self.presence.set(nurse_id, NurseStatus.reserved)
        info = self.nurse_info.get(nurse_id)
        request = DialRequest(
            attempt_id=claimed.attempt_id,
            task_id=task.task_id,
            number=claimed.number,
            nurse_id=nurse_id,
            nurse_endpoint=info.phone_endpoint if info else None,
            ring_timeout_seconds=self.policy.retry.ring_timeout_seconds,
            voicemail_text=self.voicemail_text,
        )
        # known before it is dialed: a backend may report on it from within `dial`
        call = LiveCall(claimed.attempt_id, task, nurse_id, claimed.kind, claimed.number)
        self.calls[claimed.attempt_id] = call
        self.call_of_nurse[nurse_id] = claimed.attempt_id
        self.patients_in_call.add(task.patient_id)
        try:
            self.backend.dial(request)
        except BackendError:
            log.warning("dial failed", attempt=claimed.attempt_id)
            self.on_event(CallEvent(claimed.attempt_id, CallEventKind.ended, self.ctx.clock.now(), 41))
            return
        self.stats["dials"] += 1
        log.debug(
            "dialing", attempt=claimed.attempt_id, task=task.task_id, nurse=nurse_id, tier=task.tier.value
        )

    def _retry(self, task: QueuedTask, at: datetime | None) -> None:
        """A task stored as due again at `at` (None: closed), after a result or an outcome.

        Held until then however far that is, and dialed at its time without
        waiting for a sweep: parked beyond the lookahead, it takes no room from
        the top-ups that bring the tasks due now (`TaskQueue.own_due`).
        """
        if at is not None:
            self.queue.requeue(task, at)
        else:
            self.queue.discard(task.task_id)

    # ------------------------------------------------------------ backend events

    def on_event(self, event: Event) -> None:
        """From any thread: what a line did. Taken by the next flush (at once when not deferred)."""
        self.inbox.put(event)
        if not self.deferred and threading.get_ident() == self._owner:
            self.flush()

    def _take_inbox(self) -> None:
        for e in self.inbox.take_all():
            if isinstance(e, NurseLegEvent):
                if self.legs.on_event(e, ready=self.presence.get(e.nurse_id) == NurseStatus.ready):
                    self._free(e.nurse_id)
            else:
                self._events.append(e)

    def _apply_events(self) -> None:
        events, self._events = self._events, []
        connected: list[LiveCall] = []
        unanswered: list[LiveCall] = []
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
            if e.kind == CallEventKind.connected and call.state == CallState.dialing:
                connected.append(call)
            elif e.kind == CallEventKind.ended:
                self.patients_in_call.discard(call.task.patient_id)
                if call in connected:
                    connected.remove(call)  # answered and over in one breath: a conversation all the same
                    self._connect([call])
                if call.state == CallState.connected:
                    # the nurse now records the outcome; the call stays known until she does
                    call.move(CallState.wrap_up)
                    self.presence.set(call.nurse_id, NurseStatus.wrap_up)
                    continue
                call.move(CallState.ended)
                self.calls.pop(call.attempt_id, None)
                self.call_of_nurse.pop(call.nurse_id, None)
                unanswered.append(call)
        self._connect(connected)
        if unanswered:
            self._finish_unanswered(unanswered)

    def _write_lines(self, session: Session) -> None:
        self.lines.write(session, self.ctx.clock.now())

    def _connect(self, connected: list[LiveCall]) -> None:
        """Patients bridged to their nurses: stored as answered; the nurse talks."""
        if not connected:
            return
        stored = services.mark_answered_many(
            self.ctx, [c.attempt_id for c in connected], also=self._write_lines
        )
        for call in connected:
            if call.attempt_id not in stored:
                # our lease ran out and the call was reconciled: it may be redialed elsewhere, end it
                log.warning("call reconciled while ringing; hanging up", attempt=call.attempt_id)
                self.backend.hangup(call.attempt_id)
                continue
            call.move(CallState.connected)
            self.presence.set(call.nurse_id, NurseStatus.on_call)
            if self.on_connected is not None:
                self.on_connected(call.nurse_id, call)

    def _finish_unanswered(self, unanswered: list[LiveCall]) -> None:
        ends = [
            (c.attempt_id, causes.attempt_result(c.line.furthest, c.line.cause), c.line.voicemail_left)
            for c in unanswered
        ]
        decisions = services.finish_unanswered_many(self.ctx, ends, also=self._write_lines)
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
                self._retry(call.task, decision.next_at)
            self._nurse_free(call.nurse_id)

    def _nurse_free(self, nurse_id: int) -> None:
        """After an unanswered call: ready for the next one, or off if her shift ended meanwhile."""
        self.presence.set(nurse_id, NurseStatus.ready)
        if nurse_id in self.presence.leaving:
            self.nurse_offline(nurse_id)
        else:
            self.legs.bring(nurse_id)  # her phone back in her conference if it dropped meanwhile
            self._free(nurse_id)

    def heartbeat(self) -> None:
        """Renew the leases of this worker's calls, so no one reconciles a live call; write the
        line records no other transaction took along since."""
        services.renew_leases(self.ctx, self.worker, also=self._write_lines)

    def hangup(self, nurse_id: int) -> None:
        attempt_id = self.call_of_nurse.get(nurse_id)
        if attempt_id is not None:
            self.backend.hangup(attempt_id)

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
        try:
            applied = services.record_outcomes(self.ctx, entries, also=self._write_lines)
        except Exception:
            self.lines.rolled_back()
            if len(entries) == 1:
                raise
            # one bad entry must not cost the others theirs: store them one by one
            applied = [services.record_outcomes(self.ctx, [e])[0] for e in entries]
        for (nurse_id, entry), result in zip(pending, applied, strict=True):
            call = self.calls.pop(self.call_of_nurse.pop(nurse_id))
            call.move(CallState.ended)
            self._after_outcome(nurse_id, call, entry.code, result)
            self.nurse_wrapped_up(nurse_id)

    def _after_outcome(
        self, nurse_id: int, call: LiveCall, code: OutcomeCode, applied: services.OutcomeApplied
    ) -> None:
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
            self._retry(task, nc.retry_at)
        if applied.callback_task_id is not None and nc.callback_at is not None:
            self.queue.add(task.callback(applied.callback_task_id, nc.callback_at, nurse_id))
