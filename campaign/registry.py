"""The patient registry's storage: batched upserts keyed by member id.

National imports carry ~900,000 patients, so nothing here works row by row.
On SQLite each batch fetches its existing patients and physicians with one IN
query each and inserts new rows with one bulk statement. On PostgreSQL the new
member ids of a batch are written with one binary COPY, and the known ones are
COPYed into a temporary staging table and merged with one set-based UPDATE of
the rows that differ (_upsert_batch_pg), which keeps a national import within a
small factor of a bare COPY. A re-import of the same data must be a no-op (no
write, `updated_at` untouched), so every patient is compared field by field
before anything is written, on both paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import structlog
from psycopg.errors import UniqueViolation
from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, SQLModel, col, select

from campaign.model import Nurse, Patient
from campaign.states import EnrolmentStatus

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

    member_id: str
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
    return session.exec(select(Patient).where(Patient.member_id == member_id.strip())).first()


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
) -> UpsertResult:
    """Insert new patients and update changed ones, keyed by member id.

    `columns` names the import columns the file had (default: all); attributes
    of absent columns are left as they are on existing patients. `nurse_ids`
    maps nurse codes (upper-case) to ids; a row naming an unknown code is
    rejected, not stored. The caller commits.
    """
    present = set(COLUMN_ATTRIBUTES) if columns is None else set(columns)
    attributes = [a for c, attrs in COLUMN_ATTRIBUTES.items() if c in present for a in attrs]
    nurses = dict(nurse_ids) if nurse_ids is not None else nurse_ids_by_code(session)
    result = UpsertResult()
    first_line: dict[str, int] = {}
    unique: list[PatientRecord] = []
    for rec in rows:
        first = first_line.setdefault(rec.member_id, rec.line)
        if len(first_line) == len(unique):  # member id seen before in this call
            result.rejected.append(RowRejection(rec.line, "member_id", f"duplicate of line {first}"))
        else:
            unique.append(rec)
    upsert = _upsert_batch_pg if is_postgresql(session) else _upsert_batch
    for batch in _chunks(unique, batch_size):
        upsert(session, batch, now, attributes, nurses, result)
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


# Every attribute an import may set, in staging-table order (PostgreSQL path: the
# tuple written for each row in _upsert_batch_pg follows this order).
# fmt: off
_STAGED = (
    "member_id", "last_name", "first_name", "birth_date", "sex", "phone", "phone_alt",
    "postal_code", "departement", "timezone", "city", "pathologies", "tier", "status",
    "suspended_until", "consent", "preferred_start", "preferred_end", "referent_nurse_id",
    "physician_id", "enrolled_on",
)
# fmt: on
assert set(_STAGED) == {a for attrs in COLUMN_ATTRIBUTES.values() for a in attrs}
_NEW_PATIENT_DEFAULTS = {"status": f"'{EnrolmentStatus.enrolled.value}'", "consent": "true"}


def _upsert_batch_pg(
    session: Session,
    batch: Sequence[PatientRecord],
    now: datetime,
    attributes: list[str],
    nurses: Mapping[str, int],
    result: UpsertResult,
) -> None:
    """The PostgreSQL batch: COPY for new member ids, a staged set-based merge for known ones.

    Same outcome and counts as `_upsert_batch`: new rows get the defaults for a
    blank status or consent, existing rows keep theirs, only attributes of the
    file's columns are compared and set, and an unchanged row is not written.
    New member ids are COPYed (binary) straight into `patient`, so a first import
    costs about what a bare COPY costs; known ones are COPYed into a temporary
    table and merged by one UPDATE of the rows that differ. Which ids are known
    is looked up for the whole batch only when a probe of its first rows finds
    one (a first import skips the lookup). Should a "new" member id exist after
    all (the probe missed it, or another session inserted it meanwhile), the
    COPY fails on the unique index, is rolled back to its savepoint, and the
    whole batch goes through the merge, whose INSERT … ON CONFLICT DO NOTHING
    leaves such rows to the UPDATE.
    """
    accepted: list[PatientRecord] = []
    nurse_of: list[int | None] = []
    physicians: dict[str, str | None] = {}
    for rec in batch:
        nurse_id = None
        if rec.referent_nurse:
            nurse_id = nurses.get(rec.referent_nurse.upper())
            if nurse_id is None:
                result.rejected.append(RowRejection(rec.line, "referent_nurse", "unknown nurse code"))
                continue
        rpps = rec.physician_rpps
        if rpps and (rec.physician_name or rpps not in physicians):
            physicians[rpps] = rec.physician_name
        accepted.append(rec)
        nurse_of.append(nurse_id)
    if not accepted:
        return
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        doctors = _upsert_physicians_pg(cur, physicians)
        # fmt: off
        rows = [
            (
                r.member_id, r.last_name, r.first_name, r.birth_date, r.sex, r.phone,
                r.phone_alt, r.postal_code, r.departement, r.timezone, r.city, r.pathologies,
                r.tier, r.status, r.suspended_until, r.consent, r.preferred_start,
                r.preferred_end, nurse_id, doctors.get(r.physician_rpps) if r.physician_rpps else None,
                r.enrolled_on,
            )
            for r, nurse_id in zip(accepted, nurse_of, strict=True)
        ]
        # fmt: on
        known = _known_member_ids(cur, [r[0] for r in rows])
        new = [r for r in rows if r[0] not in known] if known else rows
        merge = [r for r in rows if r[0] in known] if known else []
        inserted = updated = 0
        if new:
            cur.execute("SAVEPOINT patient_copy")
            try:
                _copy_new_patients(cur, new, now)
                cur.execute("RELEASE SAVEPOINT patient_copy")
                inserted = len(new)
            except UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT patient_copy")
                merge = rows
        if merge:
            merged_in, updated = _merge_patients(cur, merge, now, attributes)
            inserted += merged_in
    result.inserted += inserted
    result.updated += updated
    result.unchanged += len(accepted) - inserted - updated


_PROBE = 64


def _known_member_ids(cur: Any, member_ids: list[str]) -> set[str]:
    """The batch's member ids already stored; a probe of the first ones decides whether to look.

    When the probe finds none (a first import), the rest are taken as new without a
    lookup: a wrong guess only costs the fallback of `_upsert_batch_pg`.
    """
    query = "SELECT member_id FROM patient WHERE member_id = ANY(%s)"
    cur.execute(query, (member_ids[:_PROBE],), binary=True)
    found = {m for (m,) in cur.fetchall()}
    if not found or len(member_ids) <= _PROBE:
        return found
    cur.execute(query, (member_ids,), binary=True)
    return {m for (m,) in cur.fetchall()}


# binary COPY: psycopg dumps each value by its declared type, no text escaping
# fmt: off
_STAGED_TYPES = (
    "text", "text", "text", "date", "text", "text", "text", "text", "text", "text", "text",
    "text", "text", "text", "date", "bool", "time", "time", "int4", "int4", "date",
)
# fmt: on
_PATIENT_COPY = f"COPY patient ({', '.join(_STAGED)}, flagged_numbers, updated_at) FROM STDIN (FORMAT BINARY)"
_STATUS = _STAGED.index("status")
_CONSENT = _STAGED.index("consent")
_ENROLLED = EnrolmentStatus.enrolled.value


def _copy_new_patients(cur: Any, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
    """COPY rows of new patients, with the defaults of a blank status and consent."""
    with cur.copy(_PATIENT_COPY) as copy:
        copy.set_types([*_STAGED_TYPES, "text", "timestamptz"])  # json: its binary form is its text
        write = copy.write_row
        for r in rows:
            if r[_STATUS] is None or r[_CONSENT] is None:
                r = (
                    *r[:_STATUS],
                    r[_STATUS] or _ENROLLED,
                    *r[_STATUS + 1 : _CONSENT],
                    True if r[_CONSENT] is None else r[_CONSENT],
                    *r[_CONSENT + 1 :],
                )
            write((*r, "[]", now))


def _merge_patients(
    cur: Any, rows: Sequence[tuple[Any, ...]], now: datetime, attributes: list[str]
) -> tuple[int, int]:
    """Staged merge: insert the member ids still unknown, update the rows that differ.

    Returns (inserted, updated).
    """
    staged = ", ".join(_STAGED)
    cur.execute("DROP TABLE IF EXISTS pg_temp.patient_import")
    cur.execute(
        f"CREATE TEMP TABLE patient_import ON COMMIT DROP AS SELECT {staged} FROM patient WITH NO DATA"
    )
    with cur.copy(f"COPY patient_import ({staged}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(_STAGED_TYPES))
        write = copy.write_row
        for r in rows:
            write(r)
    values = ", ".join(
        f"coalesce(s.{a}, {_NEW_PATIENT_DEFAULTS[a]})" if a in _NEW_PATIENT_DEFAULTS else f"s.{a}"
        for a in _STAGED
    )
    cur.execute(
        f"INSERT INTO patient ({staged}, flagged_numbers, updated_at) "
        f"SELECT {values}, '[]', %(now)s FROM patient_import s "
        "ON CONFLICT (member_id) DO NOTHING",
        {"now": now},
    )
    inserted = max(cur.rowcount, 0)
    updated = 0
    compared = [a for a in attributes if a != "member_id"]
    if compared and inserted < len(rows):
        sets = ", ".join(
            f"{a} = coalesce(s.{a}, p.{a})" if a in _KEEP_WHEN_BLANK else f"{a} = s.{a}" for a in compared
        )
        differs = " OR ".join(
            f"(s.{a} IS NOT NULL AND p.{a} IS DISTINCT FROM s.{a})"
            if a in _KEEP_WHEN_BLANK
            else f"p.{a} IS DISTINCT FROM s.{a}"
            for a in compared
        )
        cur.execute(
            f"UPDATE patient p SET {sets}, updated_at = %(now)s FROM patient_import s "
            f"WHERE p.member_id = s.member_id AND ({differs})",
            {"now": now},
        )
        updated = max(cur.rowcount, 0)
    cur.execute("DROP TABLE pg_temp.patient_import")
    return inserted, updated


def _upsert_physicians_pg(cur: Any, physicians: Mapping[str, str | None]) -> dict[str, int]:
    """upsert_physicians with array parameters (a batch names thousands of physicians)."""
    if not physicians:
        return {}
    cur.execute("SELECT rpps, id, name FROM physician WHERE rpps = ANY(%s)", (list(physicians),))
    ids: dict[str, int] = {}
    renamed: list[tuple[int, str]] = []
    for rpps, pid, known_name in cur.fetchall():
        ids[rpps] = pid
        name = physicians[rpps]
        if name and known_name != name:
            renamed.append((pid, name))
    if renamed:
        cur.execute(
            "UPDATE physician p SET name = v.name "
            "FROM unnest(%s::int[], %s::text[]) AS v(id, name) WHERE p.id = v.id",
            ([pid for pid, _ in renamed], [name for _, name in renamed]),
        )
    new = [rpps for rpps in physicians if rpps not in ids]
    if new:
        cur.execute(
            "INSERT INTO physician (rpps, name) SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (rpps) DO NOTHING",
            (new, [physicians[rpps] or "" for rpps in new]),
        )
        cur.execute("SELECT rpps, id FROM physician WHERE rpps = ANY(%s)", (new,))
        ids.update(dict(cur.fetchall()))
    return ids


def _upsert_batch(
    session: Session,
    batch: Sequence[PatientRecord],
    now: datetime,
    attributes: list[str],
    nurses: Mapping[str, int],
    result: UpsertResult,
) -> None:
    accepted = _accepted(batch, nurses, result)
    if not accepted:
        return
    physician_ids = upsert_physicians(session, _batch_physicians_dict(accepted))

    member_ids = [rec.member_id for rec, _ in accepted]
    existing = {
        p.member_id: p
        for p in session.exec(select(Patient).where(col(Patient.member_id).in_(member_ids))).all()
    }
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
