"""Member ids: one patient however the id is typed, and no second patient for an id Excel ate the zeros of.

`hx0002` and `HX0002` were two patients with one phone, both called in the same
wave; `0012345` and `12345` (Excel drops leading zeros) too. On SQLite and on
PostgreSQL (`db_url`): the lookup of similar ids is the registry's, per backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from factories import registry_record
from sqlalchemy import text
from sqlmodel import col, select
from typer.testing import CliRunner

from campaign import migrate
from campaign.clock import VirtualClock
from campaign.db import SessionFactory, make_engine, session_factory
from campaign.imports import ImportSummary, import_patients
from campaign.model import AuditEvent, Patient, Physician
from campaign.policy import Policy, load_policy
from campaign.store.registry import PatientRecord, get_patient_by_member_id, upsert_patients

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
HEADER = "member_id;last_name;first_name;birth_date;phone;postal_code;city;pathologies;tier;rpps;médecin"
SIMILAR = (
    "same as a known member id without its leading zeros; check the file, or import again with "
    "--accept-similar-ids"
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Any) -> SessionFactory:
    migrate.upgrade(engine)
    return session_factory(engine)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def row(member_id: str, k: int, city: str = "Paris", rpps: str = "") -> str:
    doctor = f"Dr Fictif {rpps[-2:]}" if rpps else ""
    return f"{member_id};Dupont;Jean;1950-01-01;01990{k:05d};75011;{city};diabète;faible;{rpps};{doctor}"


def run(sessions: SessionFactory, policy: Policy, tmp_path: Path, *rows: str, **kwargs: Any) -> ImportSummary:
    path = tmp_path / "patients.csv"
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return import_patients(sessions, path, VirtualClock(NOW), policy, **kwargs)


def ids(sessions: SessionFactory) -> set[str]:
    with sessions() as s:
        return {p.member_id for p in s.exec(select(Patient)).all()}


def rejections(summary: ImportSummary) -> dict[int, str]:
    assert all(r.field == "member_id" for r in summary.rejected)
    return {r.line: r.reason for r in summary.rejected}


def test_case_and_spaces_make_no_second_patient(sessions, policy, tmp_path) -> None:
    summary = run(sessions, policy, tmp_path, row("hx0002", 1), row("HX0002", 2), row("ab 0003", 3))

    assert rejections(summary) == {3: "duplicate of line 2"}
    assert ids(sessions) == {"HX0002", "AB0003"}
    with sessions() as s:
        patient = get_patient_by_member_id(s, " hx 0002 ")
        assert patient is not None and patient.member_id == "HX0002"

    again = run(sessions, policy, tmp_path, row("Hx0002", 1, city="Lyon"), row("AB0003", 3))
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 1, 1, [])
    assert ids(sessions) == {"HX0002", "AB0003"}


def test_an_id_without_the_leading_zeros_of_a_stored_one_is_refused(sessions, policy, tmp_path) -> None:
    run(sessions, policy, tmp_path, row("0012345", 1), row("67890", 2))

    summary = run(
        sessions,
        policy,
        tmp_path,
        row("00067890", 4, rpps="10000000011"),  # its physician is not created either
        row("0012345", 1),  # the stored one itself: an update like any other
        row("12345", 3),  # like the stored one, and like line 3 of this file
    )

    line_3 = SIMILAR.replace("a known member id", "the member id of line 3")
    assert rejections(summary) == {2: SIMILAR, 4: line_3}
    assert (summary.inserted, summary.unchanged) == (0, 1)
    assert ids(sessions) == {"0012345", "67890"}
    with sessions() as s:
        assert s.exec(select(Physician)).all() == []

    confirmed = run(sessions, policy, tmp_path, row("12345", 3), row("00067890", 4), accept_similar_ids=True)
    assert (confirmed.inserted, confirmed.rejected) == (2, [])
    assert ids(sessions) == {"0012345", "12345", "67890", "00067890"}
    both = run(sessions, policy, tmp_path, row("12345", 3), row("0012345", 1))
    assert (both.unchanged, both.rejected) == (2, [])


def test_leading_zeros_within_one_file(sessions, policy, tmp_path) -> None:
    rows = (row("0012345", 1), row("12345", 2), row("012345", 3), row("0012345", 4))

    summary = run(sessions, policy, tmp_path, *rows, batch_size=2)

    similar = SIMILAR.replace("a known member id", "the member id of line 2")
    assert rejections(summary) == {3: similar, 4: similar, 5: "duplicate of line 2"}
    assert ids(sessions) == {"0012345"}

    confirmed = run(sessions, policy, tmp_path, *rows, row("12345", 5), accept_similar_ids=True)
    assert rejections(confirmed) == {5: "duplicate of line 2", 6: "duplicate of line 3"}
    assert ids(sessions) == {"0012345", "12345", "012345"}


def test_a_similar_id_late_in_a_large_batch_is_found(sessions, policy, tmp_path) -> None:
    """The id lookup may not stop at a probe of the batch's first rows (PostgreSQL's shortcut)."""
    run(sessions, policy, tmp_path, row("12345", 1))

    new = [row(f"N{k:05d}", 10 + k) for k in range(100)]
    summary = run(sessions, policy, tmp_path, *new, row("0012345", 2))

    assert rejections(summary) == {102: SIMILAR}
    assert summary.inserted == 100


def test_the_registry_refuses_similar_ids_on_its_own(sessions) -> None:
    record = registry_record(member_id="0012345")
    similar = PatientRecord(**{**_fields(record), "member_id": "12345", "line": 8})
    with sessions() as s:
        first = upsert_patients(s, [record], NOW)
        second = upsert_patients(s, [similar], NOW)
        third = upsert_patients(s, [similar], NOW, accept_similar_ids=True)
        s.commit()
    assert (tuple(first), tuple(second), tuple(third)) == ((1, 0, 0), (0, 0, 0), (1, 0, 0))
    assert [(r.line, r.reason) for r in second.rejected] == [(8, SIMILAR)]


def _fields(rec: PatientRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in PatientRecord.__slots__}


def test_the_command_takes_accept_similar_ids(db_url, sessions, tmp_path, monkeypatch) -> None:
    from dialer.cli import app

    run(sessions, load_policy(), tmp_path, row("12345", 1))
    path = tmp_path / "zeros.csv"
    path.write_text(f"{HEADER}\n{row('0012345', 2)}\n", encoding="utf-8")
    runner = CliRunner(env={"CARECALL_DATABASE_URL": db_url, "CARECALL_LOG_FORMAT": "json", "COLUMNS": "200"})

    refused = runner.invoke(app, ["patients", "import", str(path)])
    assert refused.exit_code == 1
    assert "--accept-similar-ids" in " ".join(refused.stdout.split())
    confirmed = runner.invoke(app, ["patients", "import", str(path), "--accept-similar-ids"])
    assert confirmed.exit_code == 0, confirmed.stdout
    assert ids(sessions) == {"12345", "0012345"}
    with sessions() as s:
        trail = [json.loads(a.detail) for a in s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]
    assert [t.get("accept_similar_ids") for t in trail] == [None, None, True]


def test_the_upgrade_normalises_stored_ids_it_can(db_url, engine, policy, tmp_path) -> None:
    """Ids stored before: upper-cased unless that would merge two patients; then left, for a person."""
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        for member_id in ("hx0002", "HX0002", "ab0003", "cd 0004", "0012345", "Ef0005", "EF0005 "):
            conn.execute(
                text(
                    "INSERT INTO patient (member_id, first_name, last_name, birth_date, phone, "
                    "flagged_numbers, postal_code, city, departement, timezone, pathologies, tier, "
                    "status, consent) VALUES (:m, 'X', 'Y', '1950-01-01', '+33199009999', '[]', "
                    "'75011', '', '75', 'Europe/Paris', '|asthma|', 'low', 'enrolled', true)"
                ),
                {"m": member_id},
            )

    migrate.upgrade(engine)

    sessions = session_factory(engine)
    with sessions() as s:
        keys = {p.member_id: p.member_key for p in s.exec(select(Patient)).all()}
    assert keys == {
        "hx0002": "hx0002",  # HX0002 is another patient: a probable duplicate, left as it is
        "HX0002": "HX0002",
        "AB0003": "AB0003",
        "CD0004": "CD0004",
        "0012345": "12345",
        "Ef0005": "Ef0005",  # both would become EF0005
        "EF0005 ": "EF0005 ",
    }
    summary = run(sessions, policy, tmp_path, row("ab0003", 1), row("12345", 2), row("0012345", 3))
    assert rejections(summary) == {3: SIMILAR}
    assert summary.updated == 2


def test_the_member_key_lookup_uses_its_index(engine, sessions) -> None:
    """A national import looks up 900,000 keys, a batch at a time: never by scanning the table."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            plan = conn.execute(
                text("EXPLAIN QUERY PLAN SELECT member_id FROM patient WHERE member_key IN ('1', '2')")
            ).all()
            assert "USING INDEX ix_patient_member_key" in " ".join(str(r[-1]) for r in plan)
        else:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = conn.execute(
                text("EXPLAIN SELECT member_id FROM patient WHERE member_key = ANY(ARRAY['1', '2'])")
            ).all()
            assert "ix_patient_member_key" in " ".join(r[0] for r in plan)
