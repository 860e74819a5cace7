"""The board's CSV exports open in a spreadsheet: no cell may run as a formula (CSV injection)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.web.board.spreadsheet import FORMULA_STARTS, cell, to_csv


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://example.invalid","clic")',
        "+33199001234",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
        "=cmd|' /C calc'!A0",
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_apostrophe(value: str) -> None:
    assert cell(value) == "'" + value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("AB12", "AB12"),
        ("nurse:IDE01", "nurse:IDE01"),
        (12, "12"),
        (0.5, "0,5"),
        (12345.67, "12345,67"),
        (None, ""),
        (date(2026, 12, 7), "07/12/2026"),
        (datetime(2026, 12, 7, 9, 5, 3, tzinfo=UTC), "07/12/2026 09:05:03"),
    ],
)
def test_plain_values_are_written_as_a_french_spreadsheet_reads_them(value: object, shown: str) -> None:
    assert cell(value) == shown


@given(st.text())
def test_no_cell_ever_starts_as_a_formula_and_none_loses_its_text(text: str) -> None:
    out = cell(text)
    assert not out.startswith(FORMULA_STARTS)
    assert out in (text, "'" + text)


@given(st.lists(st.lists(st.text(), min_size=2, max_size=2), max_size=5))
def test_the_file_read_back_has_the_same_rows_none_a_formula(rows: list[list[str]]) -> None:
    text = to_csv(["=Nom", "Détail"], rows)
    assert text.startswith("\ufeff")
    back = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=";"))
    assert back[0] == ["'=Nom", "Détail"]
    assert len(back) == len(rows) + 1
    for got, sent in zip(back[1:], rows, strict=True):
        assert [
            c.removeprefix("'") if s.startswith(FORMULA_STARTS) else c for c, s in zip(got, sent, strict=True)
        ] == sent
        assert not any(c.startswith(FORMULA_STARTS) for c in got)
