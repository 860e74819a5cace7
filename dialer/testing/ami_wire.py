"""The Asterisk Manager Interface on the wire: packets, their framing, and which events a session sees.

A packet is an ordered list of `(name, value)` headers (the order Asterisk
writes them in, duplicates kept: `Status` carries one `Variable:` line per
variable), written as `Name: value\\r\\n` lines ended by a blank line. What a
session receives is cut twice, as on the real server: by the classes of its
`Events:` login header against each event's `Privilege`, then by the
manager.conf `eventfilter` lines of its user (legacy regex or the advanced
`eventfilter(action(…),name(…),header(…),method(…))` form of Asterisk 22).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

Headers = list[tuple[str, str]]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# every class an AMI user may read; `Events: on` means all of them
EVENT_CLASSES = frozenset(
    [
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
    ]
)


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n").encode()


def header(headers: Sequence[tuple[str, str]], name: str, default: str | None = None) -> str | None:
    """The first value of `name` (AMI header names are case-insensitive)."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return default


def headers_all(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    lowered = name.lower()
    return [value for key, value in headers if key.lower() == lowered]


class PacketReader:
    """Splits what a client sends into packets: lines ended by LF (CR optional), a blank line ends one.

    A line without a colon is kept as a header with an empty name, as Asterisk
    ignores it rather than dropping the packet.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: Headers = []

    def feed(self, data: bytes) -> Iterator[Headers]:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if self._lines:
                    packet, self._lines = self._lines, []
                    yield packet
                continue
            name, colon, value = line.partition(":")
            self._lines.append((name.strip(), value.strip()) if colon else ("", line))


def event_classes(login_events: str | None) -> frozenset[str]:
    """The classes an `Events:` value lets through (`on`, `off`, or a list such as `call,user`)."""
    if login_events is None:
        return EVENT_CLASSES
    value = login_events.strip().lower()
    if value in ("on", "yes", "true", "all"):
        return EVENT_CLASSES
    if value in ("off", "no", "false", ""):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def class_allows(classes: frozenset[str], privilege: str | None) -> bool:
    """An event is sent when one of its Privilege classes (`call,all`) is among the session's."""
    if privilege is None:
        return True
    return any(part.strip().lower() in classes for part in privilege.split(","))


_CRITERION = re.compile(r"(action|name|header|method)\(([^)]*)\)")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One manager.conf `eventfilter` line."""

    exclude: bool
    name: str | None
    header: str | None
    method: str  # regex, exact, starts_with, ends_with, contains, none
    expression: str

    @classmethod
    def parse(cls, line: str) -> EventFilter:
        """`eventfilter(action(exclude),name(Newexten)) =` or the legacy `eventfilter = !regex`."""
        key, equals, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key.startswith("eventfilter"):
            raise ValueError(f"not an eventfilter line: {line!r}")
        criteria = key[len("eventfilter") :].strip()
        if not criteria:  # legacy: a regex against the whole event, '!' to exclude
            exclude = value.startswith("!")
            return cls(exclude, None, None, "regex", value[1:] if exclude else value)
        found = dict(_CRITERION.findall(criteria))
        action = found.get("action", "include")
        method = found.get("method", "none")
        if action not in ("include", "exclude"):
            raise ValueError(f"eventfilter action must be include or exclude: {line!r}")
        if method not in ("regex", "exact", "starts_with", "ends_with", "contains", "none"):
            raise ValueError(f"unknown eventfilter method {method!r}: {line!r}")
        return cls(action == "exclude", found.get("name"), found.get("header"), method, value)

    def matches(self, name: str, headers: Sequence[tuple[str, str]], text: str) -> bool:
        if self.name is not None and name != self.name:
            return False
        if self.header is not None:
            value = header(headers, self.header)
            if value is None:
                return False
        else:
            value = text
        return _match(self.method, self.expression, value)


def _match(method: str, expression: str, value: str) -> bool:
    if method == "none":
        return True
    if method == "regex":
        return re.search(expression, value) is not None
    if method == "exact":
        return value == expression
    if method == "starts_with":
        return value.startswith(expression)
    if method == "ends_with":
        return value.endswith(expression)
    return expression in value


def filters_allow(filters: Sequence[EventFilter], headers: Sequence[tuple[str, str]]) -> bool:
    """Asterisk's order: with include filters an event must match one; then no exclude filter may match."""
    if not filters:
        return True
    name = header(headers, "Event") or ""
    text = "".join(f"{key}: {value}\r\n" for key, value in headers)
    includes = [f for f in filters if not f.exclude]
    if includes and not any(f.matches(name, headers, text) for f in includes):
        return False
    return not any(f.matches(name, headers, text) for f in filters if f.exclude)


# the recorded manager.conf's user `dialer-filtered` (fixtures/ami/dialplan/manager.conf)
RECORDED_EVENTFILTER = (
    "eventfilter(action(exclude),name(Newexten)) =",
    "eventfilter(action(exclude),name(VarSet),header(Variable),method(regex)) = ^([^A]|A[^M]|AM[^D])",
    "eventfilter(action(exclude),name(DeviceStateChange)) =",
    "eventfilter(action(exclude),name(NewConnectedLine)) =",
    "eventfilter(action(exclude),name(NewCallerid)) =",
)
