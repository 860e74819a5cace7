"""The import itself: read, validate, upsert in batches, audit.

Each batch is committed on its own (see import_patients); counts and rejections
add up in an ImportSummary, which holds no personal value.
"""

from __future__ import annotations

import csv
import json
import re
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import structlog

from campaign import services, store
from campaign.clock import Clock
from campaign.db import SessionFactory
from campaign.imports.reading import (
    _file_error,
    _first_line,
    _Lines,
    _map_header,
    _records,
    _sniff_delimiter,
    _sniff_encoding,
)
from campaign.imports.rows import _Context, _parse_row
from campaign.member_ids import MemberIds
from campaign.policy import Policy
from campaign.store.registry import (
    BATCH_SIZE,
    PG_BATCH_SIZE,
    PatientRecord,
    RowRejection,
    is_postgresql,
    nurse_ids_by_code,
    upsert_patients,
)

log = structlog.get_logger()

Progress = Callable[[int, int], None]


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
    # patients who had no valid number and got one from this file: they have a next contact again
    contacts_restored: int = 0

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged


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
    accept_similar_ids: bool = False,
) -> ImportSummary:
    """Import (upsert) the patients of a CSV file; see the module docstring for columns.

    Each batch is committed on its own so a long import never holds SQLite's
    write lock (or PostgreSQL row locks) for long (the dialer keeps recording
    outcomes meanwhile), and a re-run after a crash finishes the job: the upsert
    is idempotent. `batch_size` defaults to registry.BATCH_SIZE rows on SQLite and
    registry.PG_BATCH_SIZE on PostgreSQL (COPY + set-based merge per batch). Raises
    ImportRowError(line=1, …) for a file-level problem; row problems are in the
    summary. A member id equal to a known one (stored, or earlier in the file) once
    leading zeros are stripped is refused as a probable duplicate unless the
    supervisor confirms with `accept_similar_ids`.
    """
    started = _time.monotonic()
    file = Path(path)
    encoding, newlines, nul = _sniff_encoding(file)
    today = clock.now().astimezone(ZoneInfo("Europe/Paris")).date()
    summary = ImportSummary(encoding=encoding)

    programme = services.Context(session_factory, policy, clock)
    without_number = services.without_number(programme)
    with session_factory() as session:
        nurse_ids = nurse_ids_by_code(session)
        postgresql = is_postgresql(session)
    if batch_size is None:
        batch_size = PG_BATCH_SIZE if postgresql else BATCH_SIZE
    ctx = _Context(
        today=today,
        pathologies={code: p.label for code, p in policy.pathologies.items()},
        nurse_codes=set(nurse_ids),
        nul=nul,
        member_ids=MemberIds(),
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
                cr_only=newlines == 0,
                accept_similar=accept_similar_ids,
            )
        except BaseException as exc:
            if summary.inserted or summary.updated:
                # Batches already committed are real changes: they must be in the trail.
                interrupted = type(exc).__name__
                _audit(session_factory, clock, actor, summary, accept_similar_ids, interrupted)
            raise

    if summary.total == 0:
        raise _file_error("file", "no data rows after the header")
    summary.rejected.sort(key=lambda r: r.line)
    summary.contacts_restored = services.restore_contacts(programme, without_number)
    counts = _audit(session_factory, clock, actor, summary, accept_similar_ids)
    if progress:
        progress(summary.total, summary.total)
    log.info(
        "patients.import.done",
        **counts,
        ignored_columns=len(summary.ignored_columns),
        contacts_restored=summary.contacts_restored,
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
    cr_only: bool,
    accept_similar: bool,
) -> None:
    batch: list[PatientRecord] = []
    names = [""] * width  # column index -> the field it holds (blank: ignored)
    for name, index in columns.items():
        names[index] = name
    lines = _Lines(stream, header_line + 1)
    for record in _records(lines, delimiter, names, cr_only):
        summary.total += 1
        if isinstance(record, RowRejection):
            summary.rejected.append(record)
        else:
            parsed = _parse_row(record[0], record[1], columns, width, ctx)
            if isinstance(parsed, RowRejection):
                summary.rejected.append(parsed)
            else:
                batch.append(parsed)
        if summary.total % batch_size == 0:
            _store(session_factory, batch, clock, columns, nurse_ids, summary, ctx.member_ids, accept_similar)
            batch = []
            tick(summary.total)
    _store(session_factory, batch, clock, columns, nurse_ids, summary, ctx.member_ids, accept_similar)


def _audit(
    session_factory: SessionFactory,
    clock: Clock,
    actor: str,
    summary: ImportSummary,
    accept_similar_ids: bool,
    interrupted: str | None = None,
) -> dict[str, object]:
    """One audit event per import, with counts only (never a patient's data).

    A supervisor's confirmation of similar member ids is in it too: it made patients.
    """
    counts: dict[str, object] = {
        "total": summary.total,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "rejected": len(summary.rejected),
    }
    detail = dict(counts)
    if summary.contacts_restored:
        detail["contacts_restored"] = summary.contacts_restored
    if accept_similar_ids:
        detail["accept_similar_ids"] = True
    if interrupted:
        detail["interrupted"] = interrupted
    with session_factory() as session:
        store.audit(session, clock.now(), actor, "patients.import", detail=json.dumps(detail, sort_keys=True))
        session.commit()
    return counts


def _store(
    session_factory: SessionFactory,
    batch: list[PatientRecord],
    clock: Clock,
    columns: dict[str, int],
    nurse_ids: dict[str, int],
    summary: ImportSummary,
    member_ids: MemberIds,
    accept_similar_ids: bool,
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
            accept_similar_ids=accept_similar_ids,
            member_ids=member_ids,
        )
        session.commit()
    summary.inserted += result.inserted
    summary.updated += result.updated
    summary.unchanged += result.unchanged
    summary.rejected.extend(result.rejected)
