"""Pages: French Jinja2 templates from prompts/web/, rendered on the server.

    return page(request, "board.html.j2", waves=waves)

Every template gets `request`, `user` (None on the log-in page), `now` (the
process's clock), `csrf_token()` and `csrf_field()` (the hidden input every
form carries), on top of the environment's globals and campaign's French
filters (`fr_date`, `fr_number`, `fr_percent`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from markupsafe import Markup, escape

from campaign.templates import PROMPTS_DIR, environment
from dialer.web.auth import current_user
from dialer.web.security import CSRF_FIELD, session_of

WEB_PROMPTS = PROMPTS_DIR / "web"

# what an error page says, per status
ERRORS = {
    401: ("Connexion requise", "Votre session a pris fin. Connectez-vous à nouveau."),
    403: ("Accès refusé", "Vous n'avez pas accès à cette page avec votre compte."),
    404: ("Page introuvable", "Cette page n'existe pas ou n'existe plus."),
    405: ("Action impossible", "Cette action n'est pas possible sur cette page."),
    500: ("Erreur", "Une erreur est survenue. Réessayez ; si elle persiste, prévenez votre superviseur."),
}
CSRF_REFUSED = (
    "Formulaire refusé",
    "Ce formulaire n'a pas pu être vérifié (il a peut-être expiré). Rechargez la page et recommencez.",
)


def web_templates(root: Path | None = None) -> Environment:
    """The pages' environment: the shared one's strictness and filters, with the pages' globals."""
    env = environment(root or WEB_PROMPTS).overlay()
    env.globals["app_name"] = "carecall"
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render prompts/web/<template> for this request."""
    web = request.app.state.web
    session = session_of(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(session.csrf_token())
        )

    values = {
        "request": request,
        "user": current_user(request),
        "now": web.ctx.clock.now(),
        "csrf_token": session.csrf_token,
        "csrf_field": csrf_field,
        **context,
    }
    return HTMLResponse(web.templates.get_template(template).render(**values), status_code=status_code)


def error_page(
    request: Request, status_code: int, title: str | None = None, message: str | None = None
) -> HTMLResponse:
    default_title, default_message = ERRORS.get(status_code, ERRORS[500])
    return page(
        request,
        "error.html.j2",
        status_code=status_code,
        status=status_code,
        title=title or default_title,
        message=message or default_message,
    )
