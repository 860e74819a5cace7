"""An inbound world for tests: a real database, the line's routes under uvicorn on a real port,
requests signed by the real `twilio` library (or carrying the dialplan's token), and the nurses'
owner at the far end of the commands (`Desk`).

    with inbound_world(db_url) as w:
        nurse = w.ready_nurse()
        status, body = w.twilio(Route.voice, {"CallSid": sid, "From": number})
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from factories import add_nurse, dispose, make_ctx
from fastapi import FastAPI
from served import served
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from campaign import services
from campaign.clock import VirtualClock
from campaign.model import TASK
from campaign.services.incoming import start_incoming
from dialer.backends.twilio.settings import TwilioSettings
from dialer.inbound.model import InboundCall
from dialer.inbound.web import router
from dialer.staff.model import NursePresence

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "7e" * 16
AGI_TOKEN = "s3cret-dialplan-token-0123456789"
WORKER = "dialer-1"
# Tuesday 8 December 2026, 10:00 in Paris: the line is open
OPEN = datetime(2026, 12, 8, 9, tzinfo=UTC)
_sids = iter(range(1, 1_000_000))


def new_sid() -> str:
    return f"CA{next(_sids):032x}"


@dataclass
class Desk:
    """The nurses' owner, as the line reaches it: gives a ready nurse the call and answers
    "ok:<attempt>", or refuses. Its attempts are the incoming contacts, started as the owner starts
    them (`start_incoming`)."""

    ctx: services.Context
    refusing: set[int] = field(default_factory=set)
    offers: list[tuple[int, int, int]] = field(default_factory=list)  # (nurse, inbound call, patient)
    results: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inbound(self, nurse_id: int, inbound_call_id: int, patient_id: int) -> int:
        with self._lock:
            self.offers.append((nurse_id, inbound_call_id, patient_id))
            command = len(self.offers)
        if nurse_id in self.refusing:
            self.results[command] = "refused: not free"
        else:
            _task, attempt = start_incoming(self.ctx, patient_id, nurse_id, WORKER)
            self.results[command] = f"ok:{attempt}"
        return command

    def wait(self, command_id: int, timeout_seconds: float) -> str | None:
        return self.results.get(command_id)

    def offered_to(self) -> list[int]:
        return [nurse for nurse, _, _ in self.offers]


@dataclass(frozen=True)
class WebStub:
    """What the line's routes take of web-core's `Web`."""

    ctx: services.Context
    commands: Desk
    worker: str = "web-1"


@dataclass
class World:
    ctx: services.Context
    clock: VirtualClock
    desk: Desk
    settings: TwilioSettings
    base_url: str
    http: httpx.Client

    def ready_nurse(
        self, *, level: str = "senior", skills: tuple[str, ...] = (), since_minutes: int = 1
    ) -> int:
        """A nurse her owner marked ready (no call) `since_minutes` ago."""
        nurse_id = add_nurse(self.ctx, level=level, skills=skills)
        now = self.clock.now()
        with self.ctx.sessions() as s:
            s.add(
                NursePresence(
                    nurse_id=nurse_id,
                    status="ready",
                    since=now - timedelta(minutes=since_minutes),
                    worker=WORKER,
                    updated_at=now,
                )
            )
            s.commit()
        return nurse_id

    def twilio(
        self,
        route: str,
        params: dict[str, str],
        query: str = "",
        *,
        token: str = AUTH_TOKEN,
        signature: str | None = None,
    ) -> tuple[int, str]:
        """A request as Twilio sends it: signed with `token` for the public URL of `route`."""
        url = self.settings.public_base_url + route + (f"?{query}" if query else "")
        if signature is None:
            signature = RequestValidator(token).compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        response = self.http.post(url, data=params, headers=headers)
        return response.status_code, response.text

    def asterisk(self, token: str | None = AGI_TOKEN, **params: str) -> tuple[int, str]:
        """The dialplan's CURL(): a GET with the shared token in its header."""
        headers = {"X-Carecall-Token": token} if token is not None else {}
        response = self.http.get(self.base_url + "/inbound/asterisk", params=params, headers=headers)
        return response.status_code, response.text

    def call(self, call_id: str) -> InboundCall | None:
        with self.ctx.sessions() as s:
            found = s.execute(select(InboundCall).where(InboundCall.call_id == call_id)).scalar_one_or_none()  # type: ignore[arg-type]
            if found is not None:
                s.expunge(found)
            return found

    def tasks(self, patient_id: int) -> list[Any]:
        with self.ctx.sessions() as s:
            return list(
                s.execute(select(TASK).where(TASK.c.patient_id == patient_id).order_by(TASK.c.id)).all()
            )


@contextmanager
def inbound_world(db_url: str, start: datetime = OPEN) -> Iterator[World]:
    ctx, clock = make_ctx(db_url, start)
    desk = Desk(ctx)
    app = FastAPI()
    try:
        with served(app) as base_url:
            settings = TwilioSettings.model_validate(
                {
                    "public_base_url": base_url,
                    "caller_number": "+33199000000",
                    "account_sid": ACCOUNT_SID,
                    "auth_token": AUTH_TOKEN,
                }
            )
            app.include_router(router(WebStub(ctx, desk), twilio=settings, agi_token=AGI_TOKEN))
            with httpx.Client(timeout=20) as http:
                yield World(ctx, clock, desk, settings, base_url, http)
    finally:
        dispose(ctx)
