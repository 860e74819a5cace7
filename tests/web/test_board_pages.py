"""The supervisor board in process (TestClient): every page for supervisors only, a mailing recorded,
its wave planned, reviewed, launched, paused, cancelled after a confirmation; the import with its
rejected rows; `patient why` audited; the audit trail; CSV exports safe from formula injection."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from board_world import Board, board_world, login_client
from factories import add_patient
from fastapi.testclient import TestClient
from sqlalchemy import select

from campaign import services
from campaign.model import AuditEvent, Patient, Wave
from campaign.states import WaveStatus
from dialer.staff.bus import WAVES


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    yield from board_world(f"sqlite:///{tmp_path / 'board.db'}")


def flat(html: str) -> str:
    """The page without the blanks between its tags."""
    return re.sub(r">\s+<", "><", html)


def _audit(ctx: services.Context, action: str) -> list[AuditEvent]:
    with ctx.sessions() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def _wave(ctx: services.Context, wave_id: int) -> Wave:
    with ctx.sessions() as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        return wave


BOARD_PAGES = [
    "/board",
    "/board/stream",
    "/board/import",
    "/board/mailings/new",
    "/board/waves",
    "/board/patients/why",
    "/board/audit",
    "/board/to-fix",
    "/board/exports/to-fix.csv",
    "/board/audit.csv",
]


def test_every_board_page_is_for_supervisors_only(board: Board) -> None:
    nurse = login_client(board.client.app, "ide01")
    anonymous = TestClient(board.client.app, base_url="https://testserver", follow_redirects=False)
    for path in BOARD_PAGES:
        assert nurse.get(path).status_code == 403, path
        assert anonymous.get(path, headers={"accept": "text/html"}).status_code in (303, 401), path
    token = re.search(r'name="csrf_token" value="([^"]+)"', nurse.get("/login").text)
    r = nurse.post("/board/waves/1/launch", data={"csrf_token": token.group(1) if token else ""})
    assert r.status_code == 403


def test_a_mailing_recorded_on_the_board_is_planned_reviewed_launched_and_announced(board: Board) -> None:
    for tier in ("high", "medium", "low"):
        add_patient(board.ctx, tier=tier)
    left_out = add_patient(board.ctx, tier="medium", consent=False)
    form = board.client.get("/board/mailings/new").text
    for control in ("theme", "segment", "sent_on", "late"):
        assert f'<label for="{control}">' in form, f"{control} has its label"

    refused = board.post("/board/mailings", "/board/mailings/new", theme="diet", sent_on="31/02/2026")
    assert refused.status_code == 422 and "La date d'envoi est illisible" in refused.text

    waves = board.bus.subscribe(WAVES)
    r = board.post("/board/mailings", "/board/mailings/new", theme="diet", sent_on="07/12/2026")
    assert r.status_code == 303
    wave_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert waves.get(1) == (WAVES, str(wave_id)), "every board hears of the new wave"
    page = board.client.get(f"/board/waves/{wave_id}").text
    assert "programmée" in page and "Planifier maintenant" in page

    assert board.post(f"/board/waves/{wave_id}/plan", f"/board/waves/{wave_id}").status_code == 303
    assert _wave(board.ctx, wave_id).status == WaveStatus.planned
    page = board.client.get(f"/board/waves/{wave_id}").text
    # the plan: a chart per day and tier with its table, and who was left out and why
    assert "<svg viewBox=" in page and 'role="img"' in page and 'style="max-width' not in page
    plan = _wave(board.ctx, wave_id).plan
    table = page[page.index('id="plan-table"') :].split("</table>")[0]
    assert table.count("<tr>") == len(plan["days"]) + 1
    assert "Pas de consentement à être appelé" in page and left_out.member_id in page
    assert "Lancer la vague" in page

    assert board.post(f"/board/waves/{wave_id}/launch", f"/board/waves/{wave_id}").status_code == 303
    assert _wave(board.ctx, wave_id).status == WaveStatus.running
    assert [e.actor for e in _audit(board.ctx, "wave.launch")] == ["supervisor:chef"]
    assert [e.actor for e in _audit(board.ctx, "mailing.record")] == ["supervisor:chef"]
    assert [e.actor for e in _audit(board.ctx, "wave.plan")] == ["supervisor:chef"]
    page = board.client.get(f"/board/waves/{wave_id}").text
    assert f'sse-swap="wave-{wave_id}"' in page and "Mettre en pause" in page
    waves.close()


def test_a_wave_is_cancelled_only_once_the_supervisor_confirms(board: Board) -> None:
    add_patient(board.ctx, tier="high")
    wave_id = services.record_mailing(board.ctx, "diet", None, date(2026, 12, 7)).wave_id
    unconfirmed = board.post(f"/board/waves/{wave_id}/cancel", f"/board/waves/{wave_id}/cancel")
    assert unconfirmed.status_code == 303 and unconfirmed.headers["location"].endswith("/cancel")
    assert _wave(board.ctx, wave_id).status == WaveStatus.scheduled
    confirm = board.client.get(f"/board/waves/{wave_id}/cancel").text
    assert "définitive" in confirm
    done = board.post(f"/board/waves/{wave_id}/cancel", f"/board/waves/{wave_id}/cancel", confirm="yes")
    assert done.status_code == 303
    assert _wave(board.ctx, wave_id).status == WaveStatus.cancelled


def test_an_action_the_wave_cannot_take_is_refused_and_changes_nothing(board: Board) -> None:
    wave_id = services.record_mailing(board.ctx, "diet", "all", date(2026, 12, 7)).wave_id
    r = board.post(f"/board/waves/{wave_id}/resume", f"/board/waves/{wave_id}")
    assert r.status_code == 409 and 'role="alert"' in r.text
    assert _wave(board.ctx, wave_id).status == WaveStatus.scheduled
    assert board.client.get("/board/waves/999").status_code == 404


IMPORT = (
    "member_id;last_name;first_name;birth_date;phone;postal_code;pathologies;tier\n"
    "A0001;Fictif;Alix;12/03/1956;01 99 00 12 34;75011;diabète;élevé\n"
    "A0002;Fictif;Bo;12/03/1956;01 99 00 12 35;75011;diabète;urgent\n"
)


def test_an_import_shows_its_summary_and_each_rejected_row_with_line_and_field(board: Board) -> None:
    token = board.csrf("/board/import")
    r = board.client.post(
        "/board/import",
        data={"csrf_token": token},
        files={"file": ("patients.csv", IMPORT.encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text
    summary = flat(r.text[r.text.index('id="import-summary"') :])
    assert '<td>2</td><td>1</td><td>0</td><td>0</td><td id="rejected-count">1</td>' in summary
    rejected = summary[summary.index('id="rejected-rows"') :]
    assert '<th scope="row">3</th><td>tier</td>' in rejected
    with board.ctx.sessions() as s:
        assert [p.member_id for p in s.execute(select(Patient)).scalars()] == ["A0001"]
    assert [e.actor for e in _audit(board.ctx, "patients.import")] == ["supervisor:chef"]


def test_patient_why_is_a_page_and_each_view_is_in_the_audit_trail(board: Board) -> None:
    patient = add_patient(board.ctx)
    r = board.client.get(f"/board/patients/why?member_id={patient.member_id}&on=25/12/2026")
    assert r.status_code == 303
    page = board.client.get(r.headers["location"])
    assert page.status_code == 200 and 'id="verdict"' in page.text and "Calendrier" in page.text
    views = _audit(board.ctx, "patient.why")
    assert [(e.actor, e.patient_id) for e in views] == [("supervisor:chef", patient.id)]
    assert board.client.get("/board/patients/NOBODY1/why").status_code == 404

    trail = board.client.get(f"/board/audit?patient={patient.member_id}").text
    rows = trail[trail.index('id="audit-table"') :]
    assert "supervisor:chef" in rows and "Consultation « pourquoi (pas) appelé »" in rows
    assert "Connexion" not in rows, "the trail of a patient shows that patient's file only"
    by_actor = board.client.get("/board/audit?actor=chef").text
    assert "Connexion" in by_actor and "pourquoi" not in by_actor


def test_csv_exports_cannot_run_as_formulas(board: Board) -> None:
    patient = add_patient(board.ctx)
    with board.ctx.sessions() as s:
        forged = '=HYPERLINK("x")'
        s.add(
            AuditEvent(
                at=board.clock.now(),
                actor=forged,
                action="patient.read",
                patient_id=patient.id,
                detail="@SUM(A1)",
            )
        )
        s.commit()
    r = board.client.get(f"/board/audit.csv?patient={patient.member_id}")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text.removeprefix("\ufeff")), delimiter=";"))
    assert rows[0][:3] == ["Date et heure (Paris)", "Qui", "Action"]
    forged = next(row for row in rows if "HYPERLINK" in row[1])
    assert forged[1] == '\'=HYPERLINK("x")' and forged[4] == "'@SUM(A1)"

    wave_id = services.record_mailing(board.ctx, "diet", None, date(2026, 12, 7)).wave_id
    report = list(
        csv.reader(io.StringIO(board.client.get(f"/board/waves/{wave_id}/report.csv").text), delimiter=";")
    )
    assert report[0][0].removeprefix("\ufeff") == "Niveau de risque"
    assert [r[0] for r in report[1:]] == ["Risque élevé", "Risque modéré", "Risque faible", "Toute la vague"]


def test_the_report_page_shows_planned_against_actual_load_per_day(board: Board) -> None:
    add_patient(board.ctx)
    wave_id = services.record_mailing(board.ctx, "diet", None, date(2026, 12, 7)).wave_id
    services.plan_wave(board.ctx, wave_id)
    page = board.client.get(f"/board/waves/{wave_id}/report").text
    assert "Charge prévue et réalisée par jour" in page
    with board.ctx.sessions() as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        first_day = min(wave.plan["days"])
    assert f'<th scope="row">{first_day}</th>' in page
    assert "Prévu au lancement" not in page

    # a morning top-up re-planned the first day: the launch plan's minutes are shown beside that morning's
    with board.ctx.sessions() as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        days = {d: dict(v) for d, v in wave.plan["days"].items()}
        days[first_day] = {**days[first_day], "launch_minutes": days[first_day]["minutes"] + 30.0}
        wave.plan = {**wave.plan, "days": days}
        s.commit()
    page = board.client.get(f"/board/waves/{wave_id}/report").text
    assert '<th scope="col">Prévu au lancement (min)</th>' in page
    assert "écart maximal au plan du lancement" in page
    assert "surtout fait" not in page

    # that morning's top-up added more than the launch plan had put there: counted apart
    with board.ctx.sessions() as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        days = {d: dict(v) for d, v in wave.plan["days"].items()}
        days[first_day] = {**days[first_day], "launch_minutes": days[first_day]["minutes"] / 3}
        wave.plan = {**wave.plan, "days": days}
        s.commit()
    page = board.client.get(f"/board/waves/{wave_id}/report").text
    assert "hors 1 jour surtout fait des patients ajoutés le matin" in " ".join(page.split())
