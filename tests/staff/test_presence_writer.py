"""A busy dialer stores presence with the transactions it opens anyway; a change that none takes
(a nurse pausing while idle, say) is stored by a transaction of its own soon after, and notified."""

from __future__ import annotations

import time
from datetime import date

from factories import add_nurse, dispose, engine_of, make_ctx, paris

from campaign import store
from dialer.backends.base import DialRequest
from dialer.backends.scripted import ScriptedLines
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.staff.bus import PRESENCE, PgBus, make_bus
from dialer.staff.store import presence_of

MONDAY = date(2026, 12, 7)


def _nothing(_rank: int, _request: DialRequest) -> None:
    return None


def test_a_change_no_transaction_takes_is_stored_and_notified_soon_after(db_url: str) -> None:
    ctx, _clock = make_ctx(db_url, paris(MONDAY, 10))
    bus = make_bus(engine_of(ctx))
    try:
        nurse = add_nurse(ctx)
        sub = bus.subscribe(PRESENCE)
        if isinstance(bus, PgBus):
            assert bus.wait_listening(10)
        # deferred, as `serve` runs it: presence waits for a transaction, 50 ms at most
        d = Dialer(ctx, ScriptedLines(ctx.clock, _nothing), "w-1", None, bus=bus, deferred=True)
        with ctx.sessions() as s:
            d.start(nurse_ids={n.id for n in store.nurses(s)})
        d.flush()
        d.store_presence(force=True)
        while sub.get(0.2) is not None:
            pass  # what the start said
        d.nurse_pause(nurse, "lunch")  # idle, no task: no claim, no call, no transaction of the dialer's
        d.flush()
        with ctx.sessions() as s:
            row = presence_of(s, nurse)
        assert row is not None and row.status == NurseStatus.offline, "not before its delay"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # serve's steps: a flush each
            d.flush()
            with ctx.sessions() as s:
                row = presence_of(s, nurse)
            if row is not None and row.status == NurseStatus.paused:
                break
            time.sleep(0.01)
        assert row is not None and (row.status, row.reason) == (NurseStatus.paused, "lunch")
        assert sub.get(5.0) == (PRESENCE, str(nurse))
        d.stop()
    finally:
        bus.close()
        dispose(ctx)
