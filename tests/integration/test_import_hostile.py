"""Hostile import files, each one seen in the field: the bad row is named, the good rows kept.

Every test runs on SQLite and on PostgreSQL (`db_url`): PostgreSQL refuses what
SQLite stores (a NUL), and the two write paths differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from factories import sessions_with_nurses
from sqlmodel import select

from campaign.clock import VirtualClock
from campaign.db import SessionFactory
from campaign.imports import ImportSummary, import_patients
from campaign.model import Patient, Physician
from campaign.policy import Policy, load_policy

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
HEADER = "member_id;last_name;first_name;birth_date;phone;postal_code;city;pathologies;tier;Remarque"


@pytest.fixture
def sessions(db_url: str) -> Iterator[SessionFactory]:
    factory, engine = sessions_with_nurses(db_url, 2)
    yield factory
    engine.dispose()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def row(member_id: str, k: int, city: str = "Paris", *, last_name: str = "Dupont", note: str = "") -> str:
    """A valid row (fiction number 01 99 00 xx xx), with the given city and remark."""
    return f"{member_id};{last_name};Jean;1950-01-01;01990{k:05d};75011;{city};diabète;faible;{note}"


def write(tmp_path: Path, *lines: str, name: str = "patients.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *lines)) + "\n", encoding="utf-8", newline="")
    return path


def run(sessions: SessionFactory, policy: Policy, path: Path, **kwargs: Any) -> ImportSummary:
    return import_patients(sessions, path, VirtualClock(NOW), policy, **kwargs)


def stored(sessions: SessionFactory) -> dict[str, Patient]:
    with sessions() as s:
        return {p.member_id: p for p in s.exec(select(Patient)).all()}


def rejections(summary: ImportSummary) -> dict[int, tuple[str, str]]:
    return {r.line: (r.field, r.reason) for r in summary.rejected}


def test_a_nul_rejects_its_row_and_keeps_the_others(sessions, policy, tmp_path) -> None:
    """PostgreSQL refused the whole import over one NUL (nothing stored); SQLite stored it."""
    path = write(
        tmp_path,
        row("AB0001", 1),
        row("AB0002", 2, city="Pa\x00ris"),
        "AB0003;Dupont;Jean;1950-01-01;0199000003;75011;Paris;diab\x00ète;faible;",
        row("AB0004", 4, note="a NUL in a column the import ignores: \x00"),
        row("AB0005", 5),
    )

    summary = run(sessions, policy, path, batch_size=2)

    found = rejections(summary)
    assert set(found) == {3, 4}
    assert found[3][0] == "city" and "NUL" in found[3][1]
    assert found[4][0] == "pathologies" and "NUL" in found[4][1]
    patients = stored(sessions)
    assert set(patients) == {"AB0001", "AB0004", "AB0005"}
    assert all("\x00" not in p.city for p in patients.values())


def test_a_value_over_the_csv_field_limit_rejects_its_row_and_reading_goes_on(
    sessions, policy, tmp_path
) -> None:
    """The csv module's 128 KiB limit stopped the import: every row after it was lost."""
    huge = "x" * 200_000
    path = write(
        tmp_path,
        row("AB0001", 1),
        row("AB0002", 2, city=f'"{huge}"'),
        row("AB0003", 3),
        row("AB0004", 4, note=huge),  # too long, but in a column the import ignores
        row("AB0005", 5),
    )

    summary = run(sessions, policy, path, batch_size=2)

    assert summary.total == 5
    assert rejections(summary) == {3: ("city", "longer than 131072 characters")}
    assert set(stored(sessions)) == {"AB0001", "AB0003", "AB0004", "AB0005"}


def test_an_unclosed_quote_rejects_its_row_only(sessions, policy, tmp_path) -> None:
    """The quote swallowed the following rows: neither imported nor reported."""
    path = write(
        tmp_path,
        row("AB0001", 1),
        row("AB0002", 2, city='"Paris'),
        row("AB0003", 3),
        row("AB0004", 4, city='"Lyon"'),  # its quotes closed the swallowing mid-line
        row("AB0005", 5),
        row("AB0006", 6, city='"Nantes'),  # up to the end of the file
    )

    summary = run(sessions, policy, path, batch_size=2)

    assert summary.total == 6
    found = rejections(summary)
    assert set(found) == {3, 7}
    assert found[3][0] == "city" and "quote" in found[3][1]
    assert found[7][0] == "city"
    patients = stored(sessions)
    assert set(patients) == {"AB0001", "AB0003", "AB0004", "AB0005"}
    assert patients["AB0004"].city == "Lyon"


