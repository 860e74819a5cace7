"""The inbound line as a service: each step of a call (it arrives, the caller keys digits, the
wait comes round, the call ends) reads what is known, asks `decision.decide`, acts, and answers
a `Reply` that every backend plays its own way (TwiML, a dialplan's line, the simulation).

The call's state lives in inbound_call, so any web process can serve any step.
A nurse is reached through the dialer process that owns her: the line asks it
(`Commands.inbound`) and waits for its answer, "ok:<attempt id>" (she took it:
the owner started the incoming contact and its attempt) or a refusal (she was
no longer free): then the next candidate. No personal data in the logs: calls
are named by their inbound id, patients and nurses by theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from campaign import calendar as cal
from campaign import services
from campaign.imports.phones import normalise_phone
from campaign.imports.values import _Invalid
from campaign.logs import get_logger
from campaign.member_ids import member_key
from campaign.policy import Tier
from dialer.events import CallEvent, CallEventKind, Event
from dialer.inbound import store
from dialer.inbound.decision import Action, Caller, CallState, CallView, ReadyNurse, decide
from dialer.inbound.model import InboundCall
from dialer.inbound.prompts import Prompt, Said, say_hours, say_when, text
from dialer.lines import forward_events

log = get_logger("dialer.inbound")

WAIT_STEP_SECONDS = 15  # the caller hears "please wait" again, and the line looks for a nurse, this often
COMMAND_TIMEOUT_SECONDS = 3.0  # how long the line waits for a nurse's owner to answer
MAX_OFFERS = 3  # nurses offered the call in one step (a webhook must answer within seconds)
NORMAL_CLEARING = 16  # Q.850: the call ended normally


class Commands(Protocol):
    """How the line reaches a nurse's owner (dialer.staff.commands.NurseCommands)."""

    def inbound(self, nurse_id: int, inbound_call_id: int, patient_id: int) -> int: ...

    def wait(self, command_id: int, timeout_seconds: float) -> str | None: ...


# (ctx, patient_id, at, priority, note) -> task id: campaign.services.incoming.create_request_callback
RequestCallback = Callable[[services.Context, int, datetime, int, str], int]


class Step(StrEnum):
    """What the backend does with a reply."""

    gather_member = "gather_member"  # say, then collect digits ending with #
    gather_birth_year = "gather_birth_year"  # say, then collect four digits
    conference = "conference"  # say, then join the nurse's conference
    offer = "offer"  # (only with resolve_offers=False) offer the call to `nurses`, then `taken` or `nobody`
    wait = "wait"  # say, pause, then ask the line again
    hangup = "hangup"  # say, then hang up


@dataclass(frozen=True, slots=True)
class Reply:
    step: Step
    say: tuple[Said, ...]
    nurse_id: int | None = None  # conference: whose
    attempt_id: int | None = None
    pause_seconds: int = 0  # wait: how long before asking again
    patient_id: int | None = None  # offer: the caller
    nurses: tuple[int, ...] = ()  # offer: whom to offer the call to, in order
    inbound_id: int | None = None  # offer: the call (inbound_call.id)


def taken_attempt(result: str | None) -> int | None:
    """The attempt of an owner's answer "ok:<attempt id>"; None: refused, or no answer in time."""
    if result is None or not result.startswith("ok:"):
        return None
    try:
        return int(result.removeprefix("ok:"))
    except ValueError:
        return None


