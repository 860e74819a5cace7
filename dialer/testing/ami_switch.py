"""The simulated Asterisk behind the AMI peer: its calls, channels and conferences, and the actions on them.

Each call plays a recorded flow (`ami_scenarios`) on one scheduler thread, at
the recorded times divided by `speed`. What the switch knows of its channels
(state, dialplan application, variables, bridge, conference) it learns from
the very events it emits, as a client would, so `CoreShowChannels`, `Status`
and the ConfBridge lists always agree with the stream. Where the recorded
dialplan branches on state, the switch decides from that table: a person's
verdict joins the nurse's conference only if she is in it, else the
nurse-gone flow plays; a Hangup or Redirect swaps the rest of a call for the
recorded flow that followed the same action.
"""

from __future__ import annotations

import heapq
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dialer.testing.ami_scenarios import (
    DEFAULT_ORIGINATE_TIMEOUT_MS,
    DEFAULT_RING_SECONDS,
    DEFAULT_TALK_SECONDS,
    PATIENT_SCENARIOS,
    Flow,
    Step,
    dial_parts,
    library,
    originate_variables,
    render,
    scenario_for_number,
    variable_events,
)
from dialer.testing.ami_wire import Headers, header

Reply = Callable[[list[Headers]], None]
SYSTEM_NAME = "astertest"  # as recorded, in every event
SNAPSHOT = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
]
_BRIDGE = [
    "BridgeUniqueid",
    "BridgeType",
    "BridgeTechnology",
    "BridgeCreator",
    "BridgeName",
    "BridgeNumChannels",
]
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
_CONFERENCE_EVENTS = (
    "ConfbridgeLeave",
    "ConfbridgeEnd",
    "BridgeLeave",
    "BridgeDestroy",
    "VarSet:BRIDGEPEER",
    "VarSet:CONFBRIDGE_RESULT",
)


def success(action_id: str | None, *extra: tuple[str, str]) -> Headers:
    return [("Response", "Success"), *_action_id(action_id), *extra]


def error(action_id: str | None, message: str) -> Headers:
    return [("Response", "Error"), *_action_id(action_id), ("Message", message)]


def _action_id(action_id: str | None) -> list[tuple[str, str]]:
    return [] if action_id is None else [("ActionID", action_id)]


@dataclass(eq=False)
class Leg:
    """A call the switch placed: a patient's call or a nurse's leg, both halves of its Local channel."""

    role: str  # "patient" or "nurse"
    values: dict[str, str]  # what fills the flows' markers
    variables: list[tuple[str, str]]
    channel_id: str | None
    knobs: tuple[int, int, int]  # ring seconds, talk seconds, Originate timeout (ms)
    generation: int = 0  # bumped to drop what is still scheduled
    responded: bool = False  # its OriginateResponse went out
    prefix: str = "P"

    @property
    def uids(self) -> tuple[str, str]:
        return self.values[f"{self.prefix}_UID1"], self.values[f"{self.prefix}_UID2"]


@dataclass(eq=False)
class Channel:
    snapshot: dict[str, str]
    created: float
    answered: float | None = None
    application: str = ""
    data: str = ""
    bridge: str = ""
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    leg: Leg = field(compare=False)
    generation: int = field(compare=False)
    step: Step = field(compare=False)


