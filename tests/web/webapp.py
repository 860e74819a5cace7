"""The web application in process (httpx through Starlette's TestClient), on a SQLite file and a
virtual clock: fast tests of what the browser tests show once."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from factories import PASSWORD, add_account, add_nurse, dispose, make_ctx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from campaign import services
from campaign.clock import VirtualClock
from dialer.web.core import create_web_app, make_web

MONDAY_10 = datetime(2026, 12, 7, 9, tzinfo=UTC)  # 10:00 in Paris


@dataclass
class WebWorld:
    ctx: services.Context
    clock: VirtualClock
    app: FastAPI

    def client(self) -> TestClient:
        """A browser of its own: https, so the Secure cookie is sent back; redirects not followed."""
        return TestClient(self.app, base_url="https://testserver", follow_redirects=False)


_TEMPLATE: list[Path] = []


def _template() -> Path:
    """The seeded database, made once per test session (migrations and hashing take seconds)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="carecall-web-"))
        ctx, _ = make_ctx(f"sqlite:///{folder / 'web.db'}", MONDAY_10)
        add_nurse(ctx, code="IDE01")
        add_account(ctx, "ide01", "nurse", nurse_code="IDE01")
        add_account(ctx, "chef", "supervisor")
        dispose(ctx)
        _TEMPLATE.append(folder / "web.db")
    return _TEMPLATE[0]


def web_world(tmp_path: Path) -> WebWorld:
    """A nurse IDE01 with account `ide01`, a supervisor `chef`, both with factories.PASSWORD."""
    shutil.copyfile(_template(), tmp_path / "web.db")
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'web.db'}", MONDAY_10)
    return WebWorld(ctx, clock, create_web_app(make_web(ctx)))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has a form with its CSRF token"
    return found.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> tuple[int, str]:
    """Through the log-in form: (status, where it sends to or the page)."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return response.status_code, response.headers.get("location", response.text)
