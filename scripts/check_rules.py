#!/usr/bin/env python3
"""An independent check of the rules README states, from a carecall database alone.

Written from README ("How a wave goes", "When a patient may be called") and the
TOML files of config/, not from campaign's code: it reads the tables with plain
SQL, the calendar straight from the `holidays` package and the IANA zones, and
decides each rule here. It is the second opinion on `campaign.invariants`: if
both share a bug, this one should not.

    .venv/bin/python scripts/check_rules.py sqlite:///out/demo.db [--config config] [--json out.json]

Prints one JSON object: per rule, how many attempts (or tasks) break it and the
first ids (never a name or a number); exits 1 when any rule is broken. With
--wave, only that wave's attempts and tasks are blamed (attempts of the same
patients outside the wave still count for the gap and the cap).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# département -> holidays subdivision (README: Alsace-Moselle, the overseas departments and
# the two collectivities with calendars of their own)
SUBDIVISIONS = {
    "57": "57",
    "67": "6AE",
    "68": "6AE",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "976": "976",
    "977": "BL",
    "978": "MF",
}
EXAMPLES = 20


@dataclass
class Rule:
    description: str
    unit: str = "attempt"
    count: int = 0
    examples: list[int] = field(default_factory=list)

    def blame(self, row_id: int) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(row_id)


@dataclass(frozen=True)
class Config:
    windows: dict[int, list[tuple[time, time]]]  # weekday -> local windows
    holidays_off: bool
    min_gap: timedelta
    daily_cap: int
    max_attempts: dict[str, int]  # per tier: the tier's own cap, else retry.max_attempts
    period_days: int
    max_tasks_per_period: int

    @classmethod
    def read(cls, directory: Path) -> Config:
        prog = tomllib.loads((directory / "programme.toml").read_text(encoding="utf-8"))
        hours = prog["calling_hours"]
        windows = {}
        for i, day in enumerate(WEEKDAYS):
            spans = []
            for text_ in hours.get(day, []):
                a, b = text_.split("-")
                spans.append((time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
            windows[i] = sorted(spans)
        return cls(
            windows=windows,
            holidays_off=bool(hours.get("holidays", True)),
            min_gap=timedelta(minutes=prog["retry"]["min_gap_minutes"]),
            daily_cap=int(prog["caps"]["max_attempts_per_day"]),
            max_attempts={
                tier: int(t.get("max_attempts", prog["retry"]["max_attempts"]))
                for tier, t in prog["tiers"].items()
            },
            period_days=int(prog["caps"]["period_days"]),
            max_tasks_per_period=int(prog["caps"]["max_tasks_per_period"]),
        )


@cache
def _holidays(subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", subdiv=subdivision, years=year))


def is_holiday(day: date, departement: str) -> bool:
    return day in _holidays(SUBDIVISIONS.get(departement), day.year)


def aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def as_time(value: Any) -> time | None:
    return time.fromisoformat(value) if isinstance(value, str) else value


def as_date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def in_window(cfg: Config, local: datetime, departement: str, pref: tuple[time | None, time | None]) -> bool:
    """README: calling hours of the patient's local weekday, none on a holiday where they live;
    the patient's preferred window wins where it lies inside calling hours."""
    if cfg.holidays_off and is_holiday(local.date(), departement):
        return False
    spans = cfg.windows[local.weekday()]
    start, end = pref
    if start is not None and end is not None and start < end:
        clipped = [(max(a, start), min(b, end)) for a, b in spans if max(a, start) < min(b, end)]
        spans = clipped or spans
    t = local.time().replace(tzinfo=None)
    return any(a <= t < b for a, b in spans)


