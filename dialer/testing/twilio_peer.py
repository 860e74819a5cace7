"""A local peer of Twilio for tests: its REST API on 127.0.0.1, and the signed callbacks it sends.

The real `twilio` SDK talks to it over a real socket: the peer is an HTTP
server on 127.0.0.1, and `TwilioPeer.http_client()` is the SDK's own
`TwilioHttpClient` (a `twilio.http.HttpClient`) sending to the peer's
address instead of https://api.twilio.com, handed to `Client(...,
http_client=...)`. The peer answers Calls create, fetch and update,
Conferences list and their Participants list (`twilio_rest`).

Its calls then behave as scripted per number (`twilio_calls.Script`) and
send their callbacks to the URLs carecall gave, in Twilio's order, signed as
Twilio signs them (`RequestValidator.compute_signature` over the URL as
given and the form). `route(public, local)` delivers callbacks for a public
URL (a TLS proxy's) to the local app, signed for the public one. Faults on
demand: `duplicate` (every callback twice), `reorder` (a call's progress
callbacks held and sent last first after its end), `forge` (signed with
another token), and an account's calls per second (`account_cps`) over
which calls wait `queued`, like Twilio's.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

from campaign.clock import Clock, SystemClock
from dialer.testing.twilio_calls import Behaviour, Conference, Participant, PeerCall, Script
from dialer.testing.twilio_rest import PeerRestApi, new_sid


class PeerHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sending to the peer instead of Twilio (same requests, same parsing)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=10)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        local = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, local, *args, **kwargs)


class Sent:
    """A callback the peer sent: where, what, and what carecall answered."""

    def __init__(self, url: str, params: dict[str, str], status: int | None, body: str) -> None:
        self.url, self.params, self.status, self.body = url, params, status, body

    def __repr__(self) -> str:
        what = self.params.get("CallStatus") or self.params.get("AnsweredBy")
        return f"Sent({self.url!r}, {what}, {self.status})"


class TwilioPeer(PeerRestApi):
    """Twilio's REST API and callbacks, local. Use as a context manager, or `start()`/`stop()`."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        seconds: float = 0.02,
        account_cps: float | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.seconds = seconds  # real seconds per Twilio second
        self.account_cps = account_cps  # None: every call leaves the queue at once
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.behaviours: dict[str, Behaviour] = {}
        self.default = Behaviour()
        self.duplicate = False
        self.reorder = False
        self.forge = False
        self.calls: dict[str, PeerCall] = {}
        self.conferences: dict[str, Conference] = {}  # by name: the live one (or the last)
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # REST: method, path, form
        self.sent: list[Sent] = []
        # both in order: ("rest", path, form) on receipt, ("callback", url, params) once answered
        self.timeline: list[tuple[str, str, dict[str, Any]]] = []
        self._routes: list[tuple[str, str]] = []
        self._held: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._lock = threading.RLock()
        self._next_slot = 0.0
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._web = httpx.Client(timeout=10)

    # ------------------------------------------------------------------ set-up

    def start(self) -> TwilioPeer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer._serve(self, "GET")

            def do_POST(self) -> None:
                peer._serve(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass  # requests are recorded in peer.requests, not printed

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="twilio-peer", daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            calls = list(self.calls.values())
        for call in calls:
            call.hangup = True
            call.wake.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._web.close()

    def __enter__(self) -> TwilioPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def http_client(self) -> PeerHttpClient:
        return PeerHttpClient(self.base_url)

    def script(self, number: str, script: Script | Behaviour) -> None:
        """How calls to `number` go (any other number: a person who answers)."""
        self.behaviours[number] = script if isinstance(script, Behaviour) else Behaviour(script)

    def route(self, public_prefix: str, local_prefix: str) -> None:
        """Callbacks to URLs under `public_prefix` go to `local_prefix` (a TLS proxy's work)."""
        self._routes.append((public_prefix, local_prefix))

    # ------------------------------------------------------------------ what tests look at

    def calls_to(self, address: str) -> list[PeerCall]:
        with self._lock:
            return [c for c in self.calls.values() if c.to == address]

    def call_of_nurse(self, nurse_id: int) -> PeerCall | None:
        with self._lock:
            legs = [c for c in self.calls.values() if c.is_nurse and f"nurse-{nurse_id}" in c.conferences]
        live = [c for c in legs if not c.done.is_set()]
        found = live or legs
        return found[-1] if found else None

    def live_conference(self, name: str) -> bool:
        with self._lock:
            conf = self.conferences.get(name)
            return conf is not None and conf.status == "in-progress"

    def drop_nurse(self, nurse_id: int) -> None:
        """Her phone hangs up (her leg is gone)."""
        call = self.call_of_nurse(nurse_id)
        if call is not None:
            call.hangup = True
            call.wake.set()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call placed so far is over (nurses' legs excepted)."""
        end = self.monotonic() + timeout
        with self._lock:
            calls = [c for c in self.calls.values() if not c.is_nurse]
        for call in calls:
            if not call.done.wait(max(0.0, end - self.monotonic())):
                raise TimeoutError(f"call {call.sid} still {call.status} after {timeout} s")

    def sent_to(self, path: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if urlsplit(s.url).path.endswith(path)]

    # ------------------------------------------------------------------ callbacks

    def call_params(self, call: PeerCall, status: str) -> dict[str, str]:
        """What every request about a call carries (its To and From are phone numbers)."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
        }

    def status_callback(self, call: PeerCall, url: str, status: str, extra: dict[str, str]) -> None:
        call.sequence += 1
        params = self.call_params(call, status)
        params.update(extra)
        params.update(
            CallbackSource="call-progress-events",
            SequenceNumber=str(call.sequence - 1),
            Timestamp=format_datetime(self.clock.now()),
        )
        if self.reorder:
            with self._lock:
                self._held.setdefault(call.sid, []).append((url, params))
            return
        self.callback(call, url, params)

    def flush_held(self, call: PeerCall) -> None:
        """A reordering peer sends a call's held progress callbacks at its end, last first."""
        with self._lock:
            held = self._held.pop(call.sid, [])
        for url, params in reversed(held):
            self.callback(call, url, params)

    def callback(self, call: PeerCall | None, url: str, params: dict[str, str]) -> None:
        for _ in range(2 if self.duplicate else 1):
            self.post(url, params)

    def signature(self, url: str, params: dict[str, str], token: str | None = None) -> str:
        token = token or ("forged-" + self.auth_token if self.forge else self.auth_token)
        return RequestValidator(token).compute_signature(url, params)

    def post(
        self, url: str, params: dict[str, str], *, signature: str | None = None
    ) -> tuple[int, str] | None:
        """POST a signed callback as Twilio does; (status, body), or None if carecall did not answer."""
        target = url
        for public, local in self._routes:
            if url.startswith(public):
                target = local + url[len(public) :]
                break
        headers = {
            "X-Twilio-Signature": signature if signature is not None else self.signature(url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        try:
            response = self._web.post(target, data=params, headers=headers)
            result: tuple[int, str] | None = (response.status_code, response.text)
        except httpx.HTTPError:
            result = None
        with self._lock:
            self.sent.append(Sent(url, params, result[0] if result else None, result[1] if result else ""))
            self.timeline.append(("callback", url, params))
        return result

    # ------------------------------------------------------------------ conferences

    def join(self, call: PeerCall, name: str, noun: ET.Element) -> None:
        flag = {"true": True, "false": False}
        with self._lock:
            conf = self.conferences.get(name)
            if conf is None or conf.status == "completed":
                events = frozenset(noun.get("statusCallbackEvent", "").split())
                conf = Conference(new_sid("CF"), name, noun.get("statusCallback"), events)
                self.conferences[name] = conf
            part = Participant(
                call.sid,
                noun.get("participantLabel"),
                flag.get(noun.get("startConferenceOnEnter", "true"), True),
                flag.get(noun.get("endConferenceOnExit", "false"), False),
            )
            conf.participants[call.sid] = part
            starts = part.start_on_enter and conf.status == "init"
            if starts:
                conf.status = "in-progress"
        self._conference_event(conf, "participant-join", "join", part)
        if starts:
            self._conference_event(conf, "conference-start", "start", None)

    def leave(self, call: PeerCall, name: str, reason: str) -> None:
        with self._lock:
            conf = self.conferences.get(name)
            part = conf.participants.pop(call.sid, None) if conf is not None else None
            if conf is None or part is None:
                return
            kicked: list[tuple[PeerCall, Participant]] = []
            if part.end_on_exit or not conf.participants:
                conf.status = "completed"
                kicked = [(self.calls[sid], p) for sid, p in conf.participants.items()]
                conf.participants.clear()
        extra = {"ReasonParticipantLeft": reason, "ParticipantCallStatus": "completed"}
        self._conference_event(conf, "participant-leave", "leave", part, extra)
        for other, other_part in kicked:
            self._conference_event(
                conf, "participant-leave", "leave", other_part, {"ReasonParticipantLeft": reason}
            )
            other.kicked = True
            other.wake.set()
        if conf.status == "completed":
            self._conference_event(conf, "conference-end", "end", None, {"ReasonConferenceEnded": reason})

    def _conference_event(
        self,
        conf: Conference,
        event: str,
        short: str,
        part: Participant | None,
        extra: dict[str, str] | None = None,
    ) -> None:
        if conf.callback is None or short not in conf.events:
            return
        with self._lock:
            conf.sequence += 1
            sequence = conf.sequence
        params = {
            "AccountSid": self.account_sid,
            "ConferenceSid": conf.sid,
            "FriendlyName": conf.name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(self.clock.now()),
        }
        if part is not None:
            params.update(
                CallSid=part.call_sid,
                Muted="false",
                Hold="false",
                Coaching="false",
                StartConferenceOnEnter=str(part.start_on_enter).lower(),
                EndConferenceOnExit=str(part.end_on_exit).lower(),
            )
            if part.label:
                params["ParticipantLabel"] = part.label
        params.update(extra or {})
        self.callback(None, conf.callback, params)
