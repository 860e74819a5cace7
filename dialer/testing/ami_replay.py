"""Replays recorded AMI traffic at full speed, for the ingestion benchmark (`scripts/bench_ami.py`).

    with AmiReplay(recordings(), repeat=100) as replay:   # 127.0.0.1, a free port: replay.address
        ...  # a client connects and logs in (any user): every recorded event follows, then the socket closes
    AmiReplay.of_stream(stream, events)                   # the same for a stream built elsewhere

The stream is the `in` event packets of the given `.jsonl` captures, back to
back, `repeat` times, built before anyone connects so that serving it costs
nothing but the writes. Each repetition is a distinct set of calls: the
ChannelIds, OtherChannelIds and ActionIDs of each capture's Originates get a
`-r<n>` suffix (or whatever `rewrite(n)` maps, byte string to byte string).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from dialer.testing.ami_scenarios import RECORDINGS
from dialer.testing.ami_wire import BANNER, PacketReader, encode, header

Rewrite = Callable[[int], Mapping[bytes, bytes]]


def recordings(pattern: str = "ami-transcript-conf-*.jsonl") -> list[Path]:
    """The captures shipped with the peer (the nurse-conference flows by default)."""
    return sorted(RECORDINGS.glob(pattern))


def _events_and_ids(path: Path) -> tuple[list[bytes], list[bytes]]:
    events, ids = [], []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        headers = [(str(k), str(v)) for k, v in record.get("headers", [])]
        if record.get("dir") == "out" and header(headers, "Action") == "Originate":
            ids += [v.encode() for k, v in headers if k in ("ChannelId", "OtherChannelId", "ActionID")]
        elif record.get("dir") == "in" and header(headers, "Event") is not None:
            events.append(encode(headers))
    return events, ids


def _renamed(events: list[bytes], ids: list[bytes], n: int, rewrite: Rewrite | None) -> bytes:
    """A capture's events for repetition n: by default its Originates' ids get `-r<n>` (none for n = 0)."""
    blob = b"".join(events)
    if rewrite is not None:
        for old, new in rewrite(n).items():
            blob = blob.replace(old, new)
        return blob
    if n == 0 or not ids:
        return blob
    pattern = re.compile(
        b"(" + b"|".join(re.escape(i) for i in sorted(set(ids), key=len, reverse=True)) + b")"
    )
    suffix = f"-r{n}".encode()
    return pattern.sub(lambda match: match.group(0) + suffix, blob)


class AmiReplay:
    """A server that writes the recorded events to each client once it has logged in, then closes."""

    def __init__(
        self,
        paths: Sequence[Path],
        repeat: int = 1,
        *,
        rewrite: Rewrite | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if repeat < 1:
            raise ValueError(f"repeat at least once, not {repeat}")
        files = [_events_and_ids(path) for path in paths]
        chunks = []
        for n in range(repeat):
            for events, ids in files:
                chunks.append(_renamed(events, ids, n, rewrite))
        self._server(b"".join(chunks), sum(len(e) for e, _ in files) * repeat, host, port)

    @classmethod
    def of_stream(cls, stream: bytes, events: int, *, host: str = "127.0.0.1", port: int = 0) -> AmiReplay:
        """A server for a stream already built, of `events` events (what a call replay sent, say)."""
        replay = cls.__new__(cls)
        replay._server(stream, events, host, port)
        return replay

    def _server(self, stream: bytes, events: int, host: str, port: int) -> None:
        self.stream = stream
        self.events = events
        self._listener = socket.create_server((host, port))
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="ami-replay-accept", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def __enter__(self) -> AmiReplay:
        self._accepting.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), name="ami-replay-client", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(120)
        with sock:
            sock.sendall(BANNER)
            reader = PacketReader()
            while True:
                data = sock.recv(4096)
                if not data:
                    return
                login = next((p for p in reader.feed(data) if header(p, "Action") == "Login"), None)
                if login is not None:
                    break
            action_id = header(login, "ActionID")
            ids = [] if action_id is None else [("ActionID", action_id)]
            sock.sendall(encode([("Response", "Success"), *ids, ("Message", "Authentication accepted")]))
            with contextlib.suppress(OSError):
                sock.sendall(self.stream)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):  # let the client read to the end before the socket goes
                    pass