def check(url: str, config_dir: Path, wave_id: int | None = None) -> dict[str, Any]:
    cfg = Config.read(config_dir)
    rules = {
        "outside_window": Rule("started outside the patient's local calling window, or on a holiday there"),
        "two_calls_at_once": Rule("started while another call to the same patient was not over"),
        "within_min_gap": Rule(
            "started less than retry.min_gap_minutes after the patient's previous dial, and is not the "
            "first dial of a callback task (the time the patient asked for)"
        ),
        "over_daily_cap": Rule(
            "beyond caps.max_attempts_per_day dials of the patient on one local day (every task counts; "
            "the first dial of a callback task is not blamed)"
        ),
        "over_max_attempts": Rule(
            "a task dialed more times than its patient's tier allows (tiers.<tier>.max_attempts, else "
            "retry.max_attempts)"
        ),
        "to_uncallable": Rule(
            "to a patient who had opted out, who has no consent, or on a day they were suspended"
        ),
        "wrong_number_redialed": Rule("to a number a nurse had flagged wrong for that patient"),
        "after_deadline": Rule("started at or after its task's deadline"),
        "answered_without_outcome": Rule("answered, and no outcome was stored"),
        "in_flight": Rule("still in flight"),
        "open_task_of_closed_wave": Rule("a task still open in a wave that is done or cancelled", "task"),
        "over_contact_cap": Rule(
            "a wave task beyond caps.max_tasks_per_period for its patient within caps.period_days", "task"
        ),
    }
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            q = lambda sql, **kw: conn.execute(text(sql), kw).all()  # noqa: E731
            opt_outs = {
                pid: aware(at)
                for pid, at in q(
                    "SELECT patient_id, min(recorded_at) FROM outcome WHERE code = 'opted_out' "
                    "GROUP BY patient_id"
                )
            }
            wrong: dict[tuple[int, str], datetime] = {}
            for pid, number, at in q(
                "SELECT o.patient_id, a.number, min(o.recorded_at) FROM outcome o "
                "JOIN call_attempt a ON a.id = o.attempt_id WHERE o.code = 'wrong_number' "
                "GROUP BY o.patient_id, a.number"
            ):
                wrong[(pid, number)] = aware(at)
            attempts = q(
                "SELECT a.id, a.task_id, a.patient_id, a.number, a.state, a.result, a.started_at, "
                "a.ended_at, t.kind, t.wave_id, t.deadline, o.id AS outcome_id, p.departement, p.timezone, "
                "p.preferred_start, p.preferred_end, p.status, p.consent, p.suspended_until, p.enrolled_on, "
                "p.tier FROM call_attempt a JOIN call_task t ON t.id = a.task_id "
                "JOIN patient p ON p.id = a.patient_id LEFT JOIN outcome o ON o.attempt_id = a.id "
                "ORDER BY a.patient_id, a.started_at, a.id"
            )
            _check_attempts(cfg, attempts, opt_outs, wrong, wave_id, rules)
            scope = "" if wave_id is None else " AND w.id = :w"
            for (task_id,) in q(
                "SELECT t.id FROM call_task t JOIN wave w ON w.id = t.wave_id "
                f"WHERE w.status IN ('done', 'cancelled') AND t.status IN ('pending', 'in_progress'){scope} "
                "ORDER BY t.id",
                w=wave_id,
            ):
                rules["open_task_of_closed_wave"].blame(task_id)
            _check_contact_cap(
                cfg,
                q(
                    "SELECT id, patient_id, wave_id, created_at FROM call_task "
                    "WHERE kind = 'wave' AND status <> 'cancelled' ORDER BY patient_id, created_at, id"
                ),
                wave_id,
                rules["over_contact_cap"],
            )
    finally:
        engine.dispose()
    checked = sum(1 for a in attempts if wave_id is None or a.wave_id == wave_id)
    return {
        "ok": all(r.count == 0 for r in rules.values()),
        "attempts_checked": checked,
        "rules": {
            name: {"count": r.count, "examples": r.examples, "unit": r.unit, "rule": r.description}
            for name, r in rules.items()
        },
    }


