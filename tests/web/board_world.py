"""The board's tests' world: a database with a nurse IDE01 (account `ide01`) and a supervisor `chef`,
the web application with a real bus, and the supervisor's client, logged in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from factories import PASSWORD, add_account, add_nurse, dispose, engine_of, make_ctx
from fastapi.testclient import TestClient

from campaign import services
from campaign.clock import VirtualClock
from dialer.staff.bus import Bus, make_bus
from dialer.web.core import create_web_app, make_web

MONDAY_8 = datetime(2026, 12, 7, 7, tzinfo=UTC)  # 08:00 in Paris, the day the letters are posted


@dataclass
class Board:
    ctx: services.Context
    clock: VirtualClock
    bus: Bus
    client: TestClient  # logged in as the supervisor `chef`

    def csrf(self, path: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.client.get(path).text)
        assert found, f"{path} has a form with its CSRF token"
        return found.group(1)

    def post(self, path: str, form_page: str, **data: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(form_page), **data})


def login_client(app: Any, username: str) -> TestClient:
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 303, r.text
    return client


def board_world(url: str) -> Iterator[Board]:
    ctx, clock = make_ctx(url, MONDAY_8)
    add_nurse(ctx, code="IDE01", level="senior")
    add_account(ctx, "ide01", "nurse", nurse_code="IDE01")
    add_account(ctx, "chef", "supervisor")
    bus = make_bus(engine_of(ctx))
    app = create_web_app(make_web(ctx, bus=bus))
    with login_client(app, "chef") as client:
        yield Board(ctx, clock, bus, client)
    bus.close()
    dispose(ctx)
