"""A local AMI server that speaks as the recorded Asterisk 22 does, for tests and benchmarks.

Start it, point a real AMI client at it, originate, and read the events the
real switch sent for the same dialplan (`../shared/fixtures/ami/`):

    from dialer.testing.ami_peer import AmiPeer

    with AmiPeer(speed=20) as peer:               # 127.0.0.1, a free port: peer.address
        peer.script("0261910001", "conf-machine")  # else the number picks the flow (table below)
        client = AMIClient(*peer.address)
        client.login("dialer", "dialer-secret")    # manager.conf's users: dialer, dialer-filtered
        # Originate Local/NURSE1001@nurse-phones, Context nurse-conference, Exten NURSE1001, Async true:
        #   her leg, in ConfBridge(nurse-NURSE1001) until hung up;
        # Originate Local/0261910001@patients, Context patient-amd, Exten NURSE1001, Async true,
        #   ChannelId att-7-1, Variable CARECALL_ATTEMPT=7: the recorded events follow, rewritten
        #   with this call's ActionID, ChannelId, channel names, variables, number and exten.
        peer.drop_connections()                    # faults: also fall_silent, send_raw, repeat_events,
        peer.actions                               # unknown_call_event; what every client sent

Numbers (as dialed: national), in the ranges ARCEP reserves for fiction
(decision 2018-0881), pick the flow by one rule, 02 61 91 0D xx, the digit D:

    0  02 61 91 00 xx  a person          4  02 61 91 04 xx  hangs up during the detector
    1  02 61 91 01 xx  busy              5  02 61 91 05 xx  unallocated
    2  02 61 91 02 xx  no answer         6  02 61 91 06 xx  answering machine
       (at the Originate's Timeout)      7  02 61 91 07 xx  detector not sure
    3  02 61 91 03 xx  congestion

06 39 98 xx xx is unallocated too (phonenumbers refuses the range: the
peer answers as the network does a number that does not exist); any other
number starting with 0 is a person (a generated patient in 02 61 91 01 00
to 07 99 gets the table's flow); anything else, no such extension.
`script()` gives any number any flow. The recorded calls' own numbers never
show: the dialed one replaces them.

A person's call joins the nurse's conference only if her leg is in it (else
the recorded apology); `Action: Hangup` and `Redirect` (to
`patient-redirect,apology`) play what followed them on the real switch;
`CoreShowChannels`, `Status`, `ConfbridgeList`, `ConfbridgeListRooms` and
`BridgeList` answer from the live channels. Times are the recorded ones
divided by `speed`; the call's `RING_SECS` and `TALK_SECS` variables (or
`script(..., ring_seconds=, talk_seconds=)`) move the ring and talk waits as
the recorded dialplan does (2 s and 8 s else).

Not recorded, so approximated: a Hangup of a call outside a conference
(ringing: the Originate fails with Reason 1; during the detector, the
machine's message or the apology: the recorded hang-up without its
conference events), a Redirect outside a conference, and only
`Async: true` originates (anything else is an error). Every channel is a
Local channel (`;1`/`;2`), as recorded. `dialer.testing.ami_replay` is the
benchmark's full-speed replay of the captures.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from types import TracebackType

from campaign.clock import Clock, SystemClock
from dialer.testing.ami_channels import error, success
from dialer.testing.ami_flows import SYSTEM_NAME, render
from dialer.testing.ami_scenarios import library
from dialer.testing.ami_switch import Reply, Switch
from dialer.testing.ami_wire import (
    BANNER,
    RECORDED_EVENTFILTER,
    EventFilter,
    Headers,
    PacketReader,
    class_allows,
    encode,
    event_classes,
    filters_allow,
    header,
)

# the recorded manager.conf: user -> (secret, eventfilter lines)
RECORDED_USERS: dict[str, tuple[str, Sequence[str]]] = {
    "dialer": ("dialer-secret", ()),
    "dialer-filtered": ("dialer-secret", RECORDED_EVENTFILTER),
}
WRITE_TIMEOUT = 1.0  # manager.conf writetimeout: a client that does not read for that long is dropped


class _Session:
    """One client connection: its login, its event classes and filters, and what is held while silent."""

    def __init__(self, peer: AmiPeer, sock: socket.socket, address: tuple[str, int]) -> None:
        self.peer = peer
        self.sock = sock
        self.address = address
        self.user: str | None = None
        self.classes: frozenset[str] = frozenset()
        self.filters: list[EventFilter] = []
        self.lock = threading.Lock()
        self.held: list[bytes] = []
        self.closed = False
        self.thread = threading.Thread(target=self._serve, name=f"ami-peer-client-{address[1]}", daemon=True)

    def send(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                return
            if self.held or time.monotonic() < self.peer._silent_until:
                self.held.append(data)
                return
            self._write(data)

    def flush(self) -> None:
        with self.lock:
            data, self.held = b"".join(self.held), []
            if data and not self.closed:
                self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self._close()

    def reply(self, packets: list[Headers]) -> None:
        self.send(b"".join(encode(p) for p in packets))

    def event(self, headers: Headers, data: bytes) -> None:
        if self.user is None or not class_allows(self.classes, header(headers, "Privilege")):
            return
        if filters_allow(self.filters, headers):
            self.send(data)

    def close(self) -> None:
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _serve(self) -> None:
        self.send(BANNER)
        reader = PacketReader()
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            for packet in reader.feed(data):
                self.peer._record(packet)
                if not self._handle(packet):
                    self.close()
                    break
        self.close()
        self.peer._forget(self)

    def _handle(self, packet: Headers) -> bool:
        """Answer one action; False closes the connection."""
        action = (header(packet, "Action") or "").lower()
        action_id = header(packet, "ActionID")
        if not action:
            self.reply([error(action_id, "Missing action in request")])
            return True
        if action == "login":
            return self._login(packet, action_id)
        if action == "logoff":
            self.reply([[("Response", "Goodbye"), *_ids(action_id), ("Message", "Thanks for all the fish.")]])
            return False
        if self.user is None:
            self.reply([error(action_id, "Permission denied")])
            return True
        if action == "ping":
            self.reply(
                [
                    success(
                        action_id, ("Ping", "Pong"), ("Timestamp", f"{self.peer.clock.now().timestamp():.6f}")
                    )
                ]
            )
        elif action == "events":
            self.classes = event_classes(header(packet, "EventMask"))
            self.reply([success(action_id, ("Events", "On" if self.classes else "Off"))])
        elif action == "filter":
            self._filter(packet, action_id)
        elif action in self.peer._switch_actions:
            self.peer._switch_actions[action](packet, self.reply)
        else:
            self.reply([error(action_id, "Invalid/unknown command")])
        return True

    def _filter(self, packet: Headers, action_id: str | None) -> None:
        """`Action: Filter`: one more eventfilter for this session only, as manager.conf would give."""
        if (header(packet, "Operation") or "").lower() != "add":
            self.reply([error(action_id, "Unknown operation")])
            return
        criteria = header(packet, "MatchCriteria") or ""
        line = f"eventfilter({criteria}) = {header(packet, 'Filter') or ''}"
        try:
            self.filters.append(EventFilter.parse(line if criteria else line.replace("()", "", 1)))
        except (ValueError, re.error):
            self.reply([error(action_id, "Internal Error. Failed to compile regex.")])
            return
        self.reply([success(action_id, ("Message", "Success"))])

    def _login(self, packet: Headers, action_id: str | None) -> bool:
        username = header(packet, "Username") or ""
        known = self.peer.users.get(username)
        if known is None or known[0] != header(packet, "Secret"):
            time.sleep(1.0 / self.peer.speed)  # Asterisk waits 1 s, answers, then closes the session
            self.reply([error(action_id, "Authentication failed")])
            return False
        self.user = username
        self.classes = event_classes(header(packet, "Events"))
        self.filters = [EventFilter.parse(line) for line in known[1]]
        self.reply([success(action_id, ("Message", "Authentication accepted"))])
        for event in self.peer._login_events(self):
            self.event(event, encode(event))
        return True


def _ids(action_id: str | None) -> list[tuple[str, str]]:
    return [] if action_id is None else [("ActionID", action_id)]


class AmiPeer:
    """An AMI server on 127.0.0.1 playing the recorded flows; use it as a context manager.

    `users` is manager.conf in small: user -> (secret, its `eventfilter` lines), e.g.
    `{"dialer": ("s3cret", ["eventfilter(action(exclude),name(Newexten)) ="])}`; by default the
    recorded `dialer` (no filter) and `dialer-filtered`. `nurse_context` is where an Originate
    makes a nurse's leg (any other context: a patient's call); `speed` divides every recorded time.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        users: Mapping[str, tuple[str, Sequence[str]]] = RECORDED_USERS,
        nurse_context: str = "nurse-conference",
        redirect_context: str = "patient-redirect",
        clock: Clock | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.speed = speed
        self.clock = clock or SystemClock()  # what Asterisk stamps its events with
        self.users = dict(users)
        for _secret, lines in self.users.values():
            for line in lines:
                EventFilter.parse(line)  # a bad filter line fails here, not at login
        self.actions: list[Headers] = []  # every packet every client sent, in order
        self._host, self._port = host, port
        self._nurse_context, self._redirect_context = nurse_context, redirect_context
        self._sessions: list[_Session] = []
        self._ended: list[threading.Thread] = []  # threads of sessions gone, joined on close
        self._lock = threading.Lock()
        self._silent_until = 0.0
        self._repeat = 1
        self._started = time.monotonic()
        self._listener: socket.socket | None = None
        self._switch: Switch | None = None
        self._switch_actions: dict[str, Callable[[Headers, Reply], object]] = {}

    # -- life -----------------------------------------------------------------------------------

    def __enter__(self) -> AmiPeer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        self._switch = Switch(
            self._publish,
            speed=self.speed,
            nurse_context=self._nurse_context,
            redirect_context=self._redirect_context,
            clock=self.clock,
        )
        sw = self._switch
        self._switch_actions = {
            "originate": sw.originate,
            "hangup": sw.hangup,
            "redirect": sw.redirect,
            "coreshowchannels": sw.core_show_channels,
            "status": sw.status,
            "confbridgelist": sw.confbridge_list,
            "confbridgelistrooms": sw.confbridge_list_rooms,
            "bridgelist": sw.bridge_list,
        }
        self._listener = socket.create_server((self._host, self._port))
        self._accepting = threading.Thread(target=self._accept, name="ami-peer-accept", daemon=True)
        self._accepting.start()

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start the peer first"
        host, port = self._listener.getsockname()[:2]
        return host, port

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._accepting.join(5)
        with self._lock:
            threads = [s.thread for s in self._sessions] + self._ended
        self.drop_connections()
        for thread in threads:
            thread.join(5)
        if self._switch is not None:
            self._switch.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except OSError:
                return
            sock.settimeout(WRITE_TIMEOUT)
            session = _Session(self, sock, address)
            with self._lock:
                self._sessions.append(session)
            session.thread.start()

    def _forget(self, session: _Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
            self._ended.append(session.thread)

    def _record(self, packet: Headers) -> None:
        with self._lock:
            self.actions.append(packet)

    # -- the stream -----------------------------------------------------------------------------

    def _publish(self, event: Headers) -> None:
        data = encode(event) * self._repeat
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.event(event, data)

    def _login_events(self, session: _Session) -> list[Headers]:
        now = self.clock.now().astimezone(UTC)
        tv = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"
        uptime = str(int(time.monotonic() - self._started))
        local = f"IPV4/TCP/{self.address[0]}/{self.address[1]}"
        fresh = {
            "Uptime": uptime,
            "LastReload": uptime,
            "EventTV": tv,
            "SessionTV": tv,
            "AccountID": session.user or "",
            "SessionID": f"0x{id(session):x}",
            "LocalAddress": local,
            "RemoteAddress": f"IPV4/TCP/{session.address[0]}/{session.address[1]}",
            "SystemName": SYSTEM_NAME,
        }
        return [
            [(k, fresh.get(k, v)) for k, v in render(event, {}, f"{now:.6f}")] for event in library().login
        ]

    # -- scripting ------------------------------------------------------------------------------

    def script(self, number: str, scenario: str, **knobs: int) -> None:
        """Play `scenario` (e.g. "conf-machine") for calls to `number`; knobs: ring_seconds, talk_seconds."""
        assert self._switch is not None, "start the peer first"
        self._switch.script(number, scenario, **knobs)

    # -- faults ---------------------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Close every client socket without Logoff; calls go on, as on the real server."""
        with self._lock:
            sessions, self._sessions = list(self._sessions), []
        for session in sessions:
            session.close()

    def fall_silent(self, seconds: float) -> None:
        """Send nothing to anyone for `seconds` (wall clock); what is produced meanwhile is sent after."""
        self._silent_until = time.monotonic() + seconds
        timer = threading.Timer(seconds, self._end_silence)
        timer.daemon = True
        timer.start()

    def _end_silence(self) -> None:
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.flush()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are to every connected client (a line without a colon, a binary blob…)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.send(data)

    def repeat_events(self, n: int) -> None:
        """From now on, send every event `n` times (1: once again)."""
        if n < 1:
            raise ValueError(f"repeat at least once, not {n}")
        self._repeat = n

    def unknown_call_event(self, scenario: str = "conf-busy") -> str:
        """Play a call carecall never originated (other ChannelId and ActionID); returns its ChannelId."""
        assert self._switch is not None, "start the peer first"
        return self._switch.unknown_call(scenario)