def _check_attempts(
    cfg: Config,
    attempts: Iterable[Any],
    opt_outs: dict[int, datetime],
    wrong: dict[tuple[int, str], datetime],
    wave_id: int | None,
    rules: dict[str, Rule],
) -> None:
    by_patient: dict[int, list[Any]] = defaultdict(list)
    for a in attempts:
        by_patient[a.patient_id].append(a)
    for pid, rows in by_patient.items():
        zone = ZoneInfo(rows[0].timezone)
        busy_until: datetime | None = None
        previous: datetime | None = None
        per_day: dict[date, int] = defaultdict(int)
        per_task: dict[int, int] = defaultdict(int)
        for a in rows:
            start = aware(a.started_at)
            local = start.astimezone(zone)
            per_day[local.date()] += 1
            per_task[a.task_id] += 1
            requested = a.kind == "callback" and per_task[a.task_id] == 1
            ours = wave_id is None or a.wave_id == wave_id
            if ours:
                pref = (as_time(a.preferred_start), as_time(a.preferred_end))
                if not in_window(cfg, local, a.departement, pref):
                    rules["outside_window"].blame(a.id)
                if busy_until is not None and start < busy_until:
                    rules["two_calls_at_once"].blame(a.id)
                elif previous is not None and start - previous < cfg.min_gap and not requested:
                    rules["within_min_gap"].blame(a.id)
                if per_day[local.date()] > cfg.daily_cap and not requested:
                    rules["over_daily_cap"].blame(a.id)
                if per_task[a.task_id] > cfg.max_attempts[a.tier]:
                    rules["over_max_attempts"].blame(a.id)
                if _uncallable(a, start, local.date(), opt_outs.get(pid)):
                    rules["to_uncallable"].blame(a.id)
                flagged_at = wrong.get((pid, a.number))
                if flagged_at is not None and start > flagged_at:
                    rules["wrong_number_redialed"].blame(a.id)
                if start >= aware(a.deadline):
                    rules["after_deadline"].blame(a.id)
                if a.result == "answered" and a.outcome_id is None:
                    rules["answered_without_outcome"].blame(a.id)
                if a.state == "in_flight":
                    rules["in_flight"].blame(a.id)
            previous = start
            end = aware(a.ended_at) if a.ended_at is not None else datetime.max.replace(tzinfo=UTC)
            busy_until = end if busy_until is None else max(busy_until, end)


def _uncallable(a: Any, start: datetime, local_day: date, opted_out_at: datetime | None) -> bool:
    """README: a patient who opted out is never called again (unless enrolled again later), one
    without consent never, a suspended one not until the day after `suspended_until`."""
    if not a.consent:
        return True
    if opted_out_at is not None and start > opted_out_at:
        again = as_date(a.enrolled_on)
        if not (a.status == "enrolled" and again is not None and again > opted_out_at.date()):
            return True
    if a.status == "suspended":
        until = as_date(a.suspended_until)
        return until is None or local_day <= until
    return a.status in ("deceased",) or (a.status == "withdrawn" and opted_out_at is None)


def _check_contact_cap(cfg: Config, tasks: Iterable[Any], wave_id: int | None, rule: Rule) -> None:
    by_patient: dict[int, list[Any]] = defaultdict(list)
    for t in tasks:
        by_patient[t.patient_id].append(t)
    period = timedelta(days=cfg.period_days)
    for rows in by_patient.values():
        for i, t in enumerate(rows):
            created = aware(t.created_at)
            recent = [r for r in rows[: i + 1] if created - aware(r.created_at) < period]
            if len(recent) > cfg.max_tasks_per_period and (wave_id is None or t.wave_id == wave_id):
                rule.blame(t.id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("database_url", nargs="?", default="sqlite:///out/demo.db")
    ap.add_argument("--config", type=Path, default=ROOT / "config")
    ap.add_argument("--wave", type=int, help="blame only this wave's attempts and tasks")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    result = check(args.database_url, args.config, args.wave)
    out = json.dumps(result, indent=2)
    print(out)
    if args.json:
        args.json.write_text(out + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
