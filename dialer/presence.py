"""Nurse presence: the states a nurse goes through, and which moves are allowed.

Pure: a transition returns the next state or refuses; the caller acts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, time
from enum import StrEnum

from campaign import calendar as cal
from campaign.errors import InvalidTransition


class NurseStatus(StrEnum):
    offline = "offline"  # not on shift or logged out
    ready = "ready"  # waiting for the dialer to hand her a call
    reserved = "reserved"  # a call is being dialed for her
    on_call = "on_call"  # talking with the patient
    wrap_up = "wrap_up"  # recording the outcome
    paused = "paused"  # break, training, admin


class NurseSource(StrEnum):
    """`carecall serve --nurses`: who drives the nurses."""

    mixed = "mixed"  # the console drives nurses with an account; the others are simulated
    simulated = "simulated"  # every nurse simulated on her shifts
    console = "console"  # every nurse driven by her console (none simulated)


ALLOWED: dict[NurseStatus, frozenset[NurseStatus]] = {
    NurseStatus.offline: frozenset({NurseStatus.ready, NurseStatus.paused}),
    NurseStatus.ready: frozenset({NurseStatus.reserved, NurseStatus.paused, NurseStatus.offline}),
    # an unanswered call sends her back to ready; an answered one to on_call
    NurseStatus.reserved: frozenset({NurseStatus.on_call, NurseStatus.ready, NurseStatus.wrap_up}),
    NurseStatus.on_call: frozenset({NurseStatus.wrap_up}),
    NurseStatus.wrap_up: frozenset({NurseStatus.ready, NurseStatus.paused, NurseStatus.offline}),
    NurseStatus.paused: frozenset({NurseStatus.ready, NurseStatus.offline}),
}


def transition(current: NurseStatus, target: NurseStatus) -> NurseStatus:
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"a nurse cannot go from {current} to {target}")
    return target


class PresenceBoard:
    """Who is in which state now; the dialer's single view of its nurses.

    Every change is remembered in `changed` until the dialer has stored it
    (dialer/staff/writer.py): whatever moves a nurse, it reaches the board
    every process reads.
    """

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.status: dict[int, NurseStatus] = {}
        self.reason: dict[int, str] = {}  # a paused nurse's reason
        self.since: dict[int, datetime] = {}  # when she entered her status
        self.leaving: set[int] = set()  # shift ended mid-call: offline after wrap-up
        self.pausing: dict[int, str] = {}  # asked for a pause mid-call: paused (reason) after wrap-up
        self.changed: set[int] = set()  # not stored yet
        self._now = now

    def get(self, nurse_id: int) -> NurseStatus:
        return self.status.get(nurse_id, NurseStatus.offline)

    def set(
        self, nurse_id: int, target: NurseStatus, *, reason: str | None = None, at: datetime | None = None
    ) -> None:
        self.status[nurse_id] = transition(self.get(nurse_id), target)
        self._moved(nurse_id, reason if target == NurseStatus.paused else None, at)

    def repause(self, nurse_id: int, reason: str) -> None:
        """A paused nurse changes her pause's reason: a new pause, from now."""
        if self.get(nurse_id) != NurseStatus.paused:
            raise InvalidTransition(f"a nurse cannot change a pause's reason when {self.get(nurse_id)}")
        self._moved(nurse_id, reason, None)

    def touch(self, nurse_id: int) -> None:
        """Her call moved on (ringing, connected, ended): her stored row changes too."""
        self.changed.add(nurse_id)

    def _moved(self, nurse_id: int, reason: str | None, at: datetime | None) -> None:
        if reason is None:
            self.reason.pop(nurse_id, None)
        else:
            self.reason[nurse_id] = reason
        when = at if at is not None else self._now() if self._now is not None else None
        if when is not None:
            self.since[nurse_id] = when
        self.changed.add(nurse_id)

    def ready(self) -> list[int]:
        return [n for n, s in self.status.items() if s == NurseStatus.ready]

    def on_shift(self, nurse_id: int) -> bool:
        return self.get(nurse_id) != NurseStatus.offline and nurse_id not in self.leaving


def shift_starts_between(
    shifts: Iterable[tuple[int, time, time]], timezone: str, now: datetime, until: datetime
) -> bool:
    """A shift of hers (weekday, start, end in her local time) starts today between `now` and `until`.

    Nurses work to the metropolitan calendar: on its public holidays no shift starts.
    """
    day = cal.local_time_of(now, timezone).date()
    if cal.is_holiday(day, "75"):
        return False
    return any(
        weekday == day.weekday() and now <= cal.at_local(day, start, timezone) <= until
        for weekday, start, _end in shifts
    )
