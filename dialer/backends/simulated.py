"""Simulated telephony: patients who answer with realistic probabilities and durations.

Runs on the event loop's virtual clock. Who answers depends on the patient's
tier and local hour (config/simulation.toml); some numbers are wrong (a
stranger answers), some reach a machine. The backend never sees names or
medical data, only numbers and a directory of how each number behaves.
"""

from __future__ import annotations

import itertools
import random
import zlib
from dataclasses import dataclass
from datetime import timedelta

from campaign.calendar import local_time_of
from campaign.policy import SimulationPolicy, Tier
from campaign.states import AttemptResult
from dialer.backends.base import DialRequest, EventSink
from dialer.events import CallEvent, CallEventKind
from dialer.scheduler_loop import EventLoop


@dataclass(frozen=True, slots=True)
class LineProfile:
    """How the person behind a number behaves."""

    tier: Tier
    timezone: str


class SimulatedBackend:
    def __init__(
        self, loop: EventLoop, sim: SimulationPolicy, directory: dict[str, LineProfile], seed: int = 0
    ) -> None:
        self.loop = loop
        self.sim = sim
        self.directory = directory
        self.rng = random.Random(seed)
        self.seed = seed
        self._ids = itertools.count(1)
        self._sink: EventSink | None = None
        self._live: dict[str, DialRequest] = {}
        self.dials = 0

    def connect(self, sink: EventSink) -> None:
        self._sink = sink

    def is_wrong_number(self, number: str) -> bool:
        """Stable per number: the same stranger answers every time."""
        return zlib.crc32(f"{self.seed}:{number}".encode()) / 2**32 < self.sim.wrong_number

    def answer_probability(self, profile: LineProfile) -> float:
        hour = local_time_of(self.loop.clock.now(), profile.timezone).hour
        p = self.sim.answer_by_tier[profile.tier] * self.sim.answer_by_hour.get(hour, 1.0)
        return min(max(p, 0.0), 0.97)

    def dial(self, request: DialRequest) -> str:
        assert self._sink is not None, "connect() first"
        call_id = f"sim-{next(self._ids)}"
        self.dials += 1
        self._live[call_id] = request
        profile = self.directory.get(request.number, LineProfile(Tier.low, "Europe/Paris"))
        now = self.loop.clock.now()
        rng, sim = self.rng, self.sim
        ring = min(
            max(rng.gauss(sim.ring_seconds_mean, sim.ring_seconds_sd), 3.0),
            float(request.ring_timeout_seconds) - 1,
        )
        if rng.random() < self.answer_probability(profile):
            self.loop.call_at(
                now + timedelta(seconds=ring),
                self._emit,
                CallEvent(call_id, CallEventKind.answered, now + timedelta(seconds=ring)),
            )
            return call_id
        u = rng.random()
        if u < sim.busy:
            result, delay = AttemptResult.busy, rng.uniform(2, 5)
        elif u < sim.busy + sim.failed:
            result, delay = AttemptResult.failed, rng.uniform(1, 4)
        elif u < sim.busy + sim.failed + sim.machine:
            result, delay = AttemptResult.machine, min(ring + 6, request.ring_timeout_seconds)
        else:
            result, delay = AttemptResult.no_answer, float(request.ring_timeout_seconds)
        voicemail = result == AttemptResult.machine and request.voicemail_text is not None
        if voicemail:
            delay += 25  # the neutral message takes about that long to play
        end = now + timedelta(seconds=delay)
        self.loop.call_at(
            end, self._end, call_id, CallEvent(call_id, CallEventKind.ended, end, result, voicemail)
        )
        return call_id

    def hangup(self, call_id: str) -> None:
        if call_id in self._live:
            now = self.loop.clock.now()
            self._end(call_id, CallEvent(call_id, CallEventKind.ended, now, AttemptResult.answered))

    def _end(self, call_id: str, event: CallEvent) -> None:
        if self._live.pop(call_id, None) is not None:
            self._emit(event)

    def _emit(self, event: CallEvent) -> None:
        assert self._sink is not None
        self._sink(event)
