"""Replays, at full speed, a recorded flow for every call a client originates: the benchmark's switch.

`scripts/bench_ami.py` drives the production dialer on the Asterisk backend
against this server. It learns the calls from the Originates it receives:

    with AmiCallReplay(scenario_of) as replay:      # 127.0.0.1, a free port: replay.address
        ...  # a client logs in (any user) and originates nurse legs and patients' calls
        replay.play(calls=4000)  # once that many calls are originated: all their flows, back to back
        replay.started_at, replay.events, replay.stream  # first byte (perf_counter), events, bytes sent

A nurse's leg (an Originate into `nurse_context`) is answered at once with
the recorded leg until she waits in her conference (the peer's `nurse`
flow). A patient's call gets the recorded flow of `scenario_of(number)`,
`number` as the dial string has it: one of `PATIENT_SCENARIOS` or
`conf-nurse-gone` (a person's call cut at the detector's verdict into the
recorded apology). Each flow is rendered as the AMI peer renders it: the
call's ActionID, ChannelId, OtherChannelId, channel names, variables, number
and exten, the nurse leg's conference and bridge, and only the events the
login's `Events:` classes let through, as a real Asterisk sends them. The
calls are learned as the Originates arrive; `play` renders their flows, then
writes them all, in the order the calls were placed, as fast as the socket
takes them.

While it streams, the server still answers Ping, Hangup (it changes nothing:
the recorded flow ends the call) and Logoff; any other action gets an error.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType

from campaign.clock import Clock, SystemClock
from dialer.testing.ami_channels import error, success
from dialer.testing.ami_flows import (
    PATIENT_SCENARIOS,
    SYSTEM_NAME,
    Step,
    cdr_times_moved,
    dial_parts,
    originate_variables,
    render,
    variable_events,
)
from dialer.testing.ami_scenarios import library
from dialer.testing.ami_wire import BANNER, Headers, PacketReader, class_allows, encode, event_classes, header

NURSE_GONE = "conf-nurse-gone"
SCENARIOS = (*PATIENT_SCENARIOS, NURSE_GONE)
CHUNK = 1 << 18  # bytes the streamer writes at once; an action's answer may go between two chunks


class AmiCallReplay:
    """An AMI server that plays, for each call originated on it, a recorded flow at full speed."""

    def __init__(
        self,
        scenario_of: Callable[[str], str],
        *,
        nurse_context: str = "nurse-conference",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self.scenario_of = scenario_of
        self.clock = clock or SystemClock()  # what Asterisk stamps its events with
        self.nurse_context = nurse_context
        self.calls = 0  # patients' calls learned so far
        self.events = 0  # events of their flows, to be streamed
        self.scenarios: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()  # every action received, by name
        self.started_at: float | None = None  # perf_counter just before the first streamed byte
        self.finished_at: float | None = None  # perf_counter once the last byte was handed to the socket
        self._calls: list[tuple[Headers, str, dict[str, str] | None]] = []  # learned, not yet rendered
        self._flows: list[bytes] = []
        self._nurses: dict[str, dict[str, str]] = {}  # exten -> her leg's values
        self._classes = event_classes(None)
        self._seq = itertools.count()
        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((host, port))
        self._accepting = threading.Thread(target=self._accept, name="ami-call-replay-accept", daemon=True)

    def _epoch(self) -> str:
        return f"{self.clock.now().timestamp():.6f}"

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def stream(self) -> bytes:
        """Every streamed byte, in order (the floors of the benchmark read the very same)."""
        return b"".join(self._flows)

    def __enter__(self) -> AmiCallReplay:
        self._accepting.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def play(self, calls: int, timeout: float = 60.0) -> None:
        """Once `calls` calls are originated, render their flows, then stream them all from another
        thread (`started_at` is taken at its first byte); returns once the streaming has begun."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.calls >= calls, timeout):
                raise TimeoutError(f"{self.calls} of {calls} calls originated in {timeout:.0f} s")
            sock, learned = self._sock, list(self._calls)
        if sock is None:
            raise ConnectionError("no client is logged in")
        flows = []
        for action, scenario, nurse in learned:
            data, events = self._call_flow(action, scenario, nurse)
            flows.append(data)
            self.events += events
        self._flows = flows
        streamer = threading.Thread(target=self._stream, args=(sock, flows), name="ami-call-replay-stream")
        streamer.daemon = True
        self._threads.append(streamer)
        streamer.start()
        with self._lock:
            self._lock.wait_for(lambda: self.started_at is not None)

    def wait_streamed(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.finished_at is not None, timeout)

    # -- the connection ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), name="ami-call-replay", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        """Read actions as fast as they come (a client's write must never wait on the replay's work)."""
        actions: queue.SimpleQueue[Headers | None] = queue.SimpleQueue()
        answering = threading.Thread(target=self._answer, args=(sock, actions), name="ami-call-replay-answer")
        answering.daemon = True
        self._threads.append(answering)
        answering.start()
        self._write(sock, BANNER)
        reader = PacketReader()
        try:
            while data := sock.recv(4096):  # PacketReader copies its buffer per line: small reads
                for action in reader.feed(data):
                    if (header(action, "Action") or "").lower() == "originate":
                        actions.put(action)  # rendering a flow takes a while: it waits its turn
                    elif not self._handle(sock, action):
                        return  # a Ping is answered at once, as a switch does whatever it is doing
        except OSError:
            pass
        finally:
            actions.put(None)
            answering.join()
            sock.close()

    def _answer(self, sock: socket.socket, actions: queue.SimpleQueue[Headers | None]) -> None:
        while (action := actions.get()) is not None:
            if not self._handle(sock, action):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return

    def _write(self, sock: socket.socket, data: bytes) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            sock.sendall(data)

    def _stream(self, sock: socket.socket, flows: Sequence[bytes]) -> None:
        chunks, size, start = [], 0, 0
        for i, flow in enumerate(flows):  # cut between flows, so an answer never splits a packet
            size += len(flow)
            if size >= CHUNK or i == len(flows) - 1:
                chunks.append(b"".join(flows[start : i + 1]))
                size, start = 0, i + 1
        with self._lock:
            self.started_at = time.perf_counter()
            self._lock.notify_all()
        for chunk in chunks:
            self._write(sock, chunk)
        with self._lock:
            self.finished_at = time.perf_counter()
            self._lock.notify_all()

    def _handle(self, sock: socket.socket, action: Headers) -> bool:
        """Answer one action; False closes the connection."""
        name = (header(action, "Action") or "").lower()
        action_id = header(action, "ActionID")
        self.actions[name] += 1
        if name == "login":
            self._classes = event_classes(header(action, "Events"))
            self._sock = sock
            self._write(sock, encode(success(action_id, ("Message", "Authentication accepted"))))
        elif name == "logoff":
            self._write(sock, encode([("Response", "Goodbye"), *_ids(action_id)]))
            return False
        elif name == "ping":
            self._write(sock, encode(success(action_id, ("Ping", "Pong"), ("Timestamp", self._epoch()))))
        elif name == "hangup":
            self._write(sock, encode(success(action_id, ("Message", "Channel Hungup"))))
        elif name == "originate":
            self._write(sock, encode(success(action_id, ("Message", "Originate successfully queued"))))
            if header(action, "Context") == self.nurse_context:
                self._write(sock, self._nurse_leg(action))
            else:
                self._patient_call(action)
        else:
            self._write(sock, encode(error(action_id, "Invalid/unknown command")))
        return True

    # -- the flows --------------------------------------------------------------------------------

    def _nurse_leg(self, action: Headers) -> bytes:
        values = self._values(action, "N")
        values["CBANN"] = f"CBAnn/nurse-{values['EXTEN']}-{next(self._seq):08x}"
        values["BRIDGE"] = f"replay-bridge-{next(self._seq)}"
        with self._lock:
            self._nurses[values["EXTEN"]] = values
        steps, variables = library().nurse.steps, originate_variables(action)
        data, _ = self._render(steps, values, variables, "N", header(action, "ChannelId"))
        return data

    def _patient_call(self, action: Headers) -> None:
        """Learned now, rendered by `play` (the client's set-up must not wait for the replay's)."""
        dial = header(action, "Channel") or ""
        scenario = self.scenario_of(dial_parts(dial)[0])
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        with self._lock:
            nurse = self._nurses.get(header(action, "Exten") or "")
            self._calls.append((action, scenario, nurse))
            self.scenarios[scenario] += 1
            self.calls += 1
            self._lock.notify_all()

    def _call_flow(self, action: Headers, scenario: str, nurse: dict[str, str] | None) -> tuple[bytes, int]:
        values = self._values(action, "P")
        variables = originate_variables(action)
        flow = library().patient["conf-human" if scenario == NURSE_GONE else scenario]
        steps: Sequence[Step] = flow.steps
        if nurse is None or scenario == NURSE_GONE:
            # a person's verdict with no nurse in the conference: the recorded apology, never silence
            verdict = next((i for i, s in enumerate(steps) if s.verdict), None)
            if verdict is not None:
                steps = (*steps[:verdict], *library().nurse_gone.steps)
        values.update(
            ATTEMPT=dict(variables).get("CARECALL_ATTEMPT", ""),
            RING=str(flow.recorded_ring),
            TALK=str(flow.recorded_talk),
            **flow.verdict,
        )
        if nurse is not None:
            values.update({k: v for k, v in nurse.items() if k.startswith("N_") or k in ("CBANN", "BRIDGE")})
        return self._render(steps, values, variables, "P", header(action, "ChannelId"))

    def _values(self, action: Headers, p: str) -> dict[str, str]:
        """What fills the flows' markers for this Originate (as the AMI peer fills them)."""
        dial = header(action, "Channel") or ""
        number, dial_context = dial_parts(dial)
        n = next(self._seq)
        uid1 = header(action, "ChannelId") or f"{SYSTEM_NAME}-replay.{n}"
        uid2 = header(action, "OtherChannelId") or f"{uid1};2"
        caller_id = header(action, "CallerID") or ""
        match = re.fullmatch(r'"?([^"<]*)"?\s*<([^>]*)>', caller_id)
        cid_name, cid_num = (match.group(1), match.group(2)) if match else ("<unknown>", "<unknown>")
        return {
            f"{p}_CHAN": f"{dial}-{n:08x}",
            f"{p}_UID1": uid1,
            f"{p}_UID2": uid2,
            f"{p}_ACTION": header(action, "ActionID") or "",
            f"{p}_DIAL": dial,
            f"{p}_TARGET": dial.split("/", 1)[-1],
            f"{p}_CONTEXT": header(action, "Context") or "",
            f"{p}_DIALCTX": dial_context,
            "EXTEN": header(action, "Exten") or "",
            "NUMBER": number,
            "CID": caller_id,
            "CID_NUM": cid_num,
            "CID_NAME": cid_name,
        }

    def _render(
        self,
        steps: Sequence[Step],
        values: dict[str, str],
        variables: list[tuple[str, str]],
        p: str,
        channel_id: str | None,
    ) -> tuple[bytes, int]:
        """The flow's events as this session receives them, and how many there are."""
        now = self.clock.now().timestamp()
        stamp = f"{now:.6f}"
        out: list[bytes] = []
        for step in steps:
            if step.half:
                packets = variable_events(library().varset[f"{p}{step.half}"], variables, step.half)
            else:
                packets = [list(step.headers)]
            for headers in packets:
                if not class_allows(self._classes, header(headers, "Privilege")):
                    continue
                rendered = render(headers, values, stamp)
                name = header(rendered, "Event")
                if name == "Cdr":
                    rendered = cdr_times_moved(rendered, float(header(headers, "Timestamp") or now), now)
                elif name == "OriginateResponse" and header(rendered, "Response") == "Failure":
                    # a failed call's Uniqueid is `<unknown>` unless the Originate gave a ChannelId
                    uid = channel_id or "<unknown>"
                    rendered = [(k, uid if k == "Uniqueid" else v) for k, v in rendered]
                out.append(encode(rendered))
        return b"".join(out), len(out)


def _ids(action_id: str | None) -> list[tuple[str, str]]:
    return [] if action_id is None else [("ActionID", action_id)]
