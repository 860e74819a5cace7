"""Twilio's webhooks: call progress, the detector's verdict, TwiML, and the nurses' conferences.

Nothing reaches carecall unauthenticated (invariant 6): every request must
carry a valid `X-Twilio-Signature` for the URL Twilio called, which is
rebuilt from the configured public base URL (the app may sit behind a TLS
proxy that changes scheme, host and port) plus the route and its query. A
request that fails gets 403 and records nothing; the log says which route,
never what the request held (its `To` and `From` are phone numbers).

A valid callback becomes `dialer.events` (`callbacks`), handed on once to
the dialer that owns the call (`relay`). A callback for an attempt carecall
does not know is logged and answered 200 with nothing recorded, so Twilio
does not retry it forever. The detector's verdict acts at once, inside its
own request: a person is sent into the nurse's conference (or hears the
apology if her leg is gone), a machine gets the neutral message or nothing;
the dialer learns of it afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from campaign.clock import Clock
from dialer.backends.twilio import callbacks, rest, twiml
from dialer.backends.twilio.settings import Route, TwilioSettings
from dialer.events import CallEvent, LineState, NurseLegEvent
from dialer.lines import CallLine
from dialer.web.relay import Relay, log

XML = "application/xml"
_NURSE_PREFIX, _ATTEMPT_PREFIX = "nurse-", "attempt-"


def _int(values: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(values[key])
    except (KeyError, TypeError, ValueError):
        return None


def _labelled(label: str | None, prefix: str) -> int | None:
    if not label or not label.startswith(prefix):
        return None
    return _int({"id": label.removeprefix(prefix)}, "id")


class TwilioWebhooks:
    """The handlers; each takes the request's query and form, already checked, and does blocking work."""

    def __init__(
        self, settings: TwilioSettings, client: Client, relay: Relay, clock: Clock, prompts: twiml.Prompts
    ) -> None:
        self.settings = settings
        self.client = client
        self.relay = relay
        self.clock = clock
        self.prompts = prompts
        self.voice = twiml.Voice(settings.voice, settings.language)
        self.validator = RequestValidator(settings.auth_token.get_secret_value())

    def signed(self, route: str, query: str, form: Any, signature: str) -> bool:
        url = self.settings.public_base_url + route + (f"?{query}" if query else "")
        return bool(signature) and self.validator.validate(url, form, signature)

    # ------------------------------------------------------------------ a patient's call

    def _line(self, route: str, query: Mapping[str, str]) -> CallLine | None:
        attempt = _int(query, "attempt")
        if attempt is None:
            log.warning("twilio.callback.malformed", route=route, reason="no attempt in the query")
            return None
        line = self.relay.line(attempt)
        if line is None:
            log.warning("twilio.callback.unknown_attempt", route=route, attempt_id=attempt)
        return line

    def status(self, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        if "nurse" in query:
            self._nurse_status(query, form)
            return
        line = self._line(Route.status, query)
        if line is None:
            return
        sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
        with self.relay.call(line.attempt_id):
            proposed = callbacks.status_events(
                line.attempt_id, sid, status, _int(form, "SipResponseCode"), self.clock.now()
            )
            self.relay.hand_on(line, proposed)

    def amd(self, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        line = self._line(Route.amd, query)
        if line is None:
            return
        sid = form.get("CallSid", "")
        with self.relay.call(line.attempt_id):
            if self.relay.seen(line).ended:
                return  # over (the person hung up at once): nothing to bridge
            events, response = self._verdict(line, sid, form.get("AnsweredBy"), query.get("vm") == "1")
            if response is not None:
                try:
                    rest.redirect(self.client, sid, response)
                except rest.REST_ERRORS as exc:
                    level = "info" if rest.call_is_over(exc) else "warning"
                    getattr(log, level)(
                        "twilio.redirect.failed", attempt_id=line.attempt_id, detail=rest.error_detail(exc)
                    )
            self.relay.hand_on(line, events)

    def _verdict(
        self, line: CallLine, sid: str, answered_by: str | None, voicemail: bool, *, again: bool = False
    ) -> tuple[list[CallEvent], str | None]:
        """The verdict's events, and the TwiML that acts on it (None: acted on already).

        `again`: the call is still on its first TwiML (no verdict came, or acting on it failed),
        so it must be given what to do even if a verdict is known.
        """
        now, attempt = self.clock.now(), line.attempt_id
        events = callbacks.verdict_events(attempt, sid, answered_by, now)
        seen = self.relay.seen(line).furthest
        if seen.rank >= LineState.human.rank and not again:
            return events, None  # a repeated verdict: the first one acted
        if seen in (LineState.connected, LineState.nurse_gone):
            return events, twiml.hangup()
        if seen == LineState.machine or (seen != LineState.human and not callbacks.is_person(answered_by)):
            text = self.prompts.voicemail if voicemail and callbacks.leaves_message(answered_by) else None
            left = self.settings.webhook_url(Route.twiml, attempt=attempt, step="voicemail-left")
            return events, twiml.voicemail(text, self.voice, left)
        try:
            present = rest.nurse_present(self.client, line.nurse_id)
        except rest.REST_ERRORS as exc:  # better an apology than a person in an empty conference
            log.warning("twilio.nurse_check.failed", attempt_id=attempt, detail=rest.error_detail(exc))
            present = False
        if present:
            callback = self.settings.webhook_url(Route.conference, attempt=attempt)
            return events, twiml.bridge(line.nurse_id, attempt, callback)
        log.info("twilio.nurse_gone", attempt_id=attempt, nurse_id=line.nurse_id)
        return events + callbacks.nurse_gone_events(attempt, sid, now), twiml.apology(
            self.prompts.apology, self.voice
        )

    def twiml(self, query: Mapping[str, str], form: Mapping[str, str]) -> str:
        line = self._line(Route.twiml, query)
        if line is None:
            return twiml.hangup()  # a call carecall does not know: never leave anyone on it
        sid, step, attempt = form.get("CallSid", ""), query.get("step", "answer"), line.attempt_id
        now = self.clock.now()
        with self.relay.call(attempt):
            if self.relay.seen(line).ended:
                return twiml.hangup()
            if step == "voicemail-left":
                self.relay.hand_on(line, callbacks.voicemail_left_events(attempt, sid, now))
                return twiml.hangup()
            if step == "verdict":  # the detector never answered: a person, never left in silence
                voicemail = query.get("vm") == "1"
                events, response = self._verdict(line, sid, form.get("AnsweredBy"), voicemail, again=True)
                self.relay.hand_on(line, events)
                return response or twiml.hangup()
            self.relay.hand_on(line, callbacks.status_events(attempt, sid, "in-progress", None, now))
            verdict = self.settings.webhook_url(
                Route.twiml, attempt=attempt, step="verdict", vm=query.get("vm", "0")
            )
            return twiml.hold(self.prompts.hold, self.voice, self.settings.amd_timeout_seconds + 5, verdict)

    # ------------------------------------------------------------------ conferences and nurses' legs

    def conference(self, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        event = form.get("StatusCallbackEvent", "")
        if event not in ("participant-join", "participant-leave"):
            return  # conference-start, -end: her leg's own join and leave say it all
        label = form.get("ParticipantLabel")
        attempt = _labelled(label, _ATTEMPT_PREFIX)
        nurse = _labelled(label, _NURSE_PREFIX)
        if attempt is None and nurse is None:
            if "nurse" in query:
                return  # no label in a nurse's conference: whose join it is cannot be told
            attempt = _int(query, "attempt")
        if nurse is not None:
            leg = NurseLegEvent(nurse, event == "participant-join", self.clock.now())
            self.relay.nurse_leg(
                leg, query.get("worker"), form.get("ConferenceSid"), _int(form, "SequenceNumber")
            )
            return
        if attempt is None or event != "participant-join":
            return
        line = self.relay.line(attempt)
        if line is None:
            log.warning("twilio.callback.unknown_attempt", route=Route.conference, attempt_id=attempt)
            return
        with self.relay.call(attempt):
            self.relay.hand_on(
                line, callbacks.connected_events(attempt, form.get("CallSid", ""), self.clock.now())
            )

    def _nurse_status(self, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        nurse = _int(query, "nurse")
        if nurse is None or form.get("CallStatus") not in callbacks.FINAL_STATUSES:
            return
        leg = NurseLegEvent(nurse, False, self.clock.now())
        self.relay.nurse_leg(leg, query.get("worker"), form.get("CallSid"), 1 << 30)


def router(hooks: TwilioWebhooks) -> APIRouter:
    """The four routes, each checking the signature before anything else."""
    api = APIRouter()

    async def checked(request: Request, route: str) -> tuple[dict[str, str], dict[str, str]] | None:
        form = await request.form()
        if not hooks.signed(route, request.url.query, form, request.headers.get("X-Twilio-Signature", "")):
            log.warning("twilio.webhook.forged", route=route, signed="X-Twilio-Signature" in request.headers)
            return None
        return dict(request.query_params), {k: v for k, v in form.items() if isinstance(v, str)}

    async def handle(request: Request, route: str, fn: Any) -> Response:
        params = await checked(request, route)
        if params is None:
            return Response(status_code=403)
        await run_in_threadpool(fn, *params)
        return Response(status_code=200)

    @api.post(Route.status)
    async def status(request: Request) -> Response:
        return await handle(request, Route.status, hooks.status)

    @api.post(Route.amd)
    async def amd(request: Request) -> Response:
        return await handle(request, Route.amd, hooks.amd)

    @api.post(Route.conference)
    async def conference(request: Request) -> Response:
        return await handle(request, Route.conference, hooks.conference)

    @api.post(Route.twiml)
    async def call_twiml(request: Request) -> Response:
        params = await checked(request, Route.twiml)
        if params is None:
            return Response(status_code=403)
        return Response(await run_in_threadpool(hooks.twiml, *params), media_type=XML)

    return api
