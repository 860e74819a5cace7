"""The Twilio peer's REST API: Calls create, fetch and update, Conferences and their Participants.

Answers as Twilio does, in the JSON shapes the SDK's models read (`CallInstance`,
`ConferenceInstance`, `ParticipantInstance`, their pages) and with Twilio's
error bodies (`code`, `message`, `more_info`, `status`). Its error messages
quote the number, as Twilio's do: carecall must never log them. A mixin of
`TwilioPeer`, which holds the state.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from campaign.clock import Clock
from dialer.testing.twilio_calls import Behaviour, CallRunner, Conference, PeerCall, Script, parse_twiml

API = "/2010-04-01/Accounts/{account}"
_CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Calls\.json$")
_CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Calls/(?P<sid>CA\w+)\.json$")
_CONFERENCES = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Conferences\.json$")
_PARTICIPANTS = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Conferences/(?P<sid>CF\w+)/Participants\.json$"
)
_ADDRESS = re.compile(r"^(\+[1-9][0-9]{7,14}|client:[\w.@-]+|sip:.+)$")
_OVER = ("completed", "canceled", "busy", "failed", "no-answer")


def _first(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class PeerRestApi:
    """The REST side of `TwilioPeer` (whose attributes these are)."""

    account_sid: str
    auth_token: str
    seconds: float
    account_cps: float | None
    clock: Clock
    monotonic: Callable[[], float]
    behaviours: dict[str, Behaviour]
    default: Behaviour
    calls: dict[str, PeerCall]
    conferences: dict[str, Conference]
    requests: list[tuple[str, str, dict[str, list[str]]]]
    timeline: list[tuple[str, str, dict[str, Any]]]
    _lock: threading.RLock
    _next_slot: float
    _threads: list[threading.Thread]

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        form = parse_qs(handler.rfile.read(length).decode(), keep_blank_values=True) if length else {}
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, parts.path, form))
            self.timeline.append(("rest", parts.path, form))
        status, body = self._answer(handler, method, parts.path, form, query)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
        more = f"https://www.twilio.com/docs/errors/{code}"
        return status, {"code": code, "message": message, "more_info": more, "status": status}

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        form: dict[str, list[str]],
        query: dict[str, list[str]],
    ) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if handler.headers.get("Authorization") != f"Basic {expected}":
            return self._error(401, 20003, "Authenticate")
        if (m := _CALLS.match(path)) and method == "POST":
            return self._create(form)
        if m := _CALL.match(path):
            with self._lock:
                call = self.calls.get(m["sid"])
            if call is None:
                return self._error(404, 20404, f"The requested resource {path} was not found")
            return self._update(call, form) if method == "POST" else (200, self._call_json(call))
        if (m := _CONFERENCES.match(path)) and method == "GET":
            return self._list_conferences(path, query)
        if (m := _PARTICIPANTS.match(path)) and method == "GET":
            return self._list_participants(path, m["sid"])
        return self._error(404, 20404, f"The requested resource {path} was not found")

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        to, from_ = (form.get("To") or [""])[0], (form.get("From") or [""])[0]
        behaviour = self.behaviours.get(to, self.default)
        if behaviour.script == Script.invalid_number or not _ADDRESS.match(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("Url") and not form.get("Twiml"):
            return self._error(400, 21205, "Url parameter is required.")
        now = self.monotonic()
        with self._lock:
            due = now
            if self.account_cps is not None:
                due = max(now, self._next_slot)
                self._next_slot = due + self.seconds / self.account_cps
            # carecall gives a nurse's leg its TwiML inline, a patient's call a URL
            nurse = bool(form.get("Twiml"))
            call = PeerCall(new_sid("CA"), to, from_, form, behaviour, is_nurse=nurse, due=due)
            self.calls[call.sid] = call
        runner = CallRunner(self, call)  # type: ignore[arg-type]  # self is the TwilioPeer
        thread = threading.Thread(target=runner.run, name=f"peer-{call.sid[:8]}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return 201, self._call_json(call)

    def _update(self, call: PeerCall, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        over = call.done.is_set() or call.status in _OVER
        status = _first(form, "Status")
        twiml = _first(form, "Twiml")
        if status in ("completed", "canceled"):
            if status == "canceled" and call.status == "in-progress":
                return 200, self._call_json(call)  # cancelling touches only queued and ringing calls
            call.hangup = True
            call.wake.set()
            return 200, self._call_json(call)
        if twiml is not None:
            if over:
                return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.pending = parse_twiml(twiml)
            call.wake.set()
            return 200, self._call_json(call)
        return self._error(400, 21218, "Invalid update")

    def _call_json(self, call: PeerCall) -> dict[str, Any]:
        now = format_datetime(self.clock.now())
        uri = f"{API.format(account=self.account_sid)}/Calls/{call.sid}.json"
        queue_ms = max(0.0, call.due - self.monotonic()) / self.seconds * 1000
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": call.answered_by,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": str(call.duration) if call.done.is_set() else None,
            "end_time": None,
            "forwarded_from": None,
            "from": call.from_,
            "from_formatted": call.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": str(int(queue_ms)),
            "sid": call.sid,
            "start_time": None,
            "status": call.status,
            "subresource_uris": {"notifications": uri.replace(".json", "/Notifications.json")},
            "to": call.to,
            "to_formatted": call.to,
            "trunk_sid": None,
            "uri": uri,
        }

    def _page(self, key: str, path: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            key: items,
            "end": max(0, len(items) - 1),
            "first_page_uri": path,
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": path,
        }

    def _list_conferences(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        name = _first(query, "FriendlyName")
        status = _first(query, "Status") or "in-progress"
        now = format_datetime(self.clock.now())
        with self._lock:
            found = [
                c for c in self.conferences.values() if c.name == (name or c.name) and c.status == status
            ]
        items: list[dict[str, Any]] = [
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "call_sid_ending_conference": None,
                "date_created": now,
                "date_updated": now,
                "friendly_name": c.name,
                "reason_conference_ended": None,
                "region": "us1",
                "sid": c.sid,
                "status": c.status,
                "subresource_uris": {},
                "uri": f"{API.format(account=self.account_sid)}/Conferences/{c.sid}.json",
            }
            for c in found
        ]
        return 200, self._page("conferences", path, items)

    def _list_participants(self, path: str, conference_sid: str) -> tuple[int, dict[str, Any]]:
        now = format_datetime(self.clock.now())
        with self._lock:
            confs = [c for c in self.conferences.values() if c.sid == conference_sid]
            if not confs:
                return self._error(404, 20404, f"The requested resource {path} was not found")
            parts = list(confs[0].participants.values())
        items = [
            {
                "account_sid": self.account_sid,
                "call_sid": p.call_sid,
                "call_sid_to_coach": None,
                "coaching": False,
                "conference_sid": conference_sid,
                "date_created": now,
                "date_updated": now,
                "end_conference_on_exit": p.end_on_exit,
                "hold": False,
                "label": p.label,
                "muted": False,
                "queue_time": None,
                "start_conference_on_enter": p.start_on_enter,
                "status": "connected",
                "uri": f"{API.format(account=self.account_sid)}/Conferences/{conference_sid}/Participants/"
                f"{p.call_sid}.json",
            }
            for p in parts
        ]
        return 200, self._page("participants", path, items)
