"""One AMI session over the `asterisk-ami` 0.1.7 client, its known flaws guarded.

The library's socket, reader thread and packet boundaries are kept; what it
gets wrong is replaced (fixtures/ami/README.md, DESIGN.md):

- its socket timeout also applies to reads, so its reader thread dies after
  that long without traffic, in the middle of a call: the socket reads with no
  timeout once connected, and a keep-alive Ping (the backend's watchdog)
  proves the switch still answers;
- a listener or callback that raises kills the reader (a callback's error even
  hits a missing `traceback` import): no library listener or callback is used,
  packets are handed to one handler whose errors are caught and logged;
- `send` is not `sendall`: a whole packet is written, under a lock, within a
  deadline, or the connection is dropped (a half-written action would corrupt
  the stream);
- its ActionID counter is not locked: ActionIDs are carecall's, from a locked
  counter, unique in the process;
- its parser keeps one value per header and drops lines silently: packets are
  parsed by `packets.parse`;
- its framing splits the whole buffer again for each packet it takes out (quadratic
  in the read size): each read is split once.

Logs carry ids, counts and header names, never a packet's values: a channel
name holds the dialed number.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from asterisk.ami import AMIClient

from campaign.errors import BackendError
from dialer.backends.asterisk.packets import MalformedPacket, Packet, encode, parse

log = structlog.get_logger("carecall.asterisk")

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def next_action_id() -> str:
    """An ActionID no other action of this process has (the library's counter is not locked)."""
    with _ids_lock:
        n = next(_ids)
    return f"cc{os.getpid():x}-{n}"


@dataclass(frozen=True, slots=True)
class Reply:
    """The response to an action, and the events of its list (CoreShowChannels, Status…)."""

    response: Packet
    items: list[Packet]

    @property
    def ok(self) -> bool:
        return self.response.response == "Success"


@dataclass(eq=False)
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    response: Packet | None = None
    items: list[Packet] = field(default_factory=list)

    def add(self, packet: Packet) -> bool:
        """Take a packet with this action's ActionID; True once the answer is complete."""
        if packet.event is None:
            self.response = packet
            return not (packet.response == "Success" and packet.get("EventList") == "start")
        if packet.get("EventList") == "Complete":
            return True
        self.items.append(packet)
        return False


class _LibraryClient(AMIClient):
    """The library's client, reading and framing packets; everything else is the session's."""

    def __init__(self, session: AmiSession, host: str, port: int, connect_timeout: float) -> None:
        # reads of 64 KiB, not the library's 1 KiB: a busy switch's stream is framed 1.5 times faster
        super().__init__(address=host, port=port, timeout=connect_timeout, buffer_size=65536)
        self._session = session

    def connect(self) -> None:
        # the library sets its timeout on the socket for good, and its reader then dies after
        # that long without traffic: the timeout is for connecting only
        sock = socket.create_connection((self._address, self._port), timeout=self._timeout)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = sock
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self.listen, name="carecall-ami-reader", daemon=True)
        self._thread.start()

    def next_action_id(self) -> str:
        return next_action_id()

    def _next_pack(self) -> Iterator[str]:
        """The library's framing (the banner line, then packets ended by a blank line), linear: each
        read is split once. The library splits its whole buffer again for every packet it takes out,
        which copies a 64 KiB read a hundred times over."""
        sock, size = self._socket, self._buffer_size
        data = b""
        while b"\r\n" not in data:
            recv = sock.recv(size)
            if not recv:
                self.finished.set()
                sock.close()
                return
            data += recv
        banner, _, data = data.partition(b"\r\n")
        yield self._decode_pack(banner)
        while not self.finished.is_set():
            packets, end, data = data.rpartition(b"\r\n\r\n")
            if end:
                yield from self._decode_pack(packets).split("\r\n\r\n")
            recv = sock.recv(size)
            if not recv:
                self.finished.set()
                break
            data += recv
        sock.close()

    def send(self, pack: object) -> None:
        self._session.write(str(pack).encode("utf-8") + b"\r\n")

    def fire_recv_pack(self, pack: str) -> None:
        self._session.received(pack)

    def listen(self) -> None:
        try:
            super().listen()
        except BaseException as exc:  # a banner that is not Asterisk's, a socket error: the session ends
            log.warning("ami reader stopped", error=type(exc).__name__)
        finally:
            self._session.reader_stopped()


