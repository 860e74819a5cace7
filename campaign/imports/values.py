"""Parsers of single values of an import row: dates, names, pathologies, tiers…

Each is pure (no database, no clock: `today` is an argument) and raises _Invalid
with a message that never quotes the value. Values that repeat across a registry
(dates, names, postal codes, windows) have memoised forms, used by the row parser.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time
from functools import lru_cache

from campaign.calendar import departement_from_postal_code, phone_region_for, zone_for
from campaign.member_ids import canonical_member_id
from campaign.policy import Tier
from campaign.states import EnrolmentStatus


@lru_cache(maxsize=4096)
def _key(text: str) -> str:
    """Header or label key: lower case, no accents, runs of other characters as '_'."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "_", plain).strip("_")


class _Invalid(ValueError):
    """A field is invalid; the message is safe to show (no personal value)."""


# --- field parsers (public ones are tested on their own) -----------------------------

_DATE_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DATE_FR = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})")
_TIME_SUFFIX = re.compile(r"[ T]0{1,2}:00(:00(\.0+)?)?$")


def parse_date(text: str) -> date:
    """1956-03-12, 12/03/1956, 12-03-1956 or 12.03.1956 (day first: French files)."""
    value = _TIME_SUFFIX.sub("", text.strip())
    if m := _DATE_ISO.fullmatch(value):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := _DATE_FR.fullmatch(value):
        d, mo, y = int(m[1]), int(m[3]), int(m[4])
    elif re.fullmatch(r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2}", value):
        raise _Invalid("year must have four digits")
    else:
        raise _Invalid("not a date (expected dd/mm/yyyy or yyyy-mm-dd)")
    try:
        return date(y, mo, d)
    except ValueError:
        raise _Invalid("no such calendar date") from None


# fmt: off
_PATHOLOGY_ALIASES: dict[str, str] = {
    "diabete": "diabetes", "diabetique": "diabetes", "diabete de type 1": "diabetes",
    "diabete de type 2": "diabetes", "diabete type 1": "diabetes", "diabete type 2": "diabetes",
    "dt1": "diabetes", "dt2": "diabetes", "diabete sucre": "diabetes",
    "insuffisance cardiaque": "heart_failure", "insuffisance cardiaque chronique": "heart_failure",
    "ic": "heart_failure", "icc": "heart_failure", "heart failure": "heart_failure",
    "irc": "ckd", "mrc": "ckd", "maladie renale chronique": "ckd",
    "insuffisance renale chronique": "ckd", "insuffisance renale": "ckd",
    "chronic kidney disease": "ckd",
    "coronarien": "coronary", "coronarienne": "coronary", "maladie coronarienne": "coronary",
    "maladie coronaire": "coronary", "coronaropathie": "coronary",
    "syndrome coronarien chronique": "coronary", "scc": "coronary",
    "cardiopathie ischemique": "coronary", "coronary artery disease": "coronary",
    "bpco": "copd", "broncho pneumopathie chronique obstructive": "copd",
    "bronchopneumopathie chronique obstructive": "copd",
    "asthme": "asthma", "asthmatique": "asthma",
}
# fmt: on
_PATHOLOGY_SPLIT = re.compile(r"\s*[,;|+/]\s*")


def parse_pathologies(text: str, known: dict[str, str] | None = None) -> list[str]:
    """'diabète + IRC' -> ['ckd', 'diabetes']; `known` is policy code -> label.

    Only pathologies the policy knows are accepted, so the import and the
    rules never disagree about what a patient has.
    """
    codes, lookup = _pathology_lookup(tuple(sorted((known or {}).items())) if known else None)
    found: set[str] = set()
    for part in _PATHOLOGY_SPLIT.split(text.strip()):
        if not part:
            continue
        code = lookup.get(_key(part))
        if code is None:
            raise _Invalid("unknown pathology (expected " + ", ".join(sorted(codes)) + " or a French label)")
        found.add(code)
    if not found:
        raise _Invalid("at least one pathology is required")
    return sorted(found)


@lru_cache(maxsize=8)
def _pathology_lookup(
    known: tuple[tuple[str, str], ...] | None,
) -> tuple[frozenset[str], dict[str, str]]:
    """Accepted codes, and label key -> code, built once per policy."""
    codes = frozenset(c for c, _ in known) if known else frozenset(_PATHOLOGY_ALIASES.values())
    lookup = {_key(alias): code for alias, code in _PATHOLOGY_ALIASES.items()}
    lookup.update({_key(label): code for code, label in known or ()})
    lookup.update({_key(code): code for code in codes})
    return codes, {k: c for k, c in lookup.items() if c in codes}


