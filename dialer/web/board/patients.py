"""The registry on the board: import a CSV (the same import as `carecall patients import`), why a
patient is or is not called (`carecall patients why`), the files to fix, the audit trail.

Every page that names patients is itself in the audit trail, under the supervisor's name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaign import calendar as cal
from campaign import services, store
from campaign.errors import ImportRowError, NotFound
from campaign.explain import explain_patient, patients_to_fix
from campaign.imports import import_patients, parse_date
from dialer.web.auth import Role, User, require
from dialer.web.board.waves import actor_of
from dialer.web.pages import page

Supervisor = Annotated[User, Depends(require(Role.supervisor))]
REJECTED_SHOWN = 200  # rejected rows listed after an import; the rest are counted (as the CLI does)
MAX_UPLOAD_BYTES = 1 << 30  # a national registry is a few hundred MB
AUDIT_SHOWN = 200


@dataclass(frozen=True)
class AuditLine:
    at: datetime  # Paris wall clock
    actor: str
    action: str
    member_id: str | None
    detail: str


def audit_lines(
    ctx: services.Context, user: User, member_id: str, actor: str, limit: int = AUDIT_SHOWN
) -> tuple[list[AuditLine], bool]:
    """The trail, newest first, of one patient (by member id) and/or one actor; (lines, patient
    found). Reading a patient's trail is itself recorded: it tells who handled their file."""
    from campaign.store import files

    with ctx.sessions() as s:
        patient_id = None
        if member_id:
            patient = store.patient_by_member_id(s, member_id)
            if patient is None:
                return [], False
            patient_id = patient.id
            files.audit(s, actor_of(user), "audit.read", patient_id, f"actor={actor}", ctx.clock.now())
            s.commit()
        rows = files.audit_trail(s, patient_id=patient_id, actor=actor or None, limit=limit)
    lines = [
        AuditLine(cal.local_time_of(r.at, services.PARIS), r.actor, r.action, r.member_id, r.detail)
        for r in rows
    ]
    return lines, True


async def _save_upload(upload: UploadFile) -> Path:
    """The uploaded file on disk, as the import reads a path; 413 past MAX_UPLOAD_BYTES."""
    fd, name = tempfile.mkstemp(prefix="carecall-import-", suffix=".csv")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise HTTPException(413)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def router(web: Any) -> APIRouter:
    api = APIRouter()
    ctx: services.Context = web.ctx

    @api.get("/board/import")
    def import_form(request: Request, user: Supervisor) -> HTMLResponse:
        return page(request, "board_import.html.j2", summary=None, filename=None, error=None)

    @api.post("/board/import")
    async def import_file(
        request: Request,
        user: Supervisor,
        file: Annotated[UploadFile, File()],
        accept_similar_ids: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        from starlette.concurrency import run_in_threadpool

        filename = Path(file.filename or "").name
        if not filename:
            return page(
                request, "board_import.html.j2", 422, summary=None, filename=None, error=("nofile", "")
            )
        path = await _save_upload(file)
        try:
            summary = await run_in_threadpool(
                import_patients,
                ctx.sessions,
                path,
                ctx.clock,
                ctx.policy,
                actor=actor_of(user),
                accept_similar_ids=bool(accept_similar_ids),
            )
        except ImportRowError as exc:
            return page(
                request, "board_import.html.j2", 422, summary=None, filename=filename, error=("file", exc)
            )
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        if summary.inserted or summary.updated:
            from dialer.staff.bus import WAVES

            web.bus.publish(WAVES, "")
        return page(
            request,
            "board_import.html.j2",
            summary=summary,
            rejected=summary.rejected[:REJECTED_SHOWN],
            filename=filename,
            error=None,
        )

    @api.get("/board/patients/why", response_model=None)
    def why_form(request: Request, user: Supervisor, member_id: str = "", on: str = "") -> Response:
        if member_id.strip():
            query = f"?{urlencode({'on': on.strip()})}" if on.strip() else ""
            return RedirectResponse(f"/board/patients/{quote(member_id.strip(), safe='')}/why{query}", 303)
        return page(request, "board_why.html.j2", exp=None, member_id="", on=on, error=None)

    @api.get("/board/patients/{member_id}/why")
    def why(request: Request, member_id: str, user: Supervisor, on: str = "") -> HTMLResponse:
        values: dict[str, Any] = {"member_id": member_id, "on": on, "exp": None}
        try:
            day = parse_date(on.strip()) if on.strip() else None
        except ValueError:
            return page(request, "board_why.html.j2", 422, error="date", **values)
        try:
            exp = explain_patient(ctx, member_id, day, actor=actor_of(user))
        except NotFound:
            return page(request, "board_why.html.j2", 404, error="unknown", **values)
        return page(request, "board_why.html.j2", error=None, **values | {"exp": exp})

    @api.get("/board/audit")
    def audit(request: Request, user: Supervisor, patient: str = "", actor: str = "") -> HTMLResponse:
        patient, actor = patient.strip(), actor.strip()
        lines, found = audit_lines(ctx, user, patient, actor)
        return page(
            request,
            "board_audit.html.j2",
            200 if found else 404,
            lines=lines,
            patient=patient,
            actor=actor,
            found=found,
            shown=AUDIT_SHOWN,
        )

    @api.get("/board/to-fix")
    def to_fix(request: Request, user: Supervisor) -> HTMLResponse:
        return page(request, "board_to_fix.html.j2", items=patients_to_fix(ctx, actor=actor_of(user)))

    return api
