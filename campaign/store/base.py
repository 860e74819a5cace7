"""What every part of the store uses: the column lists, the status sets, id batches,
and turning a patient row into what the rules read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from campaign import calendar as cal
from campaign.model import PATIENT
from campaign.policy import Tier
from campaign.rules import PatientState
from campaign.states import TERMINAL_TASK_STATUSES, EnrolmentStatus, TaskStatus

OPEN_TASK_STATUSES = (TaskStatus.pending.value, TaskStatus.in_progress.value)
TERMINAL = tuple(s.value for s in TERMINAL_TASK_STATUSES)

PATIENT_RULE_COLUMNS = (
    PATIENT.c.id,
    PATIENT.c.status,
    PATIENT.c.tier,
    PATIENT.c.departement,
    PATIENT.c.timezone,
    PATIENT.c.preferred_start,
    PATIENT.c.preferred_end,
    PATIENT.c.consent,
    PATIENT.c.suspended_until,
    PATIENT.c.phone,
    PATIENT.c.phone_alt,
    PATIENT.c.flagged_numbers,
    PATIENT.c.next_contact_on,
    PATIENT.c.referent_nurse_id,
    PATIENT.c.pathologies,
)


def one_of(session: Session, column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN (ids)` for a batch of ids; on PostgreSQL `column = ANY(:ids)`.

    An IN list is a new statement text for every batch size: compiled,
    converted and planned again each time. One array parameter keeps the text
    the same whatever the count, so the dialer's hot statements are compiled
    once and run as prepared statements.
    """
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def dialable_numbers(phone: str, phone_alt: str | None, flagged: Sequence[str] | None) -> list[str]:
    bad = set(flagged or ())
    return [n for n in (phone, phone_alt) if n and n not in bad]


_STATUSES = {s.value: s for s in EnrolmentStatus}
_TIERS = {t.value: t for t in Tier}


def patient_state_from_row(row: Any) -> PatientState:
    """Planning calls this once per recipient (a million for a national wave): the enums
    are looked up in a dict (the Enum call is several times slower; an unknown value
    still raises its ValueError), and the numbers are only compared when some are flagged.
    """
    flagged, phone, alt = row.flagged_numbers, row.phone, row.phone_alt
    return PatientState(
        status=_STATUSES.get(row.status) or EnrolmentStatus(row.status),
        tier=_TIERS.get(row.tier) or Tier(row.tier),
        place=cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end),
        consent=bool(row.consent),
        suspended_until=row.suspended_until,
        dialable_numbers=(
            len(dialable_numbers(phone, alt, flagged)) if flagged else (1 if phone else 0) + (1 if alt else 0)
        ),
        next_contact_on=row.next_contact_on,
    )


def place_of(row: Any) -> cal.Place:
    """Where a patient row (PATIENT_RULE_COLUMNS) lives and when they like calls."""
    return cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end)
