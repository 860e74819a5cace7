"""AMI packets as carecall reads and writes them. Pure: no I/O.

The library's own parser keeps one value per header name, so a `Status`
reply's several `Variable:` lines collapse into the last one, and a line it
cannot split vanishes without a word. carecall parses packets itself: every
header in order, repeats kept, and a damaged packet recognised as such.

Most packets are clean (every line `Name: value`, no other packet inside):
those keep their text and answer `get` by looking the line up in it, and
split themselves into headers only when asked for all of them. A switch
sends tens of thousands of packets a second, of which the correlator reads
a handful of headers each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

Headers = Sequence[tuple[str, str]]


class MalformedPacket(ValueError):
    """A packet that is neither an event nor a response (a damaged or foreign line).

    The message says what is wrong, never what the packet held: its values may be phone numbers.
    """


class Packet:
    """One AMI packet: an event (`Event:` first) or a response to an action (`Response:` first)."""

    __slots__ = ("_fields", "_headers", "_text", "damaged")

    def __init__(self, headers: Iterable[tuple[str, str]], damaged: int = 0) -> None:
        self._headers: tuple[tuple[str, str], ...] | None = tuple(headers)
        self._fields: dict[str, str] | None = None
        self._text: str | None = None
        self.damaged = damaged  # lines or a broken head dropped when it was read

    @classmethod
    def clean(cls, text: str) -> Packet:
        """A packet whose every line is `Name: value` (`parse` checks it), read as it is asked."""
        packet = cls.__new__(cls)
        packet._headers = packet._fields = None
        packet._text = text
        packet.damaged = 0
        return packet

    def __repr__(self) -> str:
        return (
            f"Packet({self.event or self.response!r}, {len(self.headers)} headers)"  # values may be personal
        )

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        if self._headers is None:
            assert self._text is not None
            self._headers = _whole_headers(self._text)[0]
        return self._headers

    @property
    def fields(self) -> dict[str, str]:
        """The first value of each name."""
        if self._fields is None:
            self._fields = dict(reversed(self.headers))
        return self._fields

    @property
    def event(self) -> str | None:
        """The event's name; None for a response."""
        text = self._text
        if text is not None:
            if not text.startswith("Event: "):
                return None
            end = text.find("\r\n")
            return text[7:] if end < 0 else text[7:end]
        name, value = self.headers[0]
        return value if name == "Event" else None

    @property
    def response(self) -> str | None:
        """Success, Error, Goodbye… for a response or an `OriginateResponse`; else None."""
        return self.get("Response")

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (several `ActionID:` lines happen: the first is the client's)."""
        text = self._text
        if text is None:
            return self.fields.get(name, default)
        if text.startswith(name + ": "):
            start = len(name) + 2
        else:
            at = text.find("\r\n" + name + ": ")
            if at < 0:
                return default
            start = at + len(name) + 4
        end = text.find("\r\n", start)
        return text[start:] if end < 0 else text[start:end]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def variables(self) -> dict[str, str]:
        """The `Variable: NAME=value` lines of a `Status` reply."""
        out: dict[str, str] = {}
        for text in self.all("Variable"):
            name, sep, value = text.partition("=")
            if sep:
                out[name] = value
        return out


def parse(text: str) -> Packet:
    """A packet from its text (its lines, without the blank line that ends it).

    A damaged packet keeps what can be trusted: a line that is not `Name: value`
    is dropped, and when a truncated packet ran into the next one (`Channel:
    Local/06…@patEvent: Hangup`, `UniqEvent: Newstate`), the broken head is
    dropped and the packet that follows is kept whole. `damaged` counts what
    was dropped; a packet with nothing usable raises MalformedPacket.
    """
    if text.startswith(_STARTS):
        if _CLEAN.fullmatch(text) is not None and _alone(text):
            return Packet.clean(text)  # the common case: read as it is asked
        if text.find("Event: ", 1) < 0 and text.find("Response: ", 1) < 0:
            return _parse_whole(text)  # nothing glued in it: read in one pass
    lines = [line for line in text.split("\r\n") if line]
    damaged = 0
    own_response = bool(lines) and lines[0] == "Event: OriginateResponse"
    starts = [(i, _glued_at(line, own_response)) for i, line in enumerate(lines)]
    glued = [(i, cut) for i, cut in starts if cut > 0 or (cut == 0 and i > 0)]
    if glued:  # the last packet that starts in this text is the one to keep
        i, cut = glued[-1]
        lines, damaged = [lines[i][cut:], *lines[i + 1 :]], i + (cut > 0)
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            damaged += 1
            continue
        headers.append((name, value[1:] if value.startswith(" ") else value))
    if not headers or headers[0][0] not in ("Event", "Response"):
        raise MalformedPacket(f"a packet of {len(lines)} lines that starts with neither Event nor Response")
    return Packet(tuple(headers), damaged)


_STARTS = ("Event: ", "Response: ")
# every line `Name: value` with a name as AMI's (letters, digits, - and _). Lines are told apart at
# each "\n" (the "\r" before it is part of `.*`): a value's lone "\n" not followed by a name sends the
# packet the slow way; a value's lone "\r" stays in the value, as it does when split at "\r\n"
_CLEAN = re.compile(r"[A-Za-z0-9_-]+: .*(?:\n[A-Za-z0-9_-]+: .*)*")


def _alone(text: str) -> bool:
    """No other packet starts inside this clean one: its `Event: ` and `Response: ` beyond the first
    line are a UserEvent's own `UserEvent:` header, or an OriginateResponse's own `Response:` header
    (what `_glued_at` lets pass, line by line)."""
    at = text.find("Event: ", 1)
    while at >= 0:
        if at < 6 or text[at - 6 : at] != "\r\nUser":
            return False
        at = text.find("Event: ", at + 7)
    at = text.find("Response: ", 1)
    if at >= 0 and not text.startswith("Event: OriginateResponse\r\n"):
        return False
    while at >= 0:
        if text[at - 2 : at] != "\r\n":
            return False
        at = text.find("Response: ", at + 10)
    return True


def _parse_whole(text: str) -> Packet:
    headers, damaged = _whole_headers(text)
    return Packet(headers, damaged)


def _whole_headers(text: str) -> tuple[tuple[tuple[str, str], ...], int]:
    headers = []
    damaged = 0
    for line in text.split("\r\n"):
        name, sep, value = line.partition(": ")
        if not sep or " " in name:
            name, sep, value = line.partition(":")  # "Name:" with nothing after it
            if not sep or not name or " " in name:
                damaged += bool(line)
                continue
        headers.append((name, value))
    return tuple(headers), damaged


def _glued_at(line: str, own_response: bool) -> int:
    """Where, in a line, a packet starts (-1: nowhere). At 0 it is the line itself; further on, the
    start of a packet the end of a truncated one ran into."""
    best = -1
    for marker in ("Event: ", "Response: "):
        at = line.rfind(marker)
        if at == 4 and line.startswith("UserEvent: "):  # a UserEvent's own header
            at = line.rfind(marker, 0, 4)
        if at == 0 and marker == "Response: " and own_response:  # an OriginateResponse's own header
            at = -1
        best = max(best, at)
    return best


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    """An action's bytes. A value with a line break would smuggle a header in: refused."""
    parts = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name[:40]!r}: a line break or a colon in an action header")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