class AmiSession:
    """A logged-in AMI connection: actions written whole, packets handed to `on_packet` from the
    reader thread, answers to carecall's own actions matched by ActionID.

    `on_packet` runs on the reader thread: it must not wait for the network (a `request` from it
    would wait for the very thread that reads the answer).
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_packet: Callable[[Packet], None],
        on_lost: Callable[[], None],
        *,
        response_timeout: float,
        send_timeout: float,
        skip: Callable[[str], bool] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._on_packet = on_packet
        self._on_lost = on_lost
        self._skip = skip  # packets nobody reads, told from their text before parsing
        self._response_timeout = response_timeout
        self._send_timeout = send_timeout
        self._client = _LibraryClient(self, host, port, response_timeout)
        self._sock: socket.socket | None = None
        self._write_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._closed = threading.Event()
        self._lost_once = threading.Lock()
        self.last_heard = time.monotonic()
        self.unreadable = 0  # packets that were neither an event nor a response

    # -- life ----------------------------------------------------------------------------------

    def open(self, username: str, secret: str, events: str) -> None:
        """Connect and log in, or raise BackendError (the secret is never in it)."""
        try:
            self._client.connect()
        except OSError as exc:
            self._closed.set()
            raise BackendError(
                f"AMI at {self.host}:{self.port}: cannot connect ({type(exc).__name__})"
            ) from None
        self._sock = self._client._socket
        try:
            reply = self.request(
                [("Action", "Login"), ("Username", username), ("Secret", secret), ("Events", events)]
            )
        except BackendError:
            self.close()
            raise
        if not reply.ok:
            self.close()
            reason = reply.response.get("Message") or "no reason"
            raise BackendError(f"AMI at {self.host}:{self.port}: login refused ({reason})")

    @property
    def alive(self) -> bool:
        thread = self._client._thread
        return not self._closed.is_set() and thread is not None and thread.is_alive()

    def close(self) -> None:
        """Drop the connection (no Logoff: the switch keeps the calls, as it does on any drop)."""
        self._closed.set()
        sock = self._sock
        if sock is not None:
            # close() alone does not wake a thread blocked in recv(); shutdown() does
            for step in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
                with contextlib.suppress(OSError):
                    step()
        self._fail_pending()

    def logoff(self) -> None:
        with contextlib.suppress(BackendError):
            self.send([("Action", "Logoff")])
        self.close()

    def reader_stopped(self) -> None:
        self._closed.set()
        self._fail_pending()
        if self._lost_once.acquire(blocking=False):
            try:
                self._on_lost()
            except Exception as exc:
                log.error("ami connection-lost handler failed", error=type(exc).__name__)

    # -- writing -------------------------------------------------------------------------------

    def send(self, headers: Sequence[tuple[str, str]]) -> str:
        """Write an action without waiting for its answer; its ActionID (given, or made here)."""
        action_id = dict(headers).get("ActionID")
        if action_id is None:
            action_id = next_action_id()
            headers = [*headers[:1], ("ActionID", action_id), *headers[1:]]
        try:
            data = encode(headers)
        except ValueError as exc:
            raise BackendError(f"AMI: action not sent: {exc}") from None
        self.write(data)
        return action_id

    def request(self, headers: Sequence[tuple[str, str]], timeout: float | None = None) -> Reply:
        """Write an action and wait for its answer (and its list of events, if one follows)."""
        action_id = next_action_id()
        pending = _Pending()
        with self._pending_lock:
            self._pending[action_id] = pending
        try:
            self.send([*headers[:1], ("ActionID", action_id), *headers[1:]])
            if not pending.done.wait(self._response_timeout if timeout is None else timeout):
                raise BackendError(f"AMI: no answer to {headers[0][1]} in time")
        finally:
            with self._pending_lock:
                self._pending.pop(action_id, None)
        if pending.response is None:
            raise BackendError(f"AMI: connection lost before the answer to {headers[0][1]}")
        return Reply(pending.response, pending.items)

    def write(self, data: bytes) -> None:
        """All of `data`, or the connection is dropped: a partial action would corrupt the stream."""
        with self._write_lock:
            sock = self._sock
            if sock is None or self._closed.is_set():
                raise BackendError("AMI: not connected")
            deadline = time.monotonic() + self._send_timeout
            view = memoryview(data)
            try:
                while view:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        view = view[sock.send(view, socket.MSG_DONTWAIT) :]
                    if view:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError
                        poll = select.poll()
                        poll.register(sock, select.POLLOUT)
                        poll.poll(left * 1000)
            except (OSError, ValueError) as exc:
                log.warning("ami write failed: connection dropped", error=type(exc).__name__)
                self.close()
                raise BackendError(f"AMI: write failed ({type(exc).__name__})") from None

    # -- reading (on the reader thread) --------------------------------------------------------

    def received(self, text: str) -> None:
        """One packet from the reader thread. Never raises: an error here would end the thread."""
        self.last_heard = time.monotonic()
        if self._skip is not None and self._skip(text):
            return
        try:
            packet = parse(text)
        except MalformedPacket as exc:
            self.unreadable += 1
            log.warning("ami packet unreadable, ignored", problem=str(exc), unreadable=self.unreadable)
            return
        if packet.damaged:
            log.warning(
                "ami packet damaged, kept what was readable", dropped=packet.damaged, ami_event=packet.event
            )
        try:
            action_id = packet.get("ActionID") if self._pending else None
            if action_id is not None:
                with self._pending_lock:
                    pending = self._pending.get(action_id)
                    if pending is not None:
                        if pending.add(packet):
                            pending.done.set()
                        return
            self._on_packet(packet)
        except Exception as exc:
            log.error(
                "ami packet handler failed, packet skipped", error=type(exc).__name__, ami_event=packet.event
            )

    def _fail_pending(self) -> None:
        with self._pending_lock:
            for pending in self._pending.values():
                pending.done.set()
