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

Dialing never waits for the network: a backend places calls from its own
threads and reports what their lines do, failures included, as events.

This module hands calls out (claims, dials); the other parts of `Dialer`:
what happens to a call once dialed (its line's events, its end, the nurse's
outcome) is dialer/loop_calls.py's; a nurse's status changes and stored row
dialer/loop_nurses.py's; her console's commands dialer/staff/desk.py's; the
inbound callers given to her or holding her dialer/staff/inbound_desk.py's.
Which tasks the queue holds is dialer/feed.py's.
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
from dialer import lines
from dialer.ahead import WorkAhead
from dialer.backends.base import DialRequest, TelephonyBackend
from dialer.calls import LiveCall
from dialer.events import CallEvent, CallEventKind, Event
from dialer.feed import TaskFeed
from dialer.inbox import Inbox
from dialer.legs import NurseLegs
from dialer.lines.tracker import LineTracker
from dialer.loop_calls import CallEnds
from dialer.loop_nurses import NurseStates
from dialer.presence import NurseStatus, PresenceBoard
from dialer.routing import NurseProfile, QueuedTask, TaskQueue
from dialer.staff import store as staff_store
from dialer.staff.bus import Bus, LocalBus
from dialer.staff.desk import NurseDesk, new_desk_state
from dialer.staff.inbound_desk import InboundDesk
from dialer.staff.store import PresenceRow
from dialer.staff.writer import PresenceWriter

log = structlog.get_logger("carecall.dialer")

ConnectedHook = Callable[[int, LiveCall], None]
# seconds from a nurse being free to her next call being stored (a nurse's wait, for benchmarks)
ClaimWaitHook = Callable[[int, float], None]


FLUSH_ROUNDS = 10  # a flush stops after this many rounds; the rest waits for the next one


