"""The webhooks take nothing unsigned, hand each event on once whatever Twilio's order and retries,
find the call's owner in any process, and log no phone number."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs
from twilio_world import WORKER, World, twilio_world

from campaign.states import AttemptResult
from dialer import lines
from dialer.backends.twilio.settings import Route
from dialer.events import LineState
from dialer.testing.twilio_calls import Script


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with twilio_world(f"sqlite:///{tmp_path / 'carecall.db'}") as w:
        w.nurse_ready()
        yield w


def call_line_events(w: World) -> int:
    with w.ctx.sessions() as s:
        return int(s.execute(select(func.count()).select_from(lines.CallLineEvent)).scalar_one())


def signed_post(w: World, route: str, query: str, params: dict[str, str], *, token: str | None = None) -> Any:
    """A callback as Twilio sends it, to a URL carecall gave (signed with `token`, else the account's)."""
    url = w.settings.webhook_url(route) + f"?{query}"
    return w.peer.post(url, params, signature=w.peer.signature(url, params, token=token))


# ---------------------------------------------------------------- forged


def test_a_forged_signature_gets_403_and_records_nothing(world: World) -> None:
    world.peer.forge = True
    attempt = world.dial(Script.human)
    world.call_over(attempt)
    sent = [s for s in world.peer.sent if f"attempt={attempt}" in s.url]
    assert sent and {s.status for s in sent} == {403}
    assert world.inbox.calls(attempt) == []
    line = world.line(attempt)
    assert (line.state, line.call_id) == (LineState.dialing.value, None)
    assert call_line_events(world) == 0
    (call,) = world.peer.calls_to(world.numbers[attempt])
    assert call.conferences == [], "a forged TwiML request never bridges anyone"


def test_unsigned_or_signed_for_another_url_is_refused_before_anything_else(world: World) -> None:
    attempt, _ = world.attempt()
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "To": "+33199001111"}
    url = world.settings.webhook_url(Route.status, attempt=attempt)
    assert world.peer.post(url, params, signature="")[0] == 403
    other = world.settings.webhook_url(Route.status, attempt=attempt + 1)
    assert world.peer.post(url, params, signature=world.peer.signature(other, params))[0] == 403
    assert signed_post(world, Route.status, "attempt=999999", params, token="not-the-token")[0] == 403
    assert world.inbox.calls(attempt) == [] and call_line_events(world) == 0


# ---------------------------------------------------------------- retried, reordered


def test_duplicated_callbacks_change_nothing_more(world: World) -> None:
    world.peer.duplicate = True
    person = world.dial(Script.human)
    machine = world.dial(Script.machine_message_end)
    world.wait_ended(person)
    world.wait_ended(machine)
    world.peer.wait_idle()
    assert world.kinds(person) == ["ringing", "answered", "human", "connected", "ended"]
    assert world.kinds(machine) == ["ringing", "answered", "machine", "ended"]
    assert world.record(person) == (AttemptResult.answered, False)
    assert world.record(machine) == (AttemptResult.machine, True)
    (call,) = world.peer.calls_to(world.numbers[person])
    updates = [f for m, p, f in world.peer.requests if p.endswith(f"/{call.sid}.json") and m == "POST"]
    assert len(updates) == 1, "a repeated verdict bridges the patient once"


def test_progress_callbacks_sent_last_first_still_tell_one_forward_story(world: World) -> None:
    world.peer.reorder = True
    attempt = world.dial(Script.human)
    world.wait_ended(attempt)
    world.peer.wait_idle()
    statuses = [
        s.params["CallStatus"] for s in world.peer.sent_to(Route.status) if f"attempt={attempt}" in s.url
    ]
    assert statuses == ["completed", "in-progress", "ringing", "initiated"]
    assert world.kinds(attempt) == ["answered", "human", "connected", "ended"]
    assert world.record(attempt) == (AttemptResult.answered, False)


