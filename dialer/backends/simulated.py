"""Simulated telephony: patients who answer with realistic probabilities and durations.

Runs on the event loop's virtual clock. Who answers is the simulated population's
(dialer/population.py): each patient's own propensity and hours of the week,
their stays away, numbers out of service (the network refuses the call) or
belonging to a stranger now (a stranger answers; simulated nurses find out), and
landlines two patients share (the other one may answer and fetch the patient, or
say they are out: a person who hangs up). A number already in a call is busy.
Whoever does not pick up leaves the line busy, failing, on a machine or ringing
out ([results] of config/simulation.toml). The backend never sees names or
medical data, only numbers, the patient's key and the population.

It reports what a real line would, keyed by the attempt: a person is bridged
to the nurse at once (`connected`; the detector's few seconds are left out of
a simulation), an answering machine is `answered`, `machine`, then `ended`,
and every other end carries its Q.850 cause (busy 17, unallocated number 1,
network failure 41, no answer 19). A number given a `Scenario` (tests, the
conformance suite) plays it the way the AMI and Twilio peers do.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from campaign.policy import SimulationPolicy
from dialer.backends.base import DialRequest, EventSink, NurseLine
from dialer.events import CallEvent, CallEventKind, NurseLegEvent
from dialer.population import STRANGER, LineState, Population, is_wrong_number
from dialer.scenarios import EVENTS, Scenario
from dialer.scheduler_loop import EventLoop

K = CallEventKind

__all__ = ["Pickup", "SimulatedBackend", "is_wrong_number"]


class Pickup(StrEnum):
    """Who picks up a simulated call."""

    patient = "patient"  # the patient, or the other one of a shared line who fetches them
    stranger = "stranger"  # a wrong number's new owner
    out = "out"  # the other one of a shared line: the patient is not there
    nobody = "nobody"  # busy, failing, a machine or ringing out
    unallocated = "unallocated"  # the number is out of service


class SimulatedBackend:
    name = "simulated"
    needs_nurse_leg = False  # simulated nurses have no phone to keep in a conference
    remote = False  # nothing outlives the process: no line records

    def __init__(
        self,
        loop: EventLoop,
        sim: SimulationPolicy,
        population: Population | None = None,
        seed: int = 0,
        scripted: Mapping[str, Scenario] | None = None,
    ) -> None:
        self.loop = loop
        self.sim = sim
        self.population = population or Population.from_policy(sim, seed)
        self.scripted = dict(scripted or {})
        self.rng = random.Random(seed)
        self.seed = seed
        self._ids = itertools.count(1)
        self._sink: EventSink | None = None
        self._live: dict[int, str] = {}  # attempt -> the call's id on the simulated switch
        self._numbers: dict[int, str] = {}  # attempt -> the number it rings
        self.dials = 0

    def connect(self, sink: EventSink) -> None:
        self._sink = sink

    def nurse_ready(self, nurse: NurseLine) -> None:
        self._emit(NurseLegEvent(nurse.nurse_id, True, self.loop.clock.now()))

    def nurse_away(self, nurse_id: int) -> None:
        self._emit(NurseLegEvent(nurse_id, False, self.loop.clock.now()))

    def hangup_orphan(self, call_id: str) -> None:
        """Simulated calls die with their process: nothing is left on a switch."""

    def close(self) -> None:
        self._live.clear()

    def is_wrong_number(self, number: str) -> bool:
        return is_wrong_number(self.seed, number, self.sim.wrong_number)

    def pickup(self, request: DialRequest, now: datetime) -> Pickup:
        """Who picks up this call now: the population's odds, one draw per person who might."""
        rng, population = self.rng, self.population
        state = population.line_state(request.number)
        if state == LineState.out_of_service:
            return Pickup.unallocated
        if state == LineState.wrong:
            return Pickup.stranger if rng.random() < STRANGER else Pickup.nobody
        household = population.household(request.number)
        key = population.keys_by_id.get(request.patient_id or 0)
        if key is None or key not in household:
            if not household:  # a number the population does not know: someone picks up now and then
                return Pickup.stranger if rng.random() < STRANGER else Pickup.nobody
            key = household[0]
        if rng.random() < population.own_probability(key, now):
            return Pickup.patient
        others = [k for k in household if k != key]
        if any(rng.random() < population.own_probability(k, now) for k in others):
            fetched = population.present_at(key, now) and rng.random() < population.policy.handover
            return Pickup.patient if fetched else Pickup.out
        return Pickup.nobody

    def dial(self, request: DialRequest) -> None:
        assert self._sink is not None, "connect() first"
        call_id = f"sim-{next(self._ids)}"
        attempt = request.attempt_id
        self.dials += 1
        self._live[attempt] = call_id
        now = self.loop.clock.now()
        rng, sim = self.rng, self.sim
        ring = min(
            max(rng.gauss(sim.ring_seconds_mean, sim.ring_seconds_sd), 3.0),
            float(request.ring_timeout_seconds) - 1,
        )
        scenario = self.scripted.get(request.number)
        if scenario is not None:
            self._play(request, call_id, scenario, now, 2.0)  # a scripted line answers on the second ring
            return
        if request.number in self._numbers.values():
            self._end_at(request, call_id, now + timedelta(seconds=rng.uniform(2, 5)), 17)
            return
        self._numbers[attempt] = request.number
        who = self.pickup(request, now)
        if who in (Pickup.patient, Pickup.stranger):
            answered = now + timedelta(seconds=ring)
            self.loop.call_at(
                answered, self._emit, CallEvent(attempt, K.connected, answered, call_id=call_id)
            )
            return
        if who == Pickup.unallocated:
            self._end_at(request, call_id, now + timedelta(seconds=rng.uniform(1, 4)), 1)
            return
        if who == Pickup.out:  # "she is not here": a person answered and hung up
            answered = now + timedelta(seconds=ring)
            self.loop.call_at(answered, self._emit, CallEvent(attempt, K.answered, answered, call_id=call_id))
            self._end_at(request, call_id, answered + timedelta(seconds=rng.uniform(8, 20)), 16)
            return
        u = rng.random()
        if u < sim.busy:
            self._end_at(request, call_id, now + timedelta(seconds=rng.uniform(2, 5)), 17)
        elif u < sim.busy + sim.failed:
            self._end_at(request, call_id, now + timedelta(seconds=rng.uniform(1, 4)), 41)
        elif u < sim.busy + sim.failed + sim.machine:
            answered = now + timedelta(seconds=ring)
            self.loop.call_at(answered, self._emit, CallEvent(attempt, K.answered, answered, call_id=call_id))
            verdict = answered + timedelta(seconds=2)
            self.loop.call_at(verdict, self._emit, CallEvent(attempt, K.machine, verdict, detail="MAXWORDS"))
            voicemail = request.voicemail_text is not None
            # the greeting, then the neutral message (about 25 s) if the policy leaves one
            end = min(
                now + timedelta(seconds=ring + 6), now + timedelta(seconds=request.ring_timeout_seconds)
            )
            self._end_at(request, call_id, end + timedelta(seconds=25 if voicemail else 0), 16, voicemail)
        else:
            self._end_at(request, call_id, now + timedelta(seconds=request.ring_timeout_seconds), 19)

    def _play(
        self, request: DialRequest, call_id: str, scenario: Scenario, now: datetime, ring: float
    ) -> None:
        """A scripted line: the scenario's events, a conversation's end left to the nurse's hang-up."""
        kinds, cause = EVENTS[scenario]
        at = now
        for kind in kinds:
            if kind == K.ended:
                if scenario == Scenario.human:
                    return  # talking until the nurse hangs up
                voicemail = scenario == Scenario.machine_message and request.voicemail_text is not None
                if scenario == Scenario.no_answer:
                    at = now + timedelta(seconds=request.ring_timeout_seconds)
                self._end_at(request, call_id, at + timedelta(seconds=1), cause, voicemail)
                return
            if kind == K.answered:
                at = now + timedelta(seconds=ring)
            elif kind != K.ringing:
                at += timedelta(seconds=1)
            self.loop.call_at(at, self._emit, CallEvent(request.attempt_id, kind, at, call_id=call_id))

    def _end_at(
        self, request: DialRequest, call_id: str, end: datetime, cause: int, voicemail: bool = False
    ) -> None:
        event = CallEvent(request.attempt_id, K.ended, end, cause, voicemail_left=voicemail, call_id=call_id)
        self.loop.call_at(end, self._end, request.attempt_id, event)

    def hangup(self, attempt_id: int) -> None:
        if attempt_id in self._live:
            now = self.loop.clock.now()
            self._end(attempt_id, CallEvent(attempt_id, K.ended, now, 16))

    def _end(self, attempt_id: int, event: CallEvent) -> None:
        self._numbers.pop(attempt_id, None)
        if self._live.pop(attempt_id, None) is not None:
            self._emit(event)

    def _emit(self, event: CallEvent | NurseLegEvent) -> None:
        assert self._sink is not None
        self._sink(event)
