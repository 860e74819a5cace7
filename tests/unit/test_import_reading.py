"""Reading records from a file: a broken line costs that line, never the ones after it."""

from __future__ import annotations

import io

import pytest

from campaign.imports.reading import _Lines, _records
from campaign.store.registry import RowRejection

NAMES = ["member_id", "last_name", "city", ""]


def _read(text: str, chunk: int, first: int = 2) -> list[tuple[int, object]]:
    stream = io.StringIO(text, newline="")
    out: list[tuple[int, object]] = []
    for record in _records(_Lines(stream, first, chunk=chunk), ";", NAMES):
        if isinstance(record, RowRejection):
            out.append((record.line, (record.field, record.reason.split(" ")[0])))
        else:
            out.append((record[0], record[1]))
    return out


GOOD = [f"M{k:04d};Nom{k};Ville{k};x\n" for k in range(40)]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_an_unclosed_quote_costs_its_line_whatever_the_chunks(chunk: int) -> None:
    """Lines are kept back to the broken record's start even when it spans many chunks."""
    text = "".join(GOOD[:3]) + 'M9999;Nom;"Ville;x\n' + "".join(GOOD[3:]) + "\n"
    records = _read(text, chunk)

    assert records[3] == (5, ("city", "a"))  # "a quote opens the value…"
    good = [r for r in records if r[0] != 5]
    numbers = [2, 3, 4, *range(6, 43)]  # line 5 is the broken one
    assert good == [(n, g.rstrip("\n").split(";")) for n, g in zip(numbers, GOOD, strict=True)]


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_a_quote_left_open_on_the_last_line(chunk: int) -> None:
    for ending in ("\n", ""):
        records = _read(GOOD[0] + 'M9999;"Nom;Ville;x' + ending, chunk)
        assert records == [(2, GOOD[0].rstrip("\n").split(";")), (3, ("last_name", "a"))]


def test_a_value_over_the_field_limit_and_one_in_an_ignored_column() -> None:
    huge = "y" * 140_000
    text = GOOD[0] + f"M1;Nom;{huge};x\n" + f"M2;Nom;Ville;{huge}\n" + GOOD[1]
    records = _read(text, 1 << 20)

    assert [r[0] for r in records] == [2, 3, 4, 5]
    assert records[1] == (3, ("city", "longer"))
    assert records[2] == (4, ["M2", "Nom", "Ville", huge])  # ignored column: the row is read


def test_blank_lines_are_skipped_and_numbered() -> None:
    records = _read("\n" + GOOD[0] + ";;;\n\n" + GOOD[1], 1 << 20)
    assert [r[0] for r in records] == [3, 6]


@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_lines_are_numbered_as_the_file_counts_them_after_a_cr_inside_quotes(chunk: int) -> None:
    """A CR inside a quoted value is not a line of the file: the rows after keep their number."""
    text = 'M1;"Nom\r\rNom";Ville;x\n' + GOOD[0] + 'M2;"Nom;Ville;x\n' + GOOD[1]
    records = _read(text, chunk)

    assert records == [
        (2, ["M1", "Nom\r\rNom", "Ville", "x"]),
        (3, GOOD[0].rstrip("\n").split(";")),
        (4, ("last_name", "a")),
        (5, GOOD[1].rstrip("\n").split(";")),
    ]
