"""Recorded call flows as templates: the steps a call plays, their markers, and how a call fills them in.

A `Flow` is the run of events a recording shows after one trigger (an
Originate, a Hangup or Redirect action, the detector's verdict), each with
its time after that trigger. Values that belong to the recorded call are
markers `\\0NAME\\0` (`P_…` the patient's call, `N_…` the nurse's leg,
`EXTEN`, `NUMBER`, `ATTEMPT`, `CID…`, `BRIDGE`, `CBANN`, `AMDSTATUS`…) that
`render` fills with a call's own values, the recorded number with the one
dialed. The number dialed picks the flow by the peer's own table in the
ranges ARCEP reserves for fiction (`scenario_for_number`), not by the
recorded dialplan's numbers.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from dialer.testing.ami_wire import Headers, header

SYSTEM_NAME = "astertest"  # as recorded, in every event
MARK = "\x00"
VARS = "\x00vars"  # a placeholder header: the Originate's variables on one channel half go here

# what the recorded dialplan (extensions-nurse-conference.conf) does with a dialed number
PATIENT_SCENARIOS = (
    "conf-human",
    "conf-notsure",
    "conf-machine",
    "conf-hangup-quick",
    "conf-busy",
    "conf-noanswer",
    "congestion",
    "unallocated",
    "nosuchexten",
)
# The peer's own table, in the fiction ranges of ARCEP decision 2018-0881: 02 61 91 0D xx, D picks the flow
FLOW_PREFIX = "0261910"
_BY_DIGIT = {
    "1": "conf-busy",
    "2": "conf-noanswer",
    "3": "congestion",
    "4": "conf-hangup-quick",
    "5": "unallocated",
    "6": "conf-machine",
    "7": "conf-notsure",
}
# 06 39 98 is fiction too, but no number at all for phonenumbers: the network would say so
INVALID_PREFIX = "063998"
# the dialplan's globals PATIENT_RING_SECS / PATIENT_TALK_SECS, for a call without RING_SECS / TALK_SECS
DEFAULT_RING_SECONDS = 2
DEFAULT_TALK_SECONDS = 8
DEFAULT_ORIGINATE_TIMEOUT_MS = 30000


def scenario_for_number(number: str) -> str:
    """The flow a national number gets: 02 61 91 0D xx by the table, 06 39 98 xx xx unallocated, any other
    number starting with 0 a person, anything else no such extension (the recorded `[patients]` context knew
    only numbers starting with 0)."""
    if not number.startswith("0"):
        return "nosuchexten"
    if number.startswith(INVALID_PREFIX):
        return "unallocated"
    if number.startswith(FLOW_PREFIX) and len(number) > len(FLOW_PREFIX):
        return _BY_DIGIT.get(number[len(FLOW_PREFIX)], "conf-human")
    return "conf-human"


def number_for(scenario: str) -> str:
    """A national number whose flow is `scenario` by the table (02 61 91 00 00, a person, for any other)."""
    digit = next((d for d, s in _BY_DIGIT.items() if s == scenario), "0")
    return f"{FLOW_PREFIX}{digit}00"


@dataclass(frozen=True, slots=True)
class Step:
    offset: float  # seconds after the flow's trigger, as recorded
    headers: tuple[tuple[str, str], ...]
    half: int = 0  # 1 or 2: the placeholder of the Originate's variables on that channel half
    verdict: bool = False  # AMDSTATUS of a person: the dialplan checks the nurse's conference right after
    patient: bool = False  # names the patient's call (the rest is the nurse's leg or her conference)
    refresh: bool = False  # not recorded in this state: channel state headers come from the live channel


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    # steps at or after these recorded offsets move with the call's ring time, talk time, Originate timeout
    ring_end: float | None = None
    recorded_ring: int = DEFAULT_RING_SECONDS
    talk_end: float | None = None
    recorded_talk: int = DEFAULT_TALK_SECONDS
    timeout_end: float | None = None
    recorded_timeout_ms: int = DEFAULT_ORIGINATE_TIMEOUT_MS
    verdict: dict[str, str] = field(default_factory=dict)  # the detector's AMDSTATUS / AMDCAUSE, as recorded

    def offsets(self, ring: int, talk: int, timeout_ms: int) -> list[float]:
        """Each step's time after the trigger for a call with these dialplan knobs."""
        result = []
        for step in self.steps:
            offset = step.offset
            if self.ring_end is not None and step.offset >= self.ring_end:
                offset += ring - self.recorded_ring
            if self.talk_end is not None and step.offset >= self.talk_end:
                offset += talk - self.recorded_talk
            if self.timeout_end is not None and step.offset >= self.timeout_end:
                offset += (timeout_ms - self.recorded_timeout_ms) / 1000
            result.append(max(offset, 0.0))
        return result

    def without(self, *drop: str) -> Flow:
        """The flow minus the events named (`VarSet:BRIDGEPEER` drops one variable's VarSets)."""
        return replace(self, steps=tuple(s for s in self.steps if not _dropped(s, drop)))