def test_an_unclosed_quote_swallowing_more_than_the_field_limit(sessions, policy, tmp_path) -> None:
    """The swallowed lines overflow the csv reader's field limit: each is read again on its own."""
    lines = [row("AB0001", 1), row("AB0002", 2, city='"Paris')]
    lines += [row(f"C{k:06d}", 100 + k) for k in range(2500)]  # ~150 KB after the quote

    summary = run(sessions, policy, write(tmp_path, *lines), batch_size=500)

    assert summary.total == 2502
    assert [(r.line, r.field) for r in summary.rejected] == [(3, "city")]
    assert summary.inserted == 2501


def test_a_carriage_return_inside_a_quoted_value_is_not_a_line_break(sessions, policy, tmp_path) -> None:
    """A spreadsheet cell holding a CR: the row is one line of the file, read as one."""
    path = write(tmp_path, row("AB0001", 1, city='"\rParis"'), row("AB0002", 2, city='"Saint-\rDenis"'))

    summary = run(sessions, policy, path)

    assert summary.rejected == []
    patients = stored(sessions)
    assert (patients["AB0001"].city, patients["AB0002"].city) == ("Paris", "Saint- Denis")


def test_old_mac_line_endings_still_read(sessions, policy, tmp_path) -> None:
    """Lines ended by a lone CR (old Mac office software): an unclosed quote still costs one row."""
    path = tmp_path / "mac.csv"
    lines = (HEADER, row("AB0001", 1), row("AB0002", 2, city='"Paris'), row("AB0003", 3))
    path.write_bytes(("\r".join(lines) + "\r").encode())

    summary = run(sessions, policy, path)

    assert [(r.line, r.field) for r in summary.rejected] == [(3, "city")]
    assert set(stored(sessions)) == {"AB0001", "AB0003"}


def test_a_cell_a_spreadsheet_would_run_is_refused_in_free_text(sessions, policy, tmp_path) -> None:
    """=HYPERLINK(…) in a city, +cmd|… in a physician's name, -Jean as a name were stored as typed."""
    path = tmp_path / "formulas.csv"
    path.write_text(
        "member_id;last_name;first_name;birth_date;phone;postal_code;city;pathologies;tier;rpps;médecin\n"
        "AB0001;Dupont;Jean;1950-01-01;0199000001;75011;Paris;diabète;faible;10000000011;Dr Lefèvre\n"
        'AB0002;Dupont;Jean;1950-01-01;0199000002;75011;"=HYPERLINK(""http://x.invalid"";""Paris"")";'
        "diabète;faible;;\n"
        "AB0003;Dupont;Jean;1950-01-01;0199000003;75011;Paris;diabète;faible;10000000029;"
        "+cmd|' /C calc'!A0\n"
        "AB0004;-Dupont;Jean;1950-01-01;0199000004;75011;Paris;diabète;faible;;\n"
        "AB0005;Dupont;+Jean;1950-01-01;0199000005;75011;Paris;diabète;faible;;\n"
        'AB0006;Dupont;Jean;1950-01-01;0199000006;75011;"\r-2+3";diabète;faible;;\n'
        "AB0007;Dupont;Jean;1950-01-01;0199000007;75011;\t@SUM(1+1);diabète;faible;;\n"
        'AB0008;Dupont;Jean;1950-01-01;0199000008;75011;"\tSaint-Denis";diabète;faible;;\n',
        encoding="utf-8",
        newline="",
    )

    summary = run(sessions, policy, path)

    assert rejections(summary) == {
        3: ("city", "starts with '=': a spreadsheet would run it as a formula"),
        4: ("physician_name", "starts with '+': a spreadsheet would run it as a formula"),
        5: ("last_name", "starts with '-': a spreadsheet would run it as a formula"),
        6: ("first_name", "starts with '+': a spreadsheet would run it as a formula"),
        7: ("city", "starts with '-': a spreadsheet would run it as a formula"),
        8: ("city", "starts with '@': a spreadsheet would run it as a formula"),
    }
    patients = stored(sessions)
    assert set(patients) == {"AB0001", "AB0008"}
    assert patients["AB0008"].city == "Saint-Denis"
    with sessions() as s:
        assert [p.name for p in s.exec(select(Physician)).all()] == ["Dr Lefèvre"]
