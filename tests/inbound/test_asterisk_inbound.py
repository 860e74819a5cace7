"""The inbound line through the Asterisk endpoint the dialplan calls with CURL(), over a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from factories import add_patient, dispose, make_ctx, paris
from fastapi import FastAPI
from inbound_world import OPEN, Desk, WebStub, World, inbound_world
from served import served

from dialer.inbound.decision import CallState
from dialer.inbound.web import router
from dialer.lines import events_for_worker

NUMBER = "+33261910042"  # fiction range


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with inbound_world(f"sqlite:///{tmp_path / 'carecall.db'}") as w:
        yield w


def parts(body: str) -> tuple[str, str, list[str]]:
    action, argument, recordings = body.strip().split("|")
    return action, argument, recordings.split("&") if recordings else []


def test_without_the_shared_token_the_endpoint_refuses_and_changes_nothing(world: World) -> None:
    nurse = world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=nurse)
    start = {"call": "1733650000.11", "event": "start", "caller": NUMBER}
    assert world.asterisk(token=None, **start)[0] == 403
    assert world.asterisk(token="s3cret-dialplan-token-012345678X", **start)[0] == 403
    assert world.asterisk(token="", **start)[0] == 403
    assert world.call(start["call"]) is None and world.desk.offers == []


def test_a_known_caller_is_sent_into_the_referent_room(world: World) -> None:
    referent = world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=referent)
    status, body = world.asterisk(call="1733650000.12", event="start", caller="0261910042")  # national form
    assert status == 200
    action, room, recordings = parts(body)
    assert (action, room) == ("conference", f"nurse-NURSE{referent}")
    assert recordings[0] == "carecall/fr/inbound_greeting" and recordings[-1] == "carecall/fr/inbound_connect"


def test_an_unknown_caller_identifies_by_keypad_and_the_end_reaches_the_owner(world: World) -> None:
    nurse = world.ready_nurse()
    add_patient(world.ctx, member_id="0042424242", birth_date=date(1951, 3, 2))
    call = "1733650000.13"
    assert parts(world.asterisk(call=call, event="start", caller="")[1])[:2] == ("member", "32")
    assert parts(world.asterisk(call=call, event="member", digits="0042424242")[1])[:2] == ("year", "4")
    action, room, _ = parts(world.asterisk(call=call, event="year", digits="1951")[1])
    assert (action, room) == ("conference", f"nurse-NURSE{nurse}")
    stored = world.call(call)
    assert stored is not None and stored.attempt_id is not None
    world.clock.advance_to(world.clock.now() + timedelta(minutes=4))
    assert world.asterisk(call=call, event="end", cause="16")[0] == 200
    with world.ctx.sessions() as s:
        events = events_for_worker(s, "dialer-1")
        s.commit()
    assert [(e.attempt_id, e.kind.value) for e in events] == [(stored.attempt_id, "ended")]
    assert world.call(call).state == CallState.ended  # type: ignore[union-attr]


def test_at_22_the_dialplan_plays_the_closed_message_and_a_callback_is_recorded(tmp_path: Path) -> None:
    with inbound_world(f"sqlite:///{tmp_path / 'c.db'}", start=paris(date(2026, 12, 8), 22)) as w:
        patient = add_patient(w.ctx, phone=NUMBER)
        action, _, recordings = parts(w.asterisk(call="1733690000.1", event="start", caller=NUMBER)[1])
        assert action == "hangup"
        assert "carecall/fr/inbound_closed" in recordings
        assert "carecall/fr/inbound_callback_recorded" in recordings
        (task,) = w.tasks(patient.id)
        assert task.not_before == paris(date(2026, 12, 9), 9)


def test_with_no_token_configured_every_request_is_refused(tmp_path: Path) -> None:
    """An unset CARECALL_AGI_TOKEN must not open the endpoint to a request with an empty token."""
    ctx, _ = make_ctx(f"sqlite:///{tmp_path / 'c.db'}", OPEN)
    app = FastAPI()
    app.include_router(router(WebStub(ctx, Desk(ctx)), agi_token=""))
    try:
        with served(app) as base, httpx.Client() as http:
            for headers in ({}, {"X-Carecall-Token": ""}):
                response = http.get(
                    base + "/inbound/asterisk", params={"call": "1.1", "event": "start"}, headers=headers
                )
                assert response.status_code == 403
    finally:
        dispose(ctx)
