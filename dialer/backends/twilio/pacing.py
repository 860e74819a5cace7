"""Calls per second, as Twilio's account limit counts them. Pure: the caller gives the time.

Twilio does not refuse a call over the account's rate: it queues it, for up to
24 hours, and the patient is rung whenever its turn comes, long after the
nurse was reserved. carecall paces its own calls instead, one every
1/rate seconds, and does not place a call whose turn is further away than
`max_wait` seconds (the dialer hears at once that it was not placed).
"""

from __future__ import annotations


class CallPacer:
    """A token bucket holding one token: each call takes the next slot, 1/rate seconds after the last."""

    def __init__(self, calls_per_second: float, max_wait: float) -> None:
        if calls_per_second <= 0:
            raise ValueError(f"calls per second must be above 0, not {calls_per_second}")
        self.interval = 1.0 / calls_per_second
        self.max_wait = max_wait
        self._next = float("-inf")  # the earliest instant the next call may be placed

    def reserve(self, now: float, *, force: bool = False) -> float | None:
        """Seconds until this call's slot, which is now taken; None (nothing taken) if that is
        longer than `max_wait`, unless `force` (a nurse's leg, which must be placed anyway)."""
        slot = max(now, self._next)
        wait = slot - now
        if wait > self.max_wait and not force:
            return None
        self._next = slot + self.interval
        return wait
