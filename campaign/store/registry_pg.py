"""The registry's PostgreSQL path: binary COPY for new patients, a staged merge for known ones.

A national import writes ~900,000 patients: new member ids are COPYed (binary)
straight into `patient`, known ones are COPYed into a temporary staging table and
merged with one set-based UPDATE of the rows that differ, which keeps the import
within a small factor of a bare COPY. Same outcome and counts as the SQLite path
(campaign.store.registry._upsert_batch); upsert_patients chooses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.errors import UniqueViolation
from sqlmodel import Session

from campaign.member_ids import MemberIds, member_key
from campaign.states import EnrolmentStatus
from campaign.store.registry import (
    _KEEP_WHEN_BLANK,
    COLUMN_ATTRIBUTES,
    PatientRecord,
    UpsertResult,
    _accepted,
    _batch_physicians_dict,
    _not_similar,
)

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
    similar: MemberIds | None,
) -> None:
    """The PostgreSQL batch: COPY for new member ids, a staged set-based merge for known ones.

    Same outcome and counts as `_upsert_batch`: new rows get the defaults for a
    blank status or consent, existing rows keep theirs, only attributes of the
    file's columns are compared and set, an unchanged row is not written, and a
    new id like a stored one (leading zeros aside) is refused unless accepted.
    New member ids are COPYed (binary) straight into `patient`, so a first import
    costs about what a bare COPY costs; known ones are COPYed into a temporary
    table and merged by one UPDATE of the rows that differ. Should a "new" member
    id exist after all (another session inserted it meanwhile, or the probe of
    _stored_ids missed it), the COPY fails on the unique index, is rolled back to
    its savepoint, and the whole batch goes through the merge, whose INSERT … ON
    CONFLICT DO NOTHING leaves such rows to the UPDATE.
    """
    accepted = _accepted(batch, nurses, result)
    if not accepted:
        return
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        keys = [member_key(r.member_id) for r, _ in accepted]
        known, known_keys = _stored_ids(cur, keys, probe=similar is None)
        if similar is not None:
            accepted = _not_similar(accepted, known, known_keys, similar, result)
        doctors = _upsert_physicians_pg(cur, _batch_physicians_dict(accepted))
        # fmt: off
        rows = [
            (
                r.member_id, r.last_name, r.first_name, r.birth_date, r.sex, r.phone,
                r.phone_alt, r.postal_code, r.departement, r.timezone, r.city, r.pathologies,
                r.tier, r.status, r.suspended_until, r.consent, r.preferred_start,
                r.preferred_end, nurse_id, doctors.get(r.physician_rpps) if r.physician_rpps else None,
                r.enrolled_on,
            )
            for r, nurse_id in accepted
        ]
        # fmt: on
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
_STORED = "SELECT member_id, member_key FROM patient WHERE member_key = ANY(%s)"


def _stored_ids(cur: Any, keys: list[str], probe: bool) -> tuple[set[str], set[str]]:
    """The stored member ids whose member_key is one of `keys`, and those keys (index lookups).

    Every key is looked up when similar ids are refused: one of them may be like
    a stored id. Otherwise (`probe`) a probe of the first keys decides: when it
    finds none (a first import), the rest are taken as new without a lookup, and
    a wrong guess only costs the fallback of `_upsert_batch_pg`.
    """
    if probe:
        cur.execute(_STORED, (keys[:_PROBE],), binary=True)
        if not cur.rowcount or len(keys) <= _PROBE:
            found = cur.fetchall()
            return {m for m, _ in found}, {k for _, k in found}
    cur.execute(_STORED, (keys,), binary=True)
    found = cur.fetchall()
    return {m for m, _ in found}, {k for _, k in found}


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