class Switch:
    """Calls, channels and conferences; `publish` receives every event, in order, from one thread."""

    def __init__(
        self,
        publish: Callable[[Headers], None],
        *,
        speed: float,
        nurse_context: str,
        redirect_context: str,
    ) -> None:
        self.publish = publish
        self.speed = speed
        self.nurse_context = nurse_context
        self.redirect_context = redirect_context
        self.lock = threading.Condition(threading.RLock())
        self.scripts: dict[str, tuple[str, dict[str, int]]] = {}
        self.channels: dict[str, Channel] = {}  # by Uniqueid, in creation order
        self.owners: dict[str, Leg] = {}  # Uniqueid -> its leg
        self.conferences: dict[str, list[str]] = {}  # name -> Uniqueids of its members, in join order
        self.bridges: dict[str, dict[str, str]] = {}
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._channel_seq = itertools.count()
        self._unique_seq = itertools.count(1)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ami-peer-switch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self.lock:
            self._stopped = True
            self.lock.notify_all()
        self._thread.join(5)

    # -- scheduling -------------------------------------------------------------------------------

    def _play(self, leg: Leg, flow: Flow, anchor: float) -> None:
        ring, talk, timeout = leg.knobs
        for step, offset in zip(flow.steps, flow.offsets(ring, talk, timeout), strict=True):
            due = anchor + offset / self.speed
            heapq.heappush(self._heap, _Scheduled(due, next(self._seq), leg, leg.generation, step))
        self.lock.notify_all()

    def _cancel(self, leg: Leg) -> None:
        leg.generation += 1

    def _run(self) -> None:
        with self.lock:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0].due <= now:
                    item = heapq.heappop(self._heap)
                    if item.generation == item.leg.generation:
                        self._emit(item)
                timeout = self._heap[0].due - time.monotonic() if self._heap else None
                if timeout is None or timeout > 0:
                    self.lock.wait(timeout)

    def _emit(self, item: _Scheduled) -> None:
        leg, step = item.leg, item.step
        if step.verdict and leg.role == "patient":
            nurse = self._nurse_in_conference(leg.values["EXTEN"])
            if nurse is None:  # the dialplan's CONFBRIDGE_INFO(parties) is 0: apology, never silence
                self._cancel(leg)
                self._play(leg, library().nurse_gone, item.due)
                return
            leg.values.update(
                {k: v for k, v in nurse.values.items() if k.startswith("N_") or k in ("CBANN", "BRIDGE")}
            )
        if step.half:
            proto = library().varset[f"{leg.prefix}{step.half}"]
            packets = variable_events(proto, leg.variables, step.half)
        else:
            packets = [list(step.headers)]
        stamp = f"{time.time():.6f}"
        for headers in packets:
            rendered = render(headers, leg.values, stamp)
            name = header(rendered, "Event")
            if name == "OriginateResponse":
                leg.responded = True
                if (
                    header(rendered, "Response") == "Failure"
                ):  # Uniqueid is `<unknown>` unless ChannelId was sent
                    rendered = [
                        (k, (leg.channel_id or "<unknown>") if k == "Uniqueid" else v) for k, v in rendered
                    ]
            if step.refresh:
                rendered = self._refreshed(rendered)
            self._track(rendered)
            self.publish(rendered)

    def _refreshed(self, headers: Headers) -> Headers:
        channel = self.channels.get(header(headers, "Uniqueid") or "")
        if channel is None:
            return headers
        keep = ("ChannelState", "ChannelStateDesc", "Context", "Exten", "Priority")
        return [(k, channel.snapshot.get(k, v) if k in keep else v) for k, v in headers]

    # -- what the switch learns from its own events ------------------------------------------------

    def _track(self, headers: Headers) -> None:
        name = headers[0][1]
        uid = header(headers, "Uniqueid") or ""
        now = time.monotonic()
        if name == "Newchannel":
            self.channels[uid] = Channel({}, now)
        channel = self.channels.get(uid)
        if (
            channel is not None
            and name != "OriginateResponse"
            and header(headers, "ChannelState") is not None
        ):
            channel.snapshot.update((k, v) for k, v in headers if k in SNAPSHOT)
            if channel.answered is None and channel.snapshot.get("ChannelState") == "6":
                channel.answered = now
        bridge = header(headers, "BridgeUniqueid")
        if bridge is not None and name != "BridgeDestroy":
            self.bridges.setdefault(bridge, {}).update((k, v) for k, v in headers if k in _BRIDGE)
        conference = header(headers, "Conference") or ""
        if name == "BridgeDestroy":
            self.bridges.pop(bridge or "", None)
        elif name == "ConfbridgeStart":
            self.conferences.setdefault(conference, [])
        elif name == "ConfbridgeEnd":
            self.conferences.pop(conference, None)
        elif name == "ConfbridgeJoin":
            self.conferences.setdefault(conference, []).append(uid)
        elif name == "ConfbridgeLeave" and uid in self.conferences.get(conference, []):
            self.conferences[conference].remove(uid)
        if channel is None:
            return
        if name == "Newexten":
            channel.application = header(headers, "Application") or ""
            channel.data = header(headers, "AppData") or ""
        elif name == "VarSet":
            channel.variables[header(headers, "Variable") or ""] = header(headers, "Value") or ""
        elif name == "BridgeEnter":
            channel.bridge = bridge or ""
        elif name == "BridgeLeave":
            channel.bridge = ""
        elif name == "Hangup":
            del self.channels[uid]
            self.owners.pop(uid, None)

    def _nurse_in_conference(self, exten: str) -> Leg | None:
        for uid in self.conferences.get(f"nurse-{exten}", []):
            owner = self.owners.get(uid)
            if owner is not None and owner.role == "nurse":
                return owner
        return None

    def _conference_of(self, uid: str) -> str | None:
        return next((name for name, members in self.conferences.items() if uid in members), None)

    def resolve(self, name_or_uid: str) -> str | None:
        """A channel's Uniqueid from its name or its Uniqueid (ChannelId), as Asterisk accepts both."""
        if name_or_uid in self.channels:
            return name_or_uid
        return next((u for u, c in self.channels.items() if c.snapshot.get("Channel") == name_or_uid), None)

    # -- actions --------------------------------------------------------------------------------

    def script(self, number: str, scenario: str, **knobs: int) -> None:
        if scenario not in PATIENT_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(PATIENT_SCENARIOS)}")
        unknown = set(knobs) - {"ring_seconds", "talk_seconds"}
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}: ring_seconds and talk_seconds only")
        with self.lock:
            self.scripts[number] = (scenario, dict(knobs))

    def originate(self, action: Headers, reply: Reply) -> str | None:
        """Queue the call (Async only) and play its flow; returns the Uniqueid of its `;1`."""
        action_id = header(action, "ActionID")
        dial = header(action, "Channel")
        if not dial:
            reply([error(action_id, "Channel not specified")])
            return None
        if (header(action, "Async") or "").lower() not in ("true", "yes", "1"):
            reply([error(action_id, "This AMI peer plays asynchronous originates only (Async: true)")])
            return None
        with self.lock:
            reply([success(action_id, ("Message", "Originate successfully queued"))])
            leg = self._new_leg(action, dial)
            flow = library().nurse if leg.role == "nurse" else library().patient[leg.values["SCENARIO"]]
            self._play(leg, flow, time.monotonic())
            return leg.uids[0]

    def _new_leg(self, action: Headers, dial: str) -> Leg:
        context = header(action, "Context") or ""
        role = "nurse" if context == self.nurse_context else "patient"
        p = "N" if role == "nurse" else "P"
        number, dial_context = dial_parts(dial)
        channel_id, other_id = header(action, "ChannelId"), header(action, "OtherChannelId")
        uid1 = channel_id or self._unique_id()
        uid2 = other_id or (f"{channel_id};2" if channel_id else self._unique_id())
        caller_id = header(action, "CallerID") or ""
        match = re.fullmatch(r'"?([^"<]*)"?\s*<([^>]*)>', caller_id)
        cid_name, cid_num = (match.group(1), match.group(2)) if match else ("<unknown>", "<unknown>")
        exten = header(action, "Exten") or ""
        values = {
            f"{p}_CHAN": f"{dial}-{next(self._channel_seq):08x}",
            f"{p}_UID1": uid1,
            f"{p}_UID2": uid2,
            f"{p}_ACTION": header(action, "ActionID") or "",
            f"{p}_DIAL": dial,
            f"{p}_TARGET": dial.split("/", 1)[-1],
            f"{p}_CONTEXT": context,
            f"{p}_DIALCTX": dial_context,
            "EXTEN": exten,
            "CID": caller_id,
            "CID_NUM": cid_num,
            "CID_NAME": cid_name,
        }
        variables = originate_variables(action)
        given = dict(variables)
        timeout = int(header(action, "Timeout") or DEFAULT_ORIGINATE_TIMEOUT_MS)
        knobs = (DEFAULT_RING_SECONDS, DEFAULT_TALK_SECONDS, timeout)
        if role == "nurse":
            values["CBANN"] = f"CBAnn/nurse-{exten}-{next(self._channel_seq):08x}"
            values["BRIDGE"] = str(uuid.uuid4())
        else:
            scenario, scripted = self.scripts.get(number, (scenario_for_number(number), {}))
            flow = library().patient[scenario]
            ring = scripted.get("ring_seconds", int(given.get("RING_SECS") or DEFAULT_RING_SECONDS))
            talk = scripted.get("talk_seconds", int(given.get("TALK_SECS") or DEFAULT_TALK_SECONDS))
            knobs = (ring, talk, timeout)
            values.update(
                NUMBER=number,
                ATTEMPT=given.get("CARECALL_ATTEMPT", ""),
                SCENARIO=scenario,
                RING=str(ring),
                TALK=str(talk),
                **flow.verdict,
            )
        leg = Leg(role, values, variables, channel_id, knobs, prefix=p)
        self.owners[uid1] = self.owners[uid2] = leg
        return leg

    def _unique_id(self) -> str:
        return f"{SYSTEM_NAME}-{int(time.time())}.{next(self._unique_seq)}"

    def hangup(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            uid = self.resolve(header(action, "Channel") or "")
            leg = self.owners.get(uid or "")
            if uid is None or leg is None:
                reply([error(action_id, "No such channel")])
                return
            cause = int(header(action, "Cause") or 16)
            reply([success(action_id, ("Message", "Channel Hungup"))])
            now = time.monotonic()
            conference = self._conference_of(leg.uids[0])
            self._cancel(leg)
            if leg.role == "nurse":
                patients = [
                    self.owners[u] for u in self.conferences.get(conference or "", []) if u in self.owners
                ]
                patients = [p for p in patients if p.role == "patient"]
                if patients:  # the end_marked patient is kicked and hears the apology
                    self._cancel(patients[0])
                    self._play(patients[0], _with_cause(library().nurse_leaves, cause), now)
                elif conference is not None:
                    self._play(leg, _with_cause(library().nurse_hangup, cause), now)
                else:
                    self._play(leg, self._outside(leg, library().nurse_hangup, cause), now)
            elif conference is not None:
                self._play(leg, _with_cause(library().hangup, cause), now)
            else:
                self._play(leg, self._outside(leg, library().hangup, cause), now)

    def _outside(self, leg: Leg, flow: Flow, cause: int) -> Flow:
        """Not recorded: a Hangup of a leg outside any conference (ringing, detector, message, apology)."""
        flow = _with_cause(flow.without(*_CONFERENCE_EVENTS), cause)
        steps = [
            replace(s, refresh=True) for s in flow.steps if header(s.headers, "Device") is None or s.patient
        ]
        if not leg.responded:  # not answered: no dialplan ran, the Originate fails (Reason 1: hung up)
            steps = [s for s in steps if header(s.headers, "Event") not in ("Newexten", "UserEvent")]
            response = _originate_failure(leg, reason="1")
            at = next((i for i, s in enumerate(steps) if header(s.headers, "Event") == "Hangup"), len(steps))
            steps.insert(at + 1, replace(steps[min(at, len(steps) - 1)], headers=tuple(response)))
        return replace(flow, steps=tuple(steps))

    def redirect(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            uid = self.resolve(header(action, "Channel") or "")
            leg = self.owners.get(uid or "")
            if uid is None or leg is None:
                reply([error(action_id, "Channel not existent")])
                return
            target = (header(action, "Context"), header(action, "Exten"))
            if leg.role != "patient" or target != (self.redirect_context, "apology"):
                reply(
                    [error(action_id, f"Redirect to {target[0]},{target[1]} is not recorded for this peer")]
                )
                return
            reply([success(action_id, ("Message", "Redirect successful"))])
            self._cancel(leg)
            flow = library().redirect
            if self._conference_of(leg.uids[0]) is None:
                flow = flow.without(*_CONFERENCE_EVENTS)
                flow = replace(flow, steps=tuple(replace(s, refresh=True) for s in flow.steps))
            self._play(leg, flow, time.monotonic())

    # -- what reconciliation asks (recorded in conf-reconcile and conf-reconnect-2) -----------------

    def _seconds(self, since: float | None) -> int:
        return 0 if since is None else int((time.monotonic() - since) * self.speed)

    def _listing(
        self, action_id: str | None, message: str, items: list[Headers], complete: str
    ) -> list[Headers]:
        ids = _action_id(action_id)
        head = success(action_id, ("EventList", "start"), ("Message", message))
        tail = [("Event", complete), *ids, ("EventList", "Complete"), ("ListItems", str(len(items)))]
        return [head, *items, tail]

    def core_show_channels(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            items = []
            for channel in reversed(self.channels.values()):
                duration = self._seconds(channel.created)
                items.append(
                    [
                        ("Event", "CoreShowChannel"),
                        *_action_id(action_id),
                        *((k, channel.snapshot.get(k, "")) for k in SNAPSHOT),
                        ("Application", channel.application),
                        ("ApplicationData", channel.data),
                        ("Duration", f"{duration // 3600:02d}:{duration // 60 % 60:02d}:{duration % 60:02d}"),
                        ("BridgeId", channel.bridge),
                    ]
                )
            reply(self._listing(action_id, "Channels will follow", items, "CoreShowChannelsComplete"))

    def status(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        wanted = [v.strip() for v in (header(action, "Variables") or "").split(",") if v.strip()]
        with self.lock:
            name = header(action, "Channel")
            if name:
                uid = self.resolve(name)
                if uid is None:
                    reply([error(action_id, "No such channel")])
                    return
                uids = [uid]
            else:
                uids = list(self.channels)
            items = [self._status_item(self.channels[u], wanted, action_id) for u in uids]
            head = success(action_id, ("EventList", "start"), ("Message", "Channel status will follow"))
            count = str(len(items))
            tail = [("Event", "StatusComplete"), *_action_id(action_id), ("EventList", "Complete")]
            reply([head, *items, [*tail, ("ListItems", count), ("Items", count)]])

    def _status_item(self, channel: Channel, wanted: list[str], action_id: str | None) -> Headers:
        snap = channel.snapshot
        return [
            ("Event", "Status"),
            ("Privilege", "Call"),
            *((k, snap.get(k, "")) for k in SNAPSHOT),
            ("Type", "Local"),
            ("DNID", ""),
            ("EffectiveConnectedLineNum", snap.get("ConnectedLineNum", "")),
            ("EffectiveConnectedLineName", snap.get("ConnectedLineName", "")),
            ("TimeToHangup", "0"),
            ("BridgeID", channel.bridge),
            ("Application", channel.application),
            ("Data", channel.data),
            ("Nativeformats", "(slin)"),
            ("Readformat", "slin"),
            ("Readtrans", ""),
            ("Writeformat", "slin"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(self._seconds(channel.created))),
            *(("Variable", f"{v}={channel.variables.get(v, '')}") for v in wanted),
            *_action_id(action_id),
        ]

    def confbridge_list(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        name = header(action, "Conference")
        with self.lock:
            if not name:
                reply([error(action_id, "No Conference name provided.")])
                return
            if not self.conferences:
                reply([error(action_id, "No active conferences.")])
                return
            if name not in self.conferences:
                reply([error(action_id, "No Conference by that name found.")])
                return
            items = []
            for uid in self.conferences[name]:
                channel = self.channels.get(uid)
                if channel is None:  # its ConfbridgeLeave may come after its Hangup
                    continue
                nurse = self.owners.get(uid) is not None and self.owners[uid].role == "nurse"
                flags = [("Admin", "No"), ("MarkedUser", "Yes" if nurse else "No"), ("WaitMarked", "No")]
                flags += [("EndMarked", "No" if nurse else "Yes"), ("EndMarkedAny", "No"), ("Waiting", "No")]
                flags += [
                    ("Muted", "No"),
                    ("Talking", "No"),
                    ("AnsweredTime", str(self._seconds(channel.answered))),
                ]
                snapshot = [(k, channel.snapshot.get(k, "")) for k in SNAPSHOT]
                items.append(
                    [
                        ("Event", "ConfbridgeList"),
                        *_action_id(action_id),
                        ("Conference", name),
                        *flags,
                        *snapshot,
                    ]
                )
            reply(
                self._listing(action_id, "Confbridge user list will follow", items, "ConfbridgeListComplete")
            )

    def confbridge_list_rooms(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            if not self.conferences:
                reply([error(action_id, "No active conferences.")])
                return
            items = []
            for name, members in self.conferences.items():
                marked = sum(1 for u in members if u in self.owners and self.owners[u].role == "nurse")
                items.append(
                    [
                        ("Event", "ConfbridgeListRooms"),
                        *_action_id(action_id),
                        ("Conference", name),
                        ("Parties", str(len(members))),
                        ("Marked", str(marked)),
                        ("Locked", "No"),
                        ("Muted", "No"),
                    ]
                )
            reply(
                self._listing(
                    action_id, "Confbridge conferences will follow", items, "ConfbridgeListRoomsComplete"
                )
            )

    def bridge_list(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            items = [
                [
                    ("Event", "BridgeListItem"),
                    *_action_id(action_id),
                    *bridge.items(),
                    ("BridgeVideoSourceMode", "none"),
                ]
                for bridge in self.bridges.values()
            ]
            reply(self._listing(action_id, "Bridge listing will follow", items, "BridgeListComplete"))

    def unknown_call(self, scenario: str) -> str:
        """A call carecall never asked for (another dialer on the same Asterisk): its ChannelId."""
        number = {"conf-human": "0639980000", "conf-busy": "0999012345"}.get(scenario, "0639980000")
        n = next(self._unique_seq)
        action = [
            ("Action", "Originate"),
            ("ActionID", f"other-dialer-{n}"),
            ("Channel", f"Local/{number}@patients"),
            ("Context", "patient-amd"),
            ("Exten", "NURSE9999"),
            ("CallerID", '"Other" <0199000000>'),
            ("ChannelId", f"other-{n}-1"),
            ("OtherChannelId", f"other-{n}-2"),
            ("Async", "true"),
        ]
        with self.lock:
            self.scripts.setdefault(number, (scenario, {}))
            return self.originate(action, lambda _packets: None) or ""


def _with_cause(flow: Flow, cause: int) -> Flow:
    """The recorded flow after `Action: Hangup` with `Cause: 16`, for the cause the client gave."""
    if cause == 16:
        return flow
    text = CAUSE_TEXT.get(cause, "Unknown")

    def fix(name: str, value: str) -> str:
        if name == "Cause" and value == "16":
            return str(cause)
        if name == "Cause-txt" and value == "Normal Clearing":
            return text
        if name in ("AppData", "HangupCause") and "16" in value:
            return re.sub(
                r"(HangupCause: |cause |^)16$|(HangupCause: |cause )16(?=\D)", rf"\g<1>\g<2>{cause}", value
            )
        return value

    steps = tuple(replace(s, headers=tuple((k, fix(k, v)) for k, v in s.headers)) for s in flow.steps)
    return replace(flow, steps=steps)


def _originate_failure(leg: Leg, reason: str) -> Headers:
    p = leg.prefix
    return [
        ("Event", "OriginateResponse"),
        ("Privilege", "call,all"),
        ("Timestamp", ""),
        ("SystemName", SYSTEM_NAME),
        ("ActionID", f"\x00{p}_ACTION\x00"),
        ("Response", "Failure"),
        ("Channel", f"\x00{p}_DIAL\x00"),
        ("Context", f"\x00{p}_CONTEXT\x00"),
        ("Exten", "\x00EXTEN\x00"),
        ("Reason", reason),
        ("Uniqueid", f"\x00{p}_UID1\x00"),
        ("CallerIDNum", "\x00CID_NUM\x00"),
        ("CallerIDName", "\x00CID_NAME\x00"),
    ]
