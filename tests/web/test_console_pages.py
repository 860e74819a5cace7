"""The nurse console in process: her state, the identity check before the file, the outcome form and its
errors, the 403 on any other patient's file, and the audit trail of every look.

Her presence is stored as her dialer process stores it (dialer.staff.store.write_presence); no dialer
runs here, so a command is stored and left unanswered (the browser test has the whole loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import add_nurse, add_patient, add_task, dispose
from fastapi.testclient import TestClient
from sqlmodel import col, select
from webapp import WebWorld, csrf_of, log_in, web_world

import dialer.web.console.service as console_service
from campaign import services
from campaign.model import AuditEvent
from campaign.states import TaskKind
from dialer.presence import NurseStatus
from dialer.staff.model import NurseCommand
from dialer.staff.store import PresenceRow, write_presence

HTMX = {"HX-Request": "true"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    w = web_world(tmp_path)
    yield w
    dispose(w.ctx)


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """No dialer answers here: a command's wait gives up quickly."""
    monkeypatch.setattr(console_service, "COMMAND_WAIT_SECONDS", 0.2)


def nurse_id(w: WebWorld, code: str = "IDE01") -> int:
    from campaign.model import NURSE

    with w.ctx.sessions() as s:
        return int(s.execute(select(NURSE.c.id).where(NURSE.c.code == code)).scalar_one())


def set_presence(w: WebWorld, nurse: int, status: NurseStatus, **call: Any) -> None:
    row = PresenceRow(
        nurse,
        status,
        call.get("reason"),
        w.clock.now(),
        call.get("attempt_id"),
        call.get("patient_id"),
        call.get("call_state"),
    )
    with w.ctx.sessions() as s:
        write_presence(s, [row], "dialer-1", w.clock.now())
        s.commit()


def on_call(w: WebWorld, nurse: int, **patient: Any) -> tuple[int, int]:
    """A patient of the diet wave answered her call: (patient id, attempt id)."""
    p = add_patient(w.ctx, first_name="Jeanne", last_name="Durand", pathologies=["heart_failure"], **patient)
    assert p.id is not None
    task = add_task(w.ctx, p.id, kind=TaskKind.wave, theme_code="diet")
    claimed = services.claim_and_start(w.ctx, task, nurse, "dialer-1")
    assert isinstance(claimed, services.Claimed), claimed
    services.mark_answered(w.ctx, claimed.attempt_id)
    set_presence(
        w, nurse, NurseStatus.on_call, attempt_id=claimed.attempt_id, patient_id=p.id, call_state="connected"
    )
    return p.id, claimed.attempt_id


def nurse_client(w: WebWorld) -> TestClient:
    client = w.client()
    status, where = log_in(client, "ide01")
    assert (status, where) == (303, "/console")
    return client


def audit_rows(w: WebWorld, patient_id: int | None = None) -> list[tuple[str, str, int | None, str]]:
    with w.ctx.sessions() as s:
        q = select(AuditEvent.actor, AuditEvent.action, AuditEvent.patient_id, AuditEvent.detail)
        if patient_id is not None:
            q = q.where(AuditEvent.patient_id == patient_id)
        return [tuple(r) for r in s.execute(q.order_by(col(AuditEvent.id))).all()]


def test_the_console_needs_a_nurse_account(world: WebWorld) -> None:
    assert world.client().get("/console").headers["location"] == "/login"
    chef = world.client()
    log_in(chef, "chef")
    assert chef.get("/console").status_code == 403
    assert chef.get("/console/stream").status_code == 403


def test_idle_console_offers_ready_and_pause_with_the_policys_reasons(world: WebWorld) -> None:
    page = nurse_client(world).get("/console")
    assert page.status_code == 200
    html = page.text
    assert "Hors ligne" in html and "Me rendre disponible" in html
    assert '<label for="pause-reason">Motif de la pause</label>' in html
    for code, label in world.ctx.policy.web.pause_reasons.items():
        assert f'<option value="{code}">{label}</option>' in html
    assert 'sse-connect="/console/stream?' in html


