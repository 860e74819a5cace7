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

from campaign.clock import Clock
from dialer.testing.ami_channels import ChannelTable, error, success
from dialer.testing.ami_flows import (
    CONFERENCE_EVENTS,
    DEFAULT_ORIGINATE_TIMEOUT_MS,
    DEFAULT_RING_SECONDS,
    DEFAULT_TALK_SECONDS,
    PATIENT_SCENARIOS,
    SYSTEM_NAME,
    Flow,
    Step,
    cdr_times_moved,
    dial_parts,
    number_for,
    originate_failure,
    originate_variables,
    render,
    scenario_for_number,
    variable_events,
    with_cause,
)
from dialer.testing.ami_scenarios import SILENT_MACHINE, library
from dialer.testing.ami_wire import Headers, header

Reply = Callable[[list[Headers]], None]


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
    ending: bool = False  # hung up by an action: a second Hangup finds it going and changes nothing
    prefix: str = "P"

    @property
    def uids(self) -> tuple[str, str]:
        return self.values[f"{self.prefix}_UID1"], self.values[f"{self.prefix}_UID2"]


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
        clock: Clock,
    ) -> None:
        self.publish = publish
        self.clock = clock  # Asterisk's epoch Timestamps and Uniqueids
        self.speed = speed
        self.nurse_context = nurse_context
        self.redirect_context = redirect_context
        self.lock = threading.Condition(threading.RLock())
        self.scripts: dict[str, tuple[str, dict[str, int]]] = {}
        self.table = ChannelTable(speed)
        self.owners: dict[str, Leg] = {}  # Uniqueid -> its leg, while the channel lives
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
        now = self.clock.now().timestamp()
        stamp = f"{now:.6f}"
        for headers in packets:
            rendered = render(headers, leg.values, stamp)
            name = header(rendered, "Event")
            if name == "Cdr":
                rendered = cdr_times_moved(rendered, float(header(headers, "Timestamp") or now), now)
            if name == "OriginateResponse":
                leg.responded = True
                if (
                    header(rendered, "Response") == "Failure"
                ):  # Uniqueid is `<unknown>` unless ChannelId was sent
                    rendered = [
                        (k, (leg.channel_id or "<unknown>") if k == "Uniqueid" else v) for k, v in rendered
                    ]
            if step.refresh:
                rendered = self.table.refreshed(rendered)
            self.table.track(rendered)
            if name == "Hangup":
                self.owners.pop(header(rendered, "Uniqueid") or "", None)
            self.publish(rendered)

    def _nurse_in_conference(self, exten: str) -> Leg | None:
        for uid in self.table.conferences.get(f"nurse-{exten}", []):
            owner = self.owners.get(uid)
            if owner is not None and owner.role == "nurse":
                return owner
        return None

    # -- actions --------------------------------------------------------------------------------

    def script(self, number: str, scenario: str, **knobs: int) -> None:
        if scenario not in PATIENT_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(PATIENT_SCENARIOS)}")
        unknown = set(knobs) - {"ring_seconds", "talk_seconds"}
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}: ring_seconds and talk_seconds only")
        with self.lock:
            self.scripts[number] = (scenario, dict(knobs))

    def originate(self, action: Headers, reply: Reply, scenario: str | None = None) -> str | None:
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
            leg = self._new_leg(action, dial, scenario)
            flow = library().nurse if leg.role == "nurse" else library().patient[leg.values["SCENARIO"]]
            self._play(leg, flow, time.monotonic())
            return leg.uids[0]

    def _new_leg(self, action: Headers, dial: str, forced: str | None) -> Leg:
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
            scenario = forced or scenario
            if scenario == "conf-machine" and given.get("CARECALL_VOICEMAIL") == "0":
                scenario = SILENT_MACHINE  # the policy leaves no message: hung up at the verdict
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
        if role == "nurse":
            self.table.nurses.update((uid1, uid2))
        return leg

    def _unique_id(self) -> str:
        return f"{SYSTEM_NAME}-{int(self.clock.now().timestamp())}.{next(self._unique_seq)}"

    def hangup(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            uid = self.table.resolve(header(action, "Channel") or "")
            leg = self.owners.get(uid or "")
            if uid is None or leg is None:
                reply([error(action_id, "No such channel")])
                return
            cause = int(header(action, "Cause") or 16)
            reply([success(action_id, ("Message", "Channel Hungup"))])
            if leg.ending:
                return
            leg.ending = True
            now = time.monotonic()
            conference = self.table.conference_of(leg.uids[0])
            self._cancel(leg)
            if leg.role == "nurse":
                patients = [
                    self.owners[u]
                    for u in self.table.conferences.get(conference or "", [])
                    if u in self.owners
                ]
                patients = [p for p in patients if p.role == "patient"]
                if patients:  # the end_marked patient is kicked and hears the apology
                    self._cancel(patients[0])
                    self._play(patients[0], with_cause(library().nurse_leaves, cause), now)
                elif conference is not None:
                    self._play(leg, with_cause(library().nurse_hangup, cause), now)
                else:
                    self._play(leg, self._outside(leg, library().nurse_hangup, cause), now)
            elif conference is not None:
                self._play(leg, with_cause(library().hangup, cause), now)
            else:
                self._play(leg, self._outside(leg, library().hangup, cause), now)

    def _outside(self, leg: Leg, flow: Flow, cause: int) -> Flow:
        """Not recorded: a Hangup of a leg outside any conference (ringing, detector, message, apology)."""
        flow = with_cause(flow.without(*CONFERENCE_EVENTS), cause)
        steps = [
            replace(s, refresh=True) for s in flow.steps if header(s.headers, "Device") is None or s.patient
        ]
        if not leg.responded:  # not answered: no dialplan ran, the Originate fails (Reason 1: hung up)
            steps = [s for s in steps if header(s.headers, "Event") not in ("Newexten", "UserEvent")]
            response = originate_failure(leg.prefix, reason="1")
            at = next((i for i, s in enumerate(steps) if header(s.headers, "Event") == "Hangup"), len(steps))
            steps.insert(at + 1, replace(steps[min(at, len(steps) - 1)], headers=tuple(response)))
        return replace(flow, steps=tuple(steps))

    def redirect(self, action: Headers, reply: Reply) -> None:
        action_id = header(action, "ActionID")
        with self.lock:
            uid = self.table.resolve(header(action, "Channel") or "")
            leg = self.owners.get(uid or "")
            if uid is None or leg is None:
                reply([error(action_id, "Channel not existent")])
                return
            target = (header(action, "Context"), header(action, "Exten"))
            if leg.ending:
                reply([error(action_id, "Channel not existent")])
                return
            if leg.role != "patient" or target != (self.redirect_context, "apology"):
                reply(
                    [error(action_id, f"Redirect to {target[0]},{target[1]} is not recorded for this peer")]
                )
                return
            reply([success(action_id, ("Message", "Redirect successful"))])
            self._cancel(leg)
            flow = library().redirect
            if self.table.conference_of(leg.uids[0]) is None:
                flow = flow.without(*CONFERENCE_EVENTS)
                flow = replace(flow, steps=tuple(replace(s, refresh=True) for s in flow.steps))
            self._play(leg, flow, time.monotonic())

    # -- what reconciliation asks ------------------------------------------------------------------

    def core_show_channels(self, action: Headers, reply: Reply) -> None:
        with self.lock:
            reply(self.table.core_show_channels(header(action, "ActionID")))

    def status(self, action: Headers, reply: Reply) -> None:
        wanted = [v.strip() for v in (header(action, "Variables") or "").split(",") if v.strip()]
        with self.lock:
            reply(self.table.status(header(action, "ActionID"), header(action, "Channel"), wanted))

    def confbridge_list(self, action: Headers, reply: Reply) -> None:
        with self.lock:
            reply(self.table.confbridge_list(header(action, "ActionID"), header(action, "Conference")))

    def confbridge_list_rooms(self, action: Headers, reply: Reply) -> None:
        with self.lock:
            reply(self.table.confbridge_list_rooms(header(action, "ActionID")))

    def bridge_list(self, action: Headers, reply: Reply) -> None:
        with self.lock:
            reply(self.table.bridge_list(header(action, "ActionID")))

    def unknown_call(self, scenario: str) -> str:
        """A call carecall never asked for (another dialer on the same Asterisk): its ChannelId."""
        number = number_for(scenario)
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
            ("Variable", f"OTHER_DIALER_CALL={n}"),
            ("Async", "true"),
        ]
        return self.originate(action, lambda _packets: None, scenario) or ""
