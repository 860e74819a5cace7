"""The tables of carecall (SQLModel). Schema changes go through Alembic migrations.

Telephony ids never live here: the dialer keeps channel state in memory and
stores only attempts and outcomes.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, Column, Computed, Index, String, text
from sqlmodel import Field, SQLModel

from campaign.states import (
    AttemptResult,
    AttemptState,
    EnrolmentStatus,
    OutcomeCode,
    TaskKind,
    TaskStatus,
    WaveStatus,
)

# Named constraints, so later SQLite batch migrations can drop or alter them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def pathologies_to_text(codes: list[str] | set[str] | tuple[str, ...]) -> str:
    """Stored as '|a|b|' so a segment can match one exactly with LIKE '%|a|%'."""
    codes = sorted(set(codes))
    return "|" + "|".join(codes) + "|" if codes else ""


def pathologies_from_text(text: str) -> list[str]:
    return [c for c in text.split("|") if c]


class Physician(SQLModel, table=True):
    """Treating physician (médecin traitant), identified by RPPS number."""

    id: int | None = Field(default=None, primary_key=True)
    rpps: str = Field(index=True, unique=True, max_length=11)
    name: str
    email: str | None = None


class Nurse(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=32)
    display_name: str
    level: str = "junior"  # NurseLevel
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # [{"weekday": 0..6, "start": "HH:MM", "end": "HH:MM"}], local time of `timezone`
    shifts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    timezone: str = "Europe/Paris"
    active: bool = True
    # her phone on the line: a PJSIP endpoint (Asterisk), a Twilio Client identity or a number
    phone_endpoint: str | None = Field(default=None, max_length=128)


class Patient(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    member_id: str = Field(index=True, unique=True, max_length=32)
    first_name: str
    last_name: str
    birth_date: date
    sex: str | None = Field(default=None, max_length=1)
    # E.164; indexed: the inbound line recognises a caller by their number
    phone: str = Field(index=True)
    phone_alt: str | None = Field(default=None, index=True)  # E.164
    # numbers a nurse found wrong; never dialed again
    flagged_numbers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    postal_code: str = Field(max_length=5)
    city: str = ""
    departement: str = Field(max_length=3, index=True)
    timezone: str
    pathologies: str = Field(index=False)  # '|diabetes|copd|'
    tier: str = Field(index=True)  # Tier
    status: str = Field(default=EnrolmentStatus.enrolled, index=True)
    suspended_until: date | None = None
    consent: bool = True
    consent_on: date | None = None
    enrolled_on: date | None = None
    preferred_start: time | None = None  # patient's local time
    preferred_end: time | None = None
    referent_nurse_id: int | None = Field(default=None, foreign_key="nurse.id", index=True)
    physician_id: int | None = Field(default=None, foreign_key="physician.id")
    last_contact_at: datetime | None = None
    next_contact_on: date | None = None
    updated_at: datetime | None = None
    # member_id without its leading zeros (Excel drops them), computed by the database
    # and indexed: an import finds a probable duplicate by it (registry.member_key)
    member_key: str | None = Field(
        default=None,
        sa_column=Column(String(32), Computed("ltrim(member_id, '0')", persisted=True), index=True),
    )


class ThemeRow(SQLModel, table=True):
    """The themes of config/themes.toml, mirrored so mailings can reference them."""

    __tablename__ = "theme"
    code: str = Field(primary_key=True, max_length=64)
    label: str
    pathologies: str = ""


class Mailing(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    theme_code: str = Field(foreign_key="theme.code")
    segment: str
    sent_on: date
    arrives_on: date
    recipients: int = 0
    created_at: datetime


class MailingRecipient(SQLModel, table=True):
    __tablename__ = "mailing_recipient"
    mailing_id: int = Field(foreign_key="mailing.id", primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", primary_key=True)
    # why planning left this patient out of the wave (None: a task was planned)
    plan_note: str | None = None


class Wave(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    mailing_id: int = Field(foreign_key="mailing.id", index=True)
    status: str = Field(default=WaveStatus.scheduled, index=True)
    plan_after: datetime  # when the scheduler may plan it
    window_start: date
    window_end: date  # last calling day, inclusive
    deadline: datetime  # no attempt starts after this (UTC)
    # the plan the supervisor reviews: {"days": {...}, "skipped": {...}, "unplaced": n}
    plan: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    planned_at: datetime | None = None
    launched_at: datetime | None = None
    closed_at: datetime | None = None


class CallTask(SQLModel, table=True):
    __tablename__ = "call_task"
    __table_args__ = (
        Index("ix_call_task_dialable", "status", "not_before"),
        Index("ix_call_task_patient_status", "patient_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    wave_id: int | None = Field(default=None, foreign_key="wave.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    kind: str = TaskKind.wave
    status: str = TaskStatus.pending
    tier: str
    priority: int = 0
    planned_day: date | None = None
    not_before: datetime  # earliest next attempt (UTC)
    deadline: datetime  # expires if not reached by then (UTC)
    assigned_nurse_id: int | None = Field(default=None, foreign_key="nurse.id")
    theme_code: str | None = None
    attempts: int = 0
    claimed_by: str | None = None
    lease_until: datetime | None = None
    created_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None
    # best time to call: the hour band this task was placed in and its estimated answer probability
    best_band: int | None = None
    answer_p: float | None = None
    # work ahead (dialer/ahead.py): when its first call had been planned, if a nurse with nothing due
    # made it earlier; None when it was called at its time
    ahead_of: datetime | None = None


class CallAttempt(SQLModel, table=True):
    __tablename__ = "call_attempt"
    __table_args__ = (
        Index("ix_call_attempt_patient_started", "patient_id", "started_at"),
        # invariant 1 in the database itself: one call in flight per patient, whatever the process
        Index(
            "uq_call_attempt_patient_in_flight",
            "patient_id",
            unique=True,
            sqlite_where=text("state = 'in_flight'"),
            postgresql_where=text("state = 'in_flight'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="call_task.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    nurse_id: int | None = Field(default=None, foreign_key="nurse.id", index=True)
    number: str  # E.164 dialed
    state: str = AttemptState.in_flight
    result: str | None = None  # AttemptResult
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    worker: str | None = None  # which dialer process placed it
    voicemail_left: bool = False


class Outcome(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="call_attempt.id", unique=True)
    task_id: int = Field(foreign_key="call_task.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    nurse_id: int | None = Field(default=None, foreign_key="nurse.id")
    code: str  # OutcomeCode
    callback_at: datetime | None = None
    note: str = ""
    next_contact_on: date | None = None
    recorded_at: datetime


class PhysicianMessage(SQLModel, table=True):
    """A message to the treating physician (escalations, reports)."""

    __tablename__ = "physician_message"
    id: int | None = Field(default=None, primary_key=True)
    physician_id: int | None = Field(default=None, foreign_key="physician.id")
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: str
    body: str
    created_at: datetime


class AuditEvent(SQLModel, table=True):
    """Who read or changed a patient's file, and when (invariant 5)."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str
    action: str
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    detail: str = ""