def test_completed_arriving_before_answered_still_says_answered(world: World) -> None:
    attempt, number = world.attempt()
    sid = "CA" + "2" * 32
    for status in ("completed", "in-progress", "ringing", "completed"):
        params = {
            "CallSid": sid,
            "CallStatus": status,
            "To": number,
            "From": "+33199000000",
            "CallDuration": "3",
        }
        assert signed_post(world, Route.status, f"attempt={attempt}", params)[0] == 200
    assert world.kinds(attempt) == ["answered", "ended"]
    assert world.record(attempt) == (AttemptResult.hung_up, False)


# ---------------------------------------------------------------- behind a proxy


def test_behind_a_tls_proxy_signatures_are_checked_against_the_public_url(tmp_path: Path) -> None:
    public = "https://carecall.example.org/hooks"
    with twilio_world(f"sqlite:///{tmp_path / 'c.db'}", public_base_url=public) as w:
        w.nurse_ready()
        attempt = w.dial(Script.human)
        w.wait_ended(attempt)
        w.peer.wait_idle()
        assert w.kinds(attempt) == ["ringing", "answered", "human", "connected", "ended"]
        assert all(s.url.startswith(public) for s in w.peer.sent)
        # what the app itself sees (http://127.0.0.1:port/…) is not what Twilio signed
        local = w.peer._routes[0][1] + Route.status + f"?attempt={attempt}"
        params = {"CallSid": "CA" + "3" * 32, "CallStatus": "ringing"}
        assert w.peer.post(local, params)[0] == 403


# ---------------------------------------------------------------- whose call


def test_an_event_for_another_worker_call_is_forwarded_through_the_database(db_url: str) -> None:
    with twilio_world(db_url, app_worker="web-2") as w:
        w.nurse_ready(delivered=False)
        attempt = w.dial(Script.human)
        w.call_over(attempt)
        assert w.inbox.calls(attempt) == [], "not this process's call"
        with w.ctx.sessions() as s:
            forwarded = lines.events_for_worker(s, WORKER)
            s.commit()
        assert [e.kind.value for e in forwarded] == ["ringing", "answered", "human", "connected", "ended"]
        assert w.record(attempt, forwarded) == (AttemptResult.answered, False)


def test_an_unknown_attempt_is_logged_and_answered_200_with_nothing_recorded(world: World) -> None:
    params = {"CallSid": "CA" + "4" * 32, "CallStatus": "completed", "To": "+33199002222"}
    with capture_logs() as logs:
        assert signed_post(world, Route.status, "attempt=999999", params)[0] == 200
        status, body = signed_post(world, Route.twiml, "attempt=999999&step=answer", params)
    assert status == 200 and "<Hangup" in body
    assert [e["attempt_id"] for e in logs if e["event"] == "twilio.callback.unknown_attempt"] == [
        999999,
        999999,
    ]
    assert call_line_events(world) == 0 and world.inbox.events[1:] == []


# ---------------------------------------------------------------- logs


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_log_lines_carry_no_phone_number(world: World) -> None:
    """Read before the scrubber runs (it would mask numbers anyway): carecall must not log them."""
    handler, root = _Records(), logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        with capture_logs() as logs:
            attempts = [world.dial(s) for s in (Script.human, Script.invalid_number, Script.busy)]
            for attempt in attempts:
                world.wait_ended(attempt)
            world.peer.wait_idle()
            params = {"CallSid": "CA" + "5" * 32, "CallStatus": "ringing", "To": world.numbers[attempts[0]]}
            signed_post(world, Route.status, f"attempt={attempts[0]}", params, token="forged")
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    text = "\n".join([*map(str, logs), *handler.lines])
    assert "twilio.webhook.forged" in text and "twilio.call.refused" in text, "the logs were captured"
    numbers = [world.numbers[a] for a in attempts] + [world.settings.caller_number]
    for number in numbers:
        assert number not in text and number[3:] not in text
