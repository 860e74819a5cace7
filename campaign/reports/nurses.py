"""How busy the wave kept each nurse.

Occupancy is the minutes of this wave's attempts, from dialing to their end,
over the nurse's shift minutes on the wave's working days: a share of her shift
spent on this wave, so overlapping waves add up. An answered call ends when its
outcome is stored, so its minutes hold the conversation and the wrap-up as long
as she really took (not `dialer.wrap_up_seconds` added on top: counted twice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlmodel import Session

from campaign import calendar as cal
from campaign import store
from campaign.model import Wave
from campaign.policy import Policy

_ZONE_DEPARTEMENT = {zone: dep for dep, (zone, _, _) in cal.OVERSEAS.items()}


@dataclass(slots=True)
class NurseLoad:
    attempts: int = 0
    handled: int = 0
    answered_seconds: float = 0.0  # from answer to outcome: conversation and wrap-up
    busy_seconds: float = 0.0

    def add(
        self, started: datetime, answered_at: datetime | None, ended: datetime | None, answered: bool
    ) -> None:
        self.attempts += 1
        self.busy_seconds += busy_seconds(started, ended)
        if answered:
            self.handled += 1
            if answered_at is not None and ended is not None:
                self.answered_seconds += (ended - answered_at).total_seconds()


def busy_seconds(started: datetime, ended: datetime | None) -> float:
    """A nurse's time on one attempt: from dialing to its end (an answered call's end is its outcome,
    stored after the wrap-up); nothing yet for one still running."""
    return (ended - started).total_seconds() if ended is not None else 0.0


def occupancy(
    session: Session, loads: Mapping[int, NurseLoad], wave: Wave, policy: Policy
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(store.nurse_shift_rows(session, list(loads)), key=lambda r: r.code):
        load = loads[r.id]
        days = cal.working_days(
            wave.window_start,
            wave.window_end,
            policy.calling_hours,
            _ZONE_DEPARTEMENT.get(r.timezone, "75"),
        )
        shift = sum(shift_minutes(r.shifts, d) for d in days)
        busy = load.busy_seconds / 60
        out[r.code] = {
            "attempts": load.attempts,
            "handled_calls": load.handled,
            "answered_minutes": round(load.answered_seconds / 60, 1),
            "busy_minutes": round(busy, 1),
            "shift_minutes": round(shift, 1),
            "occupancy": round(busy / shift, 4) if shift else None,
        }
    return out


def shift_minutes(shifts: Sequence[Mapping[str, Any]], day: date) -> float:
    """Minutes of the nurse's shifts on `day`; a shift past midnight counts whole."""
    total = 0.0
    for s in shifts or ():
        try:
            if int(s["weekday"]) != day.weekday():
                continue
            start, end = time.fromisoformat(s["start"]), time.fromisoformat(s["end"])
        except (KeyError, TypeError, ValueError):
            continue  # a malformed shift is the import's error to report, not the report's
        minutes = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
        total += minutes if minutes > 0 else minutes + 24 * 60
    return total
