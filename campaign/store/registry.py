"""The patient registry's storage: batched upserts keyed by member id.

National imports carry ~900,000 patients, so nothing here works row by row.
On SQLite each batch fetches its existing patients and physicians with one IN
query each and inserts new rows with one bulk statement (here). On PostgreSQL
new member ids are COPYed and known ones merged from a staging table
(campaign.store.registry_pg). A re-import of the same data must be a no-op (no write,
`updated_at` untouched), so every patient is compared field by field before
anything is written, on both paths.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import structlog
from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, SQLModel, col, select

from campaign.member_ids import SIMILAR_ID, MemberIds, member_key
from campaign.model import Nurse, Patient
from campaign.states import EnrolmentStatus
from campaign.store.lookups import patient_by_member_id

log = structlog.get_logger()

BATCH_SIZE = 1000
# PostgreSQL: rows per COPY + merge (one transaction). Large enough that the per-batch
# costs vanish; a batch only locks the rows it changes, for the second its merge lasts.
PG_BATCH_SIZE = 50_000
_PATIENT_TABLE = SQLModel.metadata.tables["patient"]
_PHYSICIAN_TABLE = SQLModel.metadata.tables["physician"]


@dataclass(frozen=True, slots=True)
class RowRejection:
    """Why one row of an import was refused. `reason` never holds the personal value."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(slots=True)
class PatientRecord:
    """One validated patient as read from an import, before it meets the database.

    `status` and `consent` are None when the file left them blank: an existing
    patient then keeps the value on file (an opt-out recorded by a nurse must not
    be undone by a file that says nothing), a new one gets the default.
    """

    member_id: str  # as stored: member_ids.canonical_member_id (the import parser gives it so)
    last_name: str
    first_name: str
    birth_date: date
    phone: str
    postal_code: str
    departement: str
    timezone: str
    pathologies: str  # '|code|code|' (model.pathologies_to_text)
    tier: str
    sex: str | None = None
    phone_alt: str | None = None
    city: str = ""
    status: str | None = None
    suspended_until: date | None = None
    consent: bool | None = None
    preferred_start: time | None = None
    preferred_end: time | None = None
    referent_nurse: str | None = None  # nurse code
    physician_rpps: str | None = None
    physician_name: str | None = None
    enrolled_on: date | None = None
    line: int = 0  # file line, for rejections


@dataclass(slots=True)
class UpsertResult:
    """Counts of one upsert; unpacks as `(inserted, updated, unchanged)`."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowRejection] = field(default_factory=list)

    def __iter__(self) -> Iterator[int]:
        return iter((self.inserted, self.updated, self.unchanged))


# Patient attributes an import sets, grouped by the import column they come from,
# so a column absent from a file leaves existing values alone.
COLUMN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "member_id": ("member_id",),
    "last_name": ("last_name",),
    "first_name": ("first_name",),
    "birth_date": ("birth_date",),
    "sex": ("sex",),
    "phone": ("phone",),
    "phone_alt": ("phone_alt",),
    "postal_code": ("postal_code", "departement", "timezone"),
    "city": ("city",),
    "pathologies": ("pathologies",),
    "tier": ("tier",),
    "status": ("status",),
    "suspended_until": ("suspended_until",),
    "consent": ("consent",),
    "preferred_window": ("preferred_start", "preferred_end"),
    "referent_nurse": ("referent_nurse_id",),
    "physician_rpps": ("physician_id",),
    "enrolled_on": ("enrolled_on",),
}
# Blank in the file means "keep what is on file" for these (see PatientRecord).
_KEEP_WHEN_BLANK = frozenset({"status", "consent"})


def nurse_ids_by_code(session: Session) -> dict[str, int]:
    """Every nurse code (upper-cased) -> nurse id, for resolving référents in one query."""
    rows = session.exec(select(Nurse.code, Nurse.id)).all()
    return {code.upper(): nurse_id for code, nurse_id in rows if nurse_id is not None}


def get_patient_by_member_id(session: Session, member_id: str) -> Patient | None:
    """The patient with this member id, however it is typed (case, spaces): the store's lookup."""
    return patient_by_member_id(session, member_id)


