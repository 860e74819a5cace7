"""What a person reads of a patient's file (the consoles), the audit trail of those reads,
and the nurses a callback may be promised for.

Nothing here records a read by itself: the caller writes `audit` in the same
transaction as the read it shows (invariant 5), naming who read and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from campaign import qualification
from campaign.errors import NotFound
from campaign.model import (
    ATTEMPT,
    NURSE,
    OUTCOME,
    PATIENT,
    TASK,
    AuditEvent,
    PhysicianMessage,
    pathologies_from_text,
)
from campaign.policy import NurseLevel, Policy, Tier
from campaign.store.base import OPEN_TASK_STATUSES
from campaign.store.upkeep import audit as _audit

LAST_CONTACTS = 10
LAST_MESSAGES = 10


@dataclass(frozen=True, slots=True)
class Contact:
    """One call with the patient (dialed, or placed by them: `kind` incoming), and what the nurse said."""

    attempt_id: int
    task_id: int
    kind: str  # TaskKind of the call's task
    started_at: datetime
    result: str | None  # AttemptResult; None while in flight
    nurse_code: str | None  # who recorded the outcome, else who took the call
    outcome: str | None  # OutcomeCode
    note: str
    callback_at: datetime | None


@dataclass(frozen=True, slots=True)
class Message:
    """A message to the patient's physician (an escalation, a report)."""

    created_at: datetime
    kind: str
    body: str


@dataclass(frozen=True, slots=True)
class OpenTaskView:
    """A task of the patient not yet closed: waiting for its time, or on a line now."""

    id: int
    kind: str  # TaskKind
    status: str  # TaskStatus: pending or in_progress
    not_before: datetime
    deadline: datetime
    priority: int
    wave_id: int | None
    theme_code: str | None
    theme_label: str | None
    assigned_nurse_code: str | None  # a callback's nurse


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """What a nurse sees of the patient she is speaking to (the console's file).

    Identity first (two patients can share a name: birth date and member id
    tell them apart), then the programme's view: tier, pathologies with their
    labels, référent, the last calls and outcomes (newest first), the messages
    to the physician, the open tasks.
    """

    patient_id: int
    member_id: str
    first_name: str
    last_name: str
    birth_date: date
    city: str
    timezone: str
    tier: str
    status: str
    suspended_until: date | None
    pathologies: tuple[tuple[str, str], ...]  # (code, label)
    referent: tuple[str, str] | None  # (code, display name)
    last_contact_at: datetime | None
    next_contact_on: date | None
    contacts: tuple[Contact, ...]
    messages: tuple[Message, ...]
    tasks: tuple[OpenTaskView, ...]


def patient_summary(s: Session, patient_id: int, policy: Policy) -> PatientSummary:
    """The patient's file as the console shows it; NotFound if there is no such patient."""
    p = s.execute(select(PATIENT).where(PATIENT.c.id == patient_id)).one_or_none()
    if p is None:
        raise NotFound(f"patient {patient_id} does not exist")
    referent = None
    if p.referent_nurse_id is not None:
        r = s.execute(
            select(NURSE.c.code, NURSE.c.display_name).where(NURSE.c.id == p.referent_nurse_id)
        ).one_or_none()
        referent = (r.code, r.display_name) if r else None
    pathologies = tuple(
        (code, policy.pathologies[code].label if code in policy.pathologies else code)
        for code in pathologies_from_text(p.pathologies)
    )
    return PatientSummary(
        patient_id=p.id,
        member_id=p.member_id,
        first_name=p.first_name,
        last_name=p.last_name,
        birth_date=p.birth_date,
        city=p.city,
        timezone=p.timezone,
        tier=p.tier,
        status=p.status,
        suspended_until=p.suspended_until,
        pathologies=pathologies,
        referent=referent,
        last_contact_at=p.last_contact_at,
        next_contact_on=p.next_contact_on,
        contacts=tuple(_contacts(s, patient_id)),
        messages=tuple(_messages(s, patient_id)),
        tasks=tuple(_open_tasks(s, patient_id, policy)),
    )


