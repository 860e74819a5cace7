"""The migrations build exactly the model's schema, on SQLite and on PostgreSQL.

If one of these fails after a model change, generate a revision:
    .venv/bin/python scripts/make_migration.py "what changed"
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from campaign import migrate
from campaign.db import make_engine
from campaign.model import Nurse, Patient, Physician


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_scripts_have_a_single_head() -> None:
    scripts = ScriptDirectory.from_config(migrate.make_config())
    assert scripts.get_heads() == [migrate.head()]
    assert scripts.get_base() == "0001"


def test_upgrade_builds_exactly_the_model(db_url: str) -> None:
    migrate.upgrade(db_url)

    assert migrate.schema_diff(db_url) == []
    assert _tables(db_url) == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_schema_diff_sees_a_drift(db_url: str) -> None:
    """The comparison is not vacuous: a column the model lacks is reported."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE wave ADD COLUMN stray INTEGER"))
    engine.dispose()

    diff = migrate.schema_diff(db_url)
    assert [d[0] for d in diff] == ["remove_column"]


def test_upgrade_is_idempotent_and_check_passes(db_url: str) -> None:
    with pytest.raises(migrate.SchemaOutOfDate, match="empty"):
        migrate.check_up_to_date(db_url)
    assert migrate.current(db_url) is None

    migrate.upgrade(db_url)
    migrate.upgrade(db_url)

    assert migrate.current(db_url) == migrate.head()
    assert migrate.check_up_to_date(db_url) == migrate.head()


def test_downgrade_to_base_then_up_again(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    assert _tables(db_url) <= {"alembic_version"}
    with pytest.raises(migrate.SchemaOutOfDate):
        migrate.check_up_to_date(db_url)

    migrate.upgrade(db_url)
    assert migrate.schema_diff(db_url) == []


def test_upgrade_accepts_an_engine_and_the_schema_holds_rows(db_url: str) -> None:
    """Round-trip through the migrated schema: aware datetimes, JSON, FKs."""
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    when = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    with Session(engine) as s:
        nurse = Nurse(code="N001", display_name="Nurse One", skills=["copd"], shifts=[])
        doc = Physician(rpps="10000000001", name="Dr Test")
        s.add_all([nurse, doc])
        s.flush()
        s.add(
            Patient(
                member_id="M1",
                first_name="A",
                last_name="B",
                birth_date=date(1950, 1, 2),
                phone="+33199001234",
                postal_code="75001",
                departement="75",
                timezone="Europe/Paris",
                pathologies="|copd|",
                tier="high",
                referent_nurse_id=nurse.id,
                physician_id=doc.id,
                last_contact_at=when,
            )
        )
        s.commit()
    with Session(engine) as s:
        patient = s.exec(select(Patient)).one()
        assert patient.last_contact_at == when
        assert s.exec(select(Nurse)).one().skills == ["copd"]
    engine.dispose()


def test_pg_url_fixture_gives_a_postgresql_database(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.dialect.name == "postgresql"
        version = conn.dialect.server_version_info
        assert version is not None and version[0] == 15
    engine.dispose()