# fmt: off
_TIERS = {
    "low": Tier.low, "faible": Tier.low, "bas": Tier.low, "1": Tier.low,
    "medium": Tier.medium, "modere": Tier.medium, "moyen": Tier.medium,
    "intermediaire": Tier.medium, "2": Tier.medium,
    "high": Tier.high, "eleve": Tier.high, "fort": Tier.high, "haut": Tier.high, "3": Tier.high,
}


# fmt: on
def parse_tier(text: str) -> Tier:
    tier = _TIERS.get(_key(text))
    if tier is None:
        raise _Invalid("unknown risk tier (expected low/medium/high, faible/modéré/élevé or 1/2/3)")
    return tier


# fmt: off
_STATUSES = {
    "enrolled": EnrolmentStatus.enrolled, "inscrit": EnrolmentStatus.enrolled,
    "inscrite": EnrolmentStatus.enrolled, "actif": EnrolmentStatus.enrolled,
    "active": EnrolmentStatus.enrolled,
    "suspended": EnrolmentStatus.suspended, "suspendu": EnrolmentStatus.suspended,
    "suspendue": EnrolmentStatus.suspended,
    "withdrawn": EnrolmentStatus.withdrawn, "sorti": EnrolmentStatus.withdrawn,
    "sortie": EnrolmentStatus.withdrawn, "retire": EnrolmentStatus.withdrawn,
    "retiree": EnrolmentStatus.withdrawn, "desinscrit": EnrolmentStatus.withdrawn,
    "desinscrite": EnrolmentStatus.withdrawn,
    "deceased": EnrolmentStatus.deceased, "decede": EnrolmentStatus.deceased,
    "decedee": EnrolmentStatus.deceased,
}
_YES = {"oui", "o", "yes", "y", "1", "true", "vrai", "x"}
_NO = {"non", "n", "no", "0", "false", "faux"}
_SEXES = {"f": "F", "femme": "F", "feminin": "F", "2": "F",
          "m": "M", "h": "M", "homme": "M", "masculin": "M", "1": "M"}

# fmt: on
_WINDOW_TIME = r"(\d{1,2})\s*(?:[h:]\s*(\d{2})?)?"
_WINDOW = re.compile(r"(?:de\s+)?" + _WINDOW_TIME + r"\s*(?:-|–|—|à|a|to)\s*" + _WINDOW_TIME, re.IGNORECASE)


def parse_window(text: str) -> tuple[time, time]:
    """'14:00-17:00', '14h-17h', '14h30-17h', 'de 9h à 12h' -> (start, end)."""
    m = _WINDOW.fullmatch(text.strip())
    if not m:
        raise _Invalid("not a time window (expected e.g. 14:00-17:00 or 14h-17h)")
    try:
        start = time(int(m[1]), int(m[2] or 0))
        end = time(int(m[3]), int(m[4] or 0)) if m[3] != "24" else time(23, 59)
    except ValueError:
        raise _Invalid("not a time of day") from None
    if end <= start:
        raise _Invalid("window ends before it starts")
    return start, end


_MEMBER_ID = re.compile(r"[A-Z0-9]{4,32}")
_RPPS = re.compile(r"\d{11}")
_NAME_FORBIDDEN = re.compile(r"[\d@#$%*=<>{}\[\]\\_|~^]|[\x00-\x1f]")
_ADULT_AGE = 18
_MAX_AGE = 120


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# Pure parsers of values that repeat across a registry, memoised (bounded; a value
# that fails raises every time and is not cached).
_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def _cached_date(text: str) -> date:
    return parse_date(text)


@lru_cache(maxsize=_CACHE)
def _cached_name(text: str) -> str:
    return _parse_name(text)


@lru_cache(maxsize=_CACHE)
def _cached_city(text: str) -> str:
    return _parse_city(text)


@lru_cache(maxsize=_CACHE)
def _cached_physician_name(text: str) -> str:
    return _parse_physician_name(text)


@lru_cache(maxsize=1024)
def _cached_window(text: str) -> tuple[time, time]:
    return parse_window(text)


