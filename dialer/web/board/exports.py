"""CSV exports: the files to fix, a wave's report, the audit trail (spreadsheet.py makes them safe
to open in a spreadsheet). Column headers and labels come from prompts/web/board_labels.html.j2."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from campaign import reports, services
from campaign.errors import NotFound
from campaign.explain import patients_to_fix
from dialer.web.auth import Role, User, require
from dialer.web.board.patients import audit_lines
from dialer.web.board.spreadsheet import csv_response, wave_rows
from dialer.web.board.waves import actor_of

Supervisor = Annotated[User, Depends(require(Role.supervisor))]
AUDIT_EXPORTED = 100_000


def router(web: Any) -> APIRouter:
    api = APIRouter()
    ctx: services.Context = web.ctx

    def labels() -> Any:
        return web.templates.get_template("board_labels.html.j2").module

    @api.get("/board/exports/to-fix.csv")
    def to_fix_csv(request: Request, user: Supervisor) -> Response:
        items = patients_to_fix(ctx, actor=actor_of(user))
        L = labels()
        rows = [
            [p.member_id, L.tiers.get(p.tier, p.tier), L.patient_statuses.get(p.status, p.status), p.flagged,
             p.since, p.next_contact_on]
            for p in items
        ]  # fmt: skip
        return csv_response("dossiers-a-corriger.csv", L.csv_to_fix, rows)

    @api.get("/board/waves/{wave_id}/report.csv")
    def wave_csv(request: Request, wave_id: int, user: Supervisor) -> Response:
        try:
            with ctx.sessions() as s:
                report = reports.wave_report(s, ctx.policy, wave_id)
        except NotFound:
            raise HTTPException(404) from None
        L = labels()
        rows = wave_rows(report, L.csv_total)
        for r in rows[:-1]:
            r[0] = L.tiers.get(r[0], r[0])
        return csv_response(f"vague-{wave_id}.csv", L.csv_wave, rows)

    @api.get("/board/audit.csv")
    def audit_csv(request: Request, user: Supervisor, patient: str = "", actor: str = "") -> Response:
        lines, found = audit_lines(ctx, user, patient.strip(), actor.strip(), limit=AUDIT_EXPORTED)
        if not found:
            raise HTTPException(404)
        L = labels()
        rows = [
            [a.at, a.actor, L.audit_actions.get(a.action, a.action), a.member_id, a.detail] for a in lines
        ]
        return csv_response("journal-audit.csv", L.csv_audit, rows)

    return api
