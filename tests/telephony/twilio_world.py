"""A Twilio world for tests: the local Twilio peer, carecall's webhook app under uvicorn on a real
port, the backend on the real SDK, and a real database holding the calls' attempts and lines.

    with twilio_world(db_url) as w:
        nurse = w.nurse_ready()
        attempt = w.dial(Script.busy)
        w.peer.wait_idle()
        assert w.kinds(attempt) == [...]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from factories import add_nurse, add_patient, add_task, dispose, fiction_phone, make_ctx
from served import bound_socket, uvicorn_server
from sqlalchemy import insert, select

from campaign import services
from campaign.clock import VirtualClock
from campaign.model import CallAttempt, Nurse
from campaign.states import AttemptResult
from campaign.templates import render
from dialer import lines
from dialer.backends.base import DialRequest, NurseLine
from dialer.backends.twilio import TwilioBackend, TwilioSettings
from dialer.causes import attempt_result
from dialer.events import CallEvent, CallEventKind, Event, NurseLegEvent
from dialer.lines.tracker import LineProgress
from dialer.testing.twilio_calls import Behaviour, PeerCall, Script
from dialer.testing.twilio_peer import TwilioPeer
from dialer.web import create_app

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "9f" * 16
WORKER = "dialer-1"
START = datetime(2026, 12, 7, 9, tzinfo=UTC)
VOICEMAIL = render("ivr/voicemail.fr.j2", inbound_number="01 99 00 00 00")
_numbers = iter(range(1, 10_000))


def settings(base_url: str, **overrides: Any) -> TwilioSettings:
    values: dict[str, Any] = {
        "public_base_url": base_url,
        "caller_number": "+33199000000",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "amd_timeout_seconds": 30,
        "calls_per_second": 50,  # the pacing has tests of its own; here it would only slow calls down
    }
    values.update(overrides)
    return TwilioSettings.model_validate(values)


class Inbox:
    """The dialer's inbox, as the webhooks and the backend see it: events in arrival order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def calls(self, attempt_id: int) -> list[CallEvent]:
        with self._cond:
            return [e for e in self.events if isinstance(e, CallEvent) and e.attempt_id == attempt_id]

    def legs(self, nurse_id: int) -> list[NurseLegEvent]:
        with self._cond:
            return [e for e in self.events if isinstance(e, NurseLegEvent) and e.nurse_id == nurse_id]

    def wait_for(self, found: Any, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while not found():
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not seen in {timeout} s; events: {self.events}")
                self._cond.wait(left)


@dataclass
class World:
    ctx: services.Context
    clock: VirtualClock
    peer: TwilioPeer
    settings: TwilioSettings
    backend: TwilioBackend
    inbox: Inbox
    app_worker: str
    nurse_id: int = 0
    numbers: dict[int, str] = field(default_factory=dict)  # attempt -> number dialed

    def nurse_ready(self, endpoint: str = "client:nurse-coach", *, delivered: bool = True) -> int:
        """A nurse whose phone is up in her conference: her leg's join has reached the dialer
        (`delivered`), or at least her conference is on at the peer."""
        nurse_id = add_nurse(self.ctx)
        with self.ctx.sessions() as s:
            nurse = s.get(Nurse, nurse_id)
            assert nurse is not None
            nurse.phone_endpoint = endpoint
            s.commit()
        self.nurse_id = nurse_id
        self.backend.nurse_ready(NurseLine(nurse_id, endpoint))
        if delivered:
            self.inbox.wait_for(lambda: any(e.up for e in self.inbox.legs(nurse_id)))
        else:
            end = time.monotonic() + 10
            while not self.peer.live_conference(f"nurse-{nurse_id}"):
                assert time.monotonic() < end, "her conference never started"
                time.sleep(0.01)
        return nurse_id

    def attempt(self, nurse_id: int | None = None, worker: str = WORKER) -> tuple[int, str]:
        """An attempt in flight and its open line, as the dialer leaves them before dialing."""
        nurse_id = nurse_id or self.nurse_id or add_nurse(self.ctx)
        number = fiction_phone(next(_numbers), "+3326191")
        patient = add_patient(self.ctx, phone=number)
        assert patient.id is not None
        task_id = add_task(self.ctx, patient.id)
        now = self.clock.now()
        with self.ctx.sessions() as s:
            attempt_id = s.execute(
                insert(CallAttempt.__table__)  # type: ignore[attr-defined]
                .values(
                    task_id=task_id, patient_id=patient.id, nurse_id=nurse_id, number=number, started_at=now
                )
                .returning(CallAttempt.__table__.c.id)  # type: ignore[attr-defined]
            ).scalar_one()
            lines.open_lines(s, [(attempt_id, nurse_id)], "twilio", worker, now)
            s.commit()
        self.numbers[attempt_id] = number
        return int(attempt_id), number

    def prepare(
        self, script: Script | Behaviour = Script.human, *, voicemail: str | None = VOICEMAIL, ring: int = 30
    ) -> DialRequest:
        """The request the dialer would make for a new attempt, to a number that behaves as `script`."""
        attempt_id, number = self.attempt()
        self.peer.script(number, script)
        return DialRequest(attempt_id, 0, number, self.nurse_id, "client:nurse-coach", ring, voicemail)

    def dial(
        self, script: Script | Behaviour = Script.human, *, voicemail: str | None = VOICEMAIL, ring: int = 30
    ) -> int:
        request = self.prepare(script, voicemail=voicemail, ring=ring)
        self.backend.dial(request)
        return request.attempt_id

    def call_over(self, attempt_id: int, timeout: float = 10.0) -> PeerCall:
        """The peer's call of this attempt, once placed and over."""
        end = time.monotonic() + timeout
        while not (calls := self.peer.calls_to(self.numbers[attempt_id])):
            assert time.monotonic() < end, f"attempt {attempt_id} was never placed"
            time.sleep(0.01)
        assert calls[-1].done.wait(max(0.0, end - time.monotonic())), (
            f"attempt {attempt_id}'s call never ended"
        )
        return calls[-1]

    def kinds(self, attempt_id: int) -> list[str]:
        return [e.kind.value for e in self.inbox.calls(attempt_id)]

    def wait_ended(self, attempt_id: int, timeout: float = 10.0) -> CallEvent:
        self.inbox.wait_for(
            lambda: any(e.kind == CallEventKind.ended for e in self.inbox.calls(attempt_id)), timeout
        )
        return next(e for e in self.inbox.calls(attempt_id) if e.kind == CallEventKind.ended)

    def record(self, attempt_id: int, events: list[CallEvent] | None = None) -> tuple[AttemptResult, bool]:
        """What the dialer would record: the events through its line tracking, then the cause table."""
        events = self.inbox.calls(attempt_id) if events is None else events
        line = LineProgress()
        ends = [e for e in events if line.accept(e) and e.kind == CallEventKind.ended]
        assert len(ends) == 1, f"the line of attempt {attempt_id} ended {len(ends)} times"
        return attempt_result(line.furthest, line.cause), line.voicemail_left

    def line(self, attempt_id: int) -> lines.CallLine:
        with self.ctx.sessions() as s:
            line = s.execute(
                select(lines.CallLine).where(lines.CallLine.attempt_id == attempt_id)
            ).scalar_one()  # type: ignore[arg-type]
            s.expunge(line)
            return line


@contextmanager
def twilio_world(
    db_url: str,
    *,
    public_base_url: str | None = None,
    app_worker: str = WORKER,
    peer_seconds: float = 0.01,
    account_cps: float | None = None,
    backend_settings: dict[str, Any] | None = None,
    queue_check_seconds: float = 1.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[World]:
    """Everything up; `public_base_url`: the proxy's URL Twilio is given (else the app's own)."""
    ctx, clock = make_ctx(db_url, START)
    sock = bound_socket()
    local = f"http://127.0.0.1:{sock.getsockname()[1]}"
    conf = settings(public_base_url or local, **(backend_settings or {}))
    inbox = Inbox()
    with TwilioPeer(ACCOUNT_SID, AUTH_TOKEN, seconds=peer_seconds, account_cps=account_cps) as peer:
        if public_base_url:
            peer.route(public_base_url, local)
        app = create_app(
            conf,
            ctx.sessions,
            app_worker,
            inbox,
            clock=clock,
            voicemail_text=VOICEMAIL,
            http_client=peer.http_client(),
        )
        backend = TwilioBackend(
            conf,
            clock,
            WORKER,
            peer.http_client(),
            queue_check_seconds=queue_check_seconds,
            monotonic=monotonic,
        )
        backend.connect(inbox)
        try:
            with uvicorn_server(app, sock):
                yield World(ctx, clock, peer, conf, backend, inbox, app_worker)
        finally:
            backend.close()
            dispose(ctx)
