"""The supervisor board (placeholder until the `board` part lands): `router(web) -> APIRouter`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dialer.web.auth import Role, User, require
from dialer.web.pages import page


def router(web: Any) -> APIRouter:
    api = APIRouter()

    @api.get("/board")
    def board(request: Request, user: User = Depends(require(Role.supervisor))) -> HTMLResponse:
        return page(
            request,
            "placeholder.html.j2",
            title="Tableau de bord",
            coming="Ici viendront : l'import des patients, les courriers et leurs vagues d'appels, "
            "les infirmiers en direct, les rapports et les exports.",
        )

    return api
