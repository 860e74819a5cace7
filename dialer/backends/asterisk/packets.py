"""AMI packets as carecall reads and writes them. Pure: no I/O.

The library's own parser keeps one value per header name, so a `Status`
reply's several `Variable:` lines collapse into the last one, and a line it
cannot split vanishes without a word. carecall parses packets itself: every
header in order, repeats kept, and a damaged packet recognised as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Headers = Sequence[tuple[str, str]]


class MalformedPacket(ValueError):
    """A packet that is neither an event nor a response (a damaged or foreign line).

    The message says what is wrong, never what the packet held: its values may be phone numbers.
    """


@dataclass(frozen=True, slots=True)
class Packet:
    """One AMI packet: an event (`Event:` first) or a response to an action (`Response:` first)."""

    headers: tuple[tuple[str, str], ...]
    damaged: int = 0  # lines or a broken head dropped when it was read

    @property
    def event(self) -> str | None:
        """The event's name; None for a response."""
        name, value = self.headers[0]
        return value if name == "Event" else None

    @property
    def response(self) -> str | None:
        """Success, Error, Goodbye… for a response or an `OriginateResponse`; else None."""
        return self.get("Response")

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (several `ActionID:` lines happen: the first is the client's)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

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
    is dropped, and when the end of a truncated packet ran into the next one
    (`UniqEvent: Newstate`), the broken head is dropped and the whole packet that
    follows is kept. `damaged` counts what was dropped; nothing usable raises.
    """
    lines = [line for line in text.split("\r\n") if line]
    damaged = 0
    start = 0
    for i, line in enumerate(lines):
        name = line.partition(":")[0]
        if _starts_packet(name) and (i > 0 or name not in ("Event", "Response")):
            start, damaged = i, i + (name not in ("Event", "Response"))
    headers: list[tuple[str, str]] = []
    for i, line in enumerate(lines[start:]):
        name, sep, value = line.partition(":")
        if i == 0 and name not in ("Event", "Response"):
            name = "Event" if name.endswith("Event") else "Response"
        if not sep or not name or " " in name:
            damaged += 1
            continue
        headers.append((name, value[1:] if value.startswith(" ") else value))
    if not headers or headers[0][0] not in ("Event", "Response"):
        raise MalformedPacket(f"a packet of {len(lines)} lines that starts with neither Event nor Response")
    return Packet(tuple(headers), damaged)


def _starts_packet(name: str) -> bool:
    """A header name that begins a packet, also glued after the broken end of another."""
    if name in ("Event", "Response"):
        return True
    return (name.endswith("Event") and name != "UserEvent") or (
        name.endswith("Response") and " " not in name and len(name) > len("Response")
    )


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    """An action's bytes. A value with a line break would smuggle a header in: refused."""
    parts = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name[:40]!r}: a line break or a colon in an action header")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
