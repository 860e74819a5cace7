"""Accounts of the web consoles. Created by the schema's one migration history (campaign/migrations)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class Role(StrEnum):
    """What an account may open: the supervisor's board, or a nurse's console."""

    supervisor = "supervisor"
    nurse = "nurse"


class UserAccount(SQLModel, table=True):
    __tablename__ = "user_account"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    role: str = Field(max_length=16)  # Role
    nurse_id: int | None = Field(default=None, foreign_key="nurse.id", unique=True)  # a nurse's record
    password_hash: str  # Argon2id, as argon2-cffi writes it
    failed_logins: int = 0  # wrong passwords in a row
    locked_until: datetime | None = None
    active: bool = True
    created_at: datetime


class AppSecret(SQLModel, table=True):
    """Secrets every process must share (the session cookies' signing key), made once."""

    __tablename__ = "app_secret"
    name: str = Field(primary_key=True, max_length=32)
    value: str
    created_at: datetime
