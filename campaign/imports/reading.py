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
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from functools import partial
from itertools import chain
from pathlib import Path
from typing import IO

from campaign.errors import ImportRowError
from campaign.imports.values import _key
from campaign.store.registry import RowRejection

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


def _sniff_encoding(path: Path) -> tuple[str, int, bool]:
    """The file's encoding, its number of line breaks (for progress), and whether it holds a NUL.

    Streams the bytes so a national file is never held twice in memory. A NUL is
    looked for here, in bytes, so that rows are searched for one only in the rare
    file that has one (PostgreSQL refuses NUL in text; no office software writes it).
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
            nul = False
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if encoding == "utf-16":
                    text = decoder.decode(chunk)
                    newlines += text.count("\n")
                    nul = nul or "\x00" in text
                    continue
                newlines += chunk.count(b"\n")
                nul = nul or b"\x00" in chunk
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
    return encoding, newlines, nul


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


class _Lines:
    """The stream's lines as the csv reader reads them, kept back to the record being read.

    The reader iterates them at C speed (a chain over readlines() chunks). When a
    record turns out to span several lines, or the reader gives up on one, the
    lines since the record's start are still here to be read again one by one.
    """

    __slots__ = ("_chunk", "_kept", "_next", "_stream", "first", "keep_from")

    def __init__(self, stream: IO[str], first: int, chunk: int = 1 << 20) -> None:
        self._stream = stream
        self._chunk = chunk  # characters per readlines() call
        self._kept: deque[tuple[int, list[str]]] = deque()
        self.first = self._next = self.keep_from = first

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[str]]:
        kept = self._kept
        while chunk := self._stream.readlines(self._chunk):
            while kept and kept[0][0] + len(kept[0][1]) <= self.keep_from:
                kept.popleft()
            kept.append((self._next, chunk))
            self._next += len(chunk)
            yield chunk

    def span(self, first: int, last: int) -> list[str]:
        """Lines `first` to `last` (file line numbers, inclusive), as read."""
        out: list[str] = []
        for start, chunk in self._kept:
            low, high = max(first, start), min(last + 1, start + len(chunk))
            if low < high:
                out.extend(chunk[low - start : high - start])
        return out


def _records(
    lines: _Lines, delimiter: str, names: Sequence[str], cr_only: bool = False
) -> Iterator[tuple[int, list[str]] | RowRejection]:
    """(line, cells) of each non-empty record, or why a line cannot be read as one.

    Records never span lines in this format: a record the csv reader ran over
    several lines (a quote that never closes swallows the lines after it) or gave
    up on (a value over its field size limit) is read again line by line
    (_split_line), so only its own line is lost. `names` names the columns in
    rejections (blank: a column the import ignores). `cr_only`: the file's lines
    end with a lone CR (old Mac office software).
    """
    # A blank line after the last: a quote still open at the end of the file swallows
    # it, so that last record spans lines too and is read again like the others.
    reader = csv.reader(chain(lines, ("\n",)), delimiter=delimiter)
    offset = lines.first - 1
    start = lines.first  # line numbers of the stream (a lone CR ends one), as _Lines keeps them
    shift = 0  # lone CRs inside quoted values so far: line breaks of the stream, not of the file
    again = partial(_split_lines, delimiter=delimiter, names=names, cr_only=cr_only)
    while True:
        try:
            for cells in reader:
                end = reader.line_num + offset
                if end != start:
                    shift += yield from again(lines.span(start, end), start - shift)
                elif cells and (cells[0].strip() or any(c.strip() for c in cells)):
                    yield start - shift, cells
                start = lines.keep_from = end + 1
            return
        except csv.Error:
            end = reader.line_num + offset
            shift += yield from again(lines.span(start, end), start - shift)
            start = lines.keep_from = end + 1


def _split_lines(
    raw: list[str], first: int, delimiter: str, names: Sequence[str], cr_only: bool
) -> Generator[tuple[int, list[str]] | RowRejection, None, int]:
    """Each line of `raw` (the first is file line `first`) read on its own; returns how many were joined.

    A lone CR inside a quoted value (a spreadsheet cell holding one) breaks the
    stream's lines but not the file's: such pieces are joined again first, unless
    the file ends its lines that way.
    """
    text = ""
    line = first
    joined = 0
    for index, piece in enumerate(raw):
        if not text:
            line = first + index - joined
        text += piece
        if piece.endswith("\r") and not cr_only:  # "\r\n" ends with "\n": a lone CR
            joined += 1
            continue
        if text.strip():
            yield _split_line(line, text, delimiter, names)
        text = ""
    if text:  # the last piece ended with a lone CR: nothing was joined to it
        joined -= 1
        if text.strip():
            yield _split_line(line, text, delimiter, names)
    return joined


def _split_line(
    line: int, text: str, delimiter: str, names: Sequence[str]
) -> tuple[int, list[str]] | RowRejection:
    """The cells of one line, or why it is refused (a quote that does not close, a value too long)."""
    limit = csv.field_size_limit()
    # The line is in memory already: let a value be as long as the line, to say which it is.
    reader = csv.reader((text, ""), delimiter=delimiter)
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        cells = next(reader, [])
    except csv.Error:
        return RowRejection(
            line, "row", "not readable as CSV (a line break inside a value that is not quoted?)"
        )
    finally:
        csv.field_size_limit(limit)
    if reader.line_num > 1:  # the reader went on to the next line: the last value's quote never closed
        return RowRejection(
            line,
            _column_name(names, len(cells) - 1),
            "a quote opens the value but does not close it on its line (rows never span lines)",
        )
    for index, cell in enumerate(cells):
        if len(cell) > limit and index < len(names) and names[index]:
            return RowRejection(line, names[index], f"longer than {limit} characters")
    return line, cells


def _column_name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) and names[index] else "row"


def _first_line(stream: IO[str], after: int = 0) -> tuple[int, str]:
    """The next non-blank physical line and its number (the header)."""
    number = after
    for raw in stream:
        number += 1
        text = raw.rstrip("\r\n").lstrip("\ufeff")
        if text.strip():
            return number, text
    raise _file_error("file", "the file is empty" if after == 0 else "no header after 'sep='")
