"""Reading an import file: encoding, delimiter, the `sep=` line, the header, records.

Supervisors export registries from Excel, LibreOffice or the insurer's tools,
so the reader is lenient about form: the delimiter is sniffed among ``;``, ``,``
and TAB (an Excel ``sep=;`` first line is honoured); the encoding is UTF-8 with or
without BOM (UTF-16 with BOM, as Excel's "Unicode text" writes it, too), falling
back to Windows-1252; headers match case- and accent-insensitively, in English
or French.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from campaign.errors import ImportRowError
from campaign.imports.values import _key

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
