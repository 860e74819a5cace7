"""The nurse console in a real Chromium against a real `carecall serve` (simulated lines).

One server for the module: nurse IDE01 (account ide01) and one patient due now whose number the
simulated lines answer as a person (Scenario.human: talking until the nurse hangs up); IDE02 never goes
ready. (1) IDE01 logs in, goes ready, gets the call without reloading, confirms the identity, sees the
script, hangs up, records a callback for tomorrow 10:00 and is ready again: the callback task is stored
at that time, with her. (3) A nurse opening a file that is not her call's gets 403, and the attempt is
in the audit trail. axe-core finds no serious or critical violation, idle and with a call.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from browser_harness import MONDAY_10_PARIS, wait_for
from factories import PASSWORD, add_account, add_nurse, add_patient, add_task
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlmodel import select

from campaign import services
from campaign.model import TASK, AuditEvent
from campaign.states import TaskKind
from dialer.backends.factory import TelephonySetup
from dialer.backends.simulated import SimulatedBackend
from dialer.scenarios import Scenario

ANSWERS = "+33199000042"  # a fiction number (ARCEP 01 99 00): a person answers
OTHER = "+33199000043"  # nobody dials it: the other patient's file


def _seed(ctx: services.Context) -> None:
    add_nurse(ctx, code="IDE01", level="senior")
    add_nurse(ctx, code="IDE02", level="senior")
    add_account(ctx, "ide01", "nurse", nurse_code="IDE01")
    add_account(ctx, "ide02", "nurse", nurse_code="IDE02")
    due = add_patient(ctx, first_name="Jeanne", last_name="Durand", phone=ANSWERS, pathologies=["diabetes"])
    add_patient(ctx, first_name="Louis", last_name="Voisin", phone=OTHER)
    assert due.id is not None
    add_task(ctx, due.id, kind=TaskKind.inbound, theme_code="diet")  # due five minutes ago


def _lines(loop: Any, ctx: services.Context, worker: str) -> SimulatedBackend:
    return SimulatedBackend(loop, ctx.policy.simulation, scripted={ANSWERS: Scenario.human})


@pytest.fixture(scope="module")
def server(live_server: Any) -> Any:
    return live_server(seed=_seed, telephony=TelephonySetup(backend=_lines))


def _ids(server: Any) -> dict[str, int]:
    from campaign.model import NURSE, PATIENT

    with server.ctx.sessions() as s:
        nurses = dict(s.execute(select(NURSE.c.code, NURSE.c.id)).all())
        patients = dict(s.execute(select(PATIENT.c.last_name, PATIENT.c.id)).all())
    return {**nurses, **patients}


def _text(chrome: Any, css: str) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, css).text)


def _until_text(chrome: Any, css: str, wanted: str, timeout: float = 15) -> None:
    wait_for(
        chrome,
        lambda d: wanted in d.find_element(By.CSS_SELECTOR, css).text,
        timeout,
        f"{wanted!r} never showed in {css}",
    )


def test_a_nurse_takes_a_call_and_promises_a_callback_for_tomorrow_ten(
    chrome: Any, server: Any, login: Any, axe_violations: Any, screenshot: Any
) -> None:
    ids = _ids(server)
    login(chrome, server.base_url, "ide01", PASSWORD)
    assert chrome.current_url == server.url("/console")
    assert _text(chrome, "h1") == "Ma console"
    assert "Hors ligne" in _text(chrome, "#console-state")
    assert axe_violations(chrome) == []

    # keyboard only: the button is reached and pressed from the keyboard
    ready = chrome.find_element(By.XPATH, "//button[normalize-space()='Me rendre disponible']")
    ready.send_keys(Keys.ENTER)
    # the call the dialer assigns appears without reloading, the identity check first
    _until_text(chrome, "#console-call", "Vérifiez l'identité")
    assert chrome.execute_script("return performance.getEntriesByType('navigation').length") == 1
    call = _text(chrome, "#console-call")
    assert "Durand" in call and "Jeanne" in call and "Date de naissance" in call
    assert "Diabète" not in call and "Alimentation" not in call  # nothing medical, not even the theme
    assert "En communication" in _text(chrome, "#console-line")
    assert chrome.switch_to.active_element.text == "Vérifiez l'identité de votre interlocuteur"

    chrome.find_element(By.XPATH, "//button[normalize-space()='Identité confirmée']").send_keys(Keys.ENTER)
    _until_text(chrome, "#console-call", "Dossier de Jeanne Durand")
    assert "courrier « Alimentation équilibrée »" in _text(chrome, ".call-script")
    assert axe_violations(chrome) == []
    size = chrome.get_window_size()
    try:
        chrome.set_window_size(size["width"], 1700)  # the file, the script and the form in one picture
        screenshot(chrome, "nurse-console")
        # readable at 200 % zoom: half the width, the same CSS pixels per character, nothing cut off
        chrome.set_window_size(size["width"] // 2, size["height"])
        assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        chrome.set_window_size(size["width"], size["height"])

    chrome.find_element(By.XPATH, "//button[normalize-space()='Raccrocher']").send_keys(Keys.ENTER)
    _until_text(chrome, "#console-line", "Temps de clôture restant")
    chrome.find_element(By.ID, "code-callback_requested").send_keys(Keys.SPACE)
    tomorrow = (server.clock.now() + timedelta(days=1)).astimezone(UTC).date()
    date_field = chrome.find_element(By.ID, "f-callback_date")
    assert date_field.is_displayed(), "a callback's fields show once it is chosen"
    chrome.execute_script("arguments[0].value = arguments[1]", date_field, tomorrow.isoformat())
    note = "Rappeler demain matin, après sa prise de sang."
    chrome.find_element(By.ID, "f-note").send_keys(note)
    save = '//button[normalize-space()="Enregistrer l\'issue"]'
    chrome.find_element(By.XPATH, save).send_keys(Keys.ENTER)  # no time given: refused, nothing lost
    _until_text(chrome, "#console-call", "Indiquez l'heure du rappel.")
    assert chrome.find_element(By.ID, "f-note").get_attribute("value") == note
    assert chrome.find_element(By.ID, "f-callback_date").get_attribute("value") == tomorrow.isoformat()
    time_field = chrome.find_element(By.ID, "f-callback_time")
    assert time_field.get_attribute("aria-invalid") == "true"
    chrome.execute_script("arguments[0].value = '10:00'", time_field)
    chrome.find_element(By.XPATH, save).send_keys(Keys.ENTER)
    _until_text(chrome, "#console-notice", "Issue enregistrée : Rappel demandé")
    _until_text(chrome, "#console-state", "Disponible")  # ready again
    wait_for(
        chrome, lambda d: d.switch_to.active_element.text == "Mon état", message="focus kept, on her state"
    )

    at = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    assert MONDAY_10_PARIS.date() + timedelta(days=1) == tomorrow
    with server.ctx.sessions() as s:
        callbacks = s.execute(
            select(TASK.c.not_before, TASK.c.assigned_nurse_id, TASK.c.status).where(
                TASK.c.patient_id == ids["Durand"], TASK.c.kind == TaskKind.callback.value
            )
        ).all()
    assert [tuple(c) for c in callbacks] == [(at, ids["IDE01"], "pending")]


def test_a_nurse_opening_another_patients_file_gets_403_and_it_is_audited(
    chrome: Any, server: Any, login: Any
) -> None:
    ids = _ids(server)
    login(chrome, server.base_url, "ide02", PASSWORD)
    chrome.get(server.url(f"/console/patients/{ids['Voisin']}"))
    assert _text(chrome, "h1") == "Accès refusé"
    assert "Voisin" not in chrome.page_source
    deadline = time.monotonic() + 5
    with server.ctx.sessions() as s:
        while True:
            rows = s.execute(
                select(AuditEvent.actor, AuditEvent.action).where(AuditEvent.patient_id == ids["Voisin"])
            ).all()
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert [tuple(r) for r in rows] == [("nurse:IDE02", "patient.read_denied")]
