"""Patient import from the CSV files French office software writes.

Supervisors export registries from Excel, LibreOffice or the insurer's tools,
so the reader is lenient about form and strict about content: the delimiter
is sniffed among ``;``, ``,`` and TAB (an Excel ``sep=;`` first line is
honoured); the encoding is UTF-8 with or without BOM (UTF-16 with BOM, as
Excel's "Unicode text" writes it, too), falling back to Windows-1252; headers
match case- and accent-insensitively, in English or French. Every field is
validated; a bad row is rejected with its line, field and a reason that never
quotes the personal value, and never stops the good rows (invariant 7).

Columns (header in English, or any of the French aliases in brackets):

=================  =====================================  ==================================
column             French aliases                         content
=================  =====================================  ==================================
member_id          numéro d'adhérent, n° adhérent,        required; 4–32 letters or digits;
                   adhérent                               the key of the upsert
last_name          nom, nom de famille                    required
first_name         prénom                                 required
birth_date         date_naissance, date de naissance      required; 1956-03-12, 12/03/1956,
                                                          12-03-1956 or 12.03.1956; adult
                                                          (18+), not in the future
sex                sexe                                   F, M (also H, femme, homme, 1, 2)
                                                          or blank
phone              téléphone, tél, portable               required; any usual French way of
                                                          writing it; stored as E.164
phone_alt          téléphone_2, tél 2, autre téléphone    optional second number
postal_code        code_postal, cp                        required; 5 digits (a 4-digit code
                                                          whose leading zero Excel dropped
                                                          is accepted); 971–976 overseas
city               ville, commune                         optional
pathologies        pathologie, maladies                   required, one or more separated by
                                                          , ; | + or /: codes diabetes,
                                                          heart_failure, ckd, coronary, copd,
                                                          asthma or French labels (diabète,
                                                          insuffisance cardiaque, IRC /
                                                          maladie rénale chronique, BPCO,
                                                          asthme, coronarien…)
tier               niveau_risque, risque                  required; low/medium/high,
                                                          faible/modéré/moyen/élevé/fort,
                                                          1/2/3
status             statut                                 enrolled/suspended/withdrawn/
                                                          deceased or inscrit/suspendu/
                                                          sorti/décédé; blank: enrolled for a
                                                          new patient, unchanged for a known
                                                          one
suspended_until    suspendu_jusqu_au, fin_suspension      optional date
consent            consentement                           oui/non/yes/no/1/0/true/false;
                                                          blank: yes for a new patient,
                                                          unchanged for a known one
preferred_window   créneau, créneau préféré,              optional, patient's local time:
                   plage horaire                          14:00-17:00, 14h-17h, 14h30-17h
referent_nurse     infirmier_referent, infirmière         optional nurse code; must be a
                   référente, référent                    known nurse
physician_rpps     rpps, rpps médecin                     optional; 11 digits; the physician
                                                          is created if unknown
physician_name     médecin, médecin traitant              optional; needs physician_rpps
enrolled_on        date_inscription                       optional date, not in the future
=================  =====================================  ==================================

Unknown columns are ignored and listed in the summary. A column absent from the
file leaves that attribute of known patients unchanged.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import time as _time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import phonenumbers
import structlog

from campaign.calendar import departement_from_postal_code, phone_region_for, zone_for
from campaign.clock import Clock
from campaign.db import SessionFactory
from campaign.errors import ImportRowError
from campaign.model import AuditEvent, pathologies_to_text
from campaign.policy import Policy, Tier
from campaign.registry import (
    BATCH_SIZE,
    PG_BATCH_SIZE,
    PatientRecord,
    RowRejection,
    is_postgresql,
    nurse_ids_by_code,
    upsert_patients,
)
from campaign.states import EnrolmentStatus

log = structlog.get_logger()

Progress = Callable[[int, int], None]

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "ImportSummary",
    "RowRejection",
    "import_patients",
    "normalise_phone",
    "parse_date",
    "parse_pathologies",
    "parse_tier",
    "parse_window",
]


@lru_cache(maxsize=4096)
def _key(text: str) -> str:
    """Header or label key: lower case, no accents, runs of other characters as '_'."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "_", plain).strip("_")


