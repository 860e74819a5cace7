"""Who is asking: the session's account, and the role every page checks.

    user: User = Depends(require(Role.nurse))     # a nurse's page
    user: User = Depends(require())               # any logged-in account

No session (or an account since deactivated): 303 to /login for a page, 401
for an htmx request or an event stream (with `HX-Redirect: /login`, so htmx
sends the whole page there). The wrong role: the French 403 page. The
session cookie and the CSRF check are `dialer.web.security`'s middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from campaign.clock import Clock, ScaledClock
from campaign.logs import get_logger
from dialer.accounts import store as account_store
from dialer.accounts.model import Role
from dialer.web.security import CSRF_FIELD, CSRF_HEADER, SessionData, session_of

log = get_logger("dialer.web.auth")

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Forbidden",
    "LoginRequired",
    "Role",
    "SessionData",
    "User",
    "current_user",
    "require",
    "security_clock",
    "session_of",
]


@dataclass(frozen=True)
class User:
    id: int  # the account's id (user_account.id)
    username: str
    role: Role
    nurse_id: int | None  # a nurse account's nurse record


class LoginRequired(Exception):
    """No valid session: the log-in page (or 401 for htmx and event streams)."""


class Forbidden(Exception):
    """Logged in, but this is not for this account: the 403 page."""

    def __init__(self, reason: str = "role") -> None:
        super().__init__(reason)
        self.reason = reason


def security_clock(clock: Clock) -> Clock:
    """The clock sessions and lock-outs are measured on: a scaled clock's wall clock (a session of
    ten hours must not end in twenty seconds of a sped-up demo), else the process's clock."""
    return clock.wall if isinstance(clock, ScaledClock) else clock


def current_user(request: Request) -> User | None:
    """The session's account if it is still active, or None; remembered on the request."""
    cached = getattr(request.state, "user", None)
    if isinstance(cached, User):
        return cached
    session = session_of(request)
    if session.user_id is None:
        return None
    web = request.app.state.web
    with web.ctx.sessions() as s:
        account = account_store.account_by_id(s, session.user_id)
    if account is None or not account.active or account.id is None:
        session.log_out()
        return None
    user = User(account.id, account.username, Role(account.role), account.nurse_id)
    request.state.user = user
    return user


def require(role: Role | None = None) -> Callable[[Request], User]:
    """A dependency: the logged-in user, of `role` if given."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise LoginRequired()
        if role is not None and user.role != role:
            log.warning("web.forbidden", account_id=user.id, role=user.role.value, path=request.url.path)
            raise Forbidden("role")
        return user

    return dependency