def test_paused_shows_its_reason_and_time(world: WebWorld) -> None:
    set_presence(world, nurse_id(world), NurseStatus.paused, reason="meal")
    html = nurse_client(world).get("/console").text
    assert "En pause</strong> (Repas)" in html
    assert "depuis 10\u00a0h\u00a000" in html


def test_ready_is_a_command_to_her_dialer(world: WebWorld) -> None:
    client = nurse_client(world)
    token = csrf_of(client.get("/console").text)
    answer = client.post("/console/ready", data={"csrf_token": token}, headers=HTMX)
    assert answer.status_code == 200
    assert "pas répondu à temps" in answer.text  # no dialer runs here
    with world.ctx.sessions() as s:
        kinds = s.execute(select(NurseCommand.kind, NurseCommand.nurse_id)).all()
    assert [tuple(k) for k in kinds] == [("ready", nurse_id(world))]


def test_a_pause_reason_not_in_the_policy_is_refused_before_any_command(world: WebWorld) -> None:
    client = nurse_client(world)
    token = csrf_of(client.get("/console").text)
    answer = client.post("/console/pause", data={"csrf_token": token, "reason": "nap"}, headers=HTMX)
    assert "Choisissez le motif de la pause" in answer.text
    with world.ctx.sessions() as s:
        assert s.execute(select(NurseCommand)).first() is None


def test_while_it_rings_nothing_of_the_patient_shows(world: WebWorld) -> None:
    n = nurse_id(world)
    patient_id, attempt_id = on_call(world, n)
    set_presence(
        world, n, NurseStatus.reserved, attempt_id=attempt_id, patient_id=patient_id, call_state="ringing"
    )
    html = nurse_client(world).get("/console").text
    assert "Ça sonne" in html
    assert "Durand" not in html
    assert audit_rows(world, patient_id) == []


def test_connected_shows_the_identity_check_and_nothing_medical(world: WebWorld) -> None:
    patient_id, attempt_id = on_call(world, nurse_id(world))
    html = nurse_client(world).get("/console").text
    assert "Vérifiez l'identité" in html
    assert "Durand" in html and "Jeanne" in html
    assert "Date de naissance" in html and "Numéro d'adhérent" in html
    assert "Insuffisance cardiaque" not in html  # pathologies come after the confirmation
    assert "courrier «" not in html  # so does the theme's script
    assert "Issue de l'appel" not in html
    assert audit_rows(world, patient_id) == [
        ("nurse:IDE01", "console.identity", patient_id, f"attempt={attempt_id}")
    ]


def test_identity_confirmed_shows_the_file_the_script_and_the_form(world: WebWorld) -> None:
    patient_id, attempt_id = on_call(world, nurse_id(world))
    client = nurse_client(world)
    token = csrf_of(client.get("/console").text)
    answer = client.post(
        f"/console/calls/{attempt_id}/identity", data={"csrf_token": token, "confirmed": "yes"}, headers=HTMX
    )
    assert answer.status_code == 200
    html = answer.text
    assert "Dossier de Jeanne Durand" in html
    assert "Insuffisance cardiaque" in html
    assert "Alimentation équilibrée" in html and "courrier «" in html
    assert "Issue de l'appel" in html and "Rappel demandé" in html
    actions = [a for _, a, _, _ in audit_rows(world, patient_id)]
    assert actions == ["console.identity", "console.identity_confirmed", "patient.read"]
    # a reload remembers it: the file again, audited again
    assert "Dossier de Jeanne Durand" in client.get("/console").text
    assert [a for _, a, _, _ in audit_rows(world, patient_id)][-1] == "patient.read"


def test_identity_not_confirmed_shows_the_form_but_not_the_file(world: WebWorld) -> None:
    patient_id, attempt_id = on_call(world, nurse_id(world))
    client = nurse_client(world)
    token = csrf_of(client.get("/console").text)
    html = client.post(
        f"/console/calls/{attempt_id}/identity", data={"csrf_token": token, "confirmed": "no"}, headers=HTMX
    ).text
    assert "Identité non confirmée" in html
    assert "Insuffisance cardiaque" not in html and "Dossier de" not in html
    assert "Faux numéro" in html
    assert "console.identity_not_confirmed" in [a for _, a, _, _ in audit_rows(world, patient_id)]


