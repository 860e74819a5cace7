"""The dialer's live lines: which events move a call forward, and the records still to write.

The process that placed a call is the only one that applies its events, so
its memory is the line's truth while it lives: an event repeated, or arriving
after a later one, is dropped here without a query. The line records follow
in the next transaction the dialer opens anyway (a claim, an answer, an end),
or at the heartbeat, so tracking a line costs no round trip of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from dialer.events import CallEvent, CallEventKind, LineState
from dialer.lines import store


@dataclass(slots=True)
class LineProgress:
    """How far one call's line got: its furthest state before any end, and whether it ended."""

    furthest: LineState = LineState.dialing
    over: bool = False
    cause: int | None = None
    detail: str | None = None
    call_id: str | None = None
    voicemail_left: bool = False

    def accept(self, e: CallEvent) -> bool:
        """Take the event if it moves the line forward (or names the call); True if it moved."""
        if e.call_id and not self.call_id:
            self.call_id = e.call_id
        if self.over:
            return False
        if e.kind == CallEventKind.ended:
            self.over, self.cause, self.voicemail_left = True, e.cause, e.voicemail_left
            self.detail = e.detail or self.detail
            return True
        target = LineState(e.kind.value)
        if target.rank <= self.furthest.rank:
            return False
        self.furthest = target
        self.detail = e.detail or self.detail
        return True


class LineTracker:
    """`record=False`: lines of a backend whose calls die with the process are followed, not stored."""

    def __init__(self, backend: str, worker: str, record: bool = True) -> None:
        self.backend = backend
        self.worker = worker
        self.record = record
        self._dirty: dict[int, LineProgress] = {}
        self._last: dict[int, LineProgress] = {}  # written by the last transaction, until it commits

    def opened(self, session: Session, calls: list[tuple[int, int]], now: datetime) -> None:
        """In the claim's transaction: a record per (attempt, nurse) about to be dialed."""
        if not self.record:
            return
        store.open_lines(session, calls, self.backend, self.worker, now)
        self.write(session, now)

    def moved(self, attempt_id: int, line: LineProgress) -> None:
        if self.record:
            self._dirty[attempt_id] = line

    def rolled_back(self) -> None:
        """The last transaction failed: its line records are written with the next one."""
        self._last, self._dirty = {}, {**self._last, **self._dirty}

    def write(self, session: Session, now: datetime) -> None:
        """The records of the lines that moved since the last write, in one statement."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self._last = dirty
        store.record_lines(
            session,
            [
                store.LineRecord(a, line.furthest, line.over, line.cause, line.detail, line.call_id)
                for a, line in dirty.items()
            ],
            now,
        )
