"""Stored presence and commands: every process sees one board, any process reaches a nurse's owner.

Created by the schema's one migration history (campaign/migrations).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class NursePresence(SQLModel, table=True):
    """A nurse's state now, written by the dialer process that owns her."""

    __tablename__ = "nurse_presence"
    nurse_id: int = Field(primary_key=True, foreign_key="nurse.id")
    status: str = "offline"  # dialer.presence.NurseStatus
    reason: str | None = Field(default=None, max_length=32)  # a pause's reason (config [web.pause_reasons])
    since: datetime  # when she entered this status
    worker: str | None = Field(default=None, max_length=64)  # the dialer process that owns her
    attempt_id: int | None = None  # her current call (reserved, on call, wrap-up)
    patient_id: int | None = None  # that call's patient: the only file she may open
    call_state: str | None = Field(default=None, max_length=16)  # dialing, ringing, connected, ended…
    version: int = 0  # bumped on every change: a console or board asks for what is newer
    updated_at: datetime


class NurseCommand(SQLModel, table=True):
    """What a person asked of a nurse's dialer process (ready, pause, outcome…), until it takes it."""

    __tablename__ = "nurse_command"
    __table_args__ = (Index("ix_nurse_command_pending", "taken_at", "nurse_id"),)
    id: int | None = Field(default=None, primary_key=True)
    nurse_id: int = Field(foreign_key="nurse.id")
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    taken_at: datetime | None = None
    taken_by: str | None = Field(default=None, max_length=64)
    result: str | None = Field(default=None, max_length=128)  # "ok", or why it was refused
