"""A dialer's nurses' presence, stored and notified in the transactions it opens anyway.

Every change the board records (dialer/presence.py) is written as the
nurse's row, with a `PRESENCE` notification, in the next transaction the
dialer opens (a claim, an answer, an end, an outcome, the heartbeat). A
transaction can also carry the row a nurse is about to have once it
commits ("predicted": reserved in her claim's transaction, on call in her
answer's), so a console sees her call as soon as it is stored. A change no
transaction took within `delay` real seconds is written by one of its own.
A row counts as stored only once its transaction commits: a rollback leaves
it to the next one.
"""

from __future__ import annotations

import time as wall
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlmodel import Session

from dialer.presence import PresenceBoard
from dialer.staff import store
from dialer.staff.bus import PRESENCE, Bus
from dialer.staff.store import PresenceRow
from dialer.staff.txhooks import hooks


class PresenceWriter:
    def __init__(
        self,
        board: PresenceBoard,
        row_of: Callable[[int], PresenceRow],
        worker: str,
        bus: Bus,
        delay: float = 0.05,
    ) -> None:
        self.board = board
        self.row_of = row_of  # her row as the dialer knows her now
        self.worker = worker
        self.bus = bus
        self.delay = delay
        self.stored: dict[int, PresenceRow] = {}  # what the database holds, as far as we know
        self._waiting_since: float | None = None  # real time a change first waited for a transaction

    def settle(self) -> int:
        """Forget the changes that change nothing stored; how many remain to write."""
        changed = self.board.changed
        for n in [n for n in changed if self.row_of(n).same(self.stored.get(n))]:
            changed.discard(n)
        if not changed:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = wall.perf_counter()
        return len(changed)

    def due(self) -> bool:
        """A change has waited `delay` real seconds for a transaction: it gets one of its own.

        Asked after every flush: while the first change waits its delay, nothing is looked at again
        (a busy dialer's next transaction takes it first).
        """
        if not self.board.changed:
            self._waiting_since = None
            return False
        waiting = self._waiting_since
        if waiting is not None and wall.perf_counter() - waiting < self.delay:
            return False
        return self.settle() > 0 and (
            self._waiting_since is not None and wall.perf_counter() - self._waiting_since >= self.delay
        )

    def write(
        self, session: Session, now: datetime, predicted: Mapping[int, PresenceRow] | None = None
    ) -> None:
        """In the caller's transaction: the rows of every nurse changed, or about to be (`predicted`)."""
        rows: dict[int, PresenceRow] = {}
        for n in list(self.board.changed):
            row = self.row_of(n)
            if row.same(self.stored.get(n)):
                self.board.changed.discard(n)
            else:
                rows[n] = row
        for n, row in (predicted or {}).items():
            if row.same(self.stored.get(n)):
                rows.pop(n, None)
            else:
                rows[n] = row
        if not rows:
            return
        store.write_presence(session, list(rows.values()), self.worker, now)
        for n in rows:
            self.bus.notify_in(session, PRESENCE, str(n))
        hooks(session).committed.append(lambda _s: self._committed(rows))

    def _committed(self, written: dict[int, PresenceRow]) -> None:
        for n, row in written.items():
            self.stored[n] = row
            if self.row_of(n).same(row):
                self.board.changed.discard(n)  # else she moved on meanwhile: written next time
        if not self.board.changed:
            self._waiting_since = None
