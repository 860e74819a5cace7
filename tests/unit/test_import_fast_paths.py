"""The import's fast paths agree with the slow ones they shortcut.

A national import parses ~900,000 rows, so `normalise_phone` answers the usual
forms from phonenumbers' metadata without calling phonenumbers.parse, and
`_parse_row` memoises pure per-value parsers. These tests pin both to the
reference behaviour on many generated inputs.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from campaign.imports import normalise_phone
from campaign.imports.phones import _OVERSEAS_PREFIXES, _normalise_phone_full
from campaign.imports.values import _Invalid

REGIONS = ["FR", "GP", "GF", "MQ", "RE", "YT"]
FORMATS = (
    "{n}",
    "{sp}",
    "{dot}",
    "+33 {s9}",
    "+33{n9}",
    "0033 {s9}",
    "{s9}",
    "+33 ({n9})",
    "{dash}",
    "0033{n9}",
    "+33 0{n9}",
    "00 33 {s9}",
    "+262 {n9}",
    "+590{n9}",
    "{n}0",
    "{n9}",
)


def _reference(text: str, region: str) -> str | None:
    raw = text.strip()
    try:
        return _normalise_phone_full(raw, "".join(c for c in raw if c.isdigit()), region)
    except _Invalid:
        return None


def _fast(text: str, region: str) -> str | None:
    try:
        return normalise_phone(text, region)
    except _Invalid:
        return None


def _typed(rng: random.Random, national: str) -> str:
    n9 = national[1:]
    pairs = " ".join(national[i : i + 2] for i in range(0, 10, 2))
    return rng.choice(FORMATS).format(
        n=national,
        n9=n9,
        sp=pairs,
        dot=pairs.replace(" ", "."),
        dash=pairs.replace(" ", "-"),
        s9=n9[0] + " " + " ".join(n9[i : i + 2] for i in range(1, 9, 2)),
    )


def test_fast_phone_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(20261207)
    prefixes = [f"{a}{b}" for a in range(10) for b in range(10)]
    prefixes += [p for p in _OVERSEAS_PREFIXES] + ["976", "809", "836", "881", "639"]
    checked = 0
    for prefix in prefixes:
        for _ in range(60):
            national = "0" + (prefix + "".join(rng.choice("0123456789") for _ in range(9)))[:9]
            text = _typed(rng, national)
            region = rng.choice(REGIONS)
            assert _fast(text, region) == _reference(text, region), (text, region)
            checked += 1
    assert checked > 6000


@pytest.mark.parametrize("region", REGIONS)
def test_fast_phone_path_on_fiction_and_overseas_numbers(region: str) -> None:
    samples = [
        "01 99 00 12 34",
        "0261911234",
        "+33 3 53 01 12 34",
        "0033 4 65 71 12 34",
        "536491234",
        "0262 12 34 56",
        "0692 12 34 56",
        "0596 12 34 56",
        "0696123456",
        "+33 6 92 12 34 56",
        "0269 61 12 34",
        "0639 69 12 34",
        "0590 12 34 56",
        "0594 12 34 56",
        "06 39 98 12 34",
        "0976 12 34 56",
        "0800 12 34 56",
        "09 12 34 56 78",
        "07 12 34 56 78",
        "(0)1 99 00 12 34",
    ]
    for text in samples:
        assert _fast(text, region) == _reference(text, region), (text, region)


def test_memoised_row_parsing_matches_on_repeated_values(tmp_path) -> None:
    """The same value in two rows gives the same result, valid or not (no cached error state)."""
    from campaign.imports.values import _cached_date, _cached_place

    assert _cached_date("12/03/1956") == date(1956, 3, 12) == _cached_date("12/03/1956")
    for _ in range(2):
        with pytest.raises(_Invalid):
            _cached_date("31/02/1956")
        with pytest.raises(_Invalid):
            _cached_place("98000")
    assert _cached_place("7501") == ("07501", "07", "FR", "Europe/Paris")
    assert _cached_place("97411") == ("97411", "974", "RE", "Indian/Reunion")


def test_line_by_line_reading_agrees_with_the_csv_reader(tmp_path) -> None:
    """_split_line (the path of a broken record) reads a sound line as the fast path does."""
    import csv

    from campaign.imports.reading import _split_line
    from campaign.synthetic import generate_patients_csv

    path = generate_patients_csv(tmp_path / "gen.csv", 500, seed=9)
    text = path.read_text(encoding="utf-8")
    text += 'X1;"Dupont; de la ""Tour""";Jean\r\n"a"\t;b;""\n'  # quotes, doubled quotes, CRLF
    lines = text.splitlines(keepends=True)
    fast = list(csv.reader(lines, delimiter=";"))
    assert len(fast) == len(lines) == 503
    for number, (line, cells) in enumerate(zip(lines, fast, strict=True), 1):
        assert _split_line(number, line, ";", []) == (number, cells)
