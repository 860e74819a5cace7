"""The recorded call flows of a real Asterisk 22, cut into the templates the AMI peer plays for each call.

`ami_recordings/` holds the raw captures of `../shared/fixtures/ami/` (one
packet per line, header order kept). Every value that belongs to the
recorded call (channel names, ChannelIds, the ActionID, the dialed number,
the nurse's exten, the attempt id, the caller ID, the conference's bridge,
the detector's verdict) becomes a marker
`\\0NAME\\0` that the peer fills in for its own call; everything else is
played as recorded, odd orders included. The `VarSet` events of the
Originate's own variables become one placeholder per channel half, expanded
into one `VarSet` per variable the client sent (`;1` in reverse order, `;2`
in order, as recorded).

Flows are cut at the points where the recorded dialplan branches on state
(is the nurse in her conference when the verdict comes?) or where an action
interrupts a call; the peer splices the right flow in at those points.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from dialer.testing.ami_flows import (
    DEFAULT_ORIGINATE_TIMEOUT_MS,
    MARK,
    PATIENT_SCENARIOS,
    VARS,
    Flow,
    Step,
    dial_parts,
    originate_variables,
)
from dialer.testing.ami_wire import Headers, header

RECORDINGS = Path(__file__).with_name("ami_recordings")


@dataclass(frozen=True, slots=True)
class Packet:
    t: float
    out: bool
    headers: Headers


def load_recording(path: Path) -> list[Packet]:
    packets = []
    for line in path.read_text().splitlines():
        record: dict[str, Any] = json.loads(line)
        if "headers" in record:
            headers = [(str(k), str(v)) for k, v in record["headers"]]
            packets.append(Packet(float(record["t"]), record["dir"] == "out", headers))
    return packets


@dataclass(frozen=True, slots=True)
class _Leg:
    """One Originate of a recording and the channel it made."""

    prefix: str  # "P" (patient) or "N" (nurse)
    index: int  # of the Originate packet
    action: Headers
    chan: str  # channel name without ;1/;2
    uid1: str
    uid2: str


def _legs(packets: Sequence[Packet]) -> list[_Leg]:
    legs = []
    for index, packet in enumerate(packets):
        if not packet.out or header(packet.headers, "Action") != "Originate":
            continue
        dial = header(packet.headers, "Channel") or ""
        names = {}
        for later in packets[index + 1 :]:
            if header(later.headers, "Event") == "Newchannel":
                channel = header(later.headers, "Channel") or ""
                if channel.startswith(dial + "-"):
                    names[channel[-1]] = (channel[:-2], header(later.headers, "Uniqueid") or "")
            if len(names) == 2:
                break
        prefix = "N" if header(packet.headers, "Context") == "nurse-conference" else "P"
        legs.append(_Leg(prefix, index, packet.headers, names["1"][0], names["1"][1], names["2"][1]))
    return legs


class _Markers:
    """Turns a recording's own values into markers."""

    def __init__(self, packets: Sequence[Packet], legs: Sequence[_Leg]) -> None:
        pairs: dict[str, str] = {}
        self.exact: dict[str, str] = {}  # a whole value of a header ending in Context or Name
        self.attempt: re.Pattern[str] | None = None
        self.verdict: dict[str, str] = {}  # AMDSTATUS / AMDCAUSE of the patient, as recorded
        for leg in legs:
            p = leg.prefix
            dial = header(leg.action, "Channel") or ""
            number, dial_context = dial_parts(dial)
            pairs.update({leg.chan: f"{p}_CHAN", leg.uid1: f"{p}_UID1", leg.uid2: f"{p}_UID2"})
            pairs.update({header(leg.action, "ActionID") or "": f"{p}_ACTION", dial: f"{p}_DIAL"})
            pairs[dial.split("/", 1)[-1]] = f"{p}_TARGET"
            pairs[header(leg.action, "Exten") or ""] = "EXTEN"
            self.exact[header(leg.action, "Context") or ""] = f"{p}_CONTEXT"
            self.exact[dial_context] = f"{p}_DIALCTX"
            caller_id = header(leg.action, "CallerID") or ""
            match = re.fullmatch(r'"?([^"<]*)"?\s*<([^>]*)>', caller_id)
            if match:
                pairs.update({caller_id: "CID", match.group(2): "CID_NUM"})
                self.exact[match.group(1)] = "CID_NAME"
            if p == "P":
                pairs[number] = "NUMBER"
                attempt = dict(originate_variables(leg.action)).get("CARECALL_ATTEMPT")
                if attempt:
                    self.attempt = re.compile(rf"(?<![\w.]){re.escape(attempt)}(?![\w.])")
        for packet in packets:
            event = header(packet.headers, "Event")
            if event == "BridgeCreate":
                pairs[header(packet.headers, "BridgeUniqueid") or ""] = "BRIDGE"
            for _, value in packet.headers:
                for cbann in re.findall(r"CBAnn/[^;,\s]+", value):
                    pairs[cbann] = "CBANN"
            if event == "VarSet" and header(packet.headers, "Variable") in ("AMDSTATUS", "AMDCAUSE"):
                value = header(packet.headers, "Value") or ""
                self.verdict.setdefault(header(packet.headers, "Variable") or "", value)
                if value and value != "HANGUP":  # HANGUP is also a CONFBRIDGE_RESULT: no person's verdict
                    pairs[value] = header(packet.headers, "Variable") or ""
        pairs.pop("", None)
        self.exact.pop("", None)
        self.pairs = sorted(pairs.items(), key=lambda item: -len(item[0]))

    def mark(self, name: str, value: str) -> str:
        if name == "Timestamp":
            return value
        if (name.endswith("Context") or name.endswith("Name")) and value in self.exact:
            return f"{MARK}{self.exact[value]}{MARK}"
        for recorded, marker in self.pairs:
            if recorded in value:
                value = value.replace(recorded, f"{MARK}{marker}{MARK}")
        if self.attempt is not None:
            value = self.attempt.sub(f"{MARK}ATTEMPT{MARK}", value)
        return value


