"""The accounts' use cases, one transaction each: create, log in (with lock-out), unlock.

Lock-out: `policy.web.lock_after_failures` wrong passwords in a row lock the
account for `policy.web.lock_minutes`; while it is locked even the right
password is refused, so guessing cannot go on behind the lock. Every log-in,
failure, lock-out and unlock is in the audit trail (the account's name as
actor, never a password); the logs carry the account's id only, since a user
name is often a person's name.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from campaign import store as campaign_store
from campaign.errors import InvalidArgument, NotFound
from campaign.logs import get_logger
from campaign.policy import WebPolicy
from campaign.services import Context
from dialer.accounts import passwords
from dialer.accounts import store as account_store
from dialer.accounts.model import Role, UserAccount

log = get_logger("dialer.accounts")
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
SESSION_KEY_NAME = "session_key"
UNKNOWN_ACTOR = "(unknown account)"  # an unknown name is not written down: it may be a mistyped password


class LoginOutcome(StrEnum):
    ok = "ok"
    wrong = "wrong"  # unknown account or wrong password: the same answer for both
    locked = "locked"  # locked now or already: refused whatever the password


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    account_id: int | None = None
    role: Role | None = None
    nurse_id: int | None = None
    username: str | None = None
    locked_until: datetime | None = None


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InvalidArgument(
            f"user name {username!r}: 2 to 64 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return name


def create_account(
    ctx: Context, username: str, role: Role, password: str, *, nurse_code: str | None, actor: str
) -> int:
    """A new account; a nurse's names her nurse record (by code), which no other account has."""
    name = normalise_username(username)
    passwords.check_new_password(password)
    if role == Role.nurse and not nurse_code:
        raise InvalidArgument("a nurse account needs --nurse CODE (her code, see `carecall nurses list`)")
    if role == Role.supervisor and nurse_code:
        raise InvalidArgument("--nurse is for nurse accounts only (a supervisor has no nurse record)")
    hashed = passwords.hash_password(password)
    now = ctx.clock.now()
    with ctx.sessions() as s:
        if account_store.account_by_username(s, name) is not None:
            raise InvalidArgument(f"user name {name!r} is taken")
        nurse_id = None
        if nurse_code:
            nurse_id = account_store.nurse_id_by_code(s, nurse_code)
            if nurse_id is None:
                raise NotFound(
                    f"--nurse {nurse_code!r}: no nurse with that code (see `carecall nurses list`)"
                )
            if account_store.account_of_nurse(s, nurse_id) is not None:
                raise InvalidArgument(f"--nurse {nurse_code!r}: that nurse has an account already")
        account_id = account_store.add_account(s, name, role.value, nurse_id, hashed, now)
        campaign_store.audit(s, now, actor, "account.add", detail=f"account={account_id} role={role.value}")
        s.commit()
    log.info("account.added", account_id=account_id, role=role.value)
    return account_id


def authenticate(ctx: Context, policy: WebPolicy, username: str, password: str, now: datetime) -> LoginResult:
    """Check a log-in at `now` (the wall clock: a lock-out is felt in real time).

    The password is checked outside any transaction (Argon2 takes a while); the writes that
    follow start with a write, so on SQLite they wait for the dialer's rather than fail."""
    name = username.strip().lower()
    with ctx.sessions() as s:
        account = account_store.account_by_username(s, name) if USERNAME.fullmatch(name) else None
        if account is not None:
            s.expunge(account)
    if account is None or not account.active or account.id is None:
        passwords.verify(None, password)  # the same work as for a known account
        with ctx.sessions() as s:
            campaign_store.audit(s, now, UNKNOWN_ACTOR, "login.failed", detail="unknown or inactive account")
            s.commit()
        log.info("login.failed", reason="unknown or inactive account")
        return LoginResult(LoginOutcome.wrong)
    good = passwords.verify(account.password_hash, password)
    with ctx.sessions() as s:
        if account.locked_until is not None and account.locked_until > now:
            campaign_store.audit(s, now, account.username, "login.refused_locked", detail=f"good={good}")
            s.commit()
            log.info("login.refused_locked", account_id=account.id)
            return LoginResult(LoginOutcome.locked, account.id, locked_until=account.locked_until)
        if not good:
            return _failed(s, account, policy, now)
        rehash = passwords.hash_password(password) if passwords.needs_rehash(account.password_hash) else None
        account_store.clear_failures(s, account.id, rehash)
        campaign_store.audit(s, now, account.username, "login")
        s.commit()
    log.info("login", account_id=account.id, role=account.role)
    return LoginResult(LoginOutcome.ok, account.id, Role(account.role), account.nurse_id, account.username)


def _failed(s: Session, account: UserAccount, policy: WebPolicy, now: datetime) -> LoginResult:
    assert account.id is not None
    failures = account_store.count_failure(s, account.id)
    if failures >= policy.lock_after_failures:
        until = now + timedelta(minutes=policy.lock_minutes)
        account_store.lock(s, account.id, until)
        campaign_store.audit(s, now, account.username, "login.locked", detail=f"failures={failures}")
        s.commit()
        log.warning("login.locked", account_id=account.id, failures=failures, minutes=policy.lock_minutes)
        return LoginResult(LoginOutcome.locked, account.id, locked_until=until)
    campaign_store.audit(s, now, account.username, "login.failed", detail=f"failures={failures}")
    s.commit()
    log.info("login.failed", account_id=account.id, failures=failures)
    return LoginResult(LoginOutcome.wrong, account.id)


def unlock_account(ctx: Context, username: str, *, actor: str) -> bool:
    """Clear the account's lock and failure count; False if it was not locked."""
    name = username.strip().lower()
    now = ctx.clock.now()
    with ctx.sessions() as s:
        account = account_store.account_by_username(s, name)
        if account is None or account.id is None:
            raise NotFound(f"no account named {name!r} (see `carecall users list`)")
        was_locked = account.locked_until is not None and account.locked_until > now
        account_store.clear_failures(s, account.id)
        campaign_store.audit(
            s, now, actor, "account.unlock", detail=f"account={account.id} locked={was_locked}"
        )
        s.commit()
    log.info("account.unlocked", account_id=account.id, was_locked=was_locked)
    return was_locked


def list_accounts(ctx: Context) -> list[account_store.AccountRow]:
    with ctx.sessions() as s:
        return account_store.accounts(s)


def session_key(ctx: Context, from_env: str | None) -> str:
    """The session cookies' signing key: CARECALL_SECRET_KEY if set, else one made once and stored
    (`app_secret`), so every process signs and checks cookies with the same key."""
    if from_env is not None:
        if len(from_env) < 32:
            raise InvalidArgument(
                "CARECALL_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)"
            )
        return from_env
    with ctx.sessions() as s:
        key = account_store.secret(s, SESSION_KEY_NAME, secrets.token_urlsafe(48), ctx.clock.now())
        s.commit()
    return key
