"""The import gives the same result on SQLite and on PostgreSQL.

PostgreSQL COPYs each batch's new member ids straight into the table and merges the
known ones from a staging table (registry_pg._upsert_batch_pg); SQLite compares rows in
Python (registry._upsert_batch).
Same file, same counts, same rows, same audit, whichever the backend; batches are
kept small here so several of them are exercised.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import registry_record, sessions_with_nurses
from sqlalchemy import select

from campaign.clock import VirtualClock
from campaign.db import SessionFactory
from campaign.imports import import_patients
from campaign.model import AuditEvent, Nurse, Patient, Physician
from campaign.policy import Policy, load_policy
from campaign.store.registry import PatientRecord, upsert_patients
from campaign.synthetic import generate_patients_csv

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "patients.sample.csv"
BROKEN = ROOT / "tests" / "data" / "patients-broken.csv"
NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
VOLATILE = {"id", "referent_nurse_id", "physician_id"}


@pytest.fixture
def sessions(db_url: str) -> Iterator[SessionFactory]:
    factory, engine = sessions_with_nurses(db_url, 6)
    yield factory
    engine.dispose()


@pytest.fixture
def pg_db(pg_cluster) -> Iterator[tuple[str, SessionFactory]]:  # type: ignore[no-untyped-def]
    """The COPY path is PostgreSQL's: its own database, not the SQLite/PostgreSQL pair."""
    url = pg_cluster.create_database()
    factory, engine = sessions_with_nurses(url, 6)
    yield url, factory
    engine.dispose()
    pg_cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _patients(sessions: SessionFactory) -> dict[str, dict[str, Any]]:
    with sessions() as s:
        nurses = {n.id: n.code for n in s.exec(select(Nurse)).scalars()}
        doctors = {p.id: (p.rpps, p.name) for p in s.exec(select(Physician)).scalars()}
        out = {}
        for p in s.exec(select(Patient)).scalars():
            row = {k: v for k, v in p.model_dump().items() if k not in VOLATILE}
            row["referent"] = nurses.get(p.referent_nurse_id)
            row["physician"] = doctors.get(p.physician_id)
            out[p.member_id] = row
        return out


def test_sample_reimport_and_edits(sessions, policy, tmp_path) -> None:
    clock = VirtualClock(NOW)
    first = import_patients(sessions, SAMPLE, clock, policy, batch_size=5)
    assert (first.total, first.inserted, first.updated, first.unchanged, first.rejected) == (12, 12, 0, 0, [])
    stored = _patients(sessions)
    assert stored["100200303"]["status"] == "enrolled" and stored["100200303"]["consent"] is True
    assert stored["100200305"]["suspended_until"] == date(2030, 12, 31)
    assert stored["100200302"]["preferred_start"] is not None
    assert stored["100200301"]["referent"] == "N001"
    assert all(p["updated_at"] == NOW for p in stored.values())
    assert all(p["flagged_numbers"] == [] for p in stored.values())

    clock.advance_to(NOW + timedelta(days=1))
    again = import_patients(sessions, SAMPLE, clock, policy, batch_size=5)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 12)
    assert _patients(sessions) == stored

    # a nurse records an opt-out; a file with a blank status must not undo it
    with sessions() as s:
        p = s.exec(select(Patient).where(Patient.member_id == "100200303")).scalar_one()
        p.status, p.consent = "withdrawn", False
        s.add(p)
        s.commit()
    text = SAMPLE.read_text(encoding="utf-8-sig")
    edited = text.replace("0261911235;01.99.00.12.35;44000;Nantes", "0261911299;;44000;Nantes")
    edited = edited.replace("Dr Paul Lefèvre;", "Dr Paul Lefèvre-Durand;")
    path = tmp_path / "edited.csv"
    path.write_text(edited, encoding="utf-8")
    clock.advance_to(NOW + timedelta(days=2))
    edit = import_patients(sessions, path, clock, policy, batch_size=5)
    assert (edit.inserted, edit.updated, edit.unchanged, edit.rejected) == (0, 1, 11, [])
    after = _patients(sessions)
    assert (after["100200302"]["phone"], after["100200302"]["phone_alt"]) == ("+33261911299", None)
    assert after["100200302"]["updated_at"] == clock.now()
    assert (after["100200303"]["status"], after["100200303"]["consent"]) == ("withdrawn", False)
    assert after["100200301"]["physician"] == ("10000000011", "Dr Paul Lefèvre-Durand")
    assert after["100200301"]["updated_at"] == NOW  # a physician's new name is not the patient's
    with sessions() as s:
        audits = [json.loads(a.detail) for a in s.exec(select(AuditEvent)).scalars()]
    assert [a["inserted"] for a in audits] == [12, 0, 0]


