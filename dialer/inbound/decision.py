"""The inbound line's routing decision: one piece of code for Twilio, Asterisk and the simulation.

Pure: given what is known of the call now (who the caller is, how often they
keyed their number, the time, the line's hours, the nurses ready), it says
what the line does next; the caller does it (ask, route, wait, leave a
callback task, hang up) and asks again when something changes.

The order of things: the caller is recognised by caller ID or, failing that,
keys their member number and birth year (at most `inbound.identify_tries`
times; then they are asked to call again in hours with their member number,
and nothing is recorded). A recognised caller outside the line's hours (the
calling hours in Paris, public holidays) hears the closed message and leaves
a callback task. In hours: their référent if she is ready and may take them,
else the ready nurses qualified for their tier and skills, longest ready
first; nobody: they wait up to `inbound.wait_seconds`, then a callback task
is recorded for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from campaign import calendar as cal
from campaign.policy import CallingHours, NurseLevel, Policy, Tier
from dialer.routing import may_take

# the line answers from Paris: its hours are the calling hours there, its holidays the metropole's
LINE_PLACE = cal.Place("75", cal.METROPOLE_ZONE)


class CallState(StrEnum):
    """Where an inbound call stands (stored in inbound_call.state)."""

    greeting = "greeting"  # answered, nothing asked yet
    identifying = "identifying"  # asked for the member number
    confirming = "confirming"  # member number keyed, asked for the birth year
    waiting = "waiting"  # recognised, in hours, no nurse yet: waits until wait_until
    routed = "routed"  # with a nurse (her attempt records the conversation)
    callback = "callback"  # a callback task recorded; the line says so and hangs up
    closed = "closed"  # nothing more to do (not recognised): the line hangs up
    ended = "ended"  # the caller hung up, or the conversation is over

    @property
    def over(self) -> bool:
        return self in (CallState.callback, CallState.closed, CallState.ended)


class Action(StrEnum):
    ask_member = "ask_member"  # key the member number
    unknown = "unknown"  # not recognised after every try: call again in hours, with the member number
    closed = "closed"  # recognised, outside the line's hours: a callback task, the hours, goodbye
    route = "route"  # offer the call to these nurses, in order, until one takes it
    wait = "wait"  # nobody free: please wait, then ask again
    callback = "callback"  # waited long enough: a callback task, goodbye


@dataclass(frozen=True, slots=True)
class Caller:
    """A recognised patient, as routing needs them."""

    patient_id: int
    tier: Tier
    skills: frozenset[str]  # what a nurse needs to take them (their pathologies')
    referent_id: int | None


@dataclass(frozen=True, slots=True)
class ReadyNurse:
    """A nurse ready with no call (presence), and since when."""

    nurse_id: int
    level: NurseLevel
    skills: frozenset[str]
    since: datetime


@dataclass(frozen=True, slots=True)
class CallView:
    """What is known of the call when the line asks what to do."""

    now: datetime
    caller: Caller | None  # None: not (yet) recognised
    tries: int = 0  # keypad identifications that failed
    wait_until: datetime | None = None  # set when the caller started waiting


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    nurses: tuple[int, ...] = ()  # route: whom to offer the call to, in order


def line_open(now: datetime, hours: CallingHours) -> bool:
    """The line takes calls now: inside the calling hours in Paris, not on a public holiday there."""
    return cal.is_callable_at(now, LINE_PLACE, hours)


def candidates(caller: Caller, ready: Sequence[ReadyNurse], policy: Policy) -> tuple[int, ...]:
    """Whom to offer the call to: the référent if she is ready and may take the patient, then
    every other ready nurse who may, the one ready longest first."""
    fit = [n for n in ready if may_take(n.level, n.skills, caller.tier, caller.skills, policy)]
    fit.sort(key=lambda n: (n.nurse_id != caller.referent_id, n.since, n.nurse_id))
    return tuple(n.nurse_id for n in fit)


def decide(call: CallView, ready: Sequence[ReadyNurse], policy: Policy) -> Decision:
    """What the line does next (see the module's docstring)."""
    if call.caller is None:
        if call.tries >= policy.inbound.identify_tries:
            return Decision(Action.unknown)
        return Decision(Action.ask_member)
    if not line_open(call.now, policy.calling_hours):
        return Decision(Action.closed)
    nurses = candidates(call.caller, ready, policy)
    if nurses:
        return Decision(Action.route, nurses)
    if call.wait_until is not None and call.now >= call.wait_until:
        return Decision(Action.callback)
    return Decision(Action.wait)
