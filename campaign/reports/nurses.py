"""How busy the wave kept each nurse.

Occupancy is the minutes of this wave's attempts (ringing and talking) plus
`dialer.wrap_up_seconds` per answered call, over the nurse's shift minutes on
the wave's working days: a share of her shift spent on this wave, so
overlapping waves add up.
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
    talk_seconds: float = 0.0
    busy_seconds: float = 0.0

    def add(
        self,
        started: datetime,
        answered_at: datetime | None,
        ended: datetime | None,
        answered: bool,
        wrap_up_seconds: float,
    ) -> None:
        self.attempts += 1
        self.busy_seconds += busy_seconds(started, ended, answered, wrap_up_seconds)
        if answered:
            self.handled += 1
            if answered_at is not None and ended is not None:
                self.talk_seconds += (ended - answered_at).total_seconds()


def busy_seconds(started: datetime, ended: datetime | None, answered: bool, wrap_up_seconds: float) -> float:
    """A nurse's time on one attempt: ringing and talking, and the wrap-up of an answered call."""
    return ((ended - started).total_seconds() if ended is not None else 0.0) + (
        wrap_up_seconds if answered else 0.0
    )


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
            "talk_minutes": round(load.talk_seconds / 60, 1),
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