def test_absent_columns_are_left_alone(sessions, policy, tmp_path) -> None:
    clock = VirtualClock(NOW)
    import_patients(sessions, SAMPLE, clock, policy)
    path = tmp_path / "minimal.csv"
    path.write_text(
        "numéro d'adhérent;nom;prénom;date de naissance;téléphone;code postal;pathologies;"
        "niveau de risque\n"
        "100200302;Bernard;Louis;1948-07-02;0261911235;44000;"
        "insuffisance cardiaque + diabète;élevé\n"
        "100200301;MARTIN;Jeanne;12/03/1956;01 99 00 12 34;75011;Diabète;élevé\n"
        "NEW0001;Petit;Anne;1960-01-01;01 99 00 99 99;75011;asthme;faible\n",
        encoding="utf-8",
    )
    clock.advance_to(NOW + timedelta(days=1))
    summary = import_patients(sessions, path, clock, policy)
    assert (summary.inserted, summary.updated, summary.unchanged) == (1, 1, 1)
    stored = _patients(sessions)
    assert stored["100200302"]["phone_alt"] == "+33199001235" and stored["100200302"]["referent"]
    assert stored["100200301"]["tier"] == "high" and stored["100200301"]["referent"] == "N001"
    assert stored["NEW0001"]["status"] == "enrolled" and stored["NEW0001"]["consent"] is True


def test_broken_file_and_direct_registry_calls(sessions, policy) -> None:
    summary = import_patients(sessions, BROKEN, VirtualClock(NOW), policy, batch_size=2)
    assert (summary.total, summary.inserted, len(summary.rejected)) == (10, 3, 7)
    assert [r.line for r in summary.rejected] == sorted(r.line for r in summary.rejected)

    record = registry_record()
    unknown_nurse = PatientRecord(
        **{**_fields(record), "member_id": "AB13", "referent_nurse": "N999", "line": 8}
    )
    duplicate = PatientRecord(**{**_fields(record), "line": 9})
    with sessions() as s:
        result = upsert_patients(s, [record, unknown_nurse, duplicate], NOW)
        s.commit()
    assert tuple(result) == (1, 0, 0)
    assert [(r.line, r.field) for r in result.rejected] == [(9, "member_id"), (8, "referent_nurse")]


def _fields(rec: PatientRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in PatientRecord.__slots__}


def test_generated_file_same_rows_on_both_backends(sessions, policy, tmp_path) -> None:
    path = generate_patients_csv(
        tmp_path / "gen.csv", 1500, seed=3, nurse_codes=[f"N{i:03d}" for i in range(1, 7)]
    )
    clock = VirtualClock(NOW)
    ticks: list[tuple[int, int]] = []
    summary = import_patients(
        sessions, path, clock, policy, batch_size=400, progress=lambda d, t: ticks.append((d, t))
    )
    assert (summary.total, summary.inserted, summary.rejected) == (1500, 1500, [])
    assert ticks[-1] == (1500, 1500) and len(ticks) >= 4
    stored = _patients(sessions)
    assert len(stored) == 1500
    assert sum(p["physician"] is not None for p in stored.values()) == 1500
    again = import_patients(sessions, path, clock, policy, batch_size=400)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1500)
    assert _patients(sessions) == stored


def test_postgresql_copy_falls_back_to_the_merge_on_a_concurrent_insert(pg_db, policy, monkeypatch) -> None:
    """A member id inserted by another session after the batch looked it up: no error, no loss."""
    db_url, sessions = pg_db
    import psycopg

    from campaign.store import registry_pg

    original = registry_pg._copy_new_patients
    raced: list[str] = []

    def racing_copy(cur: Any, rows: Any, now: datetime) -> None:
        if not raced:
            raced.append(rows[0][0])
            conninfo = db_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(conninfo, autocommit=True) as other:
                other.execute(
                    "INSERT INTO patient (member_id, first_name, last_name, birth_date, phone, "
                    "flagged_numbers, postal_code, city, departement, timezone, pathologies, tier, "
                    "status, consent) VALUES (%s, 'X', 'Y', '1950-01-01', '+33199009999', '[]', "
                    "'75011', '', '75', 'Europe/Paris', '|asthma|', 'low', 'enrolled', true)",
                    (rows[0][0],),
                )
        original(cur, rows, now)

    monkeypatch.setattr(registry_pg, "_copy_new_patients", racing_copy)
    summary = import_patients(sessions, SAMPLE, VirtualClock(NOW), policy)

    assert (summary.inserted, summary.updated, summary.unchanged, summary.rejected) == (11, 1, 0, [])
    stored = _patients(sessions)
    assert len(stored) == 12
    assert stored[raced[0]]["last_name"] != "Y" and stored[raced[0]]["updated_at"] == NOW