_PATIENT_MARKERS = ("P_", "NUMBER", "ATTEMPT")


def _is_patient(headers: Iterable[tuple[str, str]]) -> bool:
    return any(f"{MARK}{m}" in value for _, value in headers for m in _PATIENT_MARKERS)


class Recording:
    """One capture with its legs found and its values marked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.packets = load_recording(RECORDINGS / f"ami-transcript-{name}.jsonl")
        self.legs = _legs(self.packets)
        self.markers = _Markers(self.packets, self.legs)

    def leg(self, prefix: str) -> _Leg:
        return next(leg for leg in self.legs if leg.prefix == prefix)

    def index_of(self, action: str, after: int = 0) -> int:
        return next(
            i
            for i, p in enumerate(self.packets)
            if i >= after and p.out and header(p.headers, "Action") == action
        )

    def flow(self, name: str, start: int, end: int | None = None, *, branches: bool = False) -> Flow:
        """The events between packets `start` (the trigger) and `end`, action responses left out.

        With `branches`, a person's verdict is marked as the point where the peer checks the conference.
        """
        end = len(self.packets) if end is None else end
        base = self.packets[start].t
        steps = []
        for packet in self.packets[start:end]:
            # list items answering an action carry no Privilege; OriginateResponse is an event
            if (
                packet.out
                or header(packet.headers, "Event") is None
                or header(packet.headers, "Privilege") is None
            ):
                continue
            headers = tuple((k, self.markers.mark(k, v)) for k, v in packet.headers)
            verdict = (
                branches
                and header(packet.headers, "Event") == "VarSet"
                and header(packet.headers, "Variable") == "AMDSTATUS"
                and header(packet.headers, "Value") in ("HUMAN", "NOTSURE")
            )
            steps.append(
                Step(round(packet.t - base, 6), headers, verdict=verdict, patient=_is_patient(headers))
            )
        return Flow(name, tuple(steps))

    def call_flow(self, prefix: str, end_action: str = "Logoff") -> Flow:
        """A leg's events from its Originate until the next action the recording sent."""
        leg = self.leg(prefix)
        end = self.index_of(end_action, after=leg.index + 1)
        flow = self.flow(self.name, leg.index, end, branches=True)
        flow = _variables_as_placeholders(flow, originate_variables(leg.action), prefix)
        return replace(_with_knobs(flow, leg), verdict=dict(self.markers.verdict))


