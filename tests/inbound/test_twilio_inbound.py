"""The inbound line through Twilio's voice webhook: real signed requests over a real socket.

A caller is recognised by caller ID or by keypad, reaches their référent or
another qualified nurse, waits, leaves a callback request, or hears the line
is closed; a forged or unsigned request changes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from factories import add_nurse, add_patient, add_task, dispose, make_ctx, paris
from fastapi import FastAPI
from inbound_world import ACCOUNT_SID, AUTH_TOKEN, OPEN, Desk, World, inbound_world, new_sid
from served import served
from sqlalchemy import func, select
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from campaign import services
from campaign.model import PATIENT, TASK
from campaign.policy import Tier
from campaign.states import OutcomeCode, TaskKind, TaskStatus
from dialer.backends.twilio.settings import TwilioSettings
from dialer.inbound.decision import CallState
from dialer.inbound.line import caller_hangup
from dialer.inbound.web import Route
from dialer.lines import events_for_worker
from dialer.staff.model import NursePresence
from dialer.web.app import create_app
from dialer.web.core import create_web_app, make_web

NUMBER = "+33199004321"  # fiction range


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """On SQLite and PostgreSQL."""
    with inbound_world(db_url) as w:
        yield w


def twiml(body: str) -> ET.Element:
    return ET.fromstring(body)


def said(body: str) -> str:
    return " ".join(s.text or "" for s in twiml(body).iter("Say"))


def conference_of(body: str) -> str | None:
    found = twiml(body).find("./Dial/Conference")
    return None if found is None else found.text


def test_a_known_caller_reaches_their_referent(world: World) -> None:
    other = world.ready_nurse(since_minutes=30)  # ready longer: she would come first for anyone else
    referent = world.ready_nurse(since_minutes=1)
    patient = add_patient(world.ctx, phone=NUMBER, referent_nurse_id=referent)
    sid = new_sid()
    status, body = world.twilio(
        Route.voice, {"CallSid": sid, "From": "+33 1 99 00 43 21", "To": "+33199000000"}
    )
    assert status == 200
    assert conference_of(body) == f"nurse-{referent}"
    assert "Bonjour" in said(body) and twiml(body).find("Gather") is None, "recognised: nothing asked"
    assert world.desk.offered_to() == [referent]
    call = world.call(sid)
    assert call is not None
    assert (call.state, call.patient_id, call.nurse_id) == (CallState.routed, patient.id, referent)
    assert call.attempt_id is not None
    assert other not in world.desk.offered_to()


def test_a_referent_who_refuses_passes_the_call_to_a_qualified_nurse(world: World) -> None:
    referent = world.ready_nurse()
    junior = world.ready_nurse(level="junior", since_minutes=60)  # a high-tier patient is not hers
    senior = world.ready_nurse(since_minutes=5)
    world.desk.refusing.add(referent)
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=referent, tier="high")
    status, body = world.twilio(Route.voice, {"CallSid": new_sid(), "From": NUMBER})
    assert status == 200 and conference_of(body) == f"nurse-{senior}"
    assert world.desk.offered_to() == [referent, senior]
    assert junior not in world.desk.offered_to()


def test_an_unknown_caller_identifies_by_keypad(world: World) -> None:
    nurse = world.ready_nurse()
    patient = add_patient(world.ctx, member_id="000123456", birth_date=date(1948, 5, 17))
    sid = new_sid()
    status, body = world.twilio(Route.voice, {"CallSid": sid, "From": "+33199009999"})
    assert status == 200
    gather = twiml(body).find("Gather")
    assert gather is not None and gather.get("input") == "dtmf" and gather.get("finishOnKey") == "#"
    assert gather.get("action") == world.settings.webhook_url(Route.gather, step="member")
    assert "numéro d'adhérent" in said(body)
    # a wrong birth year: not recognised, asked again (without saying which part was wrong)
    status, body = world.twilio(Route.gather, {"CallSid": sid, "Digits": "123456"}, "step=member")
    assert status == 200 and "année de naissance" in said(body)
    assert twiml(body).find("Gather").get("numDigits") == "4"  # type: ignore[union-attr]
    status, body = world.twilio(Route.gather, {"CallSid": sid, "Digits": "1949"}, "step=year")
    assert "pas pu vous identifier" in said(body) and "numéro d'adhérent" in said(body)
    assert world.desk.offers == []
    # keyed right (Excel-style, without its leading zeros): through to the nurse
    world.twilio(Route.gather, {"CallSid": sid, "Digits": "123456"}, "step=member")
    status, body = world.twilio(Route.gather, {"CallSid": sid, "Digits": "1948"}, "step=year")
    assert conference_of(body) == f"nurse-{nurse}"
    call = world.call(sid)
    assert call is not None and (call.patient_id, call.tries, call.caller_key) == (patient.id, 1, None)


def test_a_caller_never_identified_is_asked_to_call_again_and_leaves_nothing(world: World) -> None:
    world.ready_nurse()
    sid = new_sid()
    world.twilio(Route.voice, {"CallSid": sid, "From": "+33199009998"})
    tries = world.ctx.policy.inbound.identify_tries
    for _ in range(tries):
        world.twilio(Route.gather, {"CallSid": sid, "Digits": "999999"}, "step=member")
        status, body = world.twilio(Route.gather, {"CallSid": sid, "Digits": "1950"}, "step=year")
    assert status == 200 and twiml(body).find("Hangup") is not None
    assert "rappeler" in said(body) and "numéro d'adhérent" in said(body) and "9 h" in said(body)
    call = world.call(sid)
    assert call is not None and call.state == CallState.closed and call.task_id is None
    with world.ctx.sessions() as s:
        assert s.execute(select(func.count()).select_from(TASK)).scalar_one() == 0


def test_nobody_ready_leads_to_a_callback_task(world: World) -> None:
    busy = world.ready_nurse()
    world.desk.refusing.add(busy)  # ready on the board, but her owner gave her a call meanwhile
    patient = add_patient(world.ctx, phone=NUMBER)
    sid = new_sid()
    status, body = world.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
    assert status == 200 and "patienter" in said(body)
    root = twiml(body)
    assert root.find("Pause") is not None
    assert root.find("Redirect").text == world.settings.webhook_url(Route.wait)  # type: ignore[union-attr]
    assert world.tasks(patient.id) == []
    # meanwhile the dialers see them waiting (and hold back the nurses qualified for them)
    assert world.call(sid).state == CallState.waiting  # type: ignore[union-attr]
    # the wait comes round: still nobody; then the configured wait is over
    world.clock.advance_to(world.clock.now() + timedelta(seconds=30))
    status, body = world.twilio(Route.wait, {"CallSid": sid})
    assert "patienter" in said(body) and world.tasks(patient.id) == []
    world.clock.advance_to(OPEN + timedelta(seconds=world.ctx.policy.inbound.wait_seconds))
    status, body = world.twilio(Route.wait, {"CallSid": sid})
    assert status == 200 and twiml(body).find("Hangup") is not None
    assert "Aucune infirmière" in said(body) and "rappel est enregistrée" in said(body)
    (task,) = world.tasks(patient.id)
    assert task.kind == TaskKind.inbound and task.status == TaskStatus.pending
    assert task.priority == world.ctx.policy.inbound.callback_priority
    assert task.not_before <= world.clock.now() + timedelta(minutes=1)
    call = world.call(sid)
    assert call is not None and (call.state, call.task_id) == (CallState.callback, task.id)


def test_a_call_at_22_gets_the_closed_message_and_a_callback_task(tmp_path: Path) -> None:
    evening = paris(date(2026, 12, 8), 22)
    with inbound_world(f"sqlite:///{tmp_path / 'c.db'}", start=evening) as w:
        w.ready_nurse()  # a nurse still logged in changes nothing: the line is closed
        patient = add_patient(w.ctx, phone=NUMBER)
        sid = new_sid()
        status, body = w.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
        assert status == 200 and twiml(body).find("Hangup") is not None
        text = said(body)
        assert (
            "actuellement fermé" in text and "du lundi au jeudi de 9 h à 12 h 30 et de 13 h 30 à 19 h" in text
        )
        assert "mercredi 9 décembre, à partir de 9 h" in text
        assert w.desk.offers == []
        (task,) = w.tasks(patient.id)
        assert task.kind == TaskKind.inbound and task.priority == w.ctx.policy.inbound.callback_priority
        assert task.not_before == paris(date(2026, 12, 9), 9)  # the first moment she may be called


def test_a_forged_webhook_is_refused_and_changes_nothing(world: World) -> None:
    nurse = world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=nurse)
    params = {"CallSid": new_sid(), "From": NUMBER}
    assert world.twilio(Route.voice, params, token="not-the-account-token")[0] == 403
    assert world.twilio(Route.voice, params, signature="")[0] == 403  # unsigned
    other_url = world.settings.webhook_url(Route.wait)
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature(other_url, params)
    assert world.twilio(Route.voice, params, signature=elsewhere)[0] == 403  # signed for another URL
    for route in (Route.gather, Route.wait, Route.status):
        assert world.twilio(route, {**params, "CallStatus": "completed"}, token="forged")[0] == 403
    assert world.call(params["CallSid"]) is None and world.desk.offers == []


def test_the_call_end_reaches_the_owner_of_the_nurse_attempt(world: World) -> None:
    nurse = world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=nurse)
    sid = new_sid()
    world.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
    call = world.call(sid)
    assert call is not None and call.attempt_id is not None
    world.clock.advance_to(world.clock.now() + timedelta(minutes=7))
    for _ in range(2):  # Twilio retries: the end is handed on once
        status, _ = world.twilio(Route.status, {"CallSid": sid, "CallStatus": "completed"})
        assert status == 200
    with world.ctx.sessions() as s:
        events = events_for_worker(s, "dialer-1")
        s.commit()
    assert [(e.attempt_id, e.kind.value, e.cause) for e in events] == [(call.attempt_id, "ended", 16)]
    ended = world.call(sid)
    assert ended is not None and ended.state == CallState.ended
    assert ended.ended_at == datetime(2026, 12, 8, 9, 7, tzinfo=UTC)


def test_a_number_two_patients_share_recognises_neither(world: World) -> None:
    """A household phone: the line cannot tell who calls, so it asks (two patients may share a name too)."""
    world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER)
    add_patient(world.ctx, phone_alt=NUMBER)
    sid = new_sid()
    status, body = world.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
    assert status == 200 and twiml(body).find("Gather") is not None
    call = world.call(sid)
    assert call is not None and call.patient_id is None and world.desk.offers == []


def test_log_lines_carry_no_caller_number_member_number_or_birth_year(world: World) -> None:
    world.ready_nurse()
    add_patient(world.ctx, member_id="31415926", birth_date=date(1947, 1, 2))
    add_patient(world.ctx, phone=NUMBER)
    with capture_logs() as logs:
        sid = new_sid()
        world.twilio(Route.voice, {"CallSid": sid, "From": "+33199007777"})
        world.twilio(Route.gather, {"CallSid": sid, "Digits": "31415926"}, "step=member")
        world.twilio(Route.gather, {"CallSid": sid, "Digits": "1947"}, "step=year")
        world.twilio(Route.voice, {"CallSid": new_sid(), "From": NUMBER})
        world.twilio(Route.voice, {"CallSid": new_sid(), "From": NUMBER}, token="forged")
        world.twilio(Route.status, {"CallSid": sid, "CallStatus": "completed"})
    text = "\n".join(map(str, logs))
    assert "inbound.routed" in text and "inbound.twilio.forged" in text, "the logs were captured"
    for secret in ("199007777", "199004321", "31415926", "1947"):
        assert secret not in text


def test_a_nurse_who_ends_the_call_hangs_up_the_twilio_call(world: World) -> None:
    nurse = world.ready_nurse()
    add_patient(world.ctx, phone=NUMBER, referent_nurse_id=nurse)
    sid = new_sid()
    world.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
    call = world.call(sid)
    assert call is not None and call.attempt_id is not None
    ended: list[str] = []  # the backend's hangup_orphan(CallSid): a REST update to completed
    caller_hangup(world.ctx, {"twilio": ended.append})(call.attempt_id)
    assert ended == [sid]


def test_in_the_served_application_the_line_uses_the_twilio_account_of_serve(db_url: str) -> None:
    """Through `create_web_app` as `serve --telephony twilio` builds it: the CSRF check leaves the
    provider's routes alone, and the signature is checked with the outbound webhooks' settings."""
    ctx, _ = make_ctx(db_url, OPEN)
    desk = Desk(ctx)
    app = FastAPI()
    try:
        with served(app) as base, httpx.Client(timeout=20) as http:
            settings = TwilioSettings.model_validate(
                {
                    "public_base_url": base,
                    "caller_number": "+33199000000",
                    "account_sid": ACCOUNT_SID,
                    "auth_token": AUTH_TOKEN,
                }
            )
            hooks = create_app(settings, ctx.sessions, "dialer-1", lambda _e: None, clock=ctx.clock)
            web = make_web(ctx, worker="dialer-1", commands=desk, secret_key="k" * 32)
            app.mount("/", create_web_app(web, twilio_webhooks=hooks))
            nurse = add_nurse(ctx)
            with ctx.sessions() as s:
                s.add(
                    NursePresence(
                        nurse_id=nurse, status="ready", since=OPEN, worker="dialer-1", updated_at=OPEN
                    )
                )
                s.commit()
            add_patient(ctx, phone=NUMBER, referent_nurse_id=nurse)
            url, params = base + Route.voice, {"CallSid": new_sid(), "From": NUMBER}
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
            response = http.post(url, data=params, headers={"X-Twilio-Signature": signature})
            assert response.status_code == 200 and conference_of(response.text) == f"nurse-{nurse}"
            forged = RequestValidator("forged").compute_signature(url, params)
            assert http.post(url, data=params, headers={"X-Twilio-Signature": forged}).status_code == 403
    finally:
        dispose(ctx)


def test_an_inbound_contact_closes_the_matching_outbound_task(world: World) -> None:
    """The patient called before the wave reached them: the conversation stands in for the wave's
    call, and the nurse's outcome feeds their next contact date."""
    nurse = world.ready_nurse()
    patient = add_patient(world.ctx, phone=NUMBER, referent_nurse_id=nurse)
    assert patient.id is not None
    wave_task = add_task(world.ctx, patient.id, kind=TaskKind.wave, theme_code="diet", priority=5)
    sid = new_sid()
    world.twilio(Route.voice, {"CallSid": sid, "From": NUMBER})
    call = world.call(sid)
    assert call is not None and call.attempt_id is not None
    world.clock.advance_to(world.clock.now() + timedelta(minutes=9))
    services.record_outcome(world.ctx, call.attempt_id, OutcomeCode.reached, nurse, note="appel entrant")
    world.twilio(Route.status, {"CallSid": sid, "CallStatus": "completed"})
    by_id = {t.id: t for t in world.tasks(patient.id)}
    assert by_id[wave_task].status == TaskStatus.done
    (incoming,) = [t for t in by_id.values() if t.kind == TaskKind.incoming]
    assert incoming.status == TaskStatus.done and incoming.theme_code == "diet"
    with world.ctx.sessions() as s:
        next_on = s.execute(select(PATIENT.c.next_contact_on).where(PATIENT.c.id == patient.id)).scalar_one()
    cadence = world.ctx.policy.tiers[Tier(patient.tier)].cadence_days
    assert next_on == date(2026, 12, 8) + timedelta(days=cadence)  # 6 February 2027, a Saturday with hours