def upsert_physicians(session: Session, physicians: Mapping[str, str | None]) -> dict[str, int]:
    """Create unknown physicians (RPPS -> name) and rename known ones; RPPS -> id.

    A blank name never erases a known one. Core statements on plain rows: a
    national import meets every physician of the country in each batch.
    """
    if not physicians:
        return {}
    table = _PHYSICIAN_TABLE
    existing = {
        rpps: (pid, name)
        for rpps, pid, name in session.execute(
            select(table.c.rpps, table.c.id, table.c.name).where(table.c.rpps.in_(list(physicians)))
        ).all()
    }
    ids: dict[str, int] = {}
    new = []
    renamed = []
    for rpps, name in physicians.items():
        known = existing.get(rpps)
        if known is None:
            new.append({"rpps": rpps, "name": name or "", "email": None})
            continue
        pid, known_name = known
        if name and known_name != name:
            renamed.append({"pid": pid, "new_name": name})
        ids[rpps] = pid
    if renamed:
        session.execute(
            update(table).where(table.c.id == bindparam("pid")).values(name=bindparam("new_name")),
            renamed,
        )
    if new:
        session.execute(insert(table), new)
        created = session.execute(
            select(table.c.rpps, table.c.id).where(table.c.rpps.in_([n["rpps"] for n in new]))
        ).all()
        ids.update({rpps: pid for rpps, pid in created})
    return ids


def _values(rec: PatientRecord, nurse_id: int | None, physician_id: int | None) -> dict[str, Any]:
    return {
        "member_id": rec.member_id,
        "last_name": rec.last_name,
        "first_name": rec.first_name,
        "birth_date": rec.birth_date,
        "sex": rec.sex,
        "phone": rec.phone,
        "phone_alt": rec.phone_alt,
        "postal_code": rec.postal_code,
        "departement": rec.departement,
        "timezone": rec.timezone,
        "city": rec.city,
        "pathologies": rec.pathologies,
        "tier": rec.tier,
        "status": rec.status,
        "suspended_until": rec.suspended_until,
        "consent": rec.consent,
        "preferred_start": rec.preferred_start,
        "preferred_end": rec.preferred_end,
        "referent_nurse_id": nurse_id,
        "physician_id": physician_id,
        "enrolled_on": rec.enrolled_on,
    }