# fmt: off
ALIASES: dict[str, tuple[str, ...]] = {
    "member_id": (
        "numéro d'adhérent", "numero adherent", "numéro de l'adhérent", "n° adhérent",
        "no adherent", "num adherent", "adherent", "id adherent", "member", "member number",
    ),
    "last_name": ("nom", "nom de famille", "nom patient", "lastname", "surname", "family name"),
    "first_name": ("prénom", "prenom patient", "firstname", "given name"),
    "birth_date": (
        "date_naissance", "date de naissance", "né le", "née le", "naissance", "ddn",
        "birthdate", "date of birth", "dob",
    ),
    "sex": ("sexe", "genre", "gender"),
    "phone": (
        "téléphone", "telephone 1", "tél", "tel 1", "numéro de téléphone", "portable",
        "phone 1", "phone number",
    ),
    "phone_alt": (
        "téléphone_2", "téléphone 2", "tel 2", "autre téléphone", "téléphone secondaire",
        "phone 2", "alt phone",
    ),
    "postal_code": ("code_postal", "cp", "code postal", "zip", "zip code", "postcode"),
    "city": ("ville", "commune", "localité"),
    "pathologies": ("pathologie", "maladies", "maladie", "pathology"),
    "tier": ("niveau_risque", "niveau de risque", "risque", "niveau", "risk", "risk tier"),
    "status": ("statut", "état"),
    "suspended_until": (
        "suspendu_jusqu_au", "suspendu jusqu'au", "fin_suspension", "fin de suspension",
    ),
    "consent": ("consentement", "consentement recueilli"),
    "preferred_window": (
        "créneau", "créneau préféré", "créneau d'appel", "plage horaire", "horaire préféré",
        "preferred time",
    ),
    "referent_nurse": (
        "infirmier_referent", "infirmière référente", "infirmier référent", "infirmier",
        "infirmière", "référent", "ide référent", "nurse", "referent",
    ),
    "physician_rpps": ("rpps", "rpps médecin", "rpps du médecin", "médecin rpps"),
    "physician_name": (
        "médecin", "médecin traitant", "nom du médecin", "nom médecin", "physician",
        "doctor",
    ),
    "enrolled_on": ("date_inscription", "date d'inscription", "inscrit le", "inscription"),
}
COLUMNS: tuple[str, ...] = tuple(ALIASES)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "member_id", "last_name", "first_name", "birth_date", "phone", "postal_code",
    "pathologies", "tier",
)
# fmt: on
_HEADER_KEYS: dict[str, str] = {}
for _canonical, _aliases in ALIASES.items():
    for _name in (_canonical, *_aliases):
        _HEADER_KEYS[_key(_name)] = _canonical


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


# --- reading the file ------------------------------------------------------------------


@dataclass(slots=True)
class ImportSummary:
    """What an import did. Counts only, and rejections without personal values."""

    total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowRejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _file_error(field_name: str, reason: str) -> ImportRowError:
    return ImportRowError(line=1, field=field_name, reason=reason)