class InboundLine:
    """The steps of an inbound call. Blocking (database, the nurse's owner): run off an event loop."""

    def __init__(
        self,
        ctx: services.Context,
        commands: Commands,
        request_callback: RequestCallback,
        *,
        worker: str | None = None,
        deliver: Callable[[Event], None] | None = None,
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
        resolve_offers: bool = True,
    ) -> None:
        self.ctx = ctx
        self.commands = commands
        self.request_callback = request_callback
        self.worker = worker  # this process's dialer, if any: its calls' ends go to `deliver`
        self.deliver = deliver
        self.command_timeout = command_timeout
        # False: an offer comes back as a reply, its caller offers the call without blocking (the
        # simulation, whose nurses' owner runs on the same event loop)
        self.resolve_offers = resolve_offers

    # ------------------------------------------------------------------ the steps

    def arrive(self, backend: str, call_id: str, caller_number: str | None) -> Reply:
        """A call to the line: greet, recognise by caller ID if one patient has that number."""
        now = self.ctx.clock.now()
        e164 = _e164(caller_number)
        with self.ctx.sessions() as s:
            call = store.add_call(s, backend, call_id, e164, now)
            fresh = call.state == CallState.greeting
            if fresh and e164 is not None:
                found = store.patients_by_phone(s, e164)
                if len(found) == 1:  # a number two patients share recognises neither
                    store.set_state(s, call.id, patient_id=found[0].id, state=CallState.identifying.value)
            s.commit()
            inbound_id = call.id
        log.info("inbound.arrived", inbound_call_id=inbound_id, backend=backend, retried=not fresh)
        if not fresh:
            return self._again(call_id)
        return self._next(call_id, greet=True)

    def member(self, call_id: str, digits: str) -> Reply:
        """The member number keyed: remembered (as the patient it names, if any), birth year asked."""
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None or call.state != CallState.identifying or call.patient_id is not None:
                return self._again(call_id, s)
            key = member_key(digits.strip()) if digits.strip().isdigit() else ""
            # the year is checked next: the candidate is not the caller until it matches
            store.set_state(s, call.id, state=CallState.confirming.value, caller_key=key or None)
            s.commit()
        return Reply(Step.gather_birth_year, (text(Prompt.ask_birth_year),))

    def birth_year(self, call_id: str, digits: str) -> Reply:
        """The birth year keyed: the caller is the one followed patient with that number and year."""
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None or call.state != CallState.confirming:
                return self._again(call_id, s)
            year = int(digits) if digits.strip().isdigit() and len(digits.strip()) == 4 else None
            found = store.patients_by_member_key(s, call.caller_key, year) if call.caller_key and year else []
            if len(found) == 1:
                store.set_state(
                    s, call.id, patient_id=found[0].id, state=CallState.identifying.value, caller_key=None
                )
                recognised = True
            else:
                tries = call.tries + 1
                store.set_state(s, call.id, tries=tries, state=CallState.identifying.value, caller_key=None)
                recognised = False
            s.commit()
            inbound_id = call.id
        log.info("inbound.keyed", inbound_call_id=inbound_id, recognised=recognised)
        return self._next(call_id, retry=not recognised)

    def again(self, call_id: str) -> Reply:
        """The wait came round (or the backend asks where the call stands)."""
        return self._again(call_id)

    def ended(self, call_id: str, cause: int | None = None) -> bool:
        """The caller hung up (or the conversation is over): the call is closed, and the
        conversation's attempt, if a nurse took it, gets its end from its owner. False: unknown call."""
        now = self.ctx.clock.now()
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None:
                return False
            if call.state == CallState.ended:
                return True  # a repeated report changes nothing
            store.set_state(s, call.id, state=CallState.ended.value, ended_at=now, wait_until=None)
            owner = store.owner_of_attempt(s, call.attempt_id) if call.attempt_id is not None else None
            event = None
            if call.attempt_id is not None:
                event = CallEvent(call.attempt_id, CallEventKind.ended, now, cause or NORMAL_CLEARING)
                if owner is not None and (owner != self.worker or self.deliver is None):
                    forward_events(s, owner, [event])
            s.commit()
            inbound_id, was = call.id, call.state
        if event is not None and owner is not None and owner == self.worker and self.deliver is not None:
            self.deliver(event)
        log.info("inbound.ended", inbound_call_id=inbound_id, was=was, attempt_id=call.attempt_id)
        return True

    # ------------------------------------------------------------------ deciding

    def _again(self, call_id: str, session: Any = None) -> Reply:
        if session is not None:
            session.rollback()
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None:
                return Reply(Step.hangup, ())
            state, nurse_id, attempt_id = call.state, call.nurse_id, call.attempt_id
        if state == CallState.routed and nurse_id is not None:
            return Reply(Step.conference, (), nurse_id=nurse_id, attempt_id=attempt_id)
        if state == CallState.confirming:
            return Reply(Step.gather_birth_year, (text(Prompt.ask_birth_year),))
        if CallState(state).over:
            return Reply(Step.hangup, (text(Prompt.goodbye),))
        return self._next(call_id)

    def _next(self, call_id: str, *, greet: bool = False, retry: bool = False) -> Reply:
        said = [text(Prompt.greeting)] if greet else []
        reply = self._decide(call_id, said, greet or retry, retry=retry)
        if reply.step == Step.offer and self.resolve_offers:
            return self._resolve(call_id, reply)
        return reply

    def _decide(
        self, call_id: str, said: list[Said], news: bool, *, retry: bool = False, offered: bool = False
    ) -> Reply:
        """What the decision says now, done (stored), as a reply; `offered`: this step's offers
        were all refused (those nurses are busy, the others wait their turn: nobody is free)."""
        policy, now = self.ctx.policy, self.ctx.clock.now()
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None:
                return Reply(Step.hangup, ())
            row = store.patient_row(s, call.patient_id) if call.patient_id is not None else None
            ready = store.ready_nurses(s) if row is not None and not offered else []
            view = CallView(now, _caller(row, policy), call.tries, call.wait_until)
            decision = decide(view, ready, policy)
            if decision.action == Action.ask_member:
                store.set_state(s, call.id, state=CallState.identifying.value)
                s.commit()
                if retry:
                    said.append(text(Prompt.not_recognised))
                return Reply(Step.gather_member, (*said, text(Prompt.ask_member)))
            if news and row is not None:
                said.append(text(Prompt.recognised))
            if decision.action == Action.route:
                assert call.patient_id is not None
                return Reply(
                    Step.offer,
                    tuple(said),
                    patient_id=call.patient_id,
                    nurses=decision.nurses[:MAX_OFFERS],
                    inbound_id=call.id,
                )
            return self._settle(s, call, row, decision.action, view, said)

    def _resolve(self, call_id: str, offer: Reply) -> Reply:
        """The call offered to each nurse in turn through her owner, waiting for each answer."""
        assert offer.inbound_id is not None and offer.patient_id is not None
        for nurse_id in offer.nurses:
            command = self.commands.inbound(nurse_id, offer.inbound_id, offer.patient_id)
            attempt_id = taken_attempt(self.commands.wait(command, self.command_timeout))
            if attempt_id is not None:
                return self.taken(call_id, nurse_id, attempt_id, offer.say)
            log.info("inbound.offer_refused", inbound_call_id=offer.inbound_id, nurse_id=nurse_id)
        return self.nobody(call_id, offer.say)

    def taken(self, call_id: str, nurse_id: int, attempt_id: int, said: tuple[Said, ...] = ()) -> Reply:
        """A nurse took the call (her owner answered "ok:<attempt>"): into her conference."""
        with self.ctx.sessions() as s:
            call = store.call_by_call_id(s, call_id)
            if call is None or call.state == CallState.ended:
                return Reply(Step.hangup, ())
            store.set_state(
                s,
                call.id,
                state=CallState.routed.value,
                nurse_id=nurse_id,
                attempt_id=attempt_id,
                wait_until=None,
            )
            s.commit()
            inbound_id = call.id
        log.info("inbound.routed", inbound_call_id=inbound_id, nurse_id=nurse_id, attempt_id=attempt_id)
        return Reply(Step.conference, (*said, text(Prompt.connect)), nurse_id=nurse_id, attempt_id=attempt_id)

    def nobody(self, call_id: str, said: tuple[Said, ...] = ()) -> Reply:
        """Every nurse offered the call refused it: the caller waits, or leaves a callback."""
        return self._decide(call_id, list(said), False, offered=True)

    def _settle(
        self,
        s: Any,
        call: InboundCall,
        row: Any,
        action: Action,
        view: CallView,
        said: list[Said],
    ) -> Reply:
        """The decisions that end in this step: wait, callback task, closed, unknown."""
        policy, now = self.ctx.policy, view.now
        hours = say_hours(policy.calling_hours)
        if action == Action.unknown:
            store.set_state(s, call.id, state=CallState.closed.value)
            s.commit()
            log.info("inbound.unknown", inbound_call_id=call.id, tries=call.tries)
            return Reply(Step.hangup, (*said, text(Prompt.unknown, hours=hours), text(Prompt.goodbye)))
        if action == Action.wait:
            wait_until = view.wait_until or now + timedelta(seconds=policy.inbound.wait_seconds)
            store.set_state(s, call.id, state=CallState.waiting.value, wait_until=wait_until)
            s.commit()
            pause = max(1, min(WAIT_STEP_SECONDS, int((wait_until - now).total_seconds()) + 1))
            return Reply(Step.wait, (*said, text(Prompt.wait)), pause_seconds=pause)
        # a callback task: from the first moment the patient may be called
        place = cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end)
        opening = cal.next_open(now, place, policy.calling_hours)
        at = opening[0] if opening is not None else now
        note = "inbound line closed" if action == Action.closed else "inbound line: no nurse free"
        s.commit()  # the task is written by its own service, in its own transaction
        task_id = self.request_callback(self.ctx, row.id, at, policy.inbound.callback_priority, note)
        with self.ctx.sessions() as s2:
            store.set_state(s2, call.id, state=CallState.callback.value, task_id=task_id, wait_until=None)
            s2.commit()
        log.info("inbound.callback", inbound_call_id=call.id, task_id=task_id, closed=action == Action.closed)
        first = text(Prompt.closed, hours=hours) if action == Action.closed else text(Prompt.no_nurse)
        recorded = text(Prompt.callback_recorded, when=say_when(at, now, row.timezone))
        return Reply(Step.hangup, (*said, first, recorded, text(Prompt.goodbye)))


