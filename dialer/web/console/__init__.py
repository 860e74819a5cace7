"""The nurse console: `router(web) -> APIRouter` (dialer.web.core includes it).

    GET  /console                         her state, her call (the page)
    GET  /console/stream                  server-sent events: the parts a change of her presence refreshes
    POST /console/ready | pause | offline | hangup
    POST /console/calls/{attempt}/identity   "identité confirmée" (or not)
    POST /console/calls/{attempt}/outcome    the outcome form
    GET  /console/patients/{patient}      the file of her call's patient; any other: 403, audited

Every change goes through `NurseCommands` to the dialer process that owns her, and comes back to the
console through the bus (PRESENCE): the page never polls. A nurse sees only the patient of her current
or promised call (`PresenceView.patient_id`). The routes are here; the reads, renders and commands
they share are `service.Console`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from campaign.logs import get_logger
from campaign.store.files import audit
from dialer.staff.commands import OutcomeRequest
from dialer.staff.store import PresenceView
from dialer.web.auth import Forbidden, Role, User, require
from dialer.web.console import view
from dialer.web.console.forms import FieldError, OutcomeChoice, OutcomeForm, parse_outcome
from dialer.web.console.service import Console
from dialer.web.core import Web
from dialer.web.pages import error_page, page

log = get_logger("dialer.web.console")

STREAM_SAFETY_SECONDS = 15.0  # with no event, the stream reads her presence anyway (a lost notification)

Nurse = Annotated[User, Depends(require(Role.nurse))]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _refused(result: str | None) -> str | None:
    """The notice to show when a command was not carried out (its French text is the template's; the
    reason itself is logged): None, "timeout" or "refused"."""
    if result == "ok":
        return None
    return "timeout" if result is None else "refused"


def router(web: Web) -> APIRouter:
    api = APIRouter()
    console = Console(web)

    @api.get("/console", response_class=HTMLResponse)
    def home(request: Request, user: Nurse) -> HTMLResponse:
        p = console.presence(user)
        return page(request, "console.html.j2", **console.context(p, console.call(p)))

    @api.get("/console/stream")
    async def stream(request: Request, user: Nurse, v: int = -1, call: str = "") -> EventSourceResponse:
        """Her console's live parts. `v` and `call`: the version and call panel of the page that opens
        it, so a change between the page and its stream is sent at once, and nothing else is."""
        if user.nurse_id is None:
            raise Forbidden("no nurse record")
        listener = console.hub.listen(user.nurse_id)  # before the first read: no change can fall in between
        try:
            p0 = await console.in_stream_thread(console.presence, user)
        except BaseException:
            listener.close()
            raise

        async def events() -> AsyncIterator[bytes]:
            try:
                p: PresenceView | None = p0 if p0.version != v else None
                before = view.Snapshot.of(p0) if p is None else None
                while True:
                    if p is not None:
                        snap = view.Snapshot.of(p)
                        names = snap.parts_changed(before, call if before is None else None)
                        parts = await console.in_stream_thread(console.parts, request, names, p)
                        # one write for them all: each goes through every middleware, and waits for
                        # the GIL again after its system call
                        yield b"".join(
                            ServerSentEvent(data=html, event=name).encode() for name, html in parts
                        )
                        before = snap
                    # None after the safety delay: a lost notification costs a delay, never a state
                    await listener.next(STREAM_SAFETY_SECONDS)
                    p = await console.in_stream_thread(console.presence, user)
            finally:
                listener.close()

        return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})

    def after_command(request: Request, user: User, result: str | None, what: str) -> Response:
        notice = _refused(result)
        if notice is not None:
            log.info("console.command_refused", command=what, nurse=user.nurse_id, result=result)
        if not _is_htmx(request):
            return RedirectResponse("/console", status_code=303)
        p = console.presence(user)
        return page(request, "console_state.html.j2", **console.context(p, notice=notice))

    @api.post("/console/ready")
    async def ready(request: Request, user: Nurse) -> Response:
        result = await console.command(user, web.commands.ready)
        return await run_in_threadpool(after_command, request, user, result, "ready")

    @api.post("/console/pause")
    async def pause(request: Request, user: Nurse) -> Response:
        reason = str((await request.form()).get("reason", ""))
        if reason in web.ctx.policy.web.pause_reasons:
            result = await console.command(user, lambda nurse: web.commands.pause(nurse, reason))
            return await run_in_threadpool(after_command, request, user, result, "pause")

        def unknown_reason() -> Response:
            p = console.presence(user)
            notice = "pause_reason"
            if not _is_htmx(request):
                return page(
                    request, "console.html.j2", 422, **console.context(p, console.call(p), notice=notice)
                )
            return page(request, "console_state.html.j2", **console.context(p, notice=notice))

        return await run_in_threadpool(unknown_reason)

    @api.post("/console/offline")
    async def offline(request: Request, user: Nurse) -> Response:
        result = await console.command(user, web.commands.offline)
        return await run_in_threadpool(after_command, request, user, result, "offline")

    @api.post("/console/hangup")
    async def hangup(request: Request, user: Nurse) -> Response:
        result = await console.command(user, web.commands.hangup)
        if _is_htmx(request):
            return Response(status_code=204)
        return await run_in_threadpool(after_command, request, user, result, "hangup")

    def her_call(user: User, attempt_id: int) -> PresenceView:
        p = console.presence(user)
        if p.attempt_id != attempt_id or view.phase_of(p) != view.Phase.connected:
            raise Forbidden("not her call")
        return p

    def call_panel(request: Request, p: PresenceView, form: OutcomeForm | None = None) -> HTMLResponse:
        status = 422 if form is not None and form.errors and not _is_htmx(request) else 200
        context = console.context(p, console.call(p), form)
        if _is_htmx(request):
            return page(request, "console_call.html.j2", **context)
        return page(request, "console.html.j2", status, **context)

    @api.post("/console/calls/{attempt_id}/identity")
    async def identity(request: Request, user: Nurse, attempt_id: int) -> Response:
        confirmed = (await request.form()).get("confirmed") == "yes"

        def run() -> Response:
            p = her_call(user, attempt_id)
            assert p.patient_id is not None
            with web.ctx.sessions() as s:
                action = view.CONFIRMED if confirmed else view.NOT_CONFIRMED
                audit(s, view.actor_of(p), action, p.patient_id, f"attempt={attempt_id}", web.ctx.clock.now())
                s.commit()
            if not _is_htmx(request):
                return RedirectResponse("/console", status_code=303)
            return call_panel(request, p)

        return await run_in_threadpool(run)

    @api.post("/console/calls/{attempt_id}/outcome")
    async def outcome(request: Request, user: Nurse, attempt_id: int) -> Response:
        data = {k: str(v) for k, v in (await request.form()).items()}
        checked = await run_in_threadpool(check, request, user, attempt_id, data)
        if isinstance(checked, Response):
            return checked
        p, form, facts = checked
        assert form.choice is not None
        asked = _request(attempt_id, form.choice)
        result = await console.command(user, lambda nurse: web.commands.outcome(nurse, asked))
        return await run_in_threadpool(recorded, request, p, form, facts, result)

    def check(
        request: Request, user: User, attempt_id: int, data: Mapping[str, str]
    ) -> Response | tuple[PresenceView, OutcomeForm, view.CallFacts]:
        """Her call and her form read: the form again with its errors, or what to record."""
        p = her_call(user, attempt_id)
        assert p.patient_id is not None
        with web.ctx.sessions() as s:
            facts = view.call_facts(s, web.ctx.policy, p, console.roster(s))
        form = parse_outcome(
            data,
            now=web.ctx.clock.now(),
            place=facts.place,
            hours=web.ctx.policy.calling_hours,
            qualified={n.id: n.name for n in facts.qualified},
        )
        if form.choice is None:
            return _into_call_panel(call_panel(request, p, form))
        return p, form, facts

    def recorded(
        request: Request, p: PresenceView, form: OutcomeForm, facts: view.CallFacts, result: str | None
    ) -> Response:
        attempt_id = p.attempt_id
        assert form.choice is not None
        if result not in ("ok", None):
            log.info("console.outcome_refused", nurse=p.nurse_id, attempt=attempt_id, result=result)
            return _into_call_panel(
                call_panel(request, p, OutcomeForm(form.values, (FieldError("form", "refused"),)))
            )
        context = console.context(p) | {
            "choice": form.choice,
            "zone": facts.place.timezone,
            "pending": result is None,
        }
        if not _is_htmx(request):
            return RedirectResponse("/console", status_code=303)
        return page(request, "console_recorded.html.j2", **context)

    @api.get("/console/patients/{patient_id}", response_class=HTMLResponse)
    def patient(request: Request, user: Nurse, patient_id: int) -> HTMLResponse:
        p = console.presence(user)
        if p.patient_id != patient_id:
            with web.ctx.sessions() as s:
                known = view.patient_exists(s, patient_id)
                detail = f"not her call (attempt={p.attempt_id or '-'})" + (
                    "" if known else f"; no patient {patient_id}"
                )
                audit(
                    s,
                    view.actor_of(p),
                    view.DENIED,
                    patient_id if known else None,
                    detail,
                    web.ctx.clock.now(),
                )
                s.commit()
            log.warning("console.file_refused", nurse=p.nurse_id, patient=patient_id)
            return error_page(request, 403)
        return page(request, "console_patient.html.j2", **console.context(p, console.call(p)))

    return api


def _into_call_panel(response: Response) -> Response:
    """The outcome form posts to the notice beside the call panel (the stream empties the panel once
    she is ready again, maybe before the answer arrives); the form shown again goes to the panel."""
    response.headers.update({"HX-Retarget": "#console-call", "HX-Reswap": "innerHTML"})
    return response


def _request(attempt_id: int, c: OutcomeChoice) -> OutcomeRequest:
    return OutcomeRequest(
        attempt_id=attempt_id,
        code=c.code,
        callback_at=c.callback_at,
        callback_nurse_id=c.callback_nurse_id,
        note=c.note,
        message=c.message,
        hospitalised_until=c.hospitalised_until,
    )