@lru_cache(maxsize=_CACHE)
def _cached_place(text: str) -> tuple[str, str, str, str]:
    """Postal code -> (postal code, département, phonenumbers region, time zone)."""
    postal = _parse_postal_code(text)
    departement = departement_from_postal_code(postal)
    return postal, departement, phone_region_for(departement), zone_for(departement)


def _parse_birth_date(text: str, today: date) -> date:
    return _check_birth_date(_cached_date(text), today)


def _check_birth_date(born: date, today: date) -> date:
    if born > today:
        raise _Invalid("is in the future")
    age = _age_on(born, today)
    if age < _ADULT_AGE:
        raise _Invalid("patient is not an adult (the programme is for adults)")
    if age > _MAX_AGE:
        raise _Invalid(f"more than {_MAX_AGE} years ago")
    return born


def _parse_member_id(text: str) -> str:
    """4–32 letters or digits, as stored: upper case, without spaces (member_ids.canonical_member_id)."""
    if 4 <= len(text) <= 32 and text.isascii() and text.isalnum():
        return text.upper()  # the usual form, without the regular expressions
    value = canonical_member_id(text)
    if not _MEMBER_ID.fullmatch(value):
        raise _Invalid("must be 4 to 32 letters or digits")
    return value


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(…),
# +cmd|…, -2+3, @SUM(…)); a leading tab or CR hides one, and goes with the spaces.
_FORMULA_STARTS = frozenset("=+-@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _free_text(text: str, limit: int) -> str:
    """A free-text value (name, city, physician), spaces collapsed.

    Refused when a spreadsheet would run it: names and cities go out of carecall
    again (lists to physicians, exports opened in Excel), and must never come back
    as a formula. Control characters have no place in them either.
    """
    value = " ".join(text.split())
    if value[:1] in _FORMULA_STARTS:
        raise _Invalid(f"starts with {value[0]!r}: a spreadsheet would run it as a formula")
    if len(value) > limit:
        raise _Invalid(f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise _Invalid("contains a control character")
    return value


def _parse_name(text: str) -> str:
    value = _free_text(text, 100)
    if _NAME_FORBIDDEN.search(value) or not any(c.isalpha() for c in value):
        raise _Invalid("contains characters that are not in a name")
    return value


def _parse_city(text: str) -> str:
    return _free_text(text, 100)


def _parse_physician_name(text: str) -> str:
    return _free_text(text, 200)


def _parse_past_date(text: str, today: date) -> date:
    day = _cached_date(text)
    if day > today:
        raise _Invalid("is in the future")
    return day


def _parse_sex(text: str) -> str:
    sex = _SEXES.get(_key(text))
    if sex is None:
        raise _Invalid("expected F, M or blank")
    return sex


def _parse_postal_code(text: str) -> str:
    value = re.sub(r"\s+", "", text)
    if re.fullmatch(r"\d{4}", value):
        value = "0" + value  # Excel dropped the leading zero
    if not re.fullmatch(r"\d{5}", value):
        raise _Invalid("not a 5-digit French postal code")
    if value.startswith("98"):  # Monaco, Pacific territories
        raise _Invalid("territory not served by the programme")
    if value.startswith(("96", "99")):
        raise _Invalid("not a French postal code")
    try:
        departement_from_postal_code(value)
    except ValueError:
        if value.startswith("97"):
            raise _Invalid("territory not served by the programme") from None
        raise _Invalid("not a French postal code") from None
    return value


def _parse_status(text: str) -> str:
    status = _STATUSES.get(_key(text).replace("_", ""))
    if status is None:
        raise _Invalid(
            "unknown status (expected enrolled/suspended/withdrawn/deceased or inscrit/suspendu/sorti/décédé)"
        )
    return status.value


def _parse_consent(text: str) -> bool:
    value = _key(text)
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise _Invalid("expected oui/non, yes/no, 1/0 or true/false")


def _parse_nurse(text: str, known: set[str]) -> str:
    code = text.strip().upper()
    if code not in known:
        raise _Invalid("unknown nurse code")
    return code


def _parse_rpps(text: str) -> str:
    if len(text) == 11 and text.isascii() and text.isdigit():
        return text
    value = re.sub(r"[\s.]", "", text)
    if not _RPPS.fullmatch(value):
        raise _Invalid("must be 11 digits")
    return value