class Dialer(CallEnds, NurseDesk, InboundDesk, NurseStates):
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
        bus: Bus | None = None,
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
        self.presence = PresenceBoard(now=ctx.clock.now)
        self.bus = bus or LocalBus()
        self.share = share
        # stored with the transactions a flush opens anyway; what none took, within 50 ms of its own
        self.writer = PresenceWriter(
            self.presence, self._presence_row, worker, self.bus, 0.05 if deferred else 0
        )
        for name, value in new_desk_state().items():
            setattr(self, name, value)
        self.queue = TaskQueue(ctx.policy, on_shift=self._available_until, lookahead=lookahead)
        self.nurse_info: dict[int, store.NurseInfo] = {}
        self.nurses: dict[int, NurseProfile] = {}
        self.calls: dict[int, LiveCall] = {}  # by attempt
        self.call_of_nurse: dict[int, int] = {}  # nurse -> attempt
        self.patients_in_call: set[int] = set()
        self._dispatched_version = -1
        self.inbox: Inbox[Event] = Inbox()
        self.lines = LineTracker(backend.name, worker, record=backend.remote)
        self.legs = NurseLegs(backend, self.nurse_info)
        self._events: list[CallEvent] = []
        self._outcomes: list[tuple[int, services.OutcomeEntry]] = []
        self._dispatch_due = False
        self._flushing = False
        self._free_since: dict[int, float] = {}
        self._offered: dict[int, int] = {}  # nurse -> patient, of the claim under way
        self._offered_at = ctx.clock.now()
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
        self.ahead = WorkAhead(ctx, self.feed, self.nurses, lambda: self.patients_in_call)

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
            for info in store.nurses(s):
                self.nurse_info[info.id] = info
                if nurse_ids is None or info.id in nurse_ids:
                    self.nurses[info.id] = NurseProfile(info.id, info.level, info.skills)
            left = staff_store.stored_presence(s, list(self.nurses))
        # what a previous run left on the board is replaced by what this run knows (offline until
        # her shift or her console says otherwise); rows that already say so are left alone
        for n, row in left.items():
            self.writer.stored[n] = PresenceRow(
                n,
                NurseStatus(row.status),
                row.reason,
                row.since,
                row.attempt_id,
                row.patient_id,
                row.call_state,
            )
        self.presence.changed.update(self.nurses)
        self.listen_for_commands()
        self.refresh()

    def stop(self) -> None:
        """A process's shutdown, after `reconcile`: its nurses shown offline (nobody serves them now),
        what is left stored, and no more listening."""
        if self._subscription is not None:
            self._subscription.close()
        self.flush()
        now = self.ctx.clock.now()
        off = {n: PresenceRow(n, NurseStatus.offline, None, now, None, None, None) for n in self.nurses}
        with self.ctx.sessions() as s:
            self._ride_along(s, off)
            s.commit()

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
                if self._commands_due:
                    self.take_commands()
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
            self.store_presence()
        finally:
            self._flushing = False

    def store_presence(self, *, force: bool = False) -> None:
        """Presence changes and command results no transaction took: in one of their own.

        Command results at once (a console waits for them); presence once a change has waited
        the writer's delay, so a busy dialer stores it along with its next batch instead.
        """
        if self._command_results or (self.writer.settle() > 0 if force else self.writer.due()):
            with self.ctx.sessions() as s:
                self._ride_along(s)
                s.commit()

    def _ride_along(self, session: Session, predicted: dict[int, PresenceRow] | None = None) -> None:
        """In a transaction the dialer opens anyway: line records, presence rows, command results."""
        now = self.ctx.clock.now()
        self.lines.write(session, now)
        self.writer.write(session, now, predicted)
        self._write_command_results(session)

    _write_lines = _ride_along

    # ------------------------------------------------------------ dispatch

    def tick(self) -> None:
        now = self.ctx.clock.now()
        self.queue.advance(now)
        if self.queue.version != self._dispatched_version or self._holding or self.ahead.due(now):
            # nurses held for an inbound caller are looked at again: the caller may be gone; idle
            # nurses, every few minutes, for work ahead
            self._dispatched_version = self.queue.version
            self._dispatch_due = True
        self._kick()

    def _dispatch(self) -> None:
        """One task for each ready nurse without a call, claimed in one transaction; for those left
        with nothing due, a first call brought forward (dialer/ahead.py), handed out next round."""
        now = self.ctx.clock.now()
        due, ahead = self.queue.has_due(), self.ahead.due(now)
        if not (due or ahead):
            return  # nothing to hand out: no need to go through every ready nurse
        ready = self.presence.ready()
        # an inbound caller waits: the nurses who may take them are held for them
        free = self._free_to_dial(ready, self.held_for_callers(ready))
        idle = self._hand_out(free, now) if due else free
        if ahead and self.ahead.bring(idle, now):
            self.queue.advance(now)
            self._dispatch_due = True

    def _hand_out(self, free: list[int], now: datetime) -> list[int]:
        """A due task offered to each of these nurses and claimed; those nothing was due for."""
        hours = self.policy.calling_hours
        offers: list[tuple[QueuedTask, int]] = []
        offered_patients: set[int] = set()
        idle: list[int] = []
        for nurse_id in free:
            profile = self.nurses[nurse_id]
            while True:
                task = self.queue.pop_for(profile)
                if task is None:
                    idle.append(nurse_id)
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
            return idle
        self._offered = {nurse_id: task.patient_id for task, nurse_id in offers}
        self._offered_at = now
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
        return idle

    def _open_lines(self, session: Session, opened: list[tuple[int, int]]) -> None:
        """In the claim's transaction: a line record per call about to be dialed; her presence, reserved."""
        now = self.ctx.clock.now()
        self.lines.opened(session, opened, now)
        # reserved from the moment her task is claimed (the claim above, in this transaction), not
        # from when the round began: a claim lost leaves her ready, she was never reserved
        at = self._offered_at = now
        reserved = {
            n: PresenceRow(n, NurseStatus.reserved, None, at, a, self._offered[n], "dialing")
            for a, n in opened
        }
        self._ride_along(session, reserved)

    def _dial(self, nurse_id: int, task: QueuedTask, claimed: services.Claimed) -> None:
        self.stats["claims"] += 1
        free_since = self._free_since.pop(nurse_id, None)
        if self.on_claim_wait is not None and free_since is not None:
            self.on_claim_wait(nurse_id, wall.perf_counter() - free_since)
        self.presence.set(nurse_id, NurseStatus.reserved, at=self._offered_at)
        info = self.nurse_info.get(nurse_id)
        request = DialRequest(
            attempt_id=claimed.attempt_id,
            task_id=task.task_id,
            number=claimed.number,
            nurse_id=nurse_id,
            nurse_endpoint=info.phone_endpoint if info else None,
            ring_timeout_seconds=self.policy.retry.ring_timeout_seconds,
            voicemail_text=self.voicemail_text,
            patient_id=task.patient_id,
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

    def heartbeat(self) -> None:
        """Renew the leases of this worker's calls, so no one reconciles a live call; write the
        line records no other transaction took along since."""
        services.renew_leases(self.ctx, self.worker, also=self._ride_along)

    def hangup(self, nurse_id: int) -> None:
        call = self.calls.get(self.call_of_nurse.get(nurse_id, -1))
        if call is None:
            return
        call.nurse_hung_up = True
        if call.inbound:
            self._hang_up_inbound(call)
        else:
            self.backend.hangup(call.attempt_id)
