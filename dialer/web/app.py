"""The web application, built by `create_app` from what the caller gives it: no settings, engine or
client is built at import, so a test (or `carecall serve`) wires real or local parts as it likes."""

from __future__ import annotations

from fastapi import FastAPI
from twilio.http import HttpClient

from campaign.clock import Clock, SystemClock
from dialer.backends.twilio import rest, twiml
from dialer.backends.twilio.settings import TwilioSettings
from dialer.web.relay import Deliver, Relay, Sessions
from dialer.web.webhooks import TwilioWebhooks, router


def create_app(
    settings: TwilioSettings,
    sessions: Sessions,
    worker: str,
    deliver: Deliver,
    *,
    clock: Clock | None = None,
    voicemail_text: str | None = None,
    http_client: HttpClient | None = None,
) -> FastAPI:
    """The webhooks' app.

    `sessions`: the database's session factory (the calls' lines); `worker`: the name of the dialer
    process beside this app, whose calls' events go to `deliver` (its thread-safe inbox), the others'
    through the database; `voicemail_text`: the neutral message for machines, None if the policy
    leaves none; `http_client`: the Twilio SDK's seam, for a local peer in tests.
    """
    app = FastAPI(title="carecall webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    client = rest.make_client(settings, http_client)
    hooks = TwilioWebhooks(
        settings,
        client,
        Relay(sessions, worker, deliver),
        clock or SystemClock(),
        twiml.Prompts.render(voicemail_text),
    )
    app.state.twilio = hooks
    app.include_router(router(hooks))
    return app
