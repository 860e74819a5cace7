"""The event loop in real time: work split into steps lets the flush run between them."""

from __future__ import annotations

from datetime import UTC, datetime

from campaign.clock import VirtualClock
from dialer.scheduler_loop import EventLoop


def test_events_scheduled_during_a_pass_wait_for_the_next_one_after_the_flush() -> None:
    clock = VirtualClock(datetime(2027, 1, 12, 9, 0, tzinfo=UTC))
    loop = EventLoop(clock)
    ran: list[str] = []
    loop.after_step(lambda: ran.append("flush"))

    def step(k: int) -> None:
        ran.append(f"step {k}")
        if k < 3:
            loop.call_at(clock.now(), step, k + 1)  # the next step of a sweep, due at once

    loop.call_at(clock.now(), step, 1)
    loop.call_at(clock.now(), ran.append, "a nurse's event")
    while loop.run_due():
        pass
    assert ran == ["step 1", "a nurse's event", "flush", "step 2", "flush", "step 3", "flush"]
