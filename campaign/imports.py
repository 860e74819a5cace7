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
    PatientRecord,
    RowRejection,
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
_OVERSEAS_PREFIXES = {
    "590": "GP", "690": "GP", "691": "GP",
    "594": "GF", "694": "GF",
    "596": "MQ", "696": "MQ", "697": "MQ",
    "262": "RE", "263": "RE", "692": "RE", "693": "RE",
    "269": "YT", "639": "YT",
}
_PHONE_CHARS = re.compile(r"\+?[\d\s.\-/()]+")
_INVALID_PHONE = "not a valid French phone number"


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
    digits = re.sub(r"\D", "", raw)
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
            digits = "0" + digits     # a spreadsheet dropped the leading zero
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
            raise _Invalid(
                "unknown pathology (expected " + ", ".join(sorted(codes)) + " or a French label)"
            )
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


_TIERS = {
    "low": Tier.low, "faible": Tier.low, "bas": Tier.low, "1": Tier.low,
    "medium": Tier.medium, "modere": Tier.medium, "moyen": Tier.medium,
    "intermediaire": Tier.medium, "2": Tier.medium,
    "high": Tier.high, "eleve": Tier.high, "fort": Tier.high, "haut": Tier.high, "3": Tier.high,
}


def parse_tier(text: str) -> Tier:
    tier = _TIERS.get(_key(text))
    if tier is None:
        raise _Invalid("unknown risk tier (expected low/medium/high, faible/modéré/élevé or 1/2/3)")
    return tier


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

_WINDOW_TIME = r"(\d{1,2})\s*(?:[h:]\s*(\d{2})?)?"
_WINDOW = re.compile(
    r"(?:de\s+)?" + _WINDOW_TIME + r"\s*(?:-|–|—|à|a|to)\s*" + _WINDOW_TIME, re.IGNORECASE
)


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
                    raise _file_error(
                        "file", "not readable text (neither UTF-8 nor Windows-1252)"
                    ) from None
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
                canonical, f"two columns mean {canonical}: {cells[mapping[canonical]]!r} "
                f"and {name!r}"
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