def _contacts(s: Session, patient_id: int) -> list[Contact]:
    nurse_id = func.coalesce(OUTCOME.c.nurse_id, ATTEMPT.c.nurse_id)
    rows = s.execute(
        select(
            ATTEMPT.c.id,
            ATTEMPT.c.task_id,
            TASK.c.kind,
            ATTEMPT.c.started_at,
            ATTEMPT.c.result,
            NURSE.c.code,
            OUTCOME.c.code.label("outcome"),
            OUTCOME.c.note,
            OUTCOME.c.callback_at,
        )
        .join(TASK, TASK.c.id == ATTEMPT.c.task_id)
        .outerjoin(OUTCOME, OUTCOME.c.attempt_id == ATTEMPT.c.id)
        .outerjoin(NURSE, NURSE.c.id == nurse_id)
        .where(ATTEMPT.c.patient_id == patient_id)
        .order_by(ATTEMPT.c.started_at.desc(), ATTEMPT.c.id.desc())
        .limit(LAST_CONTACTS)
    ).all()
    return [Contact(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or "", r[8]) for r in rows]


def _messages(s: Session, patient_id: int) -> list[Message]:
    table = PhysicianMessage.__table__  # type: ignore[attr-defined]
    rows = s.execute(
        select(table.c.created_at, table.c.kind, table.c.body)
        .where(table.c.patient_id == patient_id)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(LAST_MESSAGES)
    ).all()
    return [Message(*r) for r in rows]


def _open_tasks(s: Session, patient_id: int, policy: Policy) -> list[OpenTaskView]:
    rows = s.execute(
        select(
            TASK.c.id,
            TASK.c.kind,
            TASK.c.status,
            TASK.c.not_before,
            TASK.c.deadline,
            TASK.c.priority,
            TASK.c.wave_id,
            TASK.c.theme_code,
            NURSE.c.code,
        )
        .outerjoin(NURSE, NURSE.c.id == TASK.c.assigned_nurse_id)
        .where(TASK.c.patient_id == patient_id, TASK.c.status.in_(OPEN_TASK_STATUSES))
        .order_by(TASK.c.not_before, TASK.c.id)
    ).all()
    out = []
    for r in rows:
        theme = policy.themes.get(r.theme_code or "")
        out.append(
            OpenTaskView(
                r.id,
                r.kind,
                r.status,
                r.not_before,
                r.deadline,
                r.priority,
                r.wave_id,
                r.theme_code,
                theme.label if theme else None,
                r.code,
            )
        )
    return out


# ------------------------------------------------------------------ the audit trail


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    patient_id: int | None
    member_id: str | None  # for the supervisor reading the trail; never logged
    detail: str


def audit(s: Session, actor: str, action: str, patient_id: int | None, detail: str, now: datetime) -> None:
    """One entry of the audit trail: who (`actor`, e.g. "nurse:N012") did what to which file.

    The same row as `store.audit` (which the command line writes, clock first).
    """
    _audit(s, now, actor, action, patient_id, detail)


def audit_trail(
    s: Session, *, patient_id: int | None = None, actor: str | None = None, limit: int = 200
) -> list[AuditRow]:
    """The newest entries first, of one patient's file and/or one actor."""
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    q = select(
        table.c.id,
        table.c.at,
        table.c.actor,
        table.c.action,
        table.c.patient_id,
        PATIENT.c.member_id,
        table.c.detail,
    ).outerjoin(PATIENT, PATIENT.c.id == table.c.patient_id)
    if patient_id is not None:
        q = q.where(table.c.patient_id == patient_id)
    if actor is not None:
        q = q.where(table.c.actor == actor)
    rows = s.execute(q.order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)).all()
    return [AuditRow(*r) for r in rows]


