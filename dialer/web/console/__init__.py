"""The nurse console (placeholder until the `console` part lands): `router(web) -> APIRouter`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dialer.web.auth import Role, User, require
from dialer.web.pages import page


def router(web: Any) -> APIRouter:
    api = APIRouter()

    @api.get("/console")
    def console(request: Request, user: User = Depends(require(Role.nurse))) -> HTMLResponse:
        return page(
            request,
            "placeholder.html.j2",
            title="Ma console",
            coming="Ici viendront : se rendre disponible, l'appel que le composeur vous attribue, "
            "la fiche du patient, le script et l'issue de l'appel.",
        )

    return api
