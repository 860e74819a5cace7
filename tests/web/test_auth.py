"""Log-in, roles, sessions and CSRF, over HTTP in process (httpx): the guards a browser relies on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import PASSWORD, dispose
from fastapi.testclient import TestClient
from sqlalchemy import select
from webapp import WebWorld, csrf_of, log_in, web_world

from campaign.model import AuditEvent
from dialer.accounts.model import UserAccount
from dialer.web.core import create_web_app, make_web


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    w = web_world(tmp_path)
    yield w
    dispose(w.ctx)


def _audit(world: WebWorld, actor: str) -> list[tuple[str, str]]:
    with world.ctx.sessions() as s:
        rows = s.execute(select(AuditEvent.action, AuditEvent.detail).where(AuditEvent.actor == actor)).all()
    return [(a, d) for a, d in rows]


def test_root_without_a_session_leads_to_the_french_login_page(world: WebWorld) -> None:
    client = world.client()
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    page = client.get("/login")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "<h1>Connexion</h1>" in page.text
    assert '<label for="password">Mot de passe</label>' in page.text


def test_each_role_lands_on_its_page_and_only_opens_its_own(world: WebWorld) -> None:
    nurse, supervisor = world.client(), world.client()
    assert log_in(nurse, "ide01") == (303, "/console")
    assert log_in(supervisor, "chef") == (303, "/board")
    assert nurse.get("/console").status_code == 200
    assert supervisor.get("/board").status_code == 200
    refused = nurse.get("/board")
    assert refused.status_code == 403 and "Accès refusé" in refused.text
    assert supervisor.get("/console").status_code == 403
    assert nurse.get("/").headers["location"] == "/console"


def test_pages_without_a_session_redirect_to_login_and_htmx_gets_401(world: WebWorld) -> None:
    client = world.client()
    assert client.get("/board").headers["location"] == "/login"
    live = client.get("/console", headers={"HX-Request": "true"})
    assert live.status_code == 401 and live.headers["HX-Redirect"] == "/login"
    stream = client.get("/console", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 401


def test_the_session_cookie_is_signed_httponly_secure_samesite_and_ends_with_its_hours(
    world: WebWorld,
) -> None:
    client = world.client()
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "chef", "password": PASSWORD, "csrf_token": token})
    header = answer.headers["set-cookie"]
    assert header.startswith("carecall_session=")
    assert "HttpOnly" in header and "Secure" in header and "SameSite=Lax" in header
    hours = world.ctx.policy.web.session_hours
    assert f"Max-Age={int(hours * 3600)}" in header
    assert csrf_of(client.get("/board").text) != token, "a new CSRF token after log-in"
    world.clock.advance_to(world.clock.now() + timedelta(hours=hours, seconds=-1))
    assert client.get("/board").status_code == 200
    world.clock.advance_to(world.clock.now() + timedelta(seconds=2))
    assert client.get("/board").headers["location"] == "/login", "the session ended after its hours"


def test_a_tampered_cookie_is_no_session(world: WebWorld) -> None:
    client = world.client()
    assert log_in(client, "chef")[0] == 303
    payload, signature = client.cookies["carecall_session"].rsplit(".", 1)
    forged = world.client()
    forged.cookies.set("carecall_session", payload + "." + signature[::-1])
    assert forged.get("/board").headers["location"] == "/login"


def test_every_process_signs_with_the_same_stored_key(world: WebWorld) -> None:
    """Two applications on one database (two `serve` processes) accept each other's sessions."""
    client = world.client()
    assert log_in(client, "chef")[0] == 303
    second = create_web_app(make_web(world.ctx))
    other = TestClient(second, base_url="https://testserver", follow_redirects=False)
    other.cookies.set("carecall_session", client.cookies["carecall_session"])
    assert other.get("/board").status_code == 200


def test_log_out_ends_the_session(world: WebWorld) -> None:
    client = world.client()
    log_in(client, "chef")
    token = csrf_of(client.get("/board").text)
    assert client.post("/logout", data={"csrf_token": token}).headers["location"] == "/login"
    assert client.get("/board").headers["location"] == "/login"


def test_unsafe_requests_without_the_session_token_are_refused_with_a_french_page(world: WebWorld) -> None:
    client = world.client()
    log_in(client, "chef")
    token = csrf_of(client.get("/board").text)
    for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}), ({}, {"X-CSRF-Token": "forged"})):
        refused = client.post("/logout", data=data, headers=headers)
        assert refused.status_code == 403 and "Formulaire refusé" in refused.text
        assert client.get("/board").status_code == 200, "the refused log-out did nothing"
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303, "htmx's header"


