"""The supervisor board in a real Chromium against a real `carecall serve` (simulated telephony,
simulated nurses): a supervisor records a mailing, previews its wave's plan, launches it, and sees
its progress move without reloading; axe-core finds no serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import wait_for
from factories import PASSWORD, add_account, add_nurse, bulk_patients, policy
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from campaign import services
from campaign.policy import Policy
from campaign.states import WaveStatus

PATIENTS = 40
PROGRESS_WAIT = 90  # real seconds: a call rings about 14 s before the next one is placed


def _seed(ctx: services.Context) -> None:
    for k in range(6):  # simulated nurses on shift 09:00-17:00, Paris (no account: the dialer's own)
        add_nurse(ctx, code=f"IDE{k:02d}", level="senior")
    add_account(ctx, "chef", "supervisor")
    bulk_patients(ctx, PATIENTS, tier="high")


def _mostly_unanswered() -> Policy:
    """Three patients in four never pick up: an answered call holds its nurse for 25 real minutes, so
    with the population's usual rates all six first calls were sometimes answered and nothing moved
    for the test's 90 s; an unanswered one frees its nurse for the next call within 30 s."""
    pol = policy()
    population = pol.simulation.population.model_copy(update={"never_answers": 0.75})
    return pol.model_copy(update={"simulation": pol.simulation.model_copy(update={"population": population})})


@pytest.fixture(scope="module")
def server(live_server: Any) -> Any:
    return live_server(seed=_seed, policy=_mostly_unanswered())


def _text(chrome: Any, css: str) -> str:
    """An element's visible text, read in the page at once (a live fragment may swap it out between
    finding it and reading it from here)."""
    return str(chrome.execute_script("return document.querySelector(arguments[0]).innerText.trim();", css))


# each live row's nurse and version, read at once in the page
ROW_VERSIONS = (
    "return Object.fromEntries([...document.querySelectorAll('#nurses-table tbody tr')]"
    ".map(r => [r.dataset.nurse, r.dataset.version]));"
)


def test_a_supervisor_records_previews_launches_a_wave_and_watches_it_move(
    chrome: Any, server: Any, login: Any, axe_violations: Any, screenshot: Any
) -> None:
    login(chrome, server.base_url, "chef", PASSWORD)
    assert chrome.current_url == server.url("/board")

    # the mailing went out a week ago: its wave calls from today
    chrome.find_element(By.LINK_TEXT, "Enregistrer un courrier").click()
    Select(chrome.find_element(By.ID, "theme")).select_by_visible_text("Alimentation équilibrée")
    chrome.find_element(By.ID, "sent_on").send_keys("01/12/2026")
    chrome.find_element(By.ID, "late").click()
    chrome.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    wait_for(chrome, lambda d: "/board/waves/" in d.current_url, message="the wave's page")
    wave_id = int(chrome.current_url.rsplit("/", 1)[1])
    assert _text(chrome, "#wave-status") == "programmée"

    # preview the plan: a chart per day and tier, its table, nothing dialed yet
    chrome.find_element(By.XPATH, "//button[normalize-space()='Planifier maintenant']").click()
    wait_for(chrome, lambda d: _text(d, "#wave-status") == "planifiée", message="the wave is planned")
    assert chrome.find_element(By.CSS_SELECTOR, ".chart svg[role=img]").get_attribute("aria-label")
    rows = chrome.find_elements(By.CSS_SELECTOR, "#plan-table tbody tr")
    assert rows and "40" in rows[0].text  # every patient's first call today (high tier: day 0)
    assert axe_violations(chrome) == []

    chrome.find_element(By.ID, "launch").click()
    wait_for(chrome, lambda d: _text(d, "#wave-status") == "en cours", message="the wave is launched")
    chrome.execute_script("window.carecallNotReloaded = true;")
    first = int(_text(chrome, "#wave-live .wave-attempts"))
    wait_for(
        chrome,
        lambda d: int(_text(d, "#wave-live .wave-attempts")) > first,
        timeout=PROGRESS_WAIT,
        message="the wave's calls placed never moved on the page",
    )
    assert chrome.execute_script("return window.carecallNotReloaded === true;"), "the page was not reloaded"
    with server.ctx.sessions() as s:
        assert services.get_wave(s, wave_id).status == WaveStatus.running

    # the live board: nurses by state, calls, queue, the wave's progress; accessible
    chrome.find_element(By.LINK_TEXT, "En direct").click()
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, f'#waves-table tr[data-wave="{wave_id}"]'))
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#nurses-table tbody tr")) == 6
    # the nurses' rows move on their own (each row swaps itself in, `nurse-<id>`), the page stays
    chrome.execute_script("window.carecallNotReloaded = true;")
    # read in the page in one go: a row may swap itself in between two reads from here
    versions = chrome.execute_script(ROW_VERSIONS)
    wait_for(
        chrome,
        lambda d: any(versions.get(n) != v for n, v in d.execute_script(ROW_VERSIONS).items()),
        timeout=PROGRESS_WAIT,
        message="no nurse's row moved on the live board",
    )
    assert chrome.execute_script("return window.carecallNotReloaded === true;"), "the page was not reloaded"
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#nurses-table tbody tr")) == 6, "rows replaced, once"
    assert _text(chrome, "#abandoned") == "0"
    assert axe_violations(chrome) == []
    screenshot(chrome, "supervisor-board")
