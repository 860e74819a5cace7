"""Where a webhook's events go: to this process's dialer, or to the process that owns the call.

A callback may reach any web process (several workers behind the proxy) and
must reach the dialer that placed the call: its `call_line` row names that
worker. Ours: `deliver(event)`, the dialer's thread-safe inbox. Another's:
`dialer.lines.forward_events`, which that worker reads from the database.

What a process already handed on is remembered (`Seen`, merged with the
line's state in the database), so a retried or late callback hands on
nothing a second time, whichever process hears it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session

from campaign.logs import get_logger
from dialer.backends.twilio.callbacks import Seen, forward
from dialer.events import CallEvent, Event, LineState, NurseLegEvent
from dialer.lines import CallLine, forward_events, lines_of

log = get_logger("dialer.web.twilio")

Sessions = Callable[[], Session]
Deliver = Callable[[Event], None]
_STRIPES = 64
_MEMORY = 20_000  # calls remembered by this process (the database remembers the rest)


def seen_of(line: CallLine) -> Seen:
    return Seen(LineState(line.state), line.rank >= LineState.ended.rank)


class Relay:
    """Hands a webhook's events on, once each, to the dialer that owns the call."""

    def __init__(self, sessions: Sessions, worker: str, deliver: Deliver) -> None:
        self.sessions = sessions
        self.worker = worker
        self._deliver = deliver
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._memory_lock = threading.Lock()
        self._memory: OrderedDict[int, Seen] = OrderedDict()
        self._legs: dict[int, tuple[str, int]] = {}  # nurse -> (conference, last sequence number)

    @contextmanager
    def call(self, attempt_id: int) -> Iterator[None]:
        """One callback of a call at a time: Twilio may send two at once, in any order."""
        with self._stripes[attempt_id % _STRIPES]:
            yield

    def line(self, attempt_id: int) -> CallLine | None:
        with self.sessions() as session:
            line = lines_of(session, [attempt_id]).get(attempt_id)
            if line is not None:
                session.expunge(line)
            return line

    def seen(self, line: CallLine) -> Seen:
        with self._memory_lock:
            mine = self._memory.get(line.attempt_id, Seen())
        return mine.merge(seen_of(line))

    def hand_on(self, line: CallLine, proposed: list[CallEvent]) -> list[CallEvent]:
        """Of the proposed events, those that move the call forward, handed on; the rest dropped."""
        kept, after = forward(self.seen(line), proposed)
        if kept and line.worker == self.worker:
            for event in kept:
                self._deliver(event)
        elif kept:
            with self.sessions() as session:
                forward_events(session, line.worker, kept)
                session.commit()
            log.info(
                "twilio.events.forwarded", attempt_id=line.attempt_id, worker=line.worker, events=len(kept)
            )
        with self._memory_lock:  # remembered once handed on: a failure leaves Twilio's retry its chance
            self._memory[line.attempt_id] = after
            self._memory.move_to_end(line.attempt_id)
            while len(self._memory) > _MEMORY:
                self._memory.popitem(last=False)
        return kept

    def nurse_leg(
        self, event: NurseLegEvent, worker: str | None, conference: str | None, sequence: Any
    ) -> None:
        """Her leg joined or left her conference; a repeated or older report of the same conference is
        dropped. The contract forwards only call events: a leg placed by another process is logged."""
        if conference is not None and isinstance(sequence, int):
            with self._memory_lock:
                last = self._legs.get(event.nurse_id)
                if last is not None and last[0] == conference and sequence <= last[1]:
                    return
                self._legs[event.nurse_id] = (conference, sequence)
        if worker != self.worker:
            log.warning("twilio.nurse_leg.other_worker", nurse_id=event.nurse_id, worker=worker, up=event.up)
            return
        self._deliver(event)