_MEMBER_ID = re.compile(r"[A-Za-z0-9]{4,32}")
_RPPS = re.compile(r"\d{11}")
_NAME_FORBIDDEN = re.compile(r"[\d@#$%*=<>{}\[\]\\_|~^]|[\x00-\x1f]")
_ADULT_AGE = 18
_MAX_AGE = 120


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _parse_row(
    line: int, cells: list[str], columns: dict[str, int], width: int, ctx: _Context
) -> PatientRecord | RowRejection:
    """Validate every field; the first problem names the rejection, the rest are listed."""
    if len(cells) > width and any(c.strip() for c in cells[width:]):
        return RowRejection(
            line, "row", f"{len(cells)} cells but the header has {width} (a delimiter in a "
            "value that is not quoted?)",
        )

    def cell(name: str) -> str:
        index = columns.get(name)
        if index is None or index >= len(cells):
            return ""
        return cells[index].strip()

    problems: list[tuple[str, str]] = []
    out: dict[str, object] = {}

    def check(name: str, parse: Callable[[str], object], required: bool = False) -> None:
        text = cell(name)
        if not text:
            if required:
                problems.append((name, "required value is missing"))
            return
        try:
            out[name] = parse(text)
        except _Invalid as exc:
            problems.append((name, str(exc)))

    check("member_id", _parse_member_id, required=True)
    check("last_name", _parse_name, required=True)
    check("first_name", _parse_name, required=True)
    check("birth_date", lambda t: _parse_birth_date(t, ctx.today), required=True)
    check("sex", _parse_sex)
    check("postal_code", _parse_postal_code, required=True)
    postal = out.get("postal_code")
    departement = departement_from_postal_code(postal) if isinstance(postal, str) else None
    region = phone_region_for(departement) if departement else "FR"
    check("phone", lambda t: normalise_phone(t, region), required=True)
    check("phone_alt", lambda t: normalise_phone(t, region))
    check("city", _parse_city)
    check("pathologies", lambda t: parse_pathologies(t, ctx.pathologies), required=True)
    check("tier", parse_tier, required=True)
    check("status", _parse_status)
    check("suspended_until", parse_date)
    check("consent", _parse_consent)
    check("preferred_window", parse_window)
    check("referent_nurse", lambda t: _parse_nurse(t, ctx.nurse_codes))
    check("physician_rpps", _parse_rpps)
    check("physician_name", _parse_physician_name)
    check("enrolled_on", lambda t: _parse_past_date(t, ctx.today))
    if "physician_name" in out and not cell("physician_rpps"):
        problems.append(("physician_rpps", "required when physician_name is given"))

    member_id = out.get("member_id")
    if isinstance(member_id, str):
        first = ctx.first_line.setdefault(member_id, line)
        if first != line:
            problems.insert(0, ("member_id", f"duplicate of line {first}"))

    if problems:
        name, reason = problems[0]
        others = sorted({p[0] for p in problems[1:]} - {name})
        if others:
            reason += f" (also invalid: {', '.join(others)})"
        return RowRejection(line, name, reason)

    window = out.get("preferred_window")
    assert departement is not None
    return PatientRecord(
        member_id=str(out["member_id"]),
        last_name=str(out["last_name"]),
        first_name=str(out["first_name"]),
        birth_date=out["birth_date"],  # type: ignore[arg-type]
        sex=out.get("sex"),  # type: ignore[arg-type]
        phone=str(out["phone"]),
        phone_alt=out.get("phone_alt"),  # type: ignore[arg-type]
        postal_code=str(out["postal_code"]),
        departement=departement,
        timezone=zone_for(departement),
        city=str(out.get("city", "")),
        pathologies=pathologies_to_text(out["pathologies"]),  # type: ignore[arg-type]
        tier=str(out["tier"]),
        status=out.get("status"),  # type: ignore[arg-type]
        suspended_until=out.get("suspended_until"),  # type: ignore[arg-type]
        consent=out.get("consent"),  # type: ignore[arg-type]
        preferred_start=window[0] if isinstance(window, tuple) else None,
        preferred_end=window[1] if isinstance(window, tuple) else None,
        referent_nurse=out.get("referent_nurse"),  # type: ignore[arg-type]
        physician_rpps=out.get("physician_rpps"),  # type: ignore[arg-type]
        physician_name=out.get("physician_name"),  # type: ignore[arg-type]
        enrolled_on=out.get("enrolled_on"),  # type: ignore[arg-type]
        line=line,
    )


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
        value = "0" + value           # Excel dropped the leading zero
    if not re.fullmatch(r"\d{5}", value):
        raise _Invalid("not a 5-digit French postal code")
    if value.startswith("98"):           # Monaco, Pacific territories
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
        raise _Invalid("unknown status (expected enrolled/suspended/withdrawn/deceased "
                       "or inscrit/suspendu/sorti/décédé)")
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
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    """Import (upsert) the patients of a CSV file; see the module docstring for columns.

    Each batch is committed on its own so a long import never holds SQLite's
    write lock for long (the dialer keeps recording outcomes meanwhile), and a
    re-run after a crash finishes the job: the upsert is idempotent. Raises
    ImportRowError(line=1, …) for a file-level problem; row problems are in
    the summary.
    """
    started = _time.monotonic()
    file = Path(path)
    encoding, newlines = _sniff_encoding(file)
    today = clock.now().astimezone(ZoneInfo("Europe/Paris")).date()
    summary = ImportSummary(encoding=encoding)

    with session_factory() as session:
        nurse_ids = nurse_ids_by_code(session)
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
                stream, first_line_no, delimiter, columns, len(header), ctx, session_factory,
                clock, nurse_ids, summary, batch_size,
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
        "patients.import.done", **counts, ignored_columns=len(summary.ignored_columns),
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
                at=clock.now(), actor=actor, action="patients.import",
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
            session, batch, clock.now(), columns=columns, nurse_ids=nurse_ids,
            batch_size=len(batch),
        )
        session.commit()
    summary.inserted += result.inserted
    summary.updated += result.updated
    summary.unchanged += result.unchanged
    summary.rejected.extend(result.rejected)