def _chunks(rows: Sequence[PatientRecord], size: int) -> Iterable[Sequence[PatientRecord]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def upsert_patients(
    session: Session,
    rows: Sequence[PatientRecord],
    now: datetime,
    *,
    columns: Iterable[str] | None = None,
    nurse_ids: Mapping[str, int] | None = None,
    batch_size: int = BATCH_SIZE,
    accept_similar_ids: bool = False,
    member_ids: MemberIds | None = None,
) -> UpsertResult:
    """Insert new patients and update changed ones, keyed by member id (canonical_member_id).

    `columns` names the import columns the file had (default: all); attributes
    of absent columns are left as they are on existing patients. `nurse_ids`
    maps nurse codes (upper-case) to ids; a row naming an unknown code is
    rejected, not stored. A new member id equal to a stored one, or to another
    of `member_ids` (the file's, when an import calls batch by batch; default:
    those of this call), once leading zeros are stripped is rejected as a
    probable duplicate, unless `accept_similar_ids`. The caller commits.
    """
    present = set(COLUMN_ATTRIBUTES) if columns is None else set(columns)
    attributes = [a for c, attrs in COLUMN_ATTRIBUTES.items() if c in present for a in attrs]
    nurses = dict(nurse_ids) if nurse_ids is not None else nurse_ids_by_code(session)
    result = UpsertResult()
    if member_ids is None:  # else the rows were checked as they were read
        member_ids = MemberIds()
        checked: list[PatientRecord] = []
        for rec in rows:
            why = member_ids.check(rec.member_id, rec.line)
            if why is None:
                checked.append(rec)
            else:
                result.rejected.append(RowRejection(rec.line, "member_id", why))
        unique: Sequence[PatientRecord] = checked
    else:
        unique = rows
    similar = None if accept_similar_ids else member_ids
    if is_postgresql(session):
        from campaign.store.registry_pg import _upsert_batch_pg as upsert
    else:
        upsert = _upsert_batch
    for batch in _chunks(unique, batch_size):
        upsert(session, batch, now, attributes, nurses, result, similar)
    return result


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _accepted(
    batch: Sequence[PatientRecord], nurses: Mapping[str, int], result: UpsertResult
) -> list[tuple[PatientRecord, int | None]]:
    """The rows whose référent is a known nurse, with her id; the others are rejected."""
    accepted: list[tuple[PatientRecord, int | None]] = []
    for rec in batch:
        nurse_id = None
        if rec.referent_nurse:
            nurse_id = nurses.get(rec.referent_nurse.upper())
            if nurse_id is None:
                result.rejected.append(RowRejection(rec.line, "referent_nurse", "unknown nurse code"))
                continue
        accepted.append((rec, nurse_id))
    return accepted


def _not_similar(
    accepted: list[tuple[PatientRecord, int | None]],
    known_ids: Container[str],
    known_keys: Container[str | None],
    met: MemberIds,
    result: UpsertResult,
) -> list[tuple[PatientRecord, int | None]]:
    """The rows of stored ids, and of new ids like no stored one nor one met before; the others are rejected.

    A stored id is an update whatever else the file holds: a pair the supervisor
    accepted once stays importable without the option.
    """
    kept: list[tuple[PatientRecord, int | None]] = []
    for rec, nurse_id in accepted:
        if rec.member_id not in known_ids:
            line = met.similar_line(rec.member_id)
            if line is not None:
                reason = SIMILAR_ID.format(known=f"the member id of line {line}")
                result.rejected.append(RowRejection(rec.line, "member_id", reason))
                continue
            if member_key(rec.member_id) in known_keys:
                reason = SIMILAR_ID.format(known="a known member id")
                result.rejected.append(RowRejection(rec.line, "member_id", reason))
                continue
        kept.append((rec, nurse_id))
    return kept


def _batch_physicians_dict(
    accepted: Sequence[tuple[PatientRecord, int | None]],
) -> dict[str, str | None]:
    """RPPS -> the last name the batch gives it (None: no row names it)."""
    physicians: dict[str, str | None] = {}
    for rec, _ in accepted:
        rpps = rec.physician_rpps
        if rpps and (rec.physician_name or rpps not in physicians):
            physicians[rpps] = rec.physician_name
    return physicians


def _upsert_batch(
    session: Session,
    batch: Sequence[PatientRecord],
    now: datetime,
    attributes: list[str],
    nurses: Mapping[str, int],
    result: UpsertResult,
    similar: MemberIds | None,
) -> None:
    """The SQLite batch: one indexed lookup by member_key finds the known ids and the similar ones.

    `similar`: the ids met so far, to refuse a new one like one of them or a stored
    one (None: similar ids accepted).
    """
    accepted = _accepted(batch, nurses, result)
    if not accepted:
        return
    keys = {member_key(rec.member_id) for rec, _ in accepted}
    found = session.exec(select(Patient).where(col(Patient.member_key).in_(keys))).all()
    existing = {p.member_id: p for p in found}
    if similar is not None:
        accepted = _not_similar(accepted, existing, {p.member_key for p in found}, similar, result)
    physician_ids = upsert_physicians(session, _batch_physicians_dict(accepted))

    new_rows: list[dict[str, Any]] = []
    for rec, nurse_id in accepted:
        physician_id = physician_ids.get(rec.physician_rpps) if rec.physician_rpps else None
        values = _values(rec, nurse_id, physician_id)
        patient = existing.get(rec.member_id)
        if patient is None:
            if values["status"] is None:
                values["status"] = EnrolmentStatus.enrolled.value
            if values["consent"] is None:
                values["consent"] = True
            values.update(flagged_numbers=[], updated_at=now)
            new_rows.append(values)
            continue
        changed = False
        for attr in attributes:
            value = values[attr]
            if value is None and attr in _KEEP_WHEN_BLANK:
                continue
            if getattr(patient, attr) != value:
                setattr(patient, attr, value)
                changed = True
        if changed:
            patient.updated_at = now
            session.add(patient)
            result.updated += 1
        else:
            result.unchanged += 1
    if new_rows:
        # Core insert on the table: the ORM bulk path splits rows by which values are
        # None and runs one statement per group; this is one executemany.
        session.execute(insert(_PATIENT_TABLE), new_rows)
        result.inserted += len(new_rows)
    session.flush()
