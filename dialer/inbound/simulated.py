"""Simulated inbound calls: patients who call the programme's number, on the runtime's clock.

A simulated caller goes through the same line (`InboundLine`, the same
decision) as a Twilio or Asterisk caller: their caller ID is recognised or
they key their member number and birth year, they wait, they are put through
to a nurse, talk a while and hang up (the nurse's attempt then gets its
`ended` event from the line), or they leave a callback request.

The nurses' owner (the dialer) runs on the same event loop, so an offer
cannot be waited for in place: the call is offered to one nurse at a time,
her owner's answer is looked at a moment later on the loop's clock, and the
next nurse is tried on a refusal. The owner is told of the offer directly
(`owner_due`: its `commands_due`), so it takes it at the step of that very
instant: a virtual clock races through the answer's polls in a few wall
milliseconds, before PostgreSQL's notification may have crossed the bus's
listener thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialer.inbound.line import Commands, InboundLine, Reply, Step, taken_attempt
from dialer.scheduler_loop import EventLoop

KEY_SECONDS = 4.0  # a caller keys their digits this long after the prompt
SAY_SECONDS = 6.0  # a reply's words take about this long to say
ANSWER_POLL_SECONDS = 1.0  # the owner's answer to an offer is looked at this often
ANSWER_POLLS = 5  # then the offer counts as refused


@dataclass(frozen=True, slots=True)
class SimulatedCaller:
    """Who calls and how they behave. Fiction numbers only (tests, demos)."""

    number: str | None  # caller ID; None: withheld
    member_id: str = ""  # keyed when asked (digits)
    birth_year: int | None = None
    talk_seconds: float = 300.0  # how long they talk with the nurse before hanging up
    patience_seconds: float | None = None  # hang up after waiting this long (None: as long as asked)


@dataclass
class InboundRecord:
    """What happened on one simulated call, for tests and reports."""

    caller: SimulatedCaller
    replies: list[Reply] = field(default_factory=list)
    nurse_id: int | None = None
    attempt_id: int | None = None
    ended: bool = False
    started: datetime | None = None

    @property
    def last(self) -> Step | None:
        return self.replies[-1].step if self.replies else None


class SimulatedInbound:
    """Places simulated inbound calls on `loop`, through `line` (built with resolve_offers=False).

    `owner_due`: the nurses' owner on this loop told that a command waits (`Dialer.commands_due`);
    None: it hears of them by the bus alone.
    """

    def __init__(
        self,
        loop: EventLoop,
        line: InboundLine,
        commands: Commands,
        *,
        owner_due: Callable[[], None] | None = None,
    ) -> None:
        if line.resolve_offers:
            raise ValueError("the simulated line offers calls itself: build it with resolve_offers=False")
        self.loop = loop
        self.line = line
        self.commands = commands
        self.owner_due = owner_due
        self.calls: dict[str, InboundRecord] = {}
        self._ids = itertools.count(1)

    def place(self, caller: SimulatedCaller, delay_seconds: float = 0.0) -> str:
        """A call to the line, `delay_seconds` from now; its id (the simulated switch's)."""
        call_id = f"sim-in-{next(self._ids)}"
        self.calls[call_id] = InboundRecord(caller)
        self.loop.call_at(self._in(delay_seconds), self._arrive, call_id)
        return call_id

    def _in(self, seconds: float) -> datetime:
        return self.loop.clock.now() + timedelta(seconds=seconds)

    def _arrive(self, call_id: str) -> None:
        self.calls[call_id].started = self.loop.clock.now()
        self._play(call_id, self.line.arrive("simulated", call_id, self.calls[call_id].caller.number))

    def _play(self, call_id: str, reply: Reply) -> None:
        record = self.calls[call_id]
        if record.ended:
            return
        record.replies.append(reply)
        caller = record.caller
        at = self.loop.clock.now() + timedelta(seconds=SAY_SECONDS * max(1, len(reply.say)))
        if reply.step == Step.gather_member:
            self.loop.call_at(at + timedelta(seconds=KEY_SECONDS), self._key, call_id, "member")
        elif reply.step == Step.gather_birth_year:
            self.loop.call_at(at + timedelta(seconds=KEY_SECONDS), self._key, call_id, "year")
        elif reply.step == Step.wait:
            waited = (self.loop.clock.now() - (record.started or self.loop.clock.now())).total_seconds()
            if caller.patience_seconds is not None and waited + reply.pause_seconds > caller.patience_seconds:
                self.loop.call_at(at, self._hang_up, call_id)  # tired of waiting
            else:
                self.loop.call_at(at + timedelta(seconds=reply.pause_seconds), self._again, call_id)
        elif reply.step == Step.offer:
            self._offer(call_id, reply, 0)
        elif reply.step == Step.conference:
            record.nurse_id, record.attempt_id = reply.nurse_id, reply.attempt_id
            self.loop.call_at(at + timedelta(seconds=caller.talk_seconds), self._hang_up, call_id)
        else:
            self.loop.call_at(at, self._hang_up, call_id)

    def _key(self, call_id: str, what: str) -> None:
        caller = self.calls[call_id].caller
        if what == "member":
            self._play(call_id, self.line.member(call_id, caller.member_id))
        else:
            self._play(call_id, self.line.birth_year(call_id, str(caller.birth_year or "")))

    def _again(self, call_id: str) -> None:
        self._play(call_id, self.line.again(call_id))

    def _offer(self, call_id: str, offer: Reply, index: int) -> None:
        if index >= len(offer.nurses):
            self._play(call_id, self.line.nobody(call_id, offer.say))
            return
        assert offer.inbound_id is not None and offer.patient_id is not None
        command = self.commands.inbound(offer.nurses[index], offer.inbound_id, offer.patient_id)
        if self.owner_due is not None:
            self.owner_due()  # taken at this instant's step, whatever the bus's latency
        self.loop.call_at(
            self._in(ANSWER_POLL_SECONDS), self._answer, call_id, offer, index, command, ANSWER_POLLS
        )

    def _answer(self, call_id: str, offer: Reply, index: int, command: int, polls: int) -> None:
        if self.calls[call_id].ended:
            return
        result = self.commands.wait(command, 0)
        attempt_id = taken_attempt(result)
        if attempt_id is not None:
            self._play(call_id, self.line.taken(call_id, offer.nurses[index], attempt_id, offer.say))
        elif result is None and polls > 1:
            self.loop.call_at(
                self._in(ANSWER_POLL_SECONDS), self._answer, call_id, offer, index, command, polls - 1
            )
        else:
            self._offer(call_id, offer, index + 1)

    def hang_up(self, call_id: str) -> None:
        """The line ends the call (the nurse hung up: `line.caller_hangup`)."""
        if call_id in self.calls:
            self._hang_up(call_id)

    def _hang_up(self, call_id: str) -> None:
        record = self.calls[call_id]
        if not record.ended:
            record.ended = True
            self.line.ended(call_id)
