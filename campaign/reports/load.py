"""Planned against actual nurse load per day, and how evenly the wave kept its nurses busy.

Planned minutes per day are the plan's own (`wave.plan["days"][day]["minutes"]`: first
calls and, since retries are spread, the expected retries falling on that day; for a day a
morning top-up re-planned, that morning's plan, `services.top_up`, with the launch plan's
kept beside it). Actual
minutes are what the wave's attempts took of nurses that day, counted as occupancy counts
them (`reports.nurses`: from dialing to the end; an answered call's end is its outcome), on
the patient's local day, as the plan places calls. Everything is read from the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from campaign import store
from campaign.errors import NotFound
from campaign.model import Wave
from campaign.policy import Policy
from campaign.reports.nurses import NurseLoad, busy_seconds, occupancy
from campaign.states import AttemptResult


@dataclass(frozen=True, slots=True)
class DayLoad:
    """Nurse minutes of one day: what the plan expected, what the wave's attempts took."""

    day: date
    planned_min: float
    actual_min: float
    working: bool  # a day of the wave's plan (a working day of its window)
    # the plan made before the first call, where a morning top-up re-planned the day (None: the same)
    launch_min: float | None = None

    @property
    def launch_planned_min(self) -> float:
        return self.planned_min if self.launch_min is None else self.launch_min

    def deviation_from(self, planned: float) -> float | None:
        """(actual - planned) / planned; None when nothing was planned that day."""
        return (self.actual_min - planned) / planned if planned else None

    @property
    def deviation(self) -> float | None:
        """From the day's own plan (the morning's, when a top-up re-planned it)."""
        return self.deviation_from(self.planned_min)

    def as_dict(self) -> dict[str, Any]:
        dev = self.deviation
        return {
            "day": self.day.isoformat(),
            "planned_min": round(self.planned_min, 1),
            "launch_planned_min": round(self.launch_planned_min, 1),
            "actual_min": round(self.actual_min, 1),
            "working": self.working,
            "deviation": None if dev is None else round(dev, 4),
        }


def days_of(plan: Mapping[str, Any], actual: Mapping[date, float]) -> list[DayLoad]:
    """The plan's days and every day with actual load (callbacks may run past the window), in order."""
    entries = {date.fromisoformat(d): v for d, v in plan.get("days", {}).items()}
    out = []
    for d in sorted(set(entries) | set(actual)):
        entry = entries.get(d, {})
        launch = entry.get("launch_minutes")
        out.append(
            DayLoad(
                d,
                float(entry.get("minutes", 0.0)),
                actual.get(d, 0.0),
                d in entries,
                None if launch is None else float(launch),
            )
        )
    return out


# a day whose morning plan is more than this many times its launch plan's was mostly the patients
# the morning top-ups added (those the launch plan had left out)
TOPPED_UP = 2.0


def filled_by_top_ups(day: DayLoad) -> bool:
    """Most of the day's plan is patients its morning top-up added: against the launch plan, its
    load says how many were added, not how good that plan was (the demo's second Saturday had 1
    minute at launch and 153 that morning: 15,700 % off)."""
    return day.working and day.planned_min > TOPPED_UP * day.launch_planned_min


def max_daily_load_deviation(days: Iterable[DayLoad], *, from_launch: bool = False) -> float | None:
    """The largest |actual - planned| / planned over the wave's working days, as a fraction:
    against each morning's plan, or with `from_launch` against the plan made before the first call,
    over the days the top-ups did not mostly fill (`filled_by_top_ups`, counted apart).

    A working day with load but nothing planned counts as 1.0 (all of it unplanned); days
    outside the plan (callbacks after the window) are not counted. None: no working day.
    """
    worst: float | None = None
    for d in days:
        planned = d.launch_planned_min if from_launch else d.planned_min
        if not d.working or (planned == 0 and d.actual_min == 0) or (from_launch and filled_by_top_ups(d)):
            continue
        dev = d.deviation_from(planned)
        dev = abs(dev) if dev is not None else 1.0
        worst = dev if worst is None else max(worst, dev)
    return None if worst is None else round(worst, 4)


def days_filled_by_top_ups(days: Iterable[DayLoad]) -> int:
    """Working days mostly of patients the morning top-ups added (`filled_by_top_ups`)."""
    return sum(1 for d in days if filled_by_top_ups(d))


def days_loaded_unplanned(days: Iterable[DayLoad]) -> int:
    """Working days the nurses worked on the wave though its plan charged them nothing."""
    return sum(1 for d in days if d.working and d.planned_min == 0 and d.actual_min > 0)


def occupancy_spread(occupancies: Mapping[str, float | None], target: float) -> float | None:
    """The largest distance of a nurse's occupancy from the target, as a fraction (0.1: 10 points)."""
    values = [abs(o - target) for o in occupancies.values() if o is not None]
    return round(max(values), 4) if values else None


@dataclass(slots=True)
class _Pass:
    actual: dict[date, float]
    nurses: dict[int, NurseLoad]
    wave: Wave


def _read(session: Session, policy: Policy, wave_id: int) -> _Pass:
    wave = store.wave_row(session, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    actual: dict[date, float] = defaultdict(float)
    nurses: dict[int, NurseLoad] = {}
    zones: dict[str, ZoneInfo] = {}
    for _task, nurse_id, result, started, answered_at, ended, timezone, *_ in store.report_attempts(
        session, wave_id
    ):
        answered = result == AttemptResult.answered.value
        zone = zones.get(timezone) or zones.setdefault(timezone, ZoneInfo(timezone))
        actual[started.astimezone(zone).date()] += busy_seconds(started, ended) / 60
        if nurse_id is not None:
            load = nurses.get(nurse_id) or nurses.setdefault(nurse_id, NurseLoad())
            load.add(started, answered_at, ended, answered)
    return _Pass(actual, nurses, wave)


def load_by_day(session: Session, policy: Policy, wave_id: int) -> list[DayLoad]:
    """Planned against actual nurse minutes per day of one wave."""
    seen = _read(session, policy, wave_id)
    return days_of(seen.wave.plan or {}, seen.actual)


def occupancy_by_nurse(session: Session, policy: Policy, wave_id: int) -> dict[str, float | None]:
    """Each nurse's occupancy over the wave (nurse code -> fraction of her shift minutes), for the
    nurses who took at least one of its calls."""
    seen = _read(session, policy, wave_id)
    rows = occupancy(session, seen.nurses, seen.wave, policy)
    return {code: r["occupancy"] for code, r in rows.items()}
