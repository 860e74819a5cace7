"""The inbound line's web side (placeholder until the `inbound` part lands): `router(web) -> APIRouter`.

Its provider endpoints live under /inbound/ (exempt from the CSRF check: the
provider's signature guards them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dialer.web.auth import Role, User, require
from dialer.web.pages import page


def router(web: Any) -> APIRouter:
    api = APIRouter()

    @api.get("/inbound/")
    def inbound(request: Request, user: User = Depends(require(Role.supervisor))) -> HTMLResponse:
        return page(
            request,
            "placeholder.html.j2",
            title="Ligne entrante",
            coming="Ici viendra la ligne entrante : les appels des patients, reconnus et dirigés "
            "vers leur infirmier référent, ou rappelés.",
        )

    return api
