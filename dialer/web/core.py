"""The one web application `carecall serve` runs: the consoles' pages, /static, the webhooks.

    web = make_web(ctx, worker="dialer-1")
    app = create_web_app(web, twilio_webhooks=hooks_app)

`Web` is what every route needs (on `app.state.web`): the programme's context,
the bus and the nurse commands that reach the dialer process owning a nurse,
the pages' templates and this process's name. Built by the caller, never at
import. The pages' routers come from `dialer.web.console`, `dialer.web.board`
and `dialer.inbound.web`, each `router(web) -> APIRouter`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from campaign.db import SessionFactory, session_factory
from campaign.services import Context
from dialer.accounts import session_key
from dialer.staff.bus import Bus, make_bus
from dialer.staff.commands import NurseCommands
from dialer.web import login
from dialer.web.auth import Forbidden, LoginRequired, security_clock
from dialer.web.pages import CSRF_REFUSED, error_page, web_templates
from dialer.web.security import (
    Receive,
    Scope,
    SecurityHeadersMiddleware,
    Send,
    SessionCodec,
    SessionMiddleware,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _bus_of(ctx: Context) -> Bus:
    """The bus of a web application that runs without a dialer beside it (tests, tools)."""
    with ctx.sessions() as s:
        engine = s.get_bind()
    assert isinstance(engine, Engine)
    return make_bus(engine)


def single_reads(ctx: Context) -> SessionFactory:
    """Sessions for reads of one statement that what a person waits for makes often (her presence, the
    board's nurses): on PostgreSQL in autocommit, one round trip instead of three (BEGIN, the read,
    ROLLBACK); elsewhere the context's own."""
    with ctx.sessions() as s:
        engine = s.get_bind()
    if isinstance(engine, Engine) and engine.dialect.name == "postgresql":
        return session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
    return ctx.sessions


@dataclass(frozen=True)
class Web:
    ctx: Context
    bus: Bus  # presence and commands between the processes
    commands: NurseCommands  # what a person asks of a nurse's dialer process
    templates: Environment
    worker: str
    # the session cookies' key; None: CARECALL_SECRET_KEY, else the one stored in app_secret
    secret_key: str | None = field(default=None, repr=False)


def make_web(
    ctx: Context,
    *,
    worker: str = "web",
    bus: Bus | None = None,
    commands: NurseCommands | None = None,
    secret_key: str | None = None,
) -> Web:
    """A `Web` with the pages' templates; the bus and commands this process uses unless given
    (`carecall serve` shares its dialer's bus, which on SQLite is the only way to reach it)."""
    if bus is None:
        bus = _bus_of(ctx)
    if commands is None:
        commands = NurseCommands(ctx, bus)
    return Web(
        ctx,
        bus,
        commands,
        web_templates(),
        worker,
        secret_key,
    )


def create_web_app(web: Web, *, twilio_webhooks: FastAPI | None = None) -> FastAPI:
    """The application: log-in, the consoles' routers, /static, and Twilio's webhooks if given
    (the app `dialer.web.app.create_app` builds; its routes are under /twilio/)."""
    from dialer.inbound import web as inbound_web
    from dialer.web import board, console

    app = FastAPI(title="carecall", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = web
    app.include_router(login.router(web))
    app.include_router(console.router(web))
    app.include_router(board.router(web))
    app.include_router(inbound_web.router(web))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if twilio_webhooks is not None:
        app.state.twilio = twilio_webhooks.state.twilio
        app.include_router(twilio_webhooks.router)  # its routes as they are, under /twilio/
    _handlers(app)

    clock = security_clock(web.ctx.clock)
    key = web.secret_key or session_key(web.ctx, os.environ.get("CARECALL_SECRET_KEY"))
    codec = SessionCodec(key, web.ctx.policy.web.session_hours * 3600)

    async def refuse_csrf(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await run_in_threadpool(error_page, request, 403, *CSRF_REFUSED)
        await response(scope, receive, send)

    app.add_middleware(
        SessionMiddleware, codec=codec, now=lambda: clock.now().timestamp(), refuse=refuse_csrf
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _handlers(app: FastAPI) -> None:
    def login_required(request: Request, exc: Exception) -> Response:
        live = "HX-Request" in request.headers or "text/event-stream" in request.headers.get("accept", "")
        if live:
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    def forbidden(request: Request, exc: Exception) -> HTMLResponse:
        return error_page(request, 403)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (403, 404, 405):
            return error_page(request, exc.status_code)
        return Response(str(exc.detail), status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(StarletteHTTPException, http_error)
