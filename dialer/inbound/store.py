"""Queries of the inbound line: its calls (inbound_call), who a caller is, who is ready.

Functions take an open Session and never commit: the line's service opens
and closes the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import extract, or_, select, update
from sqlmodel import Session

from campaign.model import ATTEMPT, PATIENT
from campaign.policy import NurseLevel
from campaign.states import EnrolmentStatus
from dialer.inbound.decision import CallState, ReadyNurse
from dialer.inbound.model import InboundCall
from dialer.lines import lines_of
from dialer.staff.store import ready_board

CALL = InboundCall.__table__  # type: ignore[attr-defined]
# a patient the line recognises: one the programme still follows (a withdrawn or deceased
# patient is never called back, so the line does not pretend to know them)
_FOLLOWED = (EnrolmentStatus.enrolled.value, EnrolmentStatus.suspended.value)
_PATIENT_COLUMNS = (
    PATIENT.c.id,
    PATIENT.c.tier,
    PATIENT.c.pathologies,
    PATIENT.c.referent_nurse_id,
    PATIENT.c.departement,
    PATIENT.c.timezone,
    PATIENT.c.preferred_start,
    PATIENT.c.preferred_end,
    PATIENT.c.birth_date,
    PATIENT.c.flagged_numbers,
)


def add_call(session: Session, backend: str, call_id: str, caller: str | None, now: datetime) -> InboundCall:
    """The call, stored as it arrives; a retried first request finds the one stored before."""
    found = call_by_call_id(session, call_id)
    if found is not None:
        return found
    call = InboundCall(
        backend=backend, call_id=call_id, caller=caller, state=CallState.greeting.value, started_at=now
    )
    session.add(call)
    session.flush()
    return call


def call_by_call_id(session: Session, call_id: str) -> InboundCall | None:
    return session.execute(
        select(InboundCall).where(CALL.c.call_id == call_id).with_for_update()
    ).scalar_one_or_none()


def set_state(session: Session, call_id: int | None, **values: Any) -> None:
    """Change the stored call (state, tries, patient, nurse, attempt, task, wait_until, ended_at)."""
    assert call_id is not None, "a stored call has an id"
    session.execute(update(CALL).where(CALL.c.id == call_id).values(**values))


def patients_by_phone(session: Session, e164: str) -> list[Any]:
    """Followed patients with this number (main or alternate) that no nurse flagged wrong."""
    rows = session.execute(
        select(*_PATIENT_COLUMNS).where(
            or_(PATIENT.c.phone == e164, PATIENT.c.phone_alt == e164), PATIENT.c.status.in_(_FOLLOWED)
        )
    ).all()
    return [r for r in rows if e164 not in (r.flagged_numbers or [])]


def patients_by_member_key(session: Session, key: str, birth_year: int) -> list[Any]:
    """Followed patients whose member id, without leading zeros, is `key`, born in `birth_year`."""
    return list(
        session.execute(
            select(*_PATIENT_COLUMNS).where(
                PATIENT.c.member_key == key,
                extract("year", PATIENT.c.birth_date) == birth_year,
                PATIENT.c.status.in_(_FOLLOWED),
            )
        ).all()
    )


def patient_row(session: Session, patient_id: int) -> Any | None:
    return session.execute(select(*_PATIENT_COLUMNS).where(PATIENT.c.id == patient_id)).first()


def ready_nurses(session: Session) -> list[ReadyNurse]:
    """Active nurses ready with no call, as their owners stored them (the staff's presence board)."""
    return [
        ReadyNurse(v.nurse_id, NurseLevel(v.level), frozenset(v.skills), v.since)
        for v in ready_board(session)
        if v.since is not None  # a stored row always has one
    ]


def call_of_attempt(session: Session, attempt_id: int) -> tuple[str, str] | None:
    """(backend, the backend's call id) of the inbound call a nurse's attempt records, if not over."""
    row = session.execute(
        select(CALL.c.backend, CALL.c.call_id).where(
            CALL.c.attempt_id == attempt_id, CALL.c.state != CallState.ended.value
        )
    ).first()
    return None if row is None else (row.backend, row.call_id)


def owner_of_attempt(session: Session, attempt_id: int) -> str | None:
    """The dialer process that holds an attempt: its line's worker, else the attempt's own."""
    line = lines_of(session, [attempt_id]).get(attempt_id)
    if line is not None:
        return line.worker
    return session.execute(select(ATTEMPT.c.worker).where(ATTEMPT.c.id == attempt_id)).scalar_one_or_none()