def caller_hangup(
    ctx: services.Context, hangers: Mapping[str, Callable[[str], None]]
) -> Callable[[int], None]:
    """The dialer's hook for a nurse who ends an inbound call (`on_inbound_hangup`): the caller's
    line is hung up on its backend (by the backend's call id: `hangup_orphan` of the Asterisk and
    Twilio backends, `SimulatedInbound.hang_up`); its end then comes back as for any hang-up.
    Without it the caller would stay in her conference, where she waits for her next call."""

    def hang_up(attempt_id: int) -> None:
        with ctx.sessions() as s:
            found = store.call_of_attempt(s, attempt_id)
        if found is None:
            return
        backend, call_id = found
        hanger = hangers.get(backend)
        if hanger is None:
            log.warning("inbound.hangup.no_backend", attempt_id=attempt_id, backend=backend)
            return
        hanger(call_id)

    return hang_up


def _e164(number: str | None) -> str | None:
    """The caller ID as stored numbers are (E.164), or None when hidden or not a French number."""
    if not number or not number.strip():
        return None
    try:
        return normalise_phone(number)
    except _Invalid:
        return None


def _caller(row: Any, policy: Any) -> Caller | None:
    if row is None:
        return None
    pathologies = [p for p in str(row.pathologies).split("|") if p]
    return Caller(
        row.id, Tier(row.tier), services.required_skills(pathologies, None, policy), row.referent_nurse_id
    )


__all__ = ["Commands", "InboundLine", "ReadyNurse", "Reply", "RequestCallback", "Step"]
