"""Field parsers of the patient import: what French office files actually contain."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.imports import normalise_phone, parse_date, parse_pathologies, parse_tier, parse_window
from campaign.imports.reading import _HEADER_KEYS, _sniff_delimiter
from campaign.imports.values import (
    _Invalid,
    _key,
    _parse_city,
    _parse_member_id,
    _parse_name,
    _parse_physician_name,
)
from campaign.policy import Tier, load_policy
from campaign.synthetic import fiction_number, is_fiction_e164


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("01 99 00 12 34", "FR", "+33199001234"),
        ("0199001234", "FR", "+33199001234"),
        ("01.99.00.12.34", "FR", "+33199001234"),
        ("01-99-00-12-34", "FR", "+33199001234"),
        ("+33 1 99 00 12 34", "FR", "+33199001234"),
        ("+33 (0)1 99 00 12 34", "FR", "+33199001234"),
        ("0033 1 99 00 12 34", "FR", "+33199001234"),
        ("1 99 00 12 34", "FR", "+33199001234"),  # leading zero lost in Excel
        ("0261911234", "FR", "+33261911234"),
        ("+33 3 53 01 12 34", "FR", "+33353011234"),
        ("04 65 71 00 00", "FR", "+33465710000"),
        ("05 36 49 99 99", "FR", "+33536499999"),
        ("06.12.34.56.78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "FR", "+33612345678"),
        ("0033612345678", "FR", "+33612345678"),
        ("6 12 34 56 78", "FR", "+33612345678"),
        # overseas: the region hint, or the number's own prefix, decides
        ("0692 12 34 56", "RE", "+262692123456"),
        ("0692 12 34 56", "FR", "+262692123456"),
        ("692 12 34 56", "RE", "+262692123456"),
        ("0262 21 34 56", "RE", "+262262213456"),
        ("0596 71 12 34", "MQ", "+596596711234"),
        ("0696 12 34 56", "FR", "+596696123456"),
        ("0690 12 34 56", "GP", "+590690123456"),
        ("0694 12 34 56", "GF", "+594694123456"),
        ("0639 01 12 34", "YT", "+262639011234"),
        ("+33 6 92 12 34 56", "FR", "+262692123456"),  # wrongly written +33 overseas
        ("+262 692 12 34 56", "RE", "+262692123456"),
        # a metropolitan fiction number of an overseas patient
        ("01 99 00 12 34", "RE", "+33199001234"),
        ("0199001234", "MQ", "+33199001234"),
        ("1 99 00 12 34", "GP", "+33199001234"),
    ],
)
def test_phone_formats(typed: str, region: str, e164: str) -> None:
    assert normalise_phone(typed, region) == e164


@pytest.mark.parametrize(
    "typed",
    [
        "06 39 98 12 34",  # fiction mobile range: refused by phonenumbers
        "0639981234",
        "01 99 00 12",  # too short
        "01 99 00 12 34 56",  # too long
        "00 00 00 00 00",
        "tel: 01 99 00 12 34",
        "1.99E+08",
        "+1 202 555 0123 x",
        "abc",
    ],
)
def test_invalid_phones_say_so_without_the_number(typed: str) -> None:
    with pytest.raises(_Invalid) as err:
        normalise_phone(typed, "FR")
    assert str(err.value) == "not a valid French phone number"


def test_fiction_numbers_are_valid_and_recognised() -> None:
    for index in (0, 9_999, 10_000, 25_123, 49_999):
        e164 = normalise_phone(fiction_number(index))
        assert is_fiction_e164(e164)
    assert not is_fiction_e164("+33612345678")


@pytest.mark.parametrize(
    "text",
    ["1956-03-12", "12/03/1956", "12-03-1956", "12.03.1956", "12/3/1956", "1956-03-12 00:00:00"],
)
def test_dates(text: str) -> None:
    assert parse_date(text) == date(1956, 3, 12)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("31/02/1956", "no such calendar date"),
        ("12/03/56", "year must have four digits"),
        ("March 12 1956", "not a date"),
        ("1956/13/01", "not a date"),
    ],
)
def test_bad_dates(text: str, reason: str) -> None:
    with pytest.raises(_Invalid, match=reason):
        parse_date(text)


POLICY_LABELS = {code: p.label for code, p in load_policy().pathologies.items()}


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("diabetes", ["diabetes"]),
        ("Diabète", ["diabetes"]),
        ("DIABETE", ["diabetes"]),
        ("insuffisance cardiaque", ["heart_failure"]),
        ("Insuffisance  Cardiaque", ["heart_failure"]),
        ("IRC", ["ckd"]),
        ("maladie rénale chronique", ["ckd"]),
        ("BPCO", ["copd"]),
        ("asthme", ["asthma"]),
        ("coronarien", ["coronary"]),
        ("Syndrome coronarien chronique", ["coronary"]),
        ("diabète, IRC", ["ckd", "diabetes"]),
        ("diabète;IRC", ["ckd", "diabetes"]),
        ("diabète | BPCO", ["copd", "diabetes"]),
        ("diabète + insuffisance cardiaque", ["diabetes", "heart_failure"]),
        ("heart_failure/copd", ["copd", "heart_failure"]),
        ("diabète, diabetes", ["diabetes"]),
        ("asthme, ", ["asthma"]),
    ],
)
def test_pathologies(text: str, codes: list[str]) -> None:
    assert parse_pathologies(text, POLICY_LABELS) == codes


@pytest.mark.parametrize("text", ["grippe", "diabète, cancer", ",", "hypertension"])
def test_unknown_pathologies(text: str) -> None:
    with pytest.raises(_Invalid):
        parse_pathologies(text, POLICY_LABELS)


def test_pathologies_limited_to_policy() -> None:
    with pytest.raises(_Invalid, match="unknown pathology"):
        parse_pathologies("asthme", {"diabetes": "Diabète"})


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("low", Tier.low),
        ("faible", Tier.low),
        ("Faible", Tier.low),
        ("1", Tier.low),
        ("medium", Tier.medium),
        ("modéré", Tier.medium),
        ("MODERE", Tier.medium),
        ("moyen", Tier.medium),
        ("2", Tier.medium),
        ("high", Tier.high),
        ("élevé", Tier.high),
        ("fort", Tier.high),
        ("3", Tier.high),
    ],
)
def test_tiers(text: str, tier: Tier) -> None:
    assert parse_tier(text) == tier


@pytest.mark.parametrize("text", ["critique", "4", "0", "très élevé"])
def test_bad_tiers(text: str) -> None:
    with pytest.raises(_Invalid):
        parse_tier(text)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("14:00-17:00", time(14), time(17)),
        ("14h-17h", time(14), time(17)),
        ("14h30-17h", time(14, 30), time(17)),
        ("9h-12h30", time(9), time(12, 30)),
        ("09:00 - 11:30", time(9), time(11, 30)),
        ("14h00–17h00", time(14), time(17)),
        ("de 9h à 12h", time(9), time(12)),
    ],
)
def test_windows(text: str, start: time, end: time) -> None:
    assert parse_window(text) == (start, end)


@pytest.mark.parametrize("text", ["17h-14h", "25h-26h", "matin", "14h", "14:61-15:00"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(_Invalid):
        parse_window(text)


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("member_id", "member_id"),
        ("Numéro d'adhérent", "member_id"),
        ("N° adhérent", "member_id"),
        ("NOM", "last_name"),
        ("Prénom", "first_name"),
        ("PRENOM", "first_name"),
        ("Date de naissance", "birth_date"),
        ("date_naissance", "birth_date"),
        ("Téléphone", "phone"),
        ("téléphone_2", "phone_alt"),
        ("Code postal", "postal_code"),
        ("CP", "postal_code"),
        ("niveau_risque", "tier"),
        ("Statut", "status"),
        ("Consentement", "consent"),
        ("Créneau", "preferred_window"),
        ("Infirmier référent", "referent_nurse"),
        ("infirmier_referent", "referent_nurse"),
        ("RPPS", "physician_rpps"),
        ("Médecin traitant", "physician_name"),
        ("date_inscription", "enrolled_on"),
    ],
)
def test_header_aliases(header: str, canonical: str) -> None:
    assert _HEADER_KEYS[_key(header)] == canonical


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("nom;prénom;téléphone", ";"),
        ("nom,prénom,téléphone", ","),
        ("nom\tprénom\ttéléphone", "\t"),
        ('"nom; famille",prénom,téléphone', ","),
    ],
)
def test_delimiter_sniffing(line: str, delimiter: str) -> None:
    assert _sniff_delimiter(line) == delimiter


FORMULAS = [
    ('=HYPERLINK("http://example.invalid/x";"Paris")', "="),
    ("+cmd|' /C calc'!A0", "+"),
    ("-2+3", "-"),
    ("@SUM(1+1)", "@"),
    ("\t=1+1", "="),  # a leading tab or CR goes with the spaces; what follows is judged
    ("\r=1+1", "="),
    ("  -Jean", "-"),
]


@pytest.mark.parametrize("parse", [_parse_name, _parse_city, _parse_physician_name])
@pytest.mark.parametrize(("text", "start"), FORMULAS)
def test_free_text_that_a_spreadsheet_would_run_is_refused(parse, text: str, start: str) -> None:
    with pytest.raises(_Invalid) as err:
        parse(text)
    assert str(err.value) == f"starts with '{start}': a spreadsheet would run it as a formula"


@pytest.mark.parametrize(
    ("parse", "text", "stored"),
    [
        (_parse_name, "Jean-Pierre", "Jean-Pierre"),
        (_parse_name, "d'Artagnan", "d'Artagnan"),
        (_parse_name, "\tMarie  Hélène ", "Marie Hélène"),
        (_parse_city, "L'Haÿ-les-Roses", "L'Haÿ-les-Roses"),
        (_parse_city, "Paris 11e", "Paris 11e"),
        (_parse_city, "\rSaint-Denis", "Saint-Denis"),
        (_parse_physician_name, "Dr Paul Lefèvre-Durand", "Dr Paul Lefèvre-Durand"),
        (_parse_physician_name, "Dr A. = B.", "Dr A. = B."),  # '=' inside is text
    ],
)
def test_free_text_that_is_text_is_kept(parse, text: str, stored: str) -> None:
    assert parse(text) == stored


@pytest.mark.parametrize("parse", [_parse_name, _parse_city, _parse_physician_name])
def test_control_characters_are_refused(parse) -> None:
    for text in ("Pa\x00ris", "Pa\x1bris", "Pa\x7fris"):
        with pytest.raises(_Invalid, match="contains a control character"):
            parse(text)


@given(st.text(max_size=40))
@settings(max_examples=400)
def test_no_free_text_comes_back_as_a_formula(text: str) -> None:
    """Whatever a cell holds, what the parsers accept is never a formula and has no control character."""
    for parse in (_parse_name, _parse_city, _parse_physician_name):
        try:
            value = parse(text.strip())
        except _Invalid:
            continue
        assert value == value.strip() and value[:1] not in {"=", "+", "-", "@", "\t", "\r"}
        assert not any(unicodedata.category(c) == "Cc" for c in value)


@given(st.text(alphabet="aAbBzZ09 \t", min_size=1, max_size=36))
def test_a_member_id_is_one_however_it_is_typed(text: str) -> None:
    """Case and spaces never make a second patient: every spelling parses to the one stored id."""
    try:
        parsed = _parse_member_id(text.strip())
    except _Invalid:
        assert not 4 <= len("".join(text.split())) <= 32
        return
    assert re.fullmatch(r"[A-Z0-9]{4,32}", parsed)
    assert parsed == "".join(text.split()).upper()
    assert _parse_member_id(parsed.lower()) == _parse_member_id(" ".join(parsed)) == parsed
