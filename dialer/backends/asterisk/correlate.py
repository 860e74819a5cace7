"""From AMI events to carecall's line events, call by call. Pure: no I/O, no clock, no threads.

carecall names every channel it originates, so an event finds its call by its
own ids: the patient's Local halves are `att-<attempt>-1` and `-2` (ChannelId
and OtherChannelId, so Uniqueid), channels the dialplan creates for the call
share Linkedid `att-<attempt>-1`, and the Originate's ActionID is
`orig-att-<attempt>` (a failed OriginateResponse names no channel). A nurse's
phone is `nurse-<nurse id>-<leg>-1`/`-2`, ActionID `orig-nurse-<nurse id>-<leg>`.

A real Asterisk orders events loosely, even within a millisecond
(fixtures/ami/README.md): OriginateResponse before, between or after the
Hangups; ConfbridgeJoin before the CarecallAMD UserEvent that precedes it in
the dialplan; ConfbridgeLeave after the channel's own Hangup; Cdr before
Newchannel. So nothing here waits for an order: each kind of `CallEvent` is
sent at most once per call, a later kind implies the earlier ones (a patient
in the nurse's conference was answered and heard as a person), and the end
comes once the switch has said all it will say: the OriginateResponse is in
and no channel of the call is up.

Ends and their Q.850 cause: the first Hangup cause other than 0 and 16 (16 is
the normal clearing every half reports), else, for a failed Originate, its
Reason (5 busy → 17, 3 no answer → 19, 8 congestion → 34, 1 hung up → 16;
0 "failed" says nothing more than the Hangups), else 16 if seen, else unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dialer.backends.asterisk.packets import Packet
from dialer.events import CallEvent, CallEventKind, Event, NurseLegEvent

K = CallEventKind
CALL_ID = re.compile(r"att-(\d+)-[12]")
CALL_ACTION = re.compile(r"orig-att-(\d+)")
LEG_ID = re.compile(r"nurse-(\d+)-([0-9a-z]+)-[12]")
LEG_ACTION = re.compile(r"orig-nurse-(\d+)-([0-9a-z]+)")

# OriginateResponse's Reason (the last control frame) as the Q.850 cause it stands for
REASON_CAUSE = {5: 17, 3: 19, 8: 34, 1: 16}
# the switch refused the Originate, or it never left carecall: "temporary failure" (a failed attempt)
NOT_PLACED_CAUSE = 41
_HUMAN_VERDICTS = ("HUMAN", "NOTSURE")  # NOTSURE: better a person waits for a nurse than is dropped
_QUIET = frozenset({"Newexten", "Cdr", "DeviceStateChange", "NewCallerid", "NewConnectedLine", "LocalBridge"})


_QUIET_STARTS = tuple(f"Event: {name}\r\n" for name in _QUIET)
_VARIABLES = tuple(
    f"\r\nVariable: {name}\r\n" for name in ("AMDSTATUS", "AMDCAUSE", "CONFBRIDGE_RESULT", "PLAYBACKSTATUS")
)


def uninteresting(text: str) -> bool:
    """A packet `feed` would ignore, told from its text before it is parsed: Newexten and VarSet
    are half the stream. A packet that may hide another (a truncated one run into the next) is
    always parsed."""
    quiet = text.startswith(_QUIET_STARTS) or (
        text.startswith("Event: VarSet\r\n") and not any(v in text for v in _VARIABLES)
    )
    return quiet and text.find("Event: ", 1) < 0 and text.find("Response: ", 1) < 0


def patient_channel(attempt_id: int) -> str:
    return f"att-{attempt_id}-1"


def call_action(attempt_id: int) -> str:
    return f"orig-att-{attempt_id}"


def leg_channel(nurse_id: int, leg: str) -> str:
    return f"nurse-{nurse_id}-{leg}-1"


def leg_action(nurse_id: int, leg: str) -> str:
    return f"orig-nurse-{nurse_id}-{leg}"


@dataclass(eq=False)
class _Call:
    attempt_id: int
    placed_at: float  # the caller's monotonic seconds, for reconciliation's grace
    last_heard: float
    sent: set[CallEventKind] = field(default_factory=set)
    channels: dict[str, bool] = field(default_factory=dict)  # Uniqueid -> up
    patient_down: bool = False  # the patient's half (att-N-1) hung up
    originated: bool | None = None  # the OriginateResponse: None until it comes
    reason: int | None = None
    causes: list[int] = field(default_factory=list)  # non-zero Hangup causes, as they came
    verdict: str | None = None  # AMDSTATUS
    amd_cause: str | None = None
    voicemail_left: bool = False


@dataclass(eq=False)
class _Leg:
    nurse_id: int
    leg: str
    placed_at: float
    up: bool = False


@dataclass(frozen=True, slots=True)
class Heard:
    """What a packet was to carecall: events to hand on, and whether it named a call not in flight."""

    events: list[Event]
    unknown: str | None = None  # a carecall id this process is not following (other process, ended)


NOTHING = Heard([])


class Correlator:
    """The calls and nurse legs in flight, and what the switch said about them so far."""

    def __init__(self, remember_ended: int = 50_000) -> None:
        self.calls: dict[int, _Call] = {}
        self.legs: dict[tuple[int, str], _Leg] = {}
        self._ended: dict[int, bool] = {}  # recently over -> ended by reconciliation (not by the switch)
        self._remember = remember_ended
        self.revived: list[str] = []  # channels of calls ended by reconciliation still heard: hang them up

    # -- what carecall did ---------------------------------------------------------------------

    def dialed(self, attempt_id: int, tick: float) -> None:
        self.calls[attempt_id] = _Call(attempt_id, tick, tick)

    def leg_dialed(self, nurse_id: int, leg: str, tick: float) -> None:
        self.legs[(nurse_id, leg)] = _Leg(nurse_id, leg, tick)

    def current_leg(self, nurse_id: int) -> _Leg | None:
        for leg in self.legs.values():
            if leg.nurse_id == nurse_id:
                return leg
        return None

    def not_placed(self, attempt_id: int, now: datetime) -> list[Event]:
        """The Originate never reached the switch, or the switch refused it."""
        call = self.calls.get(attempt_id)
        if call is None:
            return []
        call.causes.append(NOT_PLACED_CAUSE)
        return self._end(call, now)

    def leg_failed(self, nurse_id: int, leg: str, now: datetime) -> list[Event]:
        found = self.legs.pop((nurse_id, leg), None)
        return [NurseLegEvent(nurse_id, False, now)] if found is not None else []

    # -- what the switch said ------------------------------------------------------------------

    def feed(self, packet: Packet, now: datetime, tick: float) -> Heard:
        name = packet.event
        if name in _QUIET:
            return NOTHING
        uid = packet.get("Uniqueid") or packet.get("DestUniqueid") or ""
        for key in (uid, None):
            if key is None:  # read only when the Uniqueid names no call of carecall's
                key = packet.get("Linkedid") or packet.get("DestLinkedid") or ""
            m = CALL_ID.fullmatch(key)
            if m is not None:
                return self._call_packet(int(m.group(1)), name, packet, uid, now, tick)
            m = LEG_ID.fullmatch(key)
            if m is not None:
                return self._leg_packet(int(m.group(1)), m.group(2), name, packet, uid, now)
        action = packet.get("ActionID") or ""
        m = CALL_ACTION.fullmatch(action)
        if m is not None:
            return self._call_packet(int(m.group(1)), name, packet, "", now, tick)
        m = LEG_ACTION.fullmatch(action)
        if m is not None:
            return self._leg_packet(int(m.group(1)), m.group(2), name, packet, "", now)
        return NOTHING  # not carecall's: the conference's announcer, bridges, other traffic

    def _call_packet(
        self, attempt_id: int, name: str | None, p: Packet, uid: str, now: datetime, tick: float
    ) -> Heard:
        call = self.calls.get(attempt_id)
        if call is None:
            by_reconciliation = self._ended.get(attempt_id)
            if by_reconciliation and name not in ("Hangup", "HangupRequest", "SoftHangupRequest", None):
                self._ended[attempt_id] = False  # hang it up once
                self.revived.append(patient_channel(attempt_id))
            return NOTHING if by_reconciliation is not None else Heard([], uid or f"orig-att-{attempt_id}")
        call.last_heard = tick
        patient = uid == patient_channel(attempt_id)
        out: list[Event] = []
        if name is None:  # the answer to the Originate itself: "queued", or refused at once
            if p.response == "Error":
                return Heard(self.not_placed(attempt_id, now))
            return NOTHING
        if name == "Hangup":
            call.channels[uid] = False
            cause = _int(p.get("Cause"))
            if cause:
                call.causes.append(cause)
            if patient:
                call.patient_down = True
        elif uid and uid not in call.channels:
            call.channels[uid] = True
        if name == "OriginateResponse":
            call.originated = p.response == "Success"
            call.reason = _int(p.get("Reason"))
            if call.originated:
                self._say(call, K.answered, now, out)
        elif name == "Newstate" and patient:
            state = p.get("ChannelStateDesc")
            if state == "Ringing":
                self._say(call, K.ringing, now, out)
            elif state == "Up":
                self._say(call, K.answered, now, out)
        elif name == "DialState" and patient and p.get("DialStatus") == "RINGING":
            self._say(call, K.ringing, now, out)
        elif name == "VarSet" and patient:
            self._variable(call, p.get("Variable") or "", p.get("Value") or "", now, out)
        elif name == "UserEvent":
            self._user_event(call, p, now, out)
        elif name == "ConfbridgeJoin" and patient:
            self._say(call, K.connected, now, out)
        if self._over(call):
            out.extend(self._end(call, now))
        return Heard(out) if out else NOTHING

    def _variable(self, call: _Call, variable: str, value: str, now: datetime, out: list[Event]) -> None:
        # the verdict is said with its cause, which the next VarSet brings (a join may come between)
        if variable == "AMDSTATUS":
            call.verdict = value
        elif variable == "AMDCAUSE":
            call.amd_cause = value or None
            self._verdict(call, now, out)
        elif variable == "CONFBRIDGE_RESULT" and value == "ENDMARKED":
            self._say(call, K.nurse_gone, now, out)  # the nurse left: kicked out to the apology
        elif variable == "PLAYBACKSTATUS" and value == "SUCCESS" and call.verdict == "MACHINE":
            call.voicemail_left = True  # the machine branch's only playback is the neutral message

    def _user_event(self, call: _Call, p: Packet, now: datetime, out: list[Event]) -> None:
        kind = p.get("UserEvent")
        if kind == "CarecallAMD":
            call.verdict = call.verdict or p.get("AMDStatus")
            call.amd_cause = call.amd_cause or p.get("AMDCause") or None
            self._verdict(call, now, out)
        elif kind == "CarecallNurseGone":
            self._say(call, K.nurse_gone, now, out)
        elif kind == "CarecallVoicemail":
            call.voicemail_left = p.get("Status", "SUCCESS") == "SUCCESS"
        elif kind == "CarecallEnd":
            call.verdict = call.verdict or p.get("AMDStatus") or None
            cause = _int(p.get("HangupCause"))
            if cause:
                call.causes.append(cause)

    def _leg_packet(
        self, nurse_id: int, leg_key: str, name: str | None, p: Packet, uid: str, now: datetime
    ) -> Heard:
        leg = self.legs.get((nurse_id, leg_key))
        if leg is None:
            return Heard([], None)  # a leg already down, or another process's nurse: nothing to say
        own = uid == leg_channel(nurse_id, leg_key)
        if name == "ConfbridgeJoin" and own and not leg.up:
            leg.up = True
            return Heard([NurseLegEvent(nurse_id, True, now)])
        failed = (name is None and p.response == "Error") or (
            name == "OriginateResponse" and p.response != "Success"
        )
        if failed or (own and name in ("ConfbridgeLeave", "Hangup")):
            del self.legs[(nurse_id, leg_key)]
            return Heard([NurseLegEvent(nurse_id, False, now)])
        return NOTHING

    # -- reconciliation: what the switch still holds after events may have been missed ----------

    def in_flight(self, placed_before: float, unheard_since: float | None = None) -> list[int]:
        """Calls placed before a moment (and not heard of since another): those to check on the switch."""
        return [
            a
            for a, c in self.calls.items()
            if c.placed_at < placed_before and (unheard_since is None or c.last_heard < unheard_since)
        ]

    def legs_in_flight(self, placed_before: float) -> list[tuple[int, str]]:
        return [k for k, leg in self.legs.items() if leg.placed_at < placed_before]

    def reconcile(
        self,
        attempts: Iterable[int],
        legs: Iterable[tuple[int, str]],
        listed: Mapping[str, str],
        statuses: Mapping[int, Packet],
        now: datetime,
        since: float,
    ) -> list[Event]:
        """Settle calls and legs against the switch's channels (`listed`: Uniqueid -> Application,
        from CoreShowChannels) and the patients' `Status` replies.

        A call still on the switch goes on, and what it did meanwhile (answered, the detector's
        verdict, in the conference) is said now; a call gone meanwhile ends, its cause unknown
        unless a Hangup said it. A call heard of since `since` is alive whatever the listing says.
        """
        out: list[Event] = []
        for attempt_id in attempts:
            call = self.calls.get(attempt_id)
            if call is None:
                continue
            mine = [ch for ch in (patient_channel(attempt_id), f"att-{attempt_id}-2") if ch in listed]
            if not mine and call.last_heard < since:
                out.extend(self._end(call, now, by_reconciliation=True))
                continue
            status = statuses.get(attempt_id)
            if status is not None:
                self._from_status(call, status, now, out)
            elif listed.get(patient_channel(attempt_id)) == "ConfBridge":
                self._say(call, K.connected, now, out)
        for key in legs:
            leg = self.legs.get(key)
            if leg is None:
                continue
            application = listed.get(leg_channel(*key))
            if application is None:
                del self.legs[key]
                out.append(NurseLegEvent(key[0], False, now))
            elif application == "ConfBridge" and not leg.up:
                leg.up = True
                out.append(NurseLegEvent(key[0], True, now))
        return out

    def _from_status(self, call: _Call, status: Packet, now: datetime, out: list[Event]) -> None:
        variables = status.variables()
        state = status.get("ChannelStateDesc")
        if state == "Ringing":
            self._say(call, K.ringing, now, out)
        elif state == "Up":
            self._say(call, K.answered, now, out)
        if variables.get("AMDSTATUS"):
            call.verdict = variables["AMDSTATUS"]
            call.amd_cause = variables.get("AMDCAUSE") or call.amd_cause
            self._verdict(call, now, out)
        if status.get("Application") == "ConfBridge":
            self._say(call, K.connected, now, out)

    # -- the rules of one call -----------------------------------------------------------------

    def _verdict(self, call: _Call, now: datetime, out: list[Event]) -> None:
        if call.verdict in _HUMAN_VERDICTS:
            self._say(call, K.human, now, out)
        elif call.verdict == "MACHINE":
            self._say(call, K.machine, now, out)

    def _say(self, call: _Call, kind: CallEventKind, now: datetime, out: list[Event]) -> None:
        """Send `kind` once, after the kinds it implies (a later one never precedes an earlier one)."""
        if kind in call.sent or K.ended in call.sent:
            return
        if kind in (K.human, K.machine) and (K.human in call.sent or K.machine in call.sent):
            return  # one verdict per call
        if kind in (K.human, K.machine, K.connected, K.nurse_gone):
            self._say(call, K.answered, now, out)
        if kind in (K.connected, K.nurse_gone) and K.machine not in call.sent:
            self._say(call, K.human, now, out)
        call.sent.add(kind)
        detail = call.amd_cause if kind in (K.human, K.machine) else None
        out.append(
            CallEvent(call.attempt_id, kind, now, detail=detail, call_id=patient_channel(call.attempt_id))
        )

    def _over(self, call: _Call) -> bool:
        if call.originated is None or any(call.channels.values()):
            return False
        return call.originated is False or call.patient_down

    def _end(self, call: _Call, now: datetime, by_reconciliation: bool = False) -> list[Event]:
        out: list[Event] = []
        self._verdict(call, now, out)  # a verdict whose AMDCAUSE never came still counts
        voicemail = call.voicemail_left and K.machine in call.sent
        out.append(
            CallEvent(
                call.attempt_id,
                K.ended,
                now,
                cause=self._cause(call),
                voicemail_left=voicemail,
                call_id=patient_channel(call.attempt_id),
            )
        )
        call.sent.add(K.ended)
        del self.calls[call.attempt_id]
        self._ended[call.attempt_id] = by_reconciliation
        while len(self._ended) > self._remember:
            del self._ended[next(iter(self._ended))]
        return out

    @staticmethod
    def _cause(call: _Call) -> int | None:
        for cause in call.causes:
            if cause != 16:
                return cause
        if call.originated is False and call.reason in REASON_CAUSE:
            return REASON_CAUSE[call.reason]
        return 16 if call.causes else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
