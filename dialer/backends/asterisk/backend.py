"""`AsteriskBackend`: carecall's calls on an Asterisk switch, through its Manager Interface.

A ready nurse's phone is originated into her own ConfBridge conference
(`nurse-conference`, exten `NURSE<id>`) and waits there. A patient's call is
an asynchronous Originate into `patient-amd`, whose dialplan runs AMD(): a
person joins the nurse's conference, a machine gets the neutral message or
nothing (`CARECALL_VOICEMAIL`), a person whose nurse is gone hears the apology.
`dial` only writes the Originate (under a lock): what the line does comes
back as `dialer.events` from the reader thread, through the correlator.

A watchdog thread keeps the connection: a Ping every `ping_interval_seconds`,
a new connection (with backoff) when the reader died or the switch stopped
answering, and then reconciliation: the calls and legs in flight are checked
with `CoreShowChannels` and `Status`; one still up goes on, what it did
meanwhile is said; one gone ends, once. The same check runs every
`audit_interval_seconds`, so an end lost in a damaged packet still ends its call.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import phonenumbers
import structlog

from campaign.clock import Clock, SystemClock
from campaign.errors import BackendError
from dialer.backends.asterisk.client import AmiSession
from dialer.backends.asterisk.correlate import (
    CALL_ID,
    LEG_ID,
    Correlator,
    call_action,
    leg_action,
    leg_channel,
    patient_channel,
    uninteresting,
)
from dialer.backends.asterisk.packets import Packet
from dialer.backends.asterisk.settings import AsteriskSettings
from dialer.backends.base import DialRequest, EventSink, NurseLine
from dialer.events import Event, NurseLegEvent

log = structlog.get_logger("carecall.asterisk")

STATUS_VARIABLES = "CARECALL_ATTEMPT,CARECALL_NURSE,AMDSTATUS,AMDCAUSE"
# a call placed this long ago has its channels on the switch: reconciliation may judge it
GRACE_SECONDS = 1.0
HANGUP_RETRY_SECONDS = 1.0
_FRENCH_PLAN = frozenset({33, 262, 269, 590, 594, 596})  # dialed nationally with a leading 0
_REMEMBER_UNKNOWN = 10_000


def number_forms(e164: str) -> dict[str, str]:
    """The placeholders of `patient_channel`: {number} E.164, {national} 0…, {digits} without '+'."""
    digits = e164.lstrip("+")
    national = "00" + digits
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        national = e164
    else:
        if parsed.country_code in _FRENCH_PLAN:
            national = "0" + phonenumbers.national_significant_number(parsed)
    return {"number": e164, "national": national, "digits": digits}


class AsteriskBackend:
    """A `TelephonyBackend` on Asterisk's AMI. Build it with `AsteriskBackend(load_asterisk_settings())`."""

    name = "asterisk"
    needs_nurse_leg = True
    remote = True

    def __init__(self, settings: AsteriskSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._corr = Correlator()
        self._lock = threading.RLock()  # the correlator, and the order in which events reach the sink
        self._sink: EventSink | None = None
        self._session: AmiSession | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._leg_token = secrets.token_hex(3)
        self._legs = itertools.count(1)
        self._hangups: dict[str, float] = {}  # channels to hang up until they are gone -> last sent
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self.connections = 0  # logins so far (tests read it)

    # -- the TelephonyBackend protocol -----------------------------------------------------------

    def connect(self, sink: EventSink) -> None:
        """Log in (one try now, then the watchdog keeps trying with backoff) and start the watchdog."""
        self._sink = sink
        try:
            self._open()
        except BackendError as exc:
            log.warning("ami not reachable yet, retrying", problem=str(exc))
        self._watchdog = threading.Thread(target=self._watch, name="carecall-ami-watchdog", daemon=True)
        self._watchdog.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def nurse_ready(self, nurse: NurseLine) -> None:
        with self._lock:
            leg = self._corr.current_leg(nurse.nurse_id)
            if leg is not None:
                if leg.up:  # already in her conference: say so again, nothing to dial
                    self._deliver([NurseLegEvent(nurse.nurse_id, True, self.clock.now())])
                return
            if nurse.endpoint is None:
                log.warning("nurse has no phone endpoint: no leg", nurse_id=nurse.nurse_id)
                self._deliver([NurseLegEvent(nurse.nurse_id, False, self.clock.now())])
                return
            key = f"{self._leg_token}{next(self._legs):x}"
            self._corr.leg_dialed(nurse.nurse_id, key, time.monotonic())
        s = self.settings
        exten = s.nurse_exten.format(nurse_id=nurse.nurse_id)
        try:
            self._send(
                [
                    ("Action", "Originate"),
                    ("ActionID", leg_action(nurse.nurse_id, key)),
                    ("Channel", s.nurse_channel.format(endpoint=nurse.endpoint)),
                    ("Context", s.nurse_context),
                    ("Exten", exten),
                    ("Priority", "1"),
                    ("Timeout", str(s.nurse_ring_timeout_seconds * 1000)),
                    ("CallerID", s.caller_id),
                    ("Variable", f"CARECALL_NURSE={exten}"),
                    ("ChannelId", leg_channel(nurse.nurse_id, key)),
                    ("OtherChannelId", f"nurse-{nurse.nurse_id}-{key}-2"),
                    ("Async", "true"),
                ]
            )
        except BackendError as exc:
            log.warning("nurse leg not placed", nurse_id=nurse.nurse_id, problem=str(exc))
            with self._lock:
                self._deliver(self._corr.leg_failed(nurse.nurse_id, key, self.clock.now()))

    def nurse_away(self, nurse_id: int) -> None:
        with self._lock:
            leg = self._corr.current_leg(nurse_id)
            if leg is None:
                self._deliver([NurseLegEvent(nurse_id, False, self.clock.now())])
                return
        self._hang_up(leg_channel(nurse_id, leg.leg))

    def dial(self, request: DialRequest) -> None:
        """Write the Originate and return: its answer and the line's events come from the reader."""
        a, s = request.attempt_id, self.settings
        exten = s.nurse_exten.format(nurse_id=request.nurse_id)
        headers = [
            ("Action", "Originate"),
            ("ActionID", call_action(a)),
            ("Channel", s.patient_channel.format(**number_forms(request.number))),
            ("Context", s.patient_context),
            ("Exten", exten),
            ("Priority", "1"),
            ("Timeout", str(request.ring_timeout_seconds * 1000)),
            ("CallerID", s.caller_id),
            ("Variable", f"CARECALL_ATTEMPT={a}"),
            ("Variable", f"CARECALL_TASK={request.task_id}"),
            ("Variable", f"CARECALL_NURSE={exten}"),
            ("Variable", f"CARECALL_VOICEMAIL={1 if request.voicemail_text else 0}"),
            ("ChannelId", patient_channel(a)),
            ("OtherChannelId", f"att-{a}-2"),
            ("Async", "true"),
        ]
        with self._lock:
            self._corr.dialed(a, time.monotonic())
        try:
            self._send(headers)
        except BackendError as exc:
            log.warning("call not placed", attempt_id=a, problem=str(exc))
            with self._lock:
                self._deliver(self._corr.not_placed(a, self.clock.now()))

    def hangup(self, attempt_id: int) -> None:
        with self._lock:
            if attempt_id not in self._corr.calls:
                return
        self._hang_up(patient_channel(attempt_id))

    def hangup_orphan(self, call_id: str) -> None:
        try:
            self._send([("Action", "Hangup"), ("Channel", call_id), ("Cause", "16")])
        except BackendError as exc:
            log.warning("orphan call not hung up", call_id=call_id, problem=str(exc))

    def close(self) -> None:
        """Stop the watchdog and log off; calls on the switch are left to reconciliation."""
        self._stop.set()
        self._wake.set()
        if self._watchdog is not None:
            self._watchdog.join(self.settings.response_timeout_seconds + 1)
        session, self._session = self._session, None
        self._connected.clear()
        if session is not None:
            session.logoff()
        self._sink = None  # nothing more reaches the dialer, even from a reader still winding down

    # -- events ----------------------------------------------------------------------------------

    def _on_packet(self, packet: Packet) -> None:
        """From the reader thread: the correlator decides, the sink hears (in order, never blocked on)."""
        if self._stop.is_set():  # closed: a reader still winding down says nothing more, not even a log
            return
        with self._lock:
            heard = self._corr.feed(packet, self.clock.now(), time.monotonic())
            self._deliver(heard.events)
            if self._corr.revived:
                self._wake.set()
        if heard.unknown is not None and heard.unknown not in self._unknown:
            self._unknown[heard.unknown] = None
            if len(self._unknown) > _REMEMBER_UNKNOWN:
                self._unknown.popitem(last=False)
            log.info("ami event for a call this process did not place, ignored", channel_id=heard.unknown)

    def _deliver(self, events: Sequence[Event]) -> None:
        sink = self._sink
        for event in events:
            if sink is None:
                return
            try:
                sink(event)
            except Exception as exc:  # the reader thread must outlive a faulty sink
                log.error(
                    "event sink failed, event dropped",
                    error=type(exc).__name__,
                    attempt_id=getattr(event, "attempt_id", None),
                    nurse_id=getattr(event, "nurse_id", None),
                    kind=getattr(event, "kind", None),
                )

    # -- the connection --------------------------------------------------------------------------

    def _send(self, headers: list[tuple[str, str]]) -> None:
        session = self._session
        if session is None or not session.alive:
            raise BackendError("AMI: not connected")
        session.send(headers)

    def _hang_up(self, channel: str) -> None:
        """Hang a channel up now, and again until it is gone (it may not exist yet, or the link may drop)."""
        with self._lock:
            self._hangups[channel] = time.monotonic()
        try:
            self._send([("Action", "Hangup"), ("Channel", channel), ("Cause", "16")])
        except BackendError:
            self._wake.set()

    def _open(self) -> None:
        s = self.settings
        session = AmiSession(
            s.host,
            s.port,
            self._on_packet,
            self._wake.set,
            response_timeout=s.response_timeout_seconds,
            send_timeout=s.send_timeout_seconds,
            skip=uninteresting,
        )
        session.open(s.username, s.secret.get_secret_value(), s.events)
        self._session = session
        self.connections += 1
        log.info("ami connected", host=s.host, port=s.port, connections=self.connections)
        if self.connections > 1:
            self._reconcile(session, placed_before=time.monotonic())
        self._connected.set()

    def _watch(self) -> None:
        s = self.settings
        backoff = s.reconnect_backoff_initial_seconds
        next_ping = time.monotonic() + s.ping_interval_seconds
        next_audit = time.monotonic() + s.audit_interval_seconds
        while not self._stop.is_set():
            session = self._session
            try:
                if session is None or not session.alive:
                    self._connected.clear()
                    if session is not None:
                        log.warning("ami connection lost, reconnecting", unreadable=session.unreadable)
                        self._session = None
                    self._open()
                    backoff = s.reconnect_backoff_initial_seconds
                    next_ping = time.monotonic() + s.ping_interval_seconds
                    continue
                now = time.monotonic()
                if now >= next_ping:
                    next_ping = now + s.ping_interval_seconds
                    if not session.request([("Action", "Ping")]).ok:
                        raise BackendError("AMI: Ping refused")
                self._retry_hangups()
                if now >= next_audit:
                    next_audit = now + s.audit_interval_seconds
                    self._reconcile(
                        session, placed_before=now - GRACE_SECONDS, unheard_since=now - GRACE_SECONDS
                    )
            except BackendError as exc:
                if self._stop.is_set():
                    return
                log.warning("ami connection failing", problem=str(exc), retry_in=round(backoff, 2))
                if self._session is not None:
                    self._session.close()
                self._stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, s.reconnect_backoff_max_seconds)
                continue
            self._wake.wait(max(0.05, min(HANGUP_RETRY_SECONDS, next_ping - time.monotonic())))
            self._wake.clear()

    def _retry_hangups(self) -> None:
        with self._lock:
            due = list(self._corr.revived)  # ended by reconciliation, yet still heard: hang up once
            self._corr.revived.clear()
            for channel, sent in list(self._hangups.items()):
                if not self._still_live(channel):
                    del self._hangups[channel]
                elif time.monotonic() - sent >= HANGUP_RETRY_SECONDS:
                    self._hangups[channel] = time.monotonic()
                    due.append(channel)
        for channel in due:
            self._send([("Action", "Hangup"), ("Channel", channel), ("Cause", "16")])

    def _still_live(self, channel: str) -> bool:
        m = CALL_ID.fullmatch(channel)
        if m is not None:
            return int(m.group(1)) in self._corr.calls
        m = LEG_ID.fullmatch(channel)
        if m is not None:
            leg = self._corr.legs.get((int(m.group(1)), m.group(2)))
            return leg is not None
        return False

    # -- reconciliation --------------------------------------------------------------------------

    def _reconcile(
        self, session: AmiSession, placed_before: float, unheard_since: float | None = None
    ) -> None:
        """Settle the calls and legs in flight with what the switch holds (from the watchdog only)."""
        with self._lock:
            attempts = self._corr.in_flight(placed_before, unheard_since)
            legs = self._corr.legs_in_flight(placed_before)
        if not attempts and not legs:
            return
        since = time.monotonic()
        listed = self._channels(session)
        expected = [patient_channel(a) for a in attempts] + [leg_channel(*k) for k in legs]
        if any(ch not in listed for ch in expected):
            # an Originate written just before a drop may not have made its channel yet: look twice
            self._stop.wait(GRACE_SECONDS)
            since = time.monotonic()
            listed = self._channels(session)
        statuses: dict[int, Packet] = {}
        for a in attempts:
            if patient_channel(a) in listed:
                reply = session.request(
                    [("Action", "Status"), ("Channel", patient_channel(a)), ("Variables", STATUS_VARIABLES)]
                )
                if reply.ok and reply.items:
                    statuses[a] = reply.items[0]
        with self._lock:
            events = self._corr.reconcile(attempts, legs, listed, statuses, self.clock.now(), since)
            self._deliver(events)
        ended = sum(1 for e in events if getattr(e, "kind", None) == "ended")
        (log.info if events else log.debug)(
            "ami calls reconciled", calls=len(attempts), legs=len(legs), ended=ended, events=len(events)
        )

    @staticmethod
    def _channels(session: AmiSession) -> dict[str, str]:
        reply = session.request([("Action", "CoreShowChannels")])
        if not reply.ok:
            raise BackendError("AMI: CoreShowChannels refused")
        return {p.get("Uniqueid") or "": p.get("Application") or "" for p in reply.items}