def test_a_token_from_another_session_is_refused(world: WebWorld) -> None:
    mine, theirs = world.client(), world.client()
    log_in(mine, "chef")
    log_in(theirs, "ide01")
    their_token = csrf_of(theirs.get("/console").text)
    assert mine.post("/logout", data={"csrf_token": their_token}).status_code == 403


def test_the_login_form_itself_needs_its_token(world: WebWorld) -> None:
    client = world.client()
    client.get("/login")
    refused = client.post("/login", data={"username": "chef", "password": PASSWORD})
    assert refused.status_code == 403
    assert _audit(world, "chef") == [], "nothing was tried"


def test_a_multipart_form_carries_its_token_too(world: WebWorld) -> None:
    client = world.client()
    log_in(client, "chef")
    token = csrf_of(client.get("/board").text)
    files = {"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}
    assert client.post("/logout", data={"csrf_token": token}, files=files).status_code == 303
    client2 = world.client()
    log_in(client2, "chef")
    assert client2.post("/logout", data={"csrf_token": "forged"}, files=files).status_code == 403


def test_provider_paths_are_not_asked_for_a_csrf_token(world: WebWorld) -> None:
    """/twilio/ and /inbound/ are the providers' (signed, sessionless): no CSRF refusal there."""
    client = world.client()
    assert client.post("/inbound/").status_code == 405  # reaches the routes: only GET is there
    assert client.post("/twilio/status").status_code == 404  # no Twilio here: not refused, not found


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(world: WebWorld) -> None:
    client = world.client()
    policy = world.ctx.policy.web
    for k in range(policy.lock_after_failures - 1):
        status, page = log_in(client, "chef", "wrong password")
        assert status == 401 and "Identifiant ou mot de passe incorrect." in page, k
    status, page = log_in(client, "chef", "wrong password")
    assert status == 401 and "verrouillé" in page and f"dans {policy.lock_minutes} minutes" in page
    status, page = log_in(client, "chef", PASSWORD)
    assert status == 401 and "verrouillé" in page, "the right password is refused while locked"
    world.clock.advance_to(world.clock.now() + timedelta(minutes=policy.lock_minutes, seconds=1))
    assert log_in(client, "chef") == (303, "/board"), "the lock ends after lock_minutes"
    actions = [a for a, _ in _audit(world, "chef")]
    assert actions == ["login.failed"] * 4 + ["login.locked", "login.refused_locked", "login"]
    assert all(PASSWORD not in d and "wrong password" not in d for _, d in _audit(world, "chef"))


def test_a_good_login_resets_the_count_of_failures(world: WebWorld) -> None:
    client = world.client()
    for _ in range(world.ctx.policy.web.lock_after_failures - 1):
        log_in(client, "chef", "wrong password")
    assert log_in(client, "chef")[0] == 303
    with world.ctx.sessions() as s:
        account = s.execute(select(UserAccount).where(UserAccount.username == "chef")).scalar_one()
    assert account.failed_logins == 0 and account.locked_until is None


def test_an_unknown_user_gets_the_same_answer_and_is_not_written_down(world: WebWorld) -> None:
    client = world.client()
    status, page = log_in(client, "marie.dupont", "whatever it is")
    assert status == 401 and "Identifiant ou mot de passe incorrect." in page
    with world.ctx.sessions() as s:
        events = s.execute(select(AuditEvent)).scalars().all()
    failed = [e for e in events if e.action == "login.failed"]
    assert len(failed) == 1 and "dupont" not in failed[0].actor + failed[0].detail


def test_an_account_deactivated_loses_its_session(world: WebWorld) -> None:
    client = world.client()
    log_in(client, "chef")
    with world.ctx.sessions() as s:
        account = s.execute(select(UserAccount).where(UserAccount.username == "chef")).scalar_one()
        account.active = False
        s.commit()
    assert client.get("/board").headers["location"] == "/login"
    assert log_in(client, "chef")[0] == 401


def test_security_headers_and_no_store_on_pages(world: WebWorld) -> None:
    client = world.client()
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    css = client.get("/static/carecall.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")
    assert client.get("/static/vendor/htmx-2.0.11.min.js").status_code == 200
    assert client.get("/static/vendor/htmx-ext-sse-2.2.4.min.js").status_code == 200


def test_unknown_pages_answer_a_french_404(world: WebWorld) -> None:
    page = world.client().get("/nulle-part")
    assert page.status_code == 404 and "Page introuvable" in page.text and 'lang="fr"' in page.text
