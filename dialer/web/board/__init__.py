"""The supervisor board: `router(web) -> APIRouter`, every page for the supervisor role only.

/board                       live: nurses by state, calls, queue, abandoned patients, waves
/board/stream                the live parts, pushed as server-sent events (see live.py)
/board/import                import patients from a CSV (patients.py)
/board/mailings/new          record a mailing; /board/waves/{id}: its wave (waves.py)
/board/patients/{id}/why     `patient why` as a page; /board/audit: the audit trail
/board/waves/{id}/report     a wave's report (reports.py); CSV exports (exports.py)
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from dialer.web.auth import Role, User, require
from dialer.web.board import exports, live, patients, reports, waves
from dialer.web.board.feed import BoardFeed
from dialer.web.pages import page

Supervisor = Annotated[User, Depends(require(Role.supervisor))]
PING_SECONDS = 15  # a comment on a quiet stream, so proxies keep it open
# a nurse's change often means a call placed or ended: the waves' figures follow, once a second
WAVES_FOLLOW_PRESENCE = 1.0
WAVES_INTERVAL = 0.1  # a wave's own changes (a launch, a pause), at most ten times a second
PRESENCE_INTERVAL = 0.05  # nurses' rows: at most twenty pushes a second (each to every board)


def make_feed(web: Any) -> BoardFeed:
    """The process's one feed of the live parts, fed by the bus's presence and wave channels."""
    from dialer.staff.bus import PRESENCE, WAVES

    board = live.LiveBoard(web.ctx, web.templates)
    routes = {
        PRESENCE: [(live.PRESENCE, 0.0), (live.WAVES, WAVES_FOLLOW_PRESENCE)],
        WAVES: [(live.WAVES, 0.0)],
    }
    # a nurse's row as soon as 50 ms after the previous push (the changes heard meanwhile go together)
    intervals = {live.PRESENCE: PRESENCE_INTERVAL, live.WAVES: WAVES_INTERVAL}
    return BoardFeed(
        web.bus, board.compute, routes, all_parts=(live.PRESENCE, live.WAVES), min_interval=intervals
    )


@functools.lru_cache(maxsize=1024)  # every nurse's row: a board that connects gets them all
def _encoded(event: str, html: str) -> bytes:
    """A pushed fragment as the stream sends it, encoded once for every board: the feed hands the
    same string to each (twenty boards would otherwise encode the 250 nurses' rows twenty times)."""
    return ServerSentEvent(data=html, event=event).encode()


def router(web: Any) -> APIRouter:
    api = APIRouter()
    feed = make_feed(web)

    @api.get("/board")
    def board(request: Request, user: Supervisor) -> HTMLResponse:
        current = live.read_live(web.ctx)
        themes = {c: t.label for c, t in web.ctx.policy.themes.items()}
        return page(
            request,
            "board.html.j2",
            live=current,
            themes=themes,
            pause_reasons=web.ctx.policy.web.pause_reasons,
        )

    @api.get("/board/stream")
    async def stream(request: Request, user: Supervisor) -> EventSourceResponse:
        async def events() -> Any:
            # one write a push: each write to the socket goes through every middleware, and waits for
            # the GIL again after the system call (the dialer's thread holds it most of the time)
            async for batch in feed.batches():
                yield b"".join(_encoded(event, html) for event, html in batch.items())

        return EventSourceResponse(events(), ping=PING_SECONDS, headers={"cache-control": "no-store"})

    for part in (waves, patients, reports, exports):
        api.include_router(part.router(web))
    api.feed = feed  # type: ignore[attr-defined]  # for tests and operators: clients, pushes
    return api
