"""Every query on the accounts' tables (`user_account`, `app_secret`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from campaign.model import NURSE
from dialer.accounts.model import AppSecret, UserAccount

ACCOUNT = UserAccount.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AccountRow:
    """An account as `users list` shows it (never its hash)."""

    id: int
    username: str
    role: str
    nurse_code: str | None
    active: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime


def nurse_id_by_code(s: Session, code: str) -> int | None:
    return s.execute(select(NURSE.c.id).where(NURSE.c.code == code)).scalar_one_or_none()


def account_by_username(s: Session, username: str) -> UserAccount | None:
    return s.execute(select(UserAccount).where(ACCOUNT.c.username == username)).scalar_one_or_none()


def account_by_id(s: Session, account_id: int) -> UserAccount | None:
    return s.get(UserAccount, account_id)


def account_of_nurse(s: Session, nurse_id: int) -> UserAccount | None:
    return s.execute(select(UserAccount).where(ACCOUNT.c.nurse_id == nurse_id)).scalar_one_or_none()


def add_account(
    s: Session, username: str, role: str, nurse_id: int | None, password_hash: str, now: datetime
) -> int:
    account = UserAccount(
        username=username, role=role, nurse_id=nurse_id, password_hash=password_hash, created_at=now
    )
    s.add(account)
    s.flush()
    assert account.id is not None
    return account.id


def accounts(s: Session) -> list[AccountRow]:
    rows = s.execute(
        select(UserAccount, NURSE.c.code)
        .outerjoin(NURSE, NURSE.c.id == ACCOUNT.c.nurse_id)
        .order_by(ACCOUNT.c.username)
    ).all()
    return [
        AccountRow(a.id, a.username, a.role, code, a.active, a.failed_logins, a.locked_until, a.created_at)
        for a, code in rows
    ]


def count_failure(s: Session, account_id: int) -> int:
    """One more wrong password, counted in the database (two log-ins at once both count)."""
    return int(
        s.execute(
            update(ACCOUNT)
            .where(ACCOUNT.c.id == account_id)
            .values(failed_logins=ACCOUNT.c.failed_logins + 1)
            .returning(ACCOUNT.c.failed_logins)
        ).scalar_one()
    )


def lock(s: Session, account_id: int, until: datetime) -> None:
    s.execute(update(ACCOUNT).where(ACCOUNT.c.id == account_id).values(locked_until=until, failed_logins=0))


def clear_failures(s: Session, account_id: int, new_hash: str | None = None) -> None:
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
    if new_hash is not None:
        values["password_hash"] = new_hash
    s.execute(update(ACCOUNT).where(ACCOUNT.c.id == account_id).values(**values))


def secret(s: Session, name: str, make: str, now: datetime) -> str:
    """The stored secret `name`; `make` is stored first if there is none (the first process wins)."""
    found = s.get(AppSecret, name)
    if found is not None:
        return found.value
    try:
        with s.begin_nested():
            s.add(AppSecret(name=name, value=make, created_at=now))
    except IntegrityError:  # another process stored its own first: every process takes that one
        pass
    stored = s.get(AppSecret, name, populate_existing=True)
    assert stored is not None
    return stored.value
