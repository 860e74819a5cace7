"""The log-in page and the guards, in a real Chromium against a real `carecall serve`.

One server and one browser for the module: log-in page in French and reachable
from `/`, accessible (axe-core), five wrong passwords lock the account, a form
without its CSRF token is refused, a nurse cannot open the board.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import wait_for
from factories import PASSWORD, add_account, add_nurse
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy import select

from campaign import services
from campaign.model import AuditEvent
from dialer.accounts.model import UserAccount


def _seed(ctx: services.Context) -> None:
    add_nurse(ctx, code="IDE01")
    add_account(ctx, "ide01", "nurse", nurse_code="IDE01")
    add_account(ctx, "chef", "supervisor")
    add_account(ctx, "verrou", "supervisor")


@pytest.fixture(scope="module")
def server(live_server: Any) -> Any:
    return live_server(seed=_seed)


def _alert(chrome: Any) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, "[role=alert]").text)


def test_root_leads_to_the_french_login_page_which_axe_finds_accessible(
    chrome: Any, server: Any, axe_violations: Any, screenshot: Any
) -> None:
    chrome.get(server.url("/"))
    assert chrome.current_url == server.url("/login")
    assert chrome.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Connexion"
    assert chrome.find_element(By.CSS_SELECTOR, "label[for=username]").text == "Identifiant"
    assert chrome.find_element(By.CSS_SELECTOR, "label[for=password]").text == "Mot de passe"
    assert axe_violations(chrome) == []
    screenshot(chrome, "login")
    htmx = "return [typeof htmx, htmx.config.allowEval, htmx.config.includeIndicatorStyles]"
    assert chrome.execute_script(htmx) == ["object", False, False], "htmx loaded with the page's config"
    assert chrome.execute_script("return document.querySelectorAll('style').length") == 0, (
        "the CSP allows none"
    )


def test_a_supervisor_logs_in_with_the_keyboard_alone_and_gets_a_secure_httponly_cookie(
    chrome: Any, server: Any
) -> None:
    chrome.get(server.url("/login"))
    chrome.switch_to.active_element.send_keys("chef", Keys.TAB, PASSWORD, Keys.ENTER)
    wait_for(chrome, lambda d: d.current_url == server.url("/board"))
    cookie = chrome.get_cookie("carecall_session")
    assert cookie is not None, "Chromium keeps the Secure cookie on http://127.0.0.1"
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert chrome.execute_script("return document.cookie") == "", "no script can read the session"


def test_five_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused(
    chrome: Any, server: Any, login: Any
) -> None:
    for _ in range(4):
        login(chrome, server.base_url, "verrou", "not the password")
        assert _alert(chrome) == "Identifiant ou mot de passe incorrect."
    login(chrome, server.base_url, "verrou", "not the password")
    assert "verrouillé" in _alert(chrome)
    login(chrome, server.base_url, "verrou", PASSWORD)
    assert chrome.current_url == server.url("/login"), "the right password is refused while locked"
    assert "verrouillé" in _alert(chrome)
    with server.ctx.sessions() as s:
        account = s.execute(select(UserAccount).where(UserAccount.username == "verrou")).scalar_one()
        actions = s.execute(select(AuditEvent.action).where(AuditEvent.actor == "verrou")).scalars().all()
    assert account.locked_until is not None
    assert actions.count("login.failed") == 4 and "login.locked" in actions
    assert "login.refused_locked" in actions and "login" not in actions


def test_a_form_posted_without_its_csrf_token_is_refused(chrome: Any, server: Any, login: Any) -> None:
    login(chrome, server.base_url, "chef", PASSWORD)
    chrome.execute_script("document.querySelector('form.logout input[name=csrf_token]').remove()")
    chrome.find_element(By.CSS_SELECTOR, "form.logout button[type=submit]").click()
    wait_for(chrome, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Formulaire refusé")
    chrome.get(server.url("/board"))
    assert chrome.current_url == server.url("/board"), "the refused log-out did nothing: still logged in"
    chrome.find_element(By.CSS_SELECTOR, "form.logout button[type=submit]").click()
    wait_for(chrome, lambda d: d.current_url == server.url("/login"))


def test_a_nurse_cannot_open_the_board(chrome: Any, server: Any, login: Any, axe_violations: Any) -> None:
    login(chrome, server.base_url, "ide01", PASSWORD)
    assert chrome.current_url == server.url("/console")
    chrome.get(server.url("/board"))
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Accès refusé"
    assert axe_violations(chrome) == []
    chrome.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = chrome.switch_to.active_element
    assert skip.text == "Aller au contenu principal", "the first Tab reaches the skip link"
    skip.send_keys(Keys.ENTER)
    assert chrome.switch_to.active_element.get_attribute("id") == "contenu"
