"""carecall's calls on Twilio: placed through its REST API, followed through its webhooks.

`TwilioBackend` is the dialer's side: it places patients' calls and nurses'
legs, and hangs calls up. It never blocks the dialer: every request goes to
its own threads (a pacer that keeps to the account's calls per second, and a
pool for the REST round trips), and what comes back arrives as events, from
those threads. What the lines do afterwards (ringing, the detector's verdict,
the bridge, the end) reaches carecall through the webhooks (`dialer.web`),
which speak the same events.

Calls per second: Twilio queues calls over the account's rate instead of
refusing them, so a patient could be rung minutes after the nurse was
reserved. A call whose turn (`CallPacer`) is further than
`max_queue_wait_seconds` away is therefore not placed: it ends at once as
failed (cause 47, "resource unavailable", detail "over calls per second"),
like any call the network could not carry, and the dialer's retry policy
takes it from there. A call Twilio still holds `queued` after that long
(other traffic on the account) is cancelled and ends the same way (detail
"queued too long").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from twilio.http import HttpClient

from campaign.clock import Clock
from campaign.logs import get_logger
from dialer.backends.base import DialRequest, EventSink, NurseLine
from dialer.backends.twilio import rest, twiml
from dialer.backends.twilio.pacing import CallPacer
from dialer.backends.twilio.settings import Route, TwilioSettings
from dialer.events import CallEvent, CallEventKind, Event, NurseLegEvent

log = get_logger("dialer.twilio")

RESOURCE_UNAVAILABLE = 47  # Q.850: a call carecall did not place, or cancelled in Twilio's queue
PROGRESS_EVENTS = ["initiated", "ringing", "answered", "completed"]
NURSE_RING_SECONDS = 30
FORGET_AFTER_SECONDS = 6 * 3600  # a call's ids are kept this long for a hang-up


@dataclass(slots=True)
class _Call:
    request: DialRequest
    sid: str | None = None
    placed_at: float = 0.0  # monotonic
    hangup_asked: bool = False  # hung up while the REST request was in flight
    checked: bool = False  # looked for in Twilio's queue


@dataclass(slots=True)
class _Leg:
    sid: str | None = None  # None while her call is being placed
    away: bool = False  # she left while it was being placed


def nurse_address(endpoint: str | None) -> str | None:
    """Where her phone is: a number (+33…), a SIP address, or a Twilio Client identity (client:…)."""
    if not endpoint or not endpoint.strip():
        return None
    endpoint = endpoint.strip()
    if endpoint.startswith(("+", "client:", "sip:")):
        return endpoint
    return f"client:{endpoint}"


class TwilioBackend:
    """A `TelephonyBackend` on Twilio. Public constructor:

        TwilioBackend(settings, clock, worker, http_client=None)

    `worker` is this dialer process's name (the one its lines carry), so the
    webhooks hand a nurse's leg events to the process that placed it.
    `http_client` is the SDK's seam (`twilio.http.HttpClient`): None in
    production, a local peer's in tests.
    """

    name = "twilio"
    needs_nurse_leg = True
    remote = True

    def __init__(
        self,
        settings: TwilioSettings,
        clock: Clock,
        worker: str,
        http_client: HttpClient | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        queue_check_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.worker = worker
        self.client = rest.make_client(settings, http_client)
        self._monotonic = monotonic
        self._queue_check = queue_check_seconds
        self._pacer = CallPacer(settings.calls_per_second, settings.max_queue_wait_seconds)
        self._lock = threading.Condition()
        self._paced: deque[tuple[float, int]] = deque()  # (due, attempt), in slot order
        self._calls: dict[int, _Call] = {}
        self._legs: dict[int, _Leg] = {}
        self._sink: EventSink | None = None
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def connect(self, sink: EventSink) -> None:
        self._sink = sink
        self._pool = ThreadPoolExecutor(self.settings.rest_threads, thread_name_prefix="twilio-rest")
        for target, name in ((self._run_pacer, "twilio-pacer"), (self._run_queue_watch, "twilio-queue")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop; calls not placed yet are dropped (their attempts are left to reconciliation)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ patients' calls

    def dial(self, request: DialRequest) -> None:
        with self._lock:
            wait = self._pacer.reserve(self._monotonic())
            if wait is not None:
                self._calls[request.attempt_id] = _Call(request)
                self._paced.append((self._monotonic() + wait, request.attempt_id))
                self._lock.notify_all()
        if wait is None:
            log.warning(
                "twilio.call.not_placed", attempt_id=request.attempt_id, reason="over calls per second"
            )
            self._ended(request.attempt_id, RESOURCE_UNAVAILABLE, "over calls per second")

    def hangup(self, attempt_id: int) -> None:
        with self._lock:
            call = self._calls.get(attempt_id)
            if call is None:
                log.info("twilio.hangup.unknown_call", attempt_id=attempt_id)
                return
            sid = call.sid
            unplaced = sid is None and any(a == attempt_id for _, a in self._paced)
            if unplaced:  # forgotten: the pacer skips it when its turn comes
                del self._calls[attempt_id]
            elif sid is None:
                call.hangup_asked = True
        if unplaced:
            self._ended(attempt_id, None, "hung up before it was placed")
        elif sid is not None:
            self._submit(self._end_call, sid, attempt_id)

    def hangup_orphan(self, call_id: str) -> None:
        self._submit(self._end_call, call_id, None)

    def _run_pacer(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and not self._paced:
                    self._lock.wait()
                if self._stop.is_set():
                    return
                due, attempt_id = self._paced[0]
                delay = due - self._monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                self._paced.popleft()
                call = self._calls.get(attempt_id)
            if call is not None:
                self._submit(self._place, call)

    def _place(self, call: _Call) -> None:
        request = call.request
        attempt = request.attempt_id
        url = self.settings.webhook_url
        voicemail = int(request.voicemail_text is not None)  # the policy leaves a message on machines
        try:
            created = self.client.calls.create(
                to=request.number,
                from_=self.settings.caller_number,
                url=url(Route.twiml, attempt=attempt, step="answer", vm=voicemail),
                method="POST",
                status_callback=url(Route.status, attempt=attempt),
                status_callback_event=PROGRESS_EVENTS,
                status_callback_method="POST",
                timeout=request.ring_timeout_seconds,
                machine_detection="DetectMessageEnd",
                machine_detection_timeout=self.settings.amd_timeout_seconds,
                async_amd="true",
                async_amd_status_callback=url(Route.amd, attempt=attempt, vm=voicemail),
                async_amd_status_callback_method="POST",
            )
        except rest.REST_ERRORS as exc:
            with self._lock:
                self._calls.pop(attempt, None)
            log.warning("twilio.call.refused", attempt_id=attempt, detail=rest.error_detail(exc))
            self._ended(attempt, rest.error_cause(exc), rest.error_detail(exc))
            return
        with self._lock:
            call.sid, call.placed_at = created.sid, self._monotonic()
            hang = call.hangup_asked
        log.info("twilio.call.placed", attempt_id=attempt, call_sid=created.sid)
        if hang and created.sid:
            self._end_call(created.sid, attempt)

    def _end_call(self, sid: str, attempt_id: int | None) -> None:
        try:
            rest.end(self.client, sid)
        except rest.REST_ERRORS as exc:
            if not rest.call_is_over(exc):
                log.warning(
                    "twilio.hangup.failed", attempt_id=attempt_id, call_sid=sid, detail=rest.error_detail(exc)
                )

    def _run_queue_watch(self) -> None:
        while not self._stop.wait(self._queue_check):
            now = self._monotonic()
            stale: list[tuple[int, str]] = []
            with self._lock:
                for attempt, call in list(self._calls.items()):
                    if call.sid is None:
                        continue
                    age = now - call.placed_at
                    if age > FORGET_AFTER_SECONDS:
                        del self._calls[attempt]
                    elif not call.checked and age > self.settings.max_queue_wait_seconds:
                        call.checked = True
                        stale.append((attempt, call.sid))
            for attempt, sid in stale:
                self._submit(self._cancel_if_queued, attempt, sid)

    def _cancel_if_queued(self, attempt_id: int, sid: str) -> None:
        """A call still in Twilio's queue after the longest acceptable wait: over for the dialer first
        (so its record is this, whatever Twilio reports of the cancelled call), then cancelled."""
        try:
            status = rest.status(self.client, sid)
        except rest.REST_ERRORS as exc:
            log.warning(
                "twilio.queue_check.failed",
                attempt_id=attempt_id,
                call_sid=sid,
                detail=rest.error_detail(exc),
            )
            return
        if status != "queued":
            return
        log.warning("twilio.call.cancelled_in_queue", attempt_id=attempt_id, call_sid=sid)
        self._ended(attempt_id, RESOURCE_UNAVAILABLE, "queued too long", call_id=sid)
        try:
            rest.cancel(self.client, sid)
        except rest.REST_ERRORS as exc:  # it left the queue meanwhile: end it whatever it does now
            log.warning(
                "twilio.cancel.failed", attempt_id=attempt_id, call_sid=sid, detail=rest.error_detail(exc)
            )
            self._end_call(sid, attempt_id)

    # ------------------------------------------------------------------ nurses' legs

    def nurse_ready(self, nurse: NurseLine) -> None:
        with self._lock:
            leg = self._legs.get(nurse.nurse_id)
            if leg is None:
                self._legs[nurse.nurse_id] = leg = _Leg()
                placing = True
            else:
                leg.away = False
                placing = False
            sid = leg.sid
        if placing:
            self._submit(self._place_leg, nurse)
        elif sid is not None:
            self._submit(self._check_leg, nurse, sid)

    def nurse_away(self, nurse_id: int) -> None:
        with self._lock:
            leg = self._legs.get(nurse_id)
            if leg is not None and leg.sid is None:
                leg.away = True  # ended as soon as it is placed
                return
            self._legs.pop(nurse_id, None)
        if leg is None:
            self._emit(NurseLegEvent(nurse_id, False, self.clock.now()))
        else:
            assert leg.sid is not None
            self._submit(self._end_call, leg.sid, None)

    def _place_leg(self, nurse: NurseLine) -> None:
        address = nurse_address(nurse.endpoint)
        if address is None:
            log.warning("twilio.nurse_leg.no_endpoint", nurse_id=nurse.nurse_id)
            self._leg_down(nurse.nurse_id)
            return
        with self._lock:
            wait = self._pacer.reserve(self._monotonic(), force=True) or 0.0
        if self._stop.wait(wait):
            return
        url = self.settings.webhook_url
        query = {"nurse": nurse.nurse_id, "worker": self.worker}
        try:
            created = self.client.calls.create(
                to=address,
                from_=self.settings.caller_number,
                twiml=twiml.nurse_leg(nurse.nurse_id, url(Route.conference, **query)),
                status_callback=url(Route.status, **query),
                status_callback_event=["completed"],
                status_callback_method="POST",
                timeout=NURSE_RING_SECONDS,
            )
        except rest.REST_ERRORS as exc:
            log.warning("twilio.nurse_leg.refused", nurse_id=nurse.nurse_id, detail=rest.error_detail(exc))
            self._leg_down(nurse.nurse_id)
            return
        with self._lock:
            leg = self._legs.get(nurse.nurse_id)
            if leg is not None:
                leg.sid = created.sid
            away = leg is None or leg.away
            if leg is not None and leg.away:
                del self._legs[nurse.nurse_id]
        log.info("twilio.nurse_leg.placed", nurse_id=nurse.nurse_id, call_sid=created.sid)
        if away and created.sid:
            self._end_call(created.sid, None)

    def _check_leg(self, nurse: NurseLine, sid: str) -> None:
        """She was ready before: her leg is still up (say so again), or gone (place another)."""
        try:
            status = self.client.calls(sid).fetch().status
        except rest.REST_ERRORS as exc:
            if not rest.call_is_over(exc):
                log.warning(
                    "twilio.nurse_leg.check_failed", nurse_id=nurse.nurse_id, detail=rest.error_detail(exc)
                )
                return
            status = "completed"
        if status == "in-progress":
            self._emit(NurseLegEvent(nurse.nurse_id, True, self.clock.now()))
            return
        if status in ("queued", "ringing", "initiated"):
            return  # her phone rings: the join will say when she is there
        with self._lock:
            leg = self._legs.get(nurse.nurse_id)
            if leg is None or leg.sid != sid:
                return
            leg.sid = None
        self._place_leg(nurse)

    def _leg_down(self, nurse_id: int) -> None:
        with self._lock:
            self._legs.pop(nurse_id, None)
        self._emit(NurseLegEvent(nurse_id, False, self.clock.now()))

    # ------------------------------------------------------------------ plumbing

    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._pool is None:
            raise RuntimeError("TwilioBackend: connect() first")
        if self._stop.is_set():
            return
        self._pool.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a worker thread must survive anything one request does
            log.error("twilio.worker.failed", task=fn.__name__, error=type(exc).__name__)

    def _ended(self, attempt_id: int, cause: int | None, detail: str, call_id: str | None = None) -> None:
        self._emit(
            CallEvent(attempt_id, CallEventKind.ended, self.clock.now(), cause, detail, call_id=call_id)
        )

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink(event)