def latest_audit_action(
    s: Session, *, patient_id: int, actor: str, detail: str, actions: Sequence[str]
) -> str | None:
    """The newest of these actions this actor recorded on this file with this detail, if any."""
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    return s.execute(
        select(table.c.action)
        .where(
            table.c.patient_id == patient_id,
            table.c.actor == actor,
            table.c.detail == detail,
            table.c.action.in_(list(actions)),
        )
        .order_by(table.c.at.desc(), table.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


# ------------------------------------------------------------------ who may call the patient back


@dataclass(frozen=True, slots=True)
class NurseChoice:
    id: int
    code: str
    name: str


def _needs(
    s: Session, patient_id: int, theme_code: str | None, policy: Policy
) -> tuple[Tier, frozenset[str]]:
    row = s.execute(
        select(PATIENT.c.tier, PATIENT.c.pathologies).where(PATIENT.c.id == patient_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"patient {patient_id} does not exist")
    return Tier(row.tier), qualification.required_skills(
        pathologies_from_text(row.pathologies), theme_code, policy
    )


@dataclass(frozen=True, slots=True)
class RosterNurse:
    choice: NurseChoice
    level: NurseLevel
    skills: frozenset[str]


def active_roster(s: Session) -> list[RosterNurse]:
    """The active nurses, by code, with what qualifies them (a page may keep it a few seconds)."""
    rows = s.execute(
        select(NURSE.c.id, NURSE.c.code, NURSE.c.display_name, NURSE.c.level, NURSE.c.skills)
        .where(NURSE.c.active.is_(True))
        .order_by(NURSE.c.code)
    ).all()
    return [
        RosterNurse(NurseChoice(r.id, r.code, r.display_name), NurseLevel(r.level), frozenset(r.skills or ()))
        for r in rows
    ]


def qualified_nurses(
    s: Session,
    patient_id: int,
    policy: Policy,
    theme_code: str | None = None,
    roster: Sequence[RosterNurse] | None = None,
) -> list[NurseChoice]:
    """The active nurses allowed to take a call to this patient (tier by level, the skills the
    pathologies of `theme_code` need), by code: those a callback may be promised for. `roster`:
    `active_roster` as the caller last read it (else it is read now)."""
    tier, needed = _needs(s, patient_id, theme_code, policy)
    return [
        n.choice
        for n in (active_roster(s) if roster is None else roster)
        if qualification.may_take(n.level, n.skills, tier, needed, policy)
    ]


def theme_of_attempt(s: Session, attempt_id: int) -> str | None:
    """The theme of an attempt's task (None: a task of no theme, or no such attempt)."""
    return s.execute(
        select(TASK.c.theme_code)
        .join(ATTEMPT, ATTEMPT.c.task_id == TASK.c.id)
        .where(ATTEMPT.c.id == attempt_id)
    ).scalar_one_or_none()


def why_not_qualified(
    s: Session, nurse_id: int, patient_id: int, policy: Policy, theme_code: str | None = None
) -> str | None:
    """None if the nurse may take a call to this patient, else why not (no personal data)."""
    n = s.execute(
        select(NURSE.c.code, NURSE.c.level, NURSE.c.skills, NURSE.c.active).where(NURSE.c.id == nurse_id)
    ).one_or_none()
    if n is None:
        return f"nurse {nurse_id} does not exist"
    if not n.active:
        return f"nurse {n.code} is not active"
    tier, needed = _needs(s, patient_id, theme_code, policy)
    if NurseLevel(n.level) not in policy.tiers[tier].nurse_levels:
        allowed = ", ".join(level.value for level in policy.tiers[tier].nurse_levels)
        return f"nurse {n.code} is {n.level}; a {tier.value}-tier patient needs a {allowed} nurse"
    missing = needed - frozenset(n.skills or ())
    if missing:
        return f"nurse {n.code} lacks the skills {', '.join(sorted(missing))} this patient's call needs"
    return None
