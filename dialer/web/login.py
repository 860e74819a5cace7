"""Log-in and log-out, and `/`, which sends each person to her place (or to the log-in page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from campaign.templates import fr_number
from dialer.accounts import LoginOutcome, Role, authenticate
from dialer.web.auth import current_user, security_clock
from dialer.web.pages import page
from dialer.web.security import session_of

HOME = {Role.nurse: "/console", Role.supervisor: "/board"}
WRONG = "Identifiant ou mot de passe incorrect."


def router(web: Any) -> APIRouter:
    api = APIRouter()
    clock = security_clock(web.ctx.clock)

    @api.get("/")
    def home(request: Request) -> Response:
        user = current_user(request)
        return RedirectResponse(HOME[user.role] if user else "/login", status_code=303)

    @api.get("/login")
    def login_form(request: Request) -> Response:
        user = current_user(request)
        if user is not None:
            return RedirectResponse(HOME[user.role], status_code=303)
        return _login_page(request, "", None)

    @api.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        now = clock.now()
        result = authenticate(web.ctx, web.ctx.policy.web, username, password, now)
        if result.outcome == LoginOutcome.ok and result.account_id is not None and result.role is not None:
            session_of(request).log_in(result.account_id, now.timestamp())
            return RedirectResponse(HOME[result.role], status_code=303)
        if result.outcome == LoginOutcome.locked and result.locked_until is not None:
            minutes = max(1, -int(-(result.locked_until - now).total_seconds() // 60))
            error = (
                "Ce compte est verrouillé après trop d'essais infructueux. "
                f"Réessayez dans {fr_number(minutes)} minute{'s' if minutes > 1 else ''}, "
                "ou demandez à un superviseur de le déverrouiller."
            )
        else:
            error = WRONG
        return _login_page(request, username.strip()[:64], error, status_code=401)

    def _login_page(request: Request, username: str, error: str | None, status_code: int = 200) -> Response:
        policy = web.ctx.policy.web
        return page(
            request,
            "login.html.j2",
            status_code=status_code,
            username=username,
            error=error,
            lock_after=policy.lock_after_failures,
            lock_minutes=policy.lock_minutes,
        )

    @api.post("/logout")
    def logout(request: Request) -> Response:
        session_of(request).log_out()
        return RedirectResponse("/login", status_code=303)

    return api
