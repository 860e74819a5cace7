"""Mailings and their waves on the board: record a mailing, preview the wave's plan, launch, pause,
resume, cancel (after a confirmation). The same services as `carecall mailing` and `carecall wave`.

Every change is announced on the bus (`WAVES`), so every board open shows it at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from campaign import calendar as cal
from campaign import services, store
from campaign.errors import CarecallError, InvalidArgument, NotFound
from campaign.imports import parse_date
from campaign.reports.charts import svg_columns
from campaign.services.waves import SKIP_NOTES, UNPLACED_NOTE
from campaign.states import WaveStatus
from campaign.store import progress
from dialer.web.auth import Role, User, require
from dialer.web.board import live
from dialer.web.pages import page

Supervisor = Annotated[User, Depends(require(Role.supervisor))]
LEFT_OUT_SHOWN = 200  # patients listed on the wave's page; the rest are counted
ACTIONS = ("launch", "pause", "resume")
TIER_COLOURS = {"high": "#b91c1c", "medium": "#d97706", "low": "#1d4ed8"}
# the plan note of a recipient, back to its reason's code (the notes are stored in English)
NOTE_CODES = {note: code for code, note in SKIP_NOTES.items()} | {UNPLACED_NOTE: "unplaced"}


def actor_of(user: User) -> str:
    """How a supervisor appears in the audit trail (a nurse is "nurse:CODE")."""
    return f"supervisor:{user.username}"


def plan_chart(plan: dict[str, Any], tier_labels: dict[str, str], title: str) -> Markup:
    """The plan's first calls per day and tier, as columns. The page's table is its text version."""
    days = list(plan.get("days", {}))
    series = [
        (tier_labels[t], TIER_COLOURS[t], [plan["days"][d]["tasks"].get(t, 0) for d in days])
        for t in ("high", "medium", "low")
    ]
    return no_inline_style(svg_columns([f"{d[8:10]}/{d[5:7]}" for d in days], series, title=title))


def no_inline_style(svg: Markup) -> Markup:
    """The charts' inline width style, which the pages' Content-Security-Policy refuses (board.css
    sets it instead)."""
    return Markup(re.sub(r' style="max-width:\d+px"', "", str(svg)))


@dataclass(frozen=True)
class WavePage:
    wave: Any
    mailing: Any
    theme_label: str
    tasks: dict[str, int]
    left_out_count: int
    left_out: list[tuple[str, str, str]]  # member id, tier, reason code (or the note itself)

    @property
    def plan_after_local(self) -> datetime:
        """When the scheduler plans the wave, on the Paris wall clock."""
        return cal.local_time_of(self.wave.plan_after, services.PARIS)


def wave_page_data(ctx: services.Context, wave_id: int) -> WavePage:
    """The wave, its mailing, its tasks and who planning left out; 404 for a wave that does not exist."""
    with ctx.sessions() as s:
        wave = store.wave_row(s, wave_id)
        if wave is None:
            raise HTTPException(404)
        mailing = store.mailing_row(s, wave.mailing_id)
        assert mailing is not None and mailing.id is not None
        count, rows = progress.left_out(s, mailing.id, LEFT_OUT_SHOWN)
        tasks = store.task_status_counts(s, wave_id)
        s.expunge_all()
    theme = ctx.policy.themes.get(mailing.theme_code)
    left = [(r.member_id, r.tier, NOTE_CODES.get(r.plan_note, r.plan_note)) for r in rows]
    return WavePage(wave, mailing, theme.label if theme else mailing.theme_code, tasks, count, left)


def router(web: Any) -> APIRouter:
    api = APIRouter()
    ctx: services.Context = web.ctx

    def announce(wave_id: int) -> None:
        from dialer.staff.bus import WAVES

        web.bus.publish(WAVES, str(wave_id))

    def mailing_form(request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
        form = {"theme": "", "segment": "", "sent_on": "", "late": False, "error": None} | values
        return page(request, "board_mailing.html.j2", status_code, themes=ctx.policy.themes, form=form)

    @api.get("/board/mailings/new")
    def new_mailing(request: Request, user: Supervisor) -> HTMLResponse:
        return mailing_form(request)

    @api.post("/board/mailings", response_model=None)
    def record_mailing(
        request: Request,
        user: Supervisor,
        theme: Annotated[str, Form()] = "",
        segment: Annotated[str, Form()] = "",
        sent_on: Annotated[str, Form()] = "",
        late: Annotated[str | None, Form()] = None,
    ) -> Response:
        values = {"theme": theme, "segment": segment, "sent_on": sent_on, "late": bool(late)}
        if theme not in ctx.policy.themes:
            return mailing_form(request, 422, error=("theme", None), **values)
        try:
            day: date = parse_date(sent_on.strip())
        except ValueError:
            return mailing_form(request, 422, error=("sent_on", None), **values)
        try:
            rec = services.record_mailing(
                ctx, theme, segment.strip() or None, day, late=bool(late), actor=actor_of(user)
            )
        except (InvalidArgument, NotFound) as exc:
            return mailing_form(request, 422, error=("refused", str(exc)), **values)
        announce(rec.wave_id)
        return RedirectResponse(f"/board/waves/{rec.wave_id}", status_code=303)

    @api.get("/board/waves")
    def wave_list(request: Request, user: Supervisor) -> HTMLResponse:
        with ctx.sessions() as s:
            waves = store.waves_with_mailings(s)
        themes = {c: t.label for c, t in ctx.policy.themes.items()}
        return page(request, "board_waves.html.j2", waves=list(reversed(waves)), themes=themes)

    def show(
        request: Request, wave_id: int, status_code: int = 200, error: str | None = None
    ) -> HTMLResponse:
        data = wave_page_data(ctx, wave_id)
        current = next((w for w in live.read_waves(ctx) if w.id == wave_id), None)
        labels = web.templates.get_template("board_labels.html.j2").module
        chart = plan_chart(
            data.wave.plan, labels.tiers, "Premiers appels prévus par jour et niveau de risque"
        )
        return page(
            request,
            "board_wave.html.j2",
            status_code,
            data=data,
            current=current,
            chart=chart if data.wave.plan.get("days") else None,
            error=error,
            themes={c: t.label for c, t in ctx.policy.themes.items()},
        )

    @api.get("/board/waves/{wave_id}", response_model=None)
    def wave_page(request: Request, wave_id: int, user: Supervisor) -> HTMLResponse:
        return show(request, wave_id)

    def change(request: Request, wave_id: int, user: User, action: str) -> Response:
        try:
            if action == "plan":
                with ctx.sessions() as s:
                    replan = services.get_wave(s, wave_id).status == WaveStatus.planned
                services.plan_wave(ctx, wave_id, replan=replan, actor=actor_of(user))
            else:
                services.change_wave(ctx, wave_id, action, actor=actor_of(user))
        except NotFound:
            raise HTTPException(404) from None
        except CarecallError as exc:
            return show(request, wave_id, 409, error=str(exc))
        announce(wave_id)
        return RedirectResponse(f"/board/waves/{wave_id}", status_code=303)

    @api.post("/board/waves/{wave_id}/plan", response_model=None)
    def plan(request: Request, wave_id: int, user: Supervisor) -> Response:
        return change(request, wave_id, user, "plan")

    def action_route(action: str) -> Any:
        def act(request: Request, wave_id: int, user: Supervisor) -> Response:
            return change(request, wave_id, user, action)

        return act

    for action in ACTIONS:
        api.add_api_route(
            f"/board/waves/{{wave_id}}/{action}", action_route(action), methods=["POST"], response_model=None
        )

    @api.get("/board/waves/{wave_id}/cancel")
    def confirm_cancel(request: Request, wave_id: int, user: Supervisor) -> HTMLResponse:
        return page(request, "board_cancel.html.j2", data=wave_page_data(ctx, wave_id))

    @api.post("/board/waves/{wave_id}/cancel", response_model=None)
    def cancel(
        request: Request, wave_id: int, user: Supervisor, confirm: Annotated[str, Form()] = ""
    ) -> Response:
        if confirm != "yes":
            # a cancel is for good: without the confirmation's answer, ask again
            return RedirectResponse(f"/board/waves/{wave_id}/cancel", status_code=303)
        return change(request, wave_id, user, "cancel")

    return api