def _dropped(step: Step, drop: Sequence[str]) -> bool:
    name = header(step.headers, "Event") or ""
    variable = header(step.headers, "Variable")
    return name in drop or f"{name}:{variable}" in drop


def originate_variables(action: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """`Variable:` headers of an Originate, each `NAME=value` or several separated by commas."""
    variables = []
    for value in [v for k, v in action if k.lower() == "variable"]:
        for item in value.split(","):
            name, _, content = item.partition("=")
            if name.strip():
                variables.append((name.strip(), content))
    return variables


def dial_parts(dial: str) -> tuple[str, str]:
    """The number and the context of a dial string such as `Local/0261910001@patients`."""
    target = dial.split("/", 1)[-1]
    number, _, context = target.partition("@")
    return number, context


def render(headers: Iterable[tuple[str, str]], values: dict[str, str], timestamp: str) -> Headers:
    """The headers with markers filled in and a fresh Timestamp."""
    out = []
    for name, value in headers:
        if name == "Timestamp":
            value = timestamp
        elif MARK in value:
            parts = value.split(MARK)
            value = "".join(values.get(part, "") if i % 2 else part for i, part in enumerate(parts))
        out.append((name, value))
    return out


_CDR_TIMES = ("StartTime", "AnswerTime", "EndTime")


def cdr_times_moved(headers: Headers, recorded_at: float, now: float) -> Headers:
    """A Cdr's StartTime/AnswerTime/EndTime (UTC, to the second) moved from the recording to now."""
    out = []
    for name, value in headers:
        if name in _CDR_TIMES and value:
            recorded = calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M:%S"))
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(recorded + now - recorded_at))
        out.append((name, value))
    return out


def variable_events(prototype: Step, variables: Sequence[tuple[str, str]], half: int) -> list[Headers]:
    """One VarSet per Originate variable on a channel half: `;1` in reverse order, `;2` in order."""
    ordered = list(reversed(variables)) if half == 1 else list(variables)
    events = []
    for name, value in ordered:
        events.append(
            [(k, name if k == "Variable" else value if k == "Value" else v) for k, v in prototype.headers]
        )
    return events


CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
# events of a conference, left out when a leg is hung up or redirected outside one (not recorded)
CONFERENCE_EVENTS = (
    "ConfbridgeLeave",
    "ConfbridgeEnd",
    "BridgeLeave",
    "BridgeDestroy",
    "VarSet:BRIDGEPEER",
    "VarSet:CONFBRIDGE_RESULT",
)


def with_cause(flow: Flow, cause: int) -> Flow:
    """The recorded flow after `Action: Hangup` with `Cause: 16`, for the cause the client gave."""
    if cause == 16:
        return flow
    text = CAUSE_TEXT.get(cause, "Unknown")

    def fix(name: str, value: str) -> str:
        if name == "Cause" and value == "16":
            return str(cause)
        if name == "Cause-txt" and value == "Normal Clearing":
            return text
        if name in ("AppData", "HangupCause"):
            return re.sub(r"(?<=HangupCause: )16\b|(?<=cause )16\b|^16$", str(cause), value)
        return value

    steps = tuple(replace(s, headers=tuple((k, fix(k, v)) for k, v in s.headers)) for s in flow.steps)
    return replace(flow, steps=steps)


def originate_failure(p: str, reason: str) -> Headers:
    """Not recorded: the OriginateResponse of a call hung up before it was answered."""
    return [
        ("Event", "OriginateResponse"),
        ("Privilege", "call,all"),
        ("Timestamp", ""),
        ("SystemName", SYSTEM_NAME),
        ("ActionID", f"{MARK}{p}_ACTION{MARK}"),
        ("Response", "Failure"),
        ("Channel", f"{MARK}{p}_DIAL{MARK}"),
        ("Context", f"{MARK}{p}_CONTEXT{MARK}"),
        ("Exten", f"{MARK}EXTEN{MARK}"),
        ("Reason", reason),
        ("Uniqueid", f"{MARK}{p}_UID1{MARK}"),
        ("CallerIDNum", f"{MARK}CID_NUM{MARK}"),
        ("CallerIDName", f"{MARK}CID_NAME{MARK}"),
    ]
