"""How the Twilio peer's calls behave: scripts per number, the TwiML they run, the conferences they join.

A call runs in its own thread, in Twilio's order: queued (over the account's
calls per second), initiated, ringing, then by its script: busy, failed
(SIP 404 unallocated, 503 congestion), no answer at the ring timeout, or
answered; an answered call fetches its TwiML and runs it (`Say`, `Pause`,
`Redirect`, `Hangup`, `Dial`/`Conference`), while the detector's verdict is
posted to the async AMD callback when its time comes. A REST update with new
TwiML cuts the verb being run, as on Twilio. Times are Twilio seconds,
scaled by the peer's `seconds` (real seconds per Twilio second).
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dialer.testing.twilio_peer import TwilioPeer


class Script(StrEnum):
    """What the number dialed does."""

    human = "human"  # a person answers ("human"), talks with the nurse, hangs up
    unknown = "unknown"  # a person the detector could not place ("unknown")
    machine_message_end = "machine_message_end"  # voicemail; the end of the greeting is heard
    machine_no_message_end = "machine_no_message_end"  # voicemail; verdict "machine_start"
    fax = "fax"
    busy = "busy"  # SIP 486
    no_answer = "no_answer"  # rings until the call's timeout
    unallocated = "unallocated"  # failed, SIP 404
    congestion = "congestion"  # failed, SIP 503
    hangs_up_at_once = (
        "hangs_up_at_once"  # picks up and hangs up; the verdict ("unknown") comes after the end
    )
    invalid_number = "invalid_number"  # the REST API refuses the call (error 21211)


VERDICT = {
    Script.human: "human",
    Script.unknown: "unknown",
    Script.machine_message_end: "machine_end_beep",
    Script.machine_no_message_end: "machine_start",
    Script.fax: "fax",
    Script.hangs_up_at_once: "unknown",
}


@dataclass(frozen=True)
class Behaviour:
    script: Script = Script.human
    ring_seconds: float = 2.0
    amd_seconds: float = 1.5  # from the answer to the verdict (a machine: its greeting's length)
    talk_seconds: float = 5.0  # a person in the nurse's conference hangs up after this long


@dataclass
class Participant:
    call_sid: str
    label: str | None
    start_on_enter: bool
    end_on_exit: bool


@dataclass
class Conference:
    sid: str
    name: str
    callback: str | None  # the first participant's statusCallback: Twilio reports every event there
    events: frozenset[str]
    status: str = "init"
    participants: OrderedDict[str, Participant] = field(default_factory=OrderedDict)
    sequence: int = 0


@dataclass
class PeerCall:
    sid: str
    to: str
    from_: str
    form: dict[str, list[str]]  # the create request, as sent
    behaviour: Behaviour
    is_nurse: bool
    status: str = "queued"
    due: float = 0.0  # monotonic instant it leaves the account's queue
    answered_by: str | None = None
    duration: int = 0
    said: list[str] = field(default_factory=list)
    conferences: list[str] = field(default_factory=list)
    statuses_sent: list[str] = field(default_factory=list)
    pending: list[ET.Element] | None = None  # TwiML given by a REST update, run next
    hangup: bool = False  # ended by REST (status completed or canceled)
    kicked: bool = False  # its conference ended
    wake: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    sequence: int = 0

    def one(self, key: str) -> str | None:
        values = self.form.get(key)
        return values[0] if values else None


def parse_twiml(text: str) -> list[ET.Element]:
    root = ET.fromstring(text)
    if root.tag != "Response":
        raise ValueError(f"TwiML root is {root.tag}, not Response")
    return list(root)


class CallRunner:
    """One call's life on the peer, in its own thread."""

    def __init__(self, peer: TwilioPeer, call: PeerCall) -> None:
        self.peer = peer
        self.call = call
        self.seconds = peer.seconds
        self._amd_due: float | None = None
        self._answered_at = 0.0

    # ------------------------------------------------------------------ waiting

    def _now(self) -> float:
        return self.peer.monotonic()

    def _wait(self, twilio_seconds: float) -> bool:
        """Wait, posting the verdict when it falls due; False if cut short (new TwiML, hang-up, kick)."""
        end = self._now() + twilio_seconds * self.seconds
        while True:
            call = self.call
            if call.hangup or call.pending is not None or call.kicked:
                return False
            now = self._now()
            if self._amd_due is not None and self._amd_due <= now:
                self._amd_due = None
                self._post_verdict()
                continue
            if now >= end:
                return True
            until = end if self._amd_due is None else min(end, self._amd_due)
            call.wake.wait(max(0.0, until - now))
            call.wake.clear()

    # ------------------------------------------------------------------ the call

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.peer.flush_held(self.call)
            self.call.done.set()

    def _run(self) -> None:
        call = self.call
        while self._now() < call.due and not call.hangup:
            call.wake.wait(call.due - self._now())
            call.wake.clear()
        if call.hangup:
            self._final("canceled")
            return
        self._status("initiated")
        script = call.behaviour.script
        if script == Script.busy:
            self._final("busy", sip=486)
            return
        if script in (Script.unallocated, Script.congestion):
            self._final("failed", sip=404 if script == Script.unallocated else 503)
            return
        self._status("ringing")
        timeout = float(call.one("Timeout") or 60)
        if script == Script.no_answer or call.behaviour.ring_seconds >= timeout:
            if self._wait(timeout):
                self._final("no-answer", sip=487)
            else:
                self._final("canceled", sip=487)
            return
        if not self._wait(call.behaviour.ring_seconds):
            self._final("canceled", sip=487)
            return
        self._answer()

    def _answer(self) -> None:
        call = self.call
        call.status = "in-progress"
        self._answered_at = self._now()
        self._status("answered")
        if call.one("MachineDetection") and not call.is_nurse:
            call.answered_by = VERDICT.get(call.behaviour.script, "unknown")
            self._amd_due = self._now() + call.behaviour.amd_seconds * self.seconds
        program = self._fetch_first()
        if call.behaviour.script == Script.hangs_up_at_once:
            program = []
        self._execute(program)
        call.duration = max(1, round((self._now() - self._answered_at) / self.seconds))
        self._final("completed", sip=200)
        if self._amd_due is not None:  # the detector was still listening: its verdict comes after the end
            self._post_verdict()

    def _fetch_first(self) -> list[ET.Element]:
        call = self.call
        inline = call.one("Twiml")
        if inline is not None:
            return parse_twiml(inline)
        url = call.one("Url")
        return self._fetch(url) if url else []

    def _fetch(self, url: str) -> list[ET.Element]:
        response = self.peer.post(url, self.peer.call_params(self.call, self.call.status))
        if response is None or response[0] != 200:
            return []  # Twilio says "an application error has occurred" and hangs up
        try:
            return parse_twiml(response[1])
        except (ET.ParseError, ValueError):
            return []

    def _execute(self, program: list[ET.Element]) -> None:
        call = self.call
        program = list(program)
        while True:
            if call.pending is not None:
                program, call.pending = call.pending, None
            if call.hangup or not program:
                return
            verb = program.pop(0)
            if verb.tag == "Say":
                call.said.append((verb.text or "").strip())
                self._wait(0.5)
            elif verb.tag == "Pause":
                self._wait(float(verb.get("length", "1")))
            elif verb.tag == "Redirect" and verb.text:
                if self._wait(0):
                    program = self._fetch(verb.text.strip())
            elif verb.tag == "Hangup":
                return
            elif verb.tag == "Dial":
                for noun in verb:
                    if noun.tag == "Conference" and self._conference(noun):
                        return

    def _conference(self, noun: ET.Element) -> bool:
        """In the conference until someone leaves it; True if this party hung up."""
        call = self.call
        name = (noun.text or "").strip()
        call.conferences.append(name)
        call.kicked = False
        self.peer.join(call, name, noun)
        hung_up = self._wait(10**9 if call.is_nurse else call.behaviour.talk_seconds) or call.hangup
        if call.kicked:
            reason = "participant_with_end_conference_on_exit_left"
        else:
            reason = "participant_hung_up" if hung_up else "participant_updated_via_api"
        self.peer.leave(call, name, reason)
        call.kicked = False
        return hung_up

    # ------------------------------------------------------------------ callbacks

    def _post_verdict(self) -> None:
        call = self.call
        url = call.one("AsyncAmdStatusCallback")
        if url and call.answered_by:
            detection_ms = str(int(call.behaviour.amd_seconds * 1000))
            params = {
                "AccountSid": self.peer.account_sid,
                "CallSid": call.sid,
                "AnsweredBy": call.answered_by,
                "MachineDetectionDuration": detection_ms,
            }
            self.peer.callback(call, url, params)

    def _status(self, event: str, status: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """A call progress callback, if the call asked for this event (the final one is always sent)."""
        call = self.call
        status = status or {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}[event]
        if event in ("initiated", "ringing"):
            call.status = status
        url = call.one("StatusCallback")
        subscribed = call.form.get("StatusCallbackEvent", []) or ["completed"]
        if url and (event in subscribed or event == "completed"):
            call.statuses_sent.append(status)
            self.peer.status_callback(call, url, status, extra or {})

    def _final(self, status: str, sip: int | None = None) -> None:
        call = self.call
        call.status = status
        extra: dict[str, Any] = {
            "CallDuration": str(call.duration),
            "Duration": str((call.duration + 59) // 60),
        }
        if sip is not None:
            extra["SipResponseCode"] = str(sip)
        self._status("completed", status, extra)
