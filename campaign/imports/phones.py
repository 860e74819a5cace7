"""Phone numbers as people type them, to E.164, parsed with the patient's region.

A national import validates ~900,000 numbers: the usual forms are answered from
phonenumbers' own metadata (_fast_phone) and only the rest go through
phonenumbers.parse, which stays the reference (tests pin the two together).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import phonenumbers

from campaign.imports.values import _Invalid

# national significant number prefix -> region: overseas numbers belong to the
# national plan (0596… is dialed from Paris) but their E.164 has their own code.
# fmt: off
_OVERSEAS_PREFIXES = {
    "590": "GP", "690": "GP", "691": "GP",
    "594": "GF", "694": "GF",
    "596": "MQ", "696": "MQ", "697": "MQ",
    "262": "RE", "263": "RE", "692": "RE", "693": "RE",
    "269": "YT", "639": "YT",
}
# fmt: on
_PHONE_CHARS = re.compile(r"\+?[\d\s.\-/()]+")
_INVALID_PHONE = "not a valid French phone number"


_NON_DIGITS = re.compile(r"\D")
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _national_validator(country_code: int) -> Callable[[str], bool] | None:
    """phonenumbers' own validity test of a national significant number, without parse().

    Built from the library's metadata the way `is_valid_number` applies it: a
    number is valid when, for one of the regions of its country code, it matches
    the general description and one number type (possible lengths, then the
    pattern). So it agrees with phonenumbers by construction and follows its
    metadata on upgrade. None when a region of the code picks numbers by leading
    digits (not the case of France and its overseas departments): the caller then
    keeps phonenumbers.parse. parse() was most of the cost of an import row.
    """
    checks: list[tuple[frozenset[int], re.Pattern[str], list[tuple[frozenset[int], re.Pattern[str]]]]] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.leading_digits is not None:
            return None
        general = metadata.general_desc
        if general is None or not general.national_number_pattern:
            continue
        by_lengths: dict[frozenset[int], list[str]] = {}
        for name in _NUMBER_TYPES:
            desc = getattr(metadata, name)
            if desc is not None and desc.national_number_pattern:
                by_lengths.setdefault(frozenset(desc.possible_length or ()), []).append(
                    f"(?:{desc.national_number_pattern})"
                )
        checks.append(
            (
                frozenset(general.possible_length or ()),
                re.compile(general.national_number_pattern),
                [(lengths, re.compile("|".join(p))) for lengths, p in by_lengths.items()],
            )
        )
    if not checks:
        return None

    def valid(nsn: str) -> bool:
        size = len(nsn)
        for lengths, pattern, types in checks:
            if (lengths and size not in lengths) or not pattern.fullmatch(nsn):
                continue
            for type_lengths, type_pattern in types:
                if (not type_lengths or size in type_lengths) and type_pattern.fullmatch(nsn):
                    return True
        return False

    return valid


_VALIDATORS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    region: (str(code), _national_validator(code))
    for region in ("FR", *dict.fromkeys(_OVERSEAS_PREFIXES.values()))
    for code in [phonenumbers.country_code_for_region(region)]
}


def _fast_phone(raw: str, digits: str, region: str) -> str | None:
    """E.164 of the usual forms, the way the full path would find it; None to take the full path.

    Handles a national number (0 and 9 digits, or 9 digits whose 0 a spreadsheet
    dropped) and +33/0033 and 9 digits, for the same candidate regions as the full
    path, in the same order. It only ever answers with a valid number; anything
    else (other forms, other regions, invalid numbers) goes through
    phonenumbers.parse, which then gives the verdict.
    """
    plus = raw.startswith("+")
    if plus or digits.startswith("00"):
        if plus and len(digits) == 11 and digits.startswith("33"):
            nsn = digits[2:]
        elif not plus and len(digits) == 13 and digits.startswith("0033"):
            nsn = digits[4:]
        else:
            return None
        if nsn[0] == "0":
            return None
        regions: Iterable[str] = (_OVERSEAS_PREFIXES.get(nsn[:3], "FR"),)
    else:
        if len(digits) == 9 and digits[0] != "0":
            nsn = digits
        elif len(digits) == 10 and digits[0] == "0" and digits[1] != "0":
            nsn = digits[1:]
        else:
            return None
        overseas = _OVERSEAS_PREFIXES.get(nsn[:3])
        regions = (overseas,) if overseas else (region, "FR") if region != "FR" else ("FR",)
    for hint in regions:
        code, valid = _VALIDATORS.get(hint, ("", None))
        if valid is None:
            return None
        if valid(nsn):
            return f"+{code}{nsn}"
    return None


def normalise_phone(text: str, region: str = "FR") -> str:
    """A phone number as people type it -> E.164.

    `region` is the patient's (calendar.phone_region_for): an overseas number only
    parses right with its own region. A national number with an overseas prefix
    (0692…, 0596…) goes to that region whatever the address, so it never becomes
    a bogus +33 number; other numbers of overseas patients fall back to FR.
    """
    raw = text.strip()
    if not _PHONE_CHARS.fullmatch(raw):
        raise _Invalid(_INVALID_PHONE)
    digits = _NON_DIGITS.sub("", raw)
    fast = _fast_phone(raw, digits, region)
    if fast is not None:
        return fast
    return _normalise_phone_full(raw, digits, region)


def _normalise_phone_full(raw: str, digits: str, region: str) -> str:
    """normalise_phone through phonenumbers.parse: every form it accepts, and the verdict."""
    international = raw.startswith("+") or digits.startswith("00")
    if international:
        candidates = [(raw, "FR")]
        try:
            num = phonenumbers.parse(raw, "FR")
        except phonenumbers.NumberParseException:
            raise _Invalid(_INVALID_PHONE) from None
        nsn = phonenumbers.national_significant_number(num)
        if num.country_code == 33 and nsn[:3] in _OVERSEAS_PREFIXES:
            candidates = [("0" + nsn, _OVERSEAS_PREFIXES[nsn[:3]])]
    else:
        if len(digits) == 9 and not digits.startswith("0"):
            digits = "0" + digits  # a spreadsheet dropped the leading zero
        if len(digits) != 10:
            raise _Invalid(_INVALID_PHONE)
        overseas = _OVERSEAS_PREFIXES.get(digits[1:4])
        regions = [overseas] if overseas else list(dict.fromkeys([region, "FR"]))
        candidates = [(digits, r) for r in regions]
    for number, hint in candidates:
        try:
            num = phonenumbers.parse(number, hint)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    raise _Invalid(_INVALID_PHONE)