def test_the_identity_of_another_call_is_refused(world: WebWorld) -> None:
    _, attempt_id = on_call(world, nurse_id(world))
    client = nurse_client(world)
    token = csrf_of(client.get("/console").text)
    answer = client.post(
        f"/console/calls/{attempt_id + 1}/identity", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert answer.status_code == 403


def test_another_patients_file_is_403_and_audited(world: WebWorld) -> None:
    n = nurse_id(world)
    patient_id, _ = on_call(world, n)
    other = add_patient(world.ctx, last_name="Voisin")
    client = nurse_client(world)
    refused = client.get(f"/console/patients/{other.id}")
    assert refused.status_code == 403
    assert "Accès refusé" in refused.text and "Voisin" not in refused.text
    assert audit_rows(world, other.id) == [
        ("nurse:IDE01", "patient.read_denied", other.id, "not her call (attempt=1)")
    ]
    # no such patient: refused the same way, the attempt audited without a file to point to
    assert client.get("/console/patients/999999").status_code == 403
    assert ("patient.read_denied", None) in [(a, p) for _, a, p, _ in audit_rows(world)]
    # her own call's patient: the page (identity check first)
    own = client.get(f"/console/patients/{patient_id}")
    assert own.status_code == 200 and "Vérifiez l'identité" in own.text


def test_without_a_call_every_file_is_refused(world: WebWorld) -> None:
    p = add_patient(world.ctx)
    assert nurse_client(world).get(f"/console/patients/{p.id}").status_code == 403
    assert [a for _, a, _, _ in audit_rows(world, p.id)] == ["patient.read_denied"]


def confirmed_client(w: WebWorld) -> tuple[TestClient, str, int, int]:
    patient_id, attempt_id = on_call(w, nurse_id(w))
    client = nurse_client(w)
    token = csrf_of(client.get("/console").text)
    client.post(f"/console/calls/{attempt_id}/identity", data={"csrf_token": token, "confirmed": "yes"})
    return client, token, patient_id, attempt_id


def test_a_wrong_outcome_shows_its_errors_and_keeps_what_she_typed(world: WebWorld) -> None:
    client, token, _, attempt_id = confirmed_client(world)
    form = {"csrf_token": token, "code": "callback_requested", "callback_date": "", "callback_time": "21:00"}
    form["note"] = "Souhaite être rappelée après sa consultation."
    answer = client.post(f"/console/calls/{attempt_id}/outcome", data=form, headers=HTMX)
    assert answer.status_code == 200
    html = answer.text
    assert "Indiquez la date du rappel." in html
    assert 'aria-invalid="true"' in html
    assert "Souhaite être rappelée après sa consultation." in html
    assert 'value="21:00"' in html
    assert 'id="code-callback_requested" name="code" value="callback_requested" checked' in html
    with world.ctx.sessions() as s:
        assert s.execute(select(NurseCommand)).first() is None
    # without htmx: the whole page, 422
    assert client.post(f"/console/calls/{attempt_id}/outcome", data=form).status_code == 422


def test_opt_out_asks_for_confirmation_before_any_command(world: WebWorld) -> None:
    client, token, _, attempt_id = confirmed_client(world)
    answer = client.post(
        f"/console/calls/{attempt_id}/outcome", data={"csrf_token": token, "code": "opted_out"}, headers=HTMX
    )
    assert "Confirmez le retrait du programme" in answer.text
    assert 'name="confirm_opt_out" value="yes"' in answer.text
    with world.ctx.sessions() as s:
        assert s.execute(select(NurseCommand)).first() is None
    client.post(
        f"/console/calls/{attempt_id}/outcome",
        data={"csrf_token": token, "code": "opted_out", "confirm_opt_out": "yes"},
        headers=HTMX,
    )
    with world.ctx.sessions() as s:
        assert [c.kind for c in s.execute(select(NurseCommand)).scalars()] == ["outcome"]


def test_a_callback_for_a_colleague_goes_to_her_dialer_as_an_outcome_command(world: WebWorld) -> None:
    colleague = add_nurse(world.ctx, code="IDE02", level="senior", skills=["heart_failure"])
    untrained = add_nurse(
        world.ctx, code="IDE03", level="senior"
    )  # the heart-failure patient needs the skill
    client, token, _, attempt_id = confirmed_client(world)
    options = client.get("/console").text
    assert f'<option value="{colleague}">' in options and f'<option value="{untrained}">' not in options
    tomorrow = (world.clock.now() + timedelta(days=1)).date().isoformat()
    answer = client.post(
        f"/console/calls/{attempt_id}/outcome",
        data={
            "csrf_token": token,
            "code": "callback_requested",
            "callback_date": tomorrow,
            "callback_time": "10:00",
            "callback_nurse": str(colleague),
            "note": "Rappel par IDE02",
        },
        headers=HTMX,
    )
    assert "Issue enregistrée" in answer.text or "Issue transmise" in answer.text, answer.text[-6000:]
    with world.ctx.sessions() as s:
        command = s.execute(select(NurseCommand)).scalar_one()
    assert command.kind == "outcome" and command.nurse_id == nurse_id(world)
    assert command.payload["attempt_id"] == attempt_id
    assert command.payload["code"] == "callback_requested"
    assert command.payload["callback_at"] == "2026-12-08T09:00:00+00:00"  # 10:00 in Paris
    assert command.payload["callback_nurse_id"] == colleague
    assert command.payload["note"] == "Rappel par IDE02"


def test_an_outcome_for_a_call_that_is_not_hers_is_refused(world: WebWorld) -> None:
    client, token, _, attempt_id = confirmed_client(world)
    answer = client.post(
        f"/console/calls/{attempt_id + 7}/outcome", data={"csrf_token": token, "code": "reached"}
    )
    assert answer.status_code == 403


def test_the_patient_hanging_up_is_an_alert(world: WebWorld) -> None:
    n = nurse_id(world)
    patient_id, attempt_id = on_call(world, n)
    set_presence(
        world,
        n,
        NurseStatus.wrap_up,
        attempt_id=attempt_id,
        patient_id=patient_id,
        call_state="patient_hung_up",
    )
    html = nurse_client(world).get("/console").text
    assert 'id="console-alert" role="alert"' in html
    assert "Le patient a raccroché" in html
    assert 'role="timer"' in html and "2:00" in html  # the wrap-up countdown, policy.dialer.wrap_up_seconds


def events_of(lines: Iterator[str], wanted: str) -> dict[str, str]:
    """Read the stream's events until `wanted` arrives: {event name: its data}."""
    got: dict[str, str] = {}
    name, data = "", []
    for line in lines:
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif line == "" and name:
            got[name] = "\n".join(data)
            if name == wanted:
                return got
            name, data = "", []
    raise AssertionError(f"the stream ended before {wanted!r}")


def test_the_stream_pushes_her_call_when_her_presence_changes(world: WebWorld) -> None:
    from dialer.staff.bus import PRESENCE

    n = nurse_id(world)
    client = nurse_client(world)
    bus = world.app.state.web.bus
    with client.stream("GET", "/console/stream?v=-1&call=0-idle") as stream:
        lines = stream.iter_lines()
        first = events_of(lines, "alert")  # a stream opened on an old page catches up at once
        assert "Hors ligne" in first["state"] and "call" not in first
        patient_id, _ = on_call(world, n)  # stored, not yet notified
        with world.ctx.sessions() as s:
            bus.notify_in(s, PRESENCE, str(n + 1000))  # another nurse's change: nothing for her
            bus.notify_in(s, PRESENCE, str(n))
            s.commit()
        pushed = events_of(lines, "alert")  # the call panel comes first, the alert last
        assert "En communication" in pushed["state"]
        assert "Vérifiez l'identité" in pushed["call"] and "Durand" in pushed["call"]
        assert "Insuffisance cardiaque" not in pushed["call"]
    assert ("console.identity", patient_id) in [(a, p) for _, a, p, _ in audit_rows(world)]