def _variables_as_placeholders(flow: Flow, variables: list[tuple[str, str]], prefix: str) -> Flow:
    names = {name for name, _ in variables}
    steps: list[Step] = []
    placed = {1: False, 2: False}
    bridged = False
    for step in flow.steps:
        event = header(step.headers, "Event")
        uid = header(step.headers, "Uniqueid") or ""
        half = 1 if uid.endswith(f"{prefix}_UID1{MARK}") else 2 if uid.endswith(f"{prefix}_UID2{MARK}") else 0
        bridged = bridged or event == "LocalBridge"
        if not bridged and event == "VarSet" and header(step.headers, "Variable") in names:
            continue
        if half and event == "NewCallerid" and not placed[half]:
            placed[half] = True
            steps.append(Step(step.offset, ((VARS, str(half)),), half=half, patient=prefix == "P"))
        steps.append(step)
    return replace(flow, steps=tuple(steps))


def _with_knobs(flow: Flow, leg: _Leg) -> Flow:
    """Marks the dialplan's ring and talk waits (`Wait(${RING})`, `Wait(${TALK})` on `;2`) and the timeout."""
    values = {}
    for step in flow.steps:
        if header(step.headers, "Event") == "VarSet" and header(step.headers, "Variable") in ("RING", "TALK"):
            values[header(step.headers, "Variable") or ""] = header(step.headers, "Value") or ""
    changes: dict[str, Any] = {}
    steps = list(flow.steps)
    for knob, value in values.items():
        waits = [
            i
            for i, s in enumerate(steps)
            if header(s.headers, "Application") == "Wait"
            and header(s.headers, "AppData") == value
            and (header(s.headers, "Uniqueid") or "").endswith(f"P_UID2{MARK}")
        ]
        if not waits:
            continue
        wait = waits[0] if knob == "RING" else waits[-1]
        marker = f"{MARK}{knob}{MARK}"
        for i, step in enumerate(steps):
            kind, variable = header(step.headers, "Event"), header(step.headers, "Variable")
            if (
                i == wait
                or (kind == "VarSet" and variable == knob)
                or header(step.headers, "AppData") == f"{knob}={value}"
            ):
                steps[i] = replace(
                    step, headers=tuple(_knob_value(k, v, knob, value, marker) for k, v in step.headers)
                )
        changes[f"{knob.lower()}_end"] = steps[wait].offset + int(value) - 0.005
        changes[f"recorded_{knob.lower()}"] = int(value)
    response = next((s for s in steps if header(s.headers, "Event") == "OriginateResponse"), None)
    if response is not None and header(response.headers, "Reason") == "3":  # no answer: ends at the timeout
        timeout = int(header(leg.action, "Timeout") or DEFAULT_ORIGINATE_TIMEOUT_MS)
        changes.update(timeout_end=timeout / 1000, recorded_timeout_ms=timeout)
    return replace(flow, steps=tuple(steps), **changes)


def _knob_value(name: str, value: str, knob: str, recorded: str, marker: str) -> tuple[str, str]:
    if name in ("Value", "AppData") and value == recorded:
        return name, marker
    if name == "AppData" and value == f"{knob}={recorded}":
        return name, f"{knob}={marker}"
    return name, value


