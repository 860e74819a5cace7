"""The dialer's tables. Created by the schema's one migration history (campaign/migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class CallLine(SQLModel, table=True):
    """One per attempt dialed: which call on the switch or provider, and how far it got."""

    __tablename__ = "call_line"
    attempt_id: int = Field(primary_key=True, foreign_key="call_attempt.id")
    backend: str = Field(max_length=16)
    call_id: str | None = Field(default=None, index=True, max_length=64)  # Uniqueid, CallSid
    nurse_id: int
    worker: str = Field(index=True, max_length=64)  # the dialer process that placed it
    state: str  # LineState
    rank: int = 0  # LineState.rank: a line only moves forward
    cause: int | None = None  # Q.850, at the end
    detail: str | None = Field(default=None, max_length=64)  # detector's cause, provider status
    opened_at: datetime
    updated_at: datetime


class CallLineEvent(SQLModel, table=True):
    """An event that reached a process other than its call's owner, waiting for the owner."""

    __tablename__ = "call_line_event"
    __table_args__ = (Index("ix_call_line_event_worker_id", "worker", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(max_length=64)
    attempt_id: int
    kind: str  # CallEventKind
    at: datetime
    cause: int | None = None
    detail: str | None = Field(default=None, max_length=64)
    voicemail_left: bool = False
    call_id: str | None = Field(default=None, max_length=64)
