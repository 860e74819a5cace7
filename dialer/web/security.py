"""The web application's guards, as two ASGI middlewares: the session cookie with its CSRF check,
and the security headers.

Session: a cookie signed with the application's key (itsdangerous), HttpOnly,
Secure, SameSite=Lax, holding only the account id, the log-in time and the
session's CSRF token. It ends `policy.web.session_hours` after log-in whatever
the activity (the browser drops it then too). Browsers keep Secure cookies on
http://localhost and http://127.0.0.1; anywhere else the application must be
served over HTTPS (a reverse proxy).

CSRF: every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's
token, in the `X-CSRF-Token` header (htmx: the base template sets it) or the
`csrf_token` form field (`{{ csrf_field() }}`), else 403 and nothing runs.
Paths under /twilio/ and /inbound/ are exempt: the provider's signature guards
them, and the provider has no session.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request

from campaign.logs import get_logger

log = get_logger("dialer.web.security")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "carecall_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXEMPT_PREFIXES = ("/twilio/", "/inbound/")  # provider webhooks: signed, sessionless
SCOPE_KEY = "carecall.session"

# scripts and styles from this origin only: no inline script, no eval (htmx runs with
# allowEval=false and without its indicator <style>, see base.html.j2)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), geolocation=(), microphone=(), payment=()",
}


@dataclass
class SessionData:
    """What the cookie holds. `changed`: the cookie must be sent again (or removed)."""

    user_id: int | None = None
    login_at: float | None = None  # wall-clock seconds since the epoch
    csrf: str | None = None
    changed: bool = False

    def csrf_token(self) -> str:
        """The session's CSRF token, made on first need (an anonymous visitor gets one with the
        log-in form, so the log-in itself is protected too)."""
        if self.csrf is None:
            self.csrf = secrets.token_urlsafe(32)
            self.changed = True
        return self.csrf

    def log_in(self, user_id: int, at: float) -> None:
        """A new session: a new token, so nothing planted before the log-in survives it."""
        self.user_id, self.login_at, self.csrf, self.changed = user_id, at, secrets.token_urlsafe(32), True

    def log_out(self) -> None:
        self.user_id = self.login_at = self.csrf = None
        self.changed = True


def session_of(conn: HTTPConnection) -> SessionData:
    """The request's session (an empty one outside the middleware, e.g. a bare test app)."""
    data = conn.scope.get(SCOPE_KEY)
    if data is None:
        data = conn.scope[SCOPE_KEY] = SessionData()
    assert isinstance(data, SessionData)
    return data


class SessionCodec:
    def __init__(self, key: str, lifetime_seconds: float) -> None:
        self.serializer = URLSafeSerializer(key, salt="carecall.session")
        self.lifetime = lifetime_seconds

    def load(self, cookie: str | None, now: float) -> SessionData | None:
        """The cookie's session, or None if absent, forged, or past its lifetime."""
        if not cookie:
            return None
        try:
            raw = self.serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(raw, dict):
            return None
        csrf, user_id, login_at = raw.get("c"), raw.get("u"), raw.get("t")
        if not isinstance(csrf, str) or not isinstance(login_at, int | float):
            return None
        if not 0 <= now - login_at < self.lifetime:
            return None  # a session ends session_hours after it began, whatever the activity
        return SessionData(user_id if isinstance(user_id, int) else None, float(login_at), csrf)

    def dump(self, data: SessionData, now: float) -> str:
        if data.login_at is None:  # an anonymous session's lifetime starts with its token
            data.login_at = now
        return str(self.serializer.dumps({"c": data.csrf, "u": data.user_id, "t": data.login_at}))

    def set_cookie(self, data: SessionData, now: float) -> str:
        if data.csrf is None:
            return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
        assert data.login_at is None or data.login_at <= now
        value = self.dump(data, now)
        remaining = max(1, int(self.lifetime - (now - (data.login_at or now))))
        return f"{COOKIE}={value}; Max-Age={remaining}; Path=/; HttpOnly; Secure; SameSite=Lax"


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    chunks, messages = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _form_token(scope: Scope, body: bytes, messages: list[Message], receive: Receive) -> str | None:
    ctype = HTTPConnection(scope).headers.get("content-type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if key == CSRF_FIELD:
                return value
        return None
    if ctype.startswith("multipart/form-data"):
        request = Request(scope, _replay(messages, receive))
        try:
            form = await request.form()
        except Exception:  # a malformed body has no token; the route would refuse it anyway
            return None
        try:
            field = form.get(CSRF_FIELD)
            return field if isinstance(field, str) else None
        finally:
            await form.close()
    return None


Refuse = Callable[[Scope, Receive, Send], Awaitable[None]]


class SessionMiddleware:
    """Loads the session from its cookie, refuses unsafe requests without its CSRF token, and sends
    the cookie back when the session changed."""

    def __init__(self, app: ASGIApp, codec: SessionCodec, now: Callable[[], float], refuse: Refuse) -> None:
        self.app, self.codec, self.now, self.refuse = app, codec, now, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        now = self.now()
        cookie = conn.cookies.get(COOKIE)
        data = self.codec.load(cookie, now)
        if data is None:
            data = SessionData(changed=cookie is not None)  # a stale or forged cookie is removed
        scope[SCOPE_KEY] = data
        path: str = scope.get("path", "")
        if scope.get("method", "GET") in UNSAFE and not path.startswith(EXEMPT_PREFIXES):
            given = conn.headers.get(CSRF_HEADER)
            if given is None:
                body, messages = await _read_body(receive)
                given = await _form_token(scope, body, messages, receive)
                receive = _replay(messages, receive)
            if data.csrf is None or given is None or not hmac.compare_digest(given, data.csrf):
                log.warning("csrf.refused", path=path, token=given is not None, session=data.csrf is not None)
                await self.refuse(scope, receive, send)
                return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and data.changed:
                MutableHeaders(scope=message).append("set-cookie", self.codec.set_cookie(data, self.now()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class SecurityHeadersMiddleware:
    """The security headers on every response; `Cache-Control: no-store` on all but /static/ (pages
    and fragments may show a patient's data: nothing of them stays in a shared computer's cache)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
