"""The inbound line's routes: Twilio's voice webhook and its follow-ups, and the Asterisk endpoint.

Both ask the same service (`InboundLine`) and play its reply their own way.
Nothing reaches the line unauthenticated (invariant 6): a Twilio request must
carry a valid `X-Twilio-Signature` for the public URL Twilio called (rebuilt
from `public_base_url`, as dialer/web/webhooks.py does); the dialplan's
request must carry the shared token of `CARECALL_AGI_TOKEN`, compared in
constant time. Anything else gets 403 and changes nothing; without a Twilio
account (`serve --telephony twilio`'s, on app.state.twilio) or a token
configured, every request of that backend is refused.
Logs name the route, never what the request held (caller IDs, digits).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from campaign.services.incoming import create_request_callback
from dialer.backends.twilio import twiml as outbound_twiml
from dialer.backends.twilio.settings import TwilioSettings
from dialer.inbound import asterisk
from dialer.inbound.line import InboundLine, Reply, RequestCallback, Step
from dialer.inbound.twiml import reply_twiml
from dialer.web.auth import Role, User, require
from dialer.web.pages import page
from dialer.web.relay import log

ENV_AGI_TOKEN = "CARECALL_AGI_TOKEN"
XML = "application/xml"
PLAIN = "text/plain; charset=utf-8"


class Route:
    voice = "/inbound/twilio/voice"  # the number's voice webhook: a call arrives
    gather = "/inbound/twilio/gather"  # digits keyed (?step=member|year)
    wait = "/inbound/twilio/wait"  # the wait came round
    status = "/inbound/twilio/status"  # the number's status callback: the call ended
    asterisk = "/inbound/asterisk"  # the dialplan's CURL()


# Twilio's final call statuses: the call is over
_FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _twilio_settings(request: Request, given: TwilioSettings | None) -> TwilioSettings | None:
    """The account's settings: as given, else those of the outbound webhooks beside (serve
    --telephony twilio puts them on app.state.twilio), else none: Twilio requests are refused."""
    if given is not None:
        return given
    hooks = getattr(request.app.state, "twilio", None)
    settings = getattr(hooks, "settings", None)
    return settings if isinstance(settings, TwilioSettings) else None


def router(
    web: Any,
    *,
    twilio: TwilioSettings | None = None,
    agi_token: str | None = None,
    request_callback: RequestCallback | None = None,
) -> APIRouter:
    """The routes, on `web.ctx` (storage, policy, clock) and `web.commands` (reaching nurses)."""
    callback = request_callback or create_request_callback
    line = InboundLine(web.ctx, web.commands, callback, worker=getattr(web, "worker", None))
    token = agi_token if agi_token is not None else os.environ.get(ENV_AGI_TOKEN, "")
    api = APIRouter()
    api.include_router(_twilio_routes(line, twilio))
    api.include_router(_asterisk_route(line, token))

    @api.get("/inbound/")
    def inbound(request: Request, user: User = Depends(require(Role.supervisor))) -> HTMLResponse:
        return page(
            request,
            "placeholder.html.j2",
            title="Ligne entrante",
            coming="Ici viendra la ligne entrante : les appels des patients, reconnus et dirigés "
            "vers leur infirmier référent, ou rappelés.",
        )

    return api


# ---------------------------------------------------------------------------------------- Twilio


def _twilio_routes(line: InboundLine, given: TwilioSettings | None) -> APIRouter:
    api = APIRouter()

    async def checked(request: Request, route: str) -> tuple[TwilioSettings, dict[str, str]] | None:
        form = await request.form()
        signature = request.headers.get("X-Twilio-Signature", "")
        settings = _twilio_settings(request, given)
        if settings is None or not signature:
            ok = False
        else:
            query = request.url.query
            url = settings.public_base_url + route + (f"?{query}" if query else "")
            ok = RequestValidator(settings.auth_token.get_secret_value()).validate(url, form, signature)
        if settings is None or not ok:
            log.warning("inbound.twilio.forged", route=route, signed=bool(signature))
            return None
        return settings, {k: v for k, v in form.items() if isinstance(v, str)}

    def next_url(settings: TwilioSettings, reply: Reply) -> str:
        if reply.step == Step.gather_member:
            return settings.webhook_url(Route.gather, step="member")
        if reply.step == Step.gather_birth_year:
            return settings.webhook_url(Route.gather, step="year")
        return settings.webhook_url(Route.wait)

    async def answer(request: Request, route: str, act: Any) -> Response:
        found = await checked(request, route)
        if found is None:
            return Response(status_code=403)
        settings, form = found
        reply = await run_in_threadpool(act, form, dict(request.query_params))
        voice = outbound_twiml.Voice(settings.voice, settings.language)
        return Response(reply_twiml(reply, voice, next_url(settings, reply)), media_type=XML)

    @api.post(Route.voice)
    async def arrived(request: Request) -> Response:
        return await answer(
            request, Route.voice, lambda f, _q: line.arrive("twilio", f.get("CallSid", ""), f.get("From"))
        )

    def keyed(form: Mapping[str, str], query: Mapping[str, str]) -> Reply:
        sid, digits = form.get("CallSid", ""), form.get("Digits", "")
        if query.get("step") == "year":
            return line.birth_year(sid, digits)
        return line.member(sid, digits)

    @api.post(Route.gather)
    async def gathered(request: Request) -> Response:
        return await answer(request, Route.gather, keyed)

    @api.post(Route.wait)
    async def waited(request: Request) -> Response:
        return await answer(request, Route.wait, lambda f, _q: line.again(f.get("CallSid", "")))

    @api.post(Route.status)
    async def status(request: Request) -> Response:
        found = await checked(request, Route.status)
        if found is None:
            return Response(status_code=403)
        _, form = found
        if form.get("CallStatus") in _FINAL:
            await run_in_threadpool(line.ended, form.get("CallSid", ""))
        return Response(status_code=200)

    return api


# ---------------------------------------------------------------------------------------- Asterisk


def _asterisk_route(line: InboundLine, token: str) -> APIRouter:
    api = APIRouter()

    def allowed(request: Request) -> bool:
        given = request.headers.get("X-Carecall-Token") or request.query_params.get("token", "")
        # constant time, and an unset token never matches (not even an empty one)
        return bool(token) and hmac.compare_digest(given.encode(), token.encode())

    def act(query: Mapping[str, str]) -> str:
        call, event, digits = query.get("call", ""), query.get("event", ""), query.get("digits", "")
        if event == "end":
            cause = query.get("cause", "")
            line.ended(call, int(cause) if cause.isdigit() else None)
            return "ok||"
        if event == "start":
            reply = line.arrive("asterisk", call, query.get("caller"))
        elif event == "member":
            reply = line.member(call, digits)
        elif event == "year":
            reply = line.birth_year(call, digits)
        else:
            reply = line.again(call)
        return asterisk.reply_line(reply)

    @api.get(Route.asterisk)
    async def decision(request: Request) -> Response:
        if not allowed(request):
            log.warning("inbound.asterisk.refused", route=Route.asterisk)
            return Response(status_code=403)
        query = dict(request.query_params)
        if not query.get("call"):
            return Response("hangup||\n", status_code=400, media_type=PLAIN)
        return Response(await run_in_threadpool(act, query) + "\n", media_type=PLAIN)

    return api
