"""One step of a dialer process's own work: the same in `carecall serve`, a simulation and the benchmarks.

Between two passes of whatever feeds it events (an event loop, a benchmark's
tight loop), a dialer process refills its queue (a top-up when its tick is
due, a page of the sweep under way), lets what fell due reach the nurses
(tick), stores what happened and hands calls to the ready nurses (flush),
and only then, when no nurse waits for a claim, collects garbage. A
benchmark that measures this path calls `step`, never a copy of it.
"""

from __future__ import annotations

import gc
import time as wall
from dataclasses import dataclass

from dialer.loop import Dialer

# young objects a dialer process allocates before a collection (Python's default: 700)
GC_YOUNG = 20_000


def settle_gc() -> None:
    """Keep the cyclic GC off the dispatch path of a long-running dialer.

    A collection stalls every nurse of the process: a full one walks every
    object it holds (its queue of tens of thousands of tasks, the libraries)
    for up to a few hundred milliseconds. What start-up loaded is frozen out
    of the collector, and collections run in `collect_between_flushes`, when
    no nurse waits for a claim; the automatic collector is left only as a
    safety net for a flush that allocates a great deal. The dialer makes few
    reference cycles, so memory stays flat.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50 * GC_YOUNG, 50, 100)


def collect_between_flushes() -> None:
    """The collection the automatic collector would make (young, middle or full), if one is due.

    Called right after a flush: every ready nurse has had her claim, so the
    pause is taken out of the results and outcomes still to store, never out
    of a nurse's wait for her next call.
    """
    young, middle, old = gc.get_count()
    if young < GC_YOUNG:
        return
    generation = 0
    if middle + 1 >= 50:
        generation = 2 if old + 1 >= 100 else 1
    gc.collect(generation)


@dataclass(frozen=True, slots=True)
class StepDone:
    """What a step did to the queue, for its owner (the next sweep page) and benchmarks."""

    loaded: int  # tasks a top-up read into the queue
    sweep_over: bool | None  # None: no sweep page this step; True once the sweep is over
    queue_seconds: float  # wall time of the queue's part (top-up, sweep page, tick)


def step(dialer: Dialer, *, tick: bool, sweep: bool, collect_garbage: bool = False) -> StepDone:
    """One step: queue work if `tick` (a top-up) or `sweep` (a page of it), tick, flush, collect."""
    started = wall.perf_counter()
    loaded = 0
    sweep_over: bool | None = None
    if tick:
        loaded += dialer.feed.top_up()
    if sweep:
        sweep_over = dialer.feed.refresh_step()
    if tick or sweep:
        dialer.tick()
    queue_seconds = wall.perf_counter() - started
    dialer.flush()
    if collect_garbage:
        collect_between_flushes()
    return StepDone(loaded, sweep_over, queue_seconds)