class AnswerBand(SQLModel, table=True):
    """A patient's attempts and answers per hour band (campaign.besttime), counted as results are stored."""

    __tablename__ = "answer_band"
    patient_id: int = Field(foreign_key="patient.id", primary_key=True)
    band: int = Field(primary_key=True)
    attempts: int = 0
    answers: int = 0


class AnswerCohort(SQLModel, table=True):
    """The same counts per cohort of patients alike (age band, département, tier): the prior."""

    __tablename__ = "answer_cohort"
    cohort: str = Field(primary_key=True, max_length=64)
    band: int = Field(primary_key=True)
    attempts: int = 0
    answers: int = 0


# Core tables, for hot paths: Core statements skip the ORM's per-statement overhead.
TASK = CallTask.__table__  # type: ignore[attr-defined]
ATTEMPT = CallAttempt.__table__  # type: ignore[attr-defined]
PATIENT = Patient.__table__  # type: ignore[attr-defined]
WAVE = Wave.__table__  # type: ignore[attr-defined]
RECIPIENT = MailingRecipient.__table__  # type: ignore[attr-defined]
NURSE = Nurse.__table__  # type: ignore[attr-defined]
OUTCOME = Outcome.__table__  # type: ignore[attr-defined]
MAILING = Mailing.__table__  # type: ignore[attr-defined]
THEME = ThemeRow.__table__  # type: ignore[attr-defined]
ANSWER_BAND = AnswerBand.__table__  # type: ignore[attr-defined]
ANSWER_COHORT = AnswerCohort.__table__  # type: ignore[attr-defined]

__all__ = [
    "AnswerBand",
    "AnswerCohort",
    "AttemptResult",
    "AuditEvent",
    "CallAttempt",
    "CallTask",
    "Mailing",
    "MailingRecipient",
    "Nurse",
    "Outcome",
    "OutcomeCode",
    "Patient",
    "Physician",
    "PhysicianMessage",
    "ThemeRow",
    "Wave",
]
