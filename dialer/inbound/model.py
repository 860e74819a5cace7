"""Inbound calls. Created by the schema's one migration history (campaign/migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class InboundCall(SQLModel, table=True):
    """A call to the programme's number, from greeting to its end, whatever the backend."""

    __tablename__ = "inbound_call"
    id: int | None = Field(default=None, primary_key=True)
    backend: str = Field(max_length=16)
    call_id: str = Field(index=True, unique=True, max_length=64)  # CallSid, Uniqueid, simulated id
    caller: str | None = Field(default=None, max_length=32)  # E.164 as presented (never logged)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    state: str = Field(max_length=16)  # dialer.inbound.decision.CallState
    tries: int = 0  # identification tries on the keypad
    # the member number keyed, without leading zeros, until the birth year confirms it (then cleared)
    caller_key: str | None = Field(default=None, max_length=32)
    nurse_id: int | None = Field(default=None, foreign_key="nurse.id")
    attempt_id: int | None = None  # the conversation, recorded as an attempt (outcomes feed on it)
    task_id: int | None = None  # the callback task it left
    started_at: datetime
    wait_until: datetime | None = None  # the caller waits for a nurse until then
    ended_at: datetime | None = None