def _sniff_encoding(path: Path) -> tuple[str, int]:
    """The file's encoding and its number of line breaks (for progress).

    Streams the bytes so a national file is never held twice in memory.
    """
    try:
        with path.open("rb") as f:
            head = f.read(4)
            f.seek(0)
            if head.startswith(codecs.BOM_UTF8):
                encoding = "utf-8-sig"
            elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                encoding = "utf-16"
            else:
                encoding = "utf-8"
            decoder = codecs.getincrementaldecoder(encoding)()
            newlines = 0
            size = 0
            utf8_ok = True
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if encoding == "utf-16":
                    newlines += decoder.decode(chunk).count("\n")
                    continue
                newlines += chunk.count(b"\n")
                if utf8_ok:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        utf8_ok = False
            if utf8_ok:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    utf8_ok = False
    except FileNotFoundError:
        raise _file_error("file", "file not found") from None
    except IsADirectoryError:
        raise _file_error("file", "is a directory, not a file") from None
    except OSError as exc:
        raise _file_error("file", f"cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise _file_error("file", "not valid UTF-16 text") from None
    if size == 0:
        raise _file_error("file", "the file is empty")
    if not utf8_ok:
        encoding = "cp1252"
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                try:
                    chunk.decode("cp1252")
                except UnicodeDecodeError:
                    raise _file_error("file", "not readable text (neither UTF-8 nor Windows-1252)") from None
    return encoding, newlines


_DELIMITERS = (";", ",", "\t")


def _sniff_delimiter(header_line: str) -> str:
    """The candidate that splits the header most, ignoring quoted parts."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    counts = {d: unquoted.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ";"


def _map_header(cells: list[str]) -> tuple[dict[str, int], list[str]]:
    mapping: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = cell.strip().strip("\ufeff")
        if not name:
            continue
        canonical = _HEADER_KEYS.get(_key(name))
        if canonical is None:
            ignored.append(name)
            continue
        if canonical in mapping:
            raise _file_error(
                canonical, f"two columns mean {canonical}: {cells[mapping[canonical]]!r} and {name!r}"
            )
        mapping[canonical] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping]
    if missing:
        examples = ", ".join(ALIASES[missing[0]][:2])
        raise _file_error(
            missing[0],
            f"required column missing (header {missing[0]!r} or e.g. {examples}); "
            f"all missing: {', '.join(missing)}",
        )
    return mapping, ignored


def _rows(stream: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells) for each non-empty record."""
    reader = csv.reader(stream, delimiter=delimiter)
    start = 1
    for cells in reader:
        line = start
        start = reader.line_num + 1
        if any(c.strip() for c in cells):
            yield line, cells


# --- validating a row ------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    today: date
    pathologies: dict[str, str]
    nurse_codes: set[str]
    first_line: dict[str, int] = field(default_factory=dict)
    index: tuple[int, ...] | None = None  # cell index of each of _FIELDS in this file
    _pathologies_cache: dict[str, str] = field(default_factory=dict)

    def set_index(self, columns: dict[str, int]) -> tuple[int, ...]:
        self.index = tuple(columns.get(name, _ABSENT) for name in _FIELDS)
        return self.index

    def pathologies_text(self, text: str) -> str:
        """parse_pathologies, stored form ('|a|b|'), memoised for this import's policy."""
        stored = self._pathologies_cache.get(text)
        if stored is None:
            stored = pathologies_to_text(parse_pathologies(text, self.pathologies))
            if len(self._pathologies_cache) < _CACHE:
                self._pathologies_cache[text] = stored
        return stored


_MEMBER_ID = re.compile(r"[A-Za-z0-9]{4,32}")
_RPPS = re.compile(r"\d{11}")
_NAME_FORBIDDEN = re.compile(r"[\d@#$%*=<>{}\[\]\\_|~^]|[\x00-\x1f]")
_ADULT_AGE = 18
_MAX_AGE = 120


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


_MISSING = "required value is missing"
_ABSENT = 1 << 30  # index of a column the file does not have: never < len(cells)
# fmt: off
_FIELDS = (
    "member_id", "last_name", "first_name", "birth_date", "sex", "postal_code", "phone",
    "phone_alt", "city", "pathologies", "tier", "status", "suspended_until", "consent",
    "preferred_window", "referent_nurse", "physician_rpps", "physician_name", "enrolled_on",
)


# fmt: on
def _parse_row(
    line: int, cells: list[str], columns: dict[str, int], width: int, ctx: _Context
) -> PatientRecord | RowRejection:
    """Validate every field; the first problem names the rejection, the rest are listed.

    The hot loop of a national import (~900,000 rows): written out field by field,
    with pure per-value parsers memoised (names, dates, postal codes, pathologies…
    repeat across a registry), so a row costs a few microseconds. The checks, their
    order and their messages are those of the field parsers below.
    """
    n = len(cells)
    if n > width and any(c.strip() for c in cells[width:]):
        return RowRejection(
            line,
            "row",
            f"{n} cells but the header has {width} (a delimiter in a value that is not quoted?)",
        )
    i = ctx.index if ctx.index is not None else ctx.set_index(columns)
    problems: list[tuple[str, str]] = []
    add = problems.append

    t = cells[i[0]].strip() if i[0] < n else ""
    member_id = None
    if not t:
        add(("member_id", _MISSING))
    elif 4 <= len(t) <= 32 and t.isascii() and t.isalnum():
        member_id = t
    else:
        try:
            member_id = _parse_member_id(t)
        except _Invalid as exc:
            add(("member_id", str(exc)))

    names: list[str] = []
    for index, name in ((i[1], "last_name"), (i[2], "first_name")):
        t = cells[index].strip() if index < n else ""
        if not t:
            add((name, _MISSING))
            continue
        try:
            names.append(_cached_name(t))
        except _Invalid as exc:
            add((name, str(exc)))

    t = cells[i[3]].strip() if i[3] < n else ""
    birth = None
    if not t:
        add(("birth_date", _MISSING))
    else:
        try:
            birth = _check_birth_date(_cached_date(t), ctx.today)
        except _Invalid as exc:
            add(("birth_date", str(exc)))

    t = cells[i[4]].strip() if i[4] < n else ""
    sex = None
    if t:
        sex = _SEXES.get(_key(t))
        if sex is None:
            add(("sex", "expected F, M or blank"))

    t = cells[i[5]].strip() if i[5] < n else ""
    place = None
    region = "FR"
    if not t:
        add(("postal_code", _MISSING))
    else:
        try:
            place = _cached_place(t)
            region = place[2]
        except _Invalid as exc:
            add(("postal_code", str(exc)))

    t = cells[i[6]].strip() if i[6] < n else ""
    phone = None
    if not t:
        add(("phone", _MISSING))
    else:
        try:
            phone = normalise_phone(t, region)
        except _Invalid as exc:
            add(("phone", str(exc)))

    t = cells[i[7]].strip() if i[7] < n else ""
    phone_alt = None
    if t:
        try:
            phone_alt = normalise_phone(t, region)
        except _Invalid as exc:
            add(("phone_alt", str(exc)))

    t = cells[i[8]].strip() if i[8] < n else ""
    city = ""
    if t:
        try:
            city = _cached_city(t)
        except _Invalid as exc:
            add(("city", str(exc)))

    t = cells[i[9]].strip() if i[9] < n else ""
    pathologies = None
    if not t:
        add(("pathologies", _MISSING))
    else:
        try:
            pathologies = ctx.pathologies_text(t)
        except _Invalid as exc:
            add(("pathologies", str(exc)))

    t = cells[i[10]].strip() if i[10] < n else ""
    tier = None
    if not t:
        add(("tier", _MISSING))
    else:
        try:
            tier = parse_tier(t).value
        except _Invalid as exc:
            add(("tier", str(exc)))

    t = cells[i[11]].strip() if i[11] < n else ""
    status = None
    if t:
        try:
            status = _parse_status(t)
        except _Invalid as exc:
            add(("status", str(exc)))

    t = cells[i[12]].strip() if i[12] < n else ""
    suspended_until = None
    if t:
        try:
            suspended_until = _cached_date(t)
        except _Invalid as exc:
            add(("suspended_until", str(exc)))

    t = cells[i[13]].strip() if i[13] < n else ""
    consent = None
    if t:
        try:
            consent = _parse_consent(t)
        except _Invalid as exc:
            add(("consent", str(exc)))

    t = cells[i[14]].strip() if i[14] < n else ""
    window = None
    if t:
        try:
            window = _cached_window(t)
        except _Invalid as exc:
            add(("preferred_window", str(exc)))

    t = cells[i[15]].strip() if i[15] < n else ""
    nurse = None
    if t:
        nurse = t.upper()
        if nurse not in ctx.nurse_codes:
            nurse = None
            add(("referent_nurse", "unknown nurse code"))

    t = cells[i[16]].strip() if i[16] < n else ""
    rpps = None
    if t:
        if len(t) == 11 and t.isascii() and t.isdigit():
            rpps = t
        else:
            try:
                rpps = _parse_rpps(t)
            except _Invalid as exc:
                add(("physician_rpps", str(exc)))
    rpps_given = bool(t)

    t = cells[i[17]].strip() if i[17] < n else ""
    physician_name = None
    if t:
        try:
            physician_name = _cached_physician_name(t)
        except _Invalid as exc:
            add(("physician_name", str(exc)))

    t = cells[i[18]].strip() if i[18] < n else ""
    enrolled_on = None
    if t:
        try:
            enrolled_on = _cached_date(t)
            if enrolled_on > ctx.today:
                raise _Invalid("is in the future")
        except _Invalid as exc:
            add(("enrolled_on", str(exc)))

    if physician_name is not None and not rpps_given:
        add(("physician_rpps", "required when physician_name is given"))

    if member_id is not None:
        first = ctx.first_line.setdefault(member_id, line)
        if first != line:
            problems.insert(0, ("member_id", f"duplicate of line {first}"))

    if problems:
        name, reason = problems[0]
        others = sorted({p[0] for p in problems[1:]} - {name})
        if others:
            reason += f" (also invalid: {', '.join(others)})"
        return RowRejection(line, name, reason)

    assert member_id is not None and birth is not None and place is not None
    assert phone is not None and pathologies is not None and tier is not None
    # fmt: off
    return PatientRecord(
        member_id, names[0], names[1], birth, phone, place[0], place[1], place[3],
        pathologies, tier, sex, phone_alt, city, status, suspended_until, consent,
        window[0] if window else None, window[1] if window else None,
        nurse, rpps, physician_name, enrolled_on, line,
    )
    # fmt: on


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
    value = re.sub(r"\s+", "", text)
    if not _MEMBER_ID.fullmatch(value):
        raise _Invalid("must be 4 to 32 letters or digits")
    return value


def _parse_name(text: str) -> str:
    value = " ".join(text.split())
    if len(value) > 100:
        raise _Invalid("longer than 100 characters")
    if _NAME_FORBIDDEN.search(value) or not any(c.isalpha() for c in value):
        raise _Invalid("contains characters that are not in a name")
    return value


def _parse_city(text: str) -> str:
    value = " ".join(text.split())
    if len(value) > 100:
        raise _Invalid("longer than 100 characters")
    return value


def _parse_physician_name(text: str) -> str:
    value = " ".join(text.split())
    if len(value) > 200:
        raise _Invalid("longer than 200 characters")
    return value


def _parse_birth_date(text: str, today: date) -> date:
    born = parse_date(text)
    if born > today:
        raise _Invalid("is in the future")
    age = _age_on(born, today)
    if age < _ADULT_AGE:
        raise _Invalid("patient is not an adult (the programme is for adults)")
    if age > _MAX_AGE:
        raise _Invalid(f"more than {_MAX_AGE} years ago")
    return born


def _parse_past_date(text: str, today: date) -> date:
    day = parse_date(text)
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
    value = re.sub(r"[\s.]", "", text)
    if not _RPPS.fullmatch(value):
        raise _Invalid("must be 11 digits")
    return value


# --- the import ------------------------------------------------------------------------


def import_patients(
    session_factory: SessionFactory,
    path: Path | str,
    clock: Clock,
    policy: Policy,
    progress: Progress | None = None,
    *,
    actor: str = "import",
    batch_size: int | None = None,
) -> ImportSummary:
    """Import (upsert) the patients of a CSV file; see the module docstring for columns.

    Each batch is committed on its own so a long import never holds SQLite's
    write lock (or PostgreSQL row locks) for long (the dialer keeps recording
    outcomes meanwhile), and a re-run after a crash finishes the job: the upsert
    is idempotent. `batch_size` defaults to registry.BATCH_SIZE rows on SQLite and
    registry.PG_BATCH_SIZE on PostgreSQL (COPY + set-based merge per batch). Raises
    ImportRowError(line=1, …) for a file-level problem; row problems are in the
    summary.
    """
    started = _time.monotonic()
    file = Path(path)
    encoding, newlines = _sniff_encoding(file)
    today = clock.now().astimezone(ZoneInfo("Europe/Paris")).date()
    summary = ImportSummary(encoding=encoding)

    with session_factory() as session:
        nurse_ids = nurse_ids_by_code(session)
        postgresql = is_postgresql(session)
    if batch_size is None:
        batch_size = PG_BATCH_SIZE if postgresql else BATCH_SIZE
    ctx = _Context(
        today=today,
        pathologies={code: p.label for code, p in policy.pathologies.items()},
        nurse_codes=set(nurse_ids),
    )

    with file.open("r", encoding=encoding, newline="") as stream:
        first_line_no, header_text = _first_line(stream)
        delimiter = _sniff_delimiter(header_text)
        if m := re.fullmatch(r"\s*sep=(.)\s*", header_text, re.IGNORECASE):
            delimiter = m[1]
            first_line_no, header_text = _first_line(stream, first_line_no)
        summary.delimiter = delimiter
        header = next(csv.reader([header_text], delimiter=delimiter), [])
        columns, summary.ignored_columns = _map_header(header)
        estimated = max(newlines - first_line_no + 1, 1)
        try:
            _import_rows(
                stream,
                first_line_no,
                delimiter,
                columns,
                len(header),
                ctx,
                session_factory,
                clock,
                nurse_ids,
                summary,
                batch_size,
                lambda done: progress(done, max(estimated, done)) if progress else None,
            )
        except BaseException as exc:
            if summary.inserted or summary.updated:
                # Batches already committed are real changes: they must be in the trail.
                _audit(session_factory, clock, actor, summary, interrupted=type(exc).__name__)
            raise

    if summary.total == 0:
        raise _file_error("file", "no data rows after the header")
    summary.rejected.sort(key=lambda r: r.line)
    counts = _audit(session_factory, clock, actor, summary)
    if progress:
        progress(summary.total, summary.total)
    log.info(
        "patients.import.done",
        **counts,
        ignored_columns=len(summary.ignored_columns),
        seconds=round(_time.monotonic() - started, 2),
    )
    return summary


def _import_rows(
    stream: IO[str],
    header_line: int,
    delimiter: str,
    columns: dict[str, int],
    width: int,
    ctx: _Context,
    session_factory: SessionFactory,
    clock: Clock,
    nurse_ids: dict[str, int],
    summary: ImportSummary,
    batch_size: int,
    tick: Callable[[int], None],
) -> None:
    batch: list[PatientRecord] = []
    line = header_line
    try:
        for line, cells in _rows(_renumbered(stream, header_line), delimiter):
            summary.total += 1
            parsed = _parse_row(line, cells, columns, width, ctx)
            if isinstance(parsed, RowRejection):
                summary.rejected.append(parsed)
            else:
                batch.append(parsed)
            if summary.total % batch_size == 0:
                _store(session_factory, batch, clock, columns, nurse_ids, summary)
                batch = []
                tick(summary.total)
    except csv.Error as exc:
        # Rows before it are kept; what follows cannot be read reliably.
        _store(session_factory, batch, clock, columns, nurse_ids, summary)
        raise ImportRowError(
            line=line + 1, field="file", reason=f"not readable CSV after this point ({exc})"
        ) from None
    _store(session_factory, batch, clock, columns, nurse_ids, summary)


def _audit(
    session_factory: SessionFactory,
    clock: Clock,
    actor: str,
    summary: ImportSummary,
    interrupted: str | None = None,
) -> dict[str, object]:
    """One audit event per import, with counts only (never a patient's data)."""
    counts: dict[str, object] = {
        "total": summary.total,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "rejected": len(summary.rejected),
    }
    detail = {**counts, "interrupted": interrupted} if interrupted else counts
    with session_factory() as session:
        session.add(
            AuditEvent(
                at=clock.now(),
                actor=actor,
                action="patients.import",
                detail=json.dumps(detail, sort_keys=True),
            )
        )
        session.commit()
    return counts


def _first_line(stream: IO[str], after: int = 0) -> tuple[int, str]:
    """The next non-blank physical line and its number (the header)."""
    number = after
    for raw in stream:
        number += 1
        text = raw.rstrip("\r\n").lstrip("\ufeff")
        if text.strip():
            return number, text
    raise _file_error("file", "the file is empty" if after == 0 else "no header after 'sep='")


def _renumbered(stream: IO[str], header_line: int) -> Iterator[str]:
    """Feed the csv reader blank lines for what was consumed, so line_num is physical."""
    yield from ("\n" for _ in range(header_line))
    yield from stream


def _store(
    session_factory: SessionFactory,
    batch: list[PatientRecord],
    clock: Clock,
    columns: dict[str, int],
    nurse_ids: dict[str, int],
    summary: ImportSummary,
) -> None:
    if not batch:
        return
    with session_factory() as session:
        result = upsert_patients(
            session,
            batch,
            clock.now(),
            columns=columns,
            nurse_ids=nurse_ids,
            batch_size=len(batch),
        )
        session.commit()
    summary.inserted += result.inserted
    summary.updated += result.updated
    summary.unchanged += result.unchanged
    summary.rejected.extend(result.rejected)
