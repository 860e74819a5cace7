"""A wave's report on the board: the figures and charts of `carecall wave report`, in the board's
pages, and the same self-contained French page to download (it opens from a mail attachment)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from campaign import reports, services
from campaign.errors import NotFound
from campaign.reports.charts import Charts
from dialer.web.auth import Role, User, require
from dialer.web.board.waves import no_inline_style
from dialer.web.pages import page

Supervisor = Annotated[User, Depends(require(Role.supervisor))]


class BoardCharts:
    """The report's charts (campaign.reports.charts) without the inline style the pages' CSP refuses."""

    def __getattr__(self, name: str) -> Any:
        draw = getattr(Charts, name)

        def drawn(*args: Any, **kwargs: Any) -> Markup:
            return no_inline_style(draw(*args, **kwargs))

        return drawn


def router(web: Any) -> APIRouter:
    api = APIRouter()
    ctx: services.Context = web.ctx

    def report_of(wave_id: int) -> dict[str, Any]:
        try:
            with ctx.sessions() as s:
                return reports.wave_report(s, ctx.policy, wave_id)
        except NotFound:
            raise HTTPException(404) from None

    @api.get("/board/waves/{wave_id}/report")
    def report_page(request: Request, wave_id: int, user: Supervisor) -> HTMLResponse:
        return page(request, "board_report.html.j2", r=report_of(wave_id), charts=BoardCharts())

    @api.get("/board/waves/{wave_id}/report.html")
    def report_file(request: Request, wave_id: int, user: Supervisor) -> Response:
        return HTMLResponse(
            reports.render_html(report_of(wave_id)),
            headers={"content-disposition": f'attachment; filename="rapport-vague-{wave_id}.html"'},
        )

    return api