@dataclass(frozen=True)
class Library:
    """Every flow the peer plays, cut from the recordings once."""

    patient: dict[str, Flow]  # scenario -> the call from its Originate
    nurse: Flow  # the nurse's leg from its Originate until she waits in her conference
    nurse_gone: Flow  # from a person's verdict when the nurse's conference is empty
    hangup: Flow  # after `Action: Hangup` of a patient in the conference
    redirect: Flow  # after `Action: Redirect` of a patient in the conference to the apology
    nurse_leaves: Flow  # after `Action: Hangup` of the nurse with a patient in her conference
    nurse_hangup: Flow  # after `Action: Hangup` of the nurse alone in her conference
    varset: dict[str, Step]  # "P1", "P2", "N1", "N2": a VarSet on that half, the prototype for variables
    login: tuple[Headers, ...]  # FullyBooted and SuccessfulAuth after a login


SILENT_MACHINE = "conf-machine-silent"


def _without_message(flow: Flow) -> Flow:
    """The machine's call when the policy leaves no message (`CARECALL_VOICEMAIL=0`).

    The site's dialplan (README, "Asterisk: what a site installs") hangs up right after the
    verdict instead of waiting for the beep and playing the neutral message: the recorded call without its
    WaitForSilence…Playback stretch, the hang-up brought forward by that long. Not recorded
    as such; cut from conf-machine.
    """
    steps = list(flow.steps)

    def app(step: Step) -> str | None:
        return header(step.headers, "Application") if header(step.headers, "Event") == "Newexten" else None

    start = next(i for i, st in enumerate(steps) if st.patient and app(st) == "WaitForSilence")
    stop = next(i for i, st in enumerate(steps) if i > start and st.patient and app(st) == "Hangup")
    gap = steps[stop].offset - steps[start].offset
    kept = [st for i, st in enumerate(steps[:stop]) if i < start or not st.patient]
    kept += [replace(st, offset=st.offset - gap) for st in steps[stop:]]
    return replace(flow, name=SILENT_MACHINE, steps=tuple(kept))


@cache
def library() -> Library:
    human = Recording("conf-human")
    patient = {name: Recording(name).call_flow("P") for name in PATIENT_SCENARIOS}
    patient[SILENT_MACHINE] = _without_message(patient["conf-machine"])
    nurse = human.call_flow("N", end_action="Originate")

    gone = Recording("conf-nurse-gone")
    verdict = next(i for i, p in enumerate(gone.packets) if header(p.headers, "Variable") == "AMDSTATUS")
    nurse_gone = gone.flow("nurse-gone", verdict, gone.index_of("Logoff"))
    nurse_hangup_at = gone.index_of("Hangup")
    nurse_hangup = gone.flow("nurse-hangup", nurse_hangup_at, gone.index_of("Logoff"))
    nurse_hangup = replace(nurse_hangup, steps=tuple(s for s in nurse_hangup.steps if not s.patient))

    def after(name: str, action: str) -> Flow:
        recording = Recording(name)
        at = recording.index_of(action)
        return recording.flow(name, at, recording.index_of("Logoff"))

    varset = {}
    for prefix in ("P", "N"):
        leg = human.leg(prefix)
        for packet in human.packets[leg.index :]:
            uid = header(packet.headers, "Uniqueid")
            if header(packet.headers, "Event") == "VarSet" and uid in (leg.uid1, leg.uid2):
                half = "1" if uid == leg.uid1 else "2"
                key = f"{prefix}{half}"
                if key not in varset:
                    marked = tuple((k, human.markers.mark(k, v)) for k, v in packet.headers)
                    varset[key] = Step(0.0, marked)
    login_at = human.index_of("Login")
    login = tuple(
        p.headers
        for p in human.packets[login_at + 1 : human.index_of("Originate")]
        if header(p.headers, "Event") is not None
    )
    return Library(
        patient=patient,
        nurse=nurse,
        nurse_gone=nurse_gone,
        hangup=after("conf-hangup-action", "Hangup"),
        redirect=after("conf-redirect", "Redirect"),
        nurse_leaves=after("conf-nurse-leaves", "Hangup"),
        nurse_hangup=nurse_hangup,
        varset=varset,
        login=login,
    )
