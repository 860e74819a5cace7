"""The console's reads, renders and commands for one application (`Console`); the routes that use them
are in `dialer.web.console` (`router`)."""

from __future__ import annotations

import asyncio
import time as wall
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import anyio
import anyio.to_thread
from fastapi import Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from campaign.store.files import RosterNurse, active_roster
from dialer.staff.store import PresenceView, presence_of
from dialer.web.auth import Forbidden, User
from dialer.web.console import view
from dialer.web.console.forms import OutcomeForm
from dialer.web.console.hub import PresenceHub
from dialer.web.core import Web, single_reads
from dialer.web.pages import page

NURSE_ZONE = "Europe/Paris"  # nurses work to metropolitan time
COMMAND_WAIT_SECONDS = 5.0  # how long a click waits for her dialer process to answer
ANSWER_POLL_SECONDS = 1.0  # a waiting click reads its command's row this often even if no notification came
ROSTER_SECONDS = 30.0  # how long the nurses a callback may be promised for are kept before being read again
STREAM_THREADS = 16  # threads for the streams' reads and renders, apart from the requests' pool
PARTS = {"state": "console_state.html.j2", "line": "console_line.html.j2", "alert": "console_alert.html.j2"}

T = TypeVar("T")


def _local(value: datetime, zone: str | None = None) -> datetime:
    return value.astimezone(ZoneInfo(zone or NURSE_ZONE))


def _clock(value: datetime, zone: str | None = None) -> str:
    """'9 h 05', the French way, in the nurse's zone or the one given (the patient's)."""
    t = _local(value, zone)
    return f"{t.hour}\u00a0h\u00a0{t.minute:02d}"


class Console:
    """The console's reads and renders for one application (`Web`)."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.policy = web.ctx.policy
        self.hub = PresenceHub(web.bus)
        self.reads = single_reads(web.ctx)  # her presence, read at each change: one round trip
        self._roster: tuple[float, list[RosterNurse]] | None = None  # (read at, on the monotonic clock)
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    async def in_stream_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn` in a thread of the streams' own pool: what a nurse waits to see never queues behind
        the requests' work (starlette's pool, which page requests and clicks share)."""
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(STREAM_THREADS)
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    # ------------------------------------------------------------ reading

    def presence(self, user: User) -> PresenceView:
        if user.nurse_id is None:
            raise Forbidden("no nurse record")
        with self.reads() as s:
            p = presence_of(s, user.nurse_id)
        if p is None:
            raise Forbidden("no nurse record")
        return p

    def call(self, p: PresenceView) -> view.CallPanel | None:
        """Her call's panel; what it shows is audited in the same transaction as the read."""
        if view.phase_of(p) != view.Phase.connected:
            return view.panel_without_file(p)
        with self.web.ctx.sessions() as s:
            panel = view.load_call(s, self.policy, p, self.web.ctx.clock.now(), self.roster(s))
            s.commit()
        return panel

    def roster(self, s: Session) -> list[RosterNurse]:
        """The active nurses and their qualifications, read at most every ROSTER_SECONDS: every call
        panel offers the qualified ones for a callback, and 250 nurses read for each would cost more
        than the rest of the panel. A nurse who left meanwhile is still refused when the callback is
        recorded (campaign.services checks the nurse chosen)."""
        now = wall.monotonic()
        cached = self._roster
        if cached is None or now - cached[0] >= ROSTER_SECONDS:
            cached = self._roster = (now, active_roster(s))
        return cached[1]

    # ------------------------------------------------------------ rendering

    def context(
        self,
        p: PresenceView,
        call: view.CallPanel | None = None,
        form: OutcomeForm | None = None,
        notice: str | None = None,
    ) -> dict[str, Any]:
        now = self.web.ctx.clock.now()
        deadline = (p.since or now) + timedelta(seconds=self.policy.dialer.wrap_up_seconds)
        left = max(0, int((deadline - now).total_seconds()))
        snap = view.Snapshot.of(p)
        return {
            "presence": p,
            "call": call,
            "form": form or OutcomeForm.blank(),
            "notice": notice,
            "pause_reasons": self.policy.web.pause_reasons,
            "wrap_up_deadline": deadline,
            "wrap_up_left": f"{left // 60}:{left % 60:02d}",
            "clock": _clock,
            "local": _local,
            "stream_query": f"v={p.version}&call={snap.call_key}",
        }

    def fragment(self, request: Request, template: str, **context: Any) -> str:
        return bytes(page(request, template, **context).body).decode()

    def parts(self, request: Request, names: list[str], p: PresenceView) -> list[tuple[str, str]]:
        """The stream's events for these parts, the call panel first (it is what she waits for)."""
        out = []
        if "call" in names:
            out.append(
                ("call", self.fragment(request, "console_call.html.j2", **self.context(p, self.call(p))))
            )
        context = self.context(p)
        out += [(name, self.fragment(request, PARTS[name], **context)) for name in names if name != "call"]
        return out

    # ------------------------------------------------------------ commands

    async def command(self, user: User, issue: Callable[[int], int]) -> str | None:
        """Store her command (`issue(nurse_id)`) and await her dialer process's answer: "ok", why it
        refused, or None if it did not answer in time.

        The wait holds no thread: it is woken by her presence's notification (the owner answers in
        the transaction that changes it), with a slow poll besides; a thread per waiting click would
        let 250 consoles' clicks starve the pool the pages and streams need."""
        if user.nurse_id is None:
            raise Forbidden("no nurse record")
        nurse = user.nurse_id
        listener = self.hub.listen(nurse)  # before the command exists: its answer cannot slip by
        try:
            command_id = await run_in_threadpool(issue, nurse)
            deadline = wall.monotonic() + COMMAND_WAIT_SECONDS
            while True:  # no look before the first notification: her owner cannot have answered yet
                await listener.next(max(0.0, min(deadline - wall.monotonic(), ANSWER_POLL_SECONDS)))
                result = await run_in_threadpool(self.web.commands.result, command_id)
                if result is not None or wall.monotonic() >= deadline:
                    return result
        finally:
            listener.close()
