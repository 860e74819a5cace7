"""Fictional nurses: levels, skills and shifts as a programme would staff them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from faker import Faker

from campaign.model import Nurse
from campaign.reports.nurses import shift_minutes
from campaign.synthetic.patients import generate_patients_csv


def trained_codes(nurses: Sequence[Nurse]) -> dict[str, list[str]]:
    """Skill -> the codes of the nurses trained for it, for `generate_patients_csv(trained=…)`."""
    out: dict[str, list[str]] = {}
    for n in nurses:
        for skill in n.skills:
            out.setdefault(skill, []).append(n.code)
    return out


def weekly_hours(nurses: Sequence[Nurse]) -> dict[str, float]:
    """Code -> the hours of a nurse's weekly shifts, for `generate_patients_csv(hours=…)`."""
    week = [_A_MONDAY + timedelta(days=k) for k in range(7)]
    return {n.code: sum(shift_minutes(n.shifts, day) for day in week) / 60 for n in nurses}


def generate_patients_for(
    roster: Sequence[Nurse], path: Path, n: int, *, seed: int, reference_date: date
) -> Path:
    """`n` patients whose référents are shared among this roster as a programme would: the high
    tier to its seniors, heart failure and COPD to the nurses trained for them, by weekly hours."""
    return generate_patients_csv(
        path,
        n,
        seed=seed,
        nurse_codes=[nurse.code for nurse in roster],
        senior_codes=[nurse.code for nurse in roster if nurse.level == "senior"],
        trained=trained_codes(roster),
        hours=weekly_hours(roster),
        reference_date=reference_date,
    )


_A_MONDAY = date(2026, 1, 5)  # shifts repeat weekly: any week counts them all


# inside the default calling hours (09:00-12:30, 13:30-19:00; Fridays until 18:00, `_FRIDAY_END`):
# a call centre does not staff hours in which no call may be placed
_SHIFT_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    "day": (("09:00", "12:30"), ("13:30", "17:00")),
    "late": (("10:00", "12:30"), ("13:30", "19:00")),
    "mid": (("09:00", "12:30"), ("13:30", "17:30")),
}
_SATURDAY = ("09:00", "12:00")
_FRIDAY_END = "18:00"
_EVENING_SENIORS = ("late", "mid", "late")  # `senior_evenings`: two seniors in three until 19:00


def generate_nurses(
    n: int, seed: int = 0, *, seniors: int | None = None, senior_evenings: bool = False
) -> list[Nurse]:
    """`n` fictional nurses N001…, not saved (the caller adds them to a session).

    About a third are senior (or `seniors` of them), and whenever n ≥ 2 there is at least one senior,
    one senior trained for heart failure, one for COPD, and one late shift, so
    every tier, skill and calling hour of the default policy has someone.
    Seniors are trained as a programme would train them for its high-tier
    patients (a third of whom have heart failure): every other one for heart
    failure, every third for COPD, whatever the draw; juniors at random.
    """
    rng = random.Random(seed)
    fake = Faker("fr_FR")
    fake.seed_instance(seed + 7919)
    wanted = max(1, round(n / 3)) if seniors is None else max(1, min(n, seniors))
    senior_set = set(rng.sample(range(n), wanted)) if n else set()
    senior_rank = {i: k for k, i in enumerate(sorted(senior_set))}
    patterns = ["day", "late", "mid"]
    nurses: list[Nurse] = []
    for i in range(n):
        skills: list[str] = []
        if rng.random() < 0.5:
            skills = rng.choice((["heart_failure"], ["copd"], ["heart_failure", "copd"]))
        if i in senior_set:
            rank = senior_rank[i]
            skills = ["heart_failure"] * (rank % 2 == 0) + ["copd"] * (rank % 3 == 1)
        pattern = patterns[(i + seed) % len(patterns)] if n >= 2 else "day"
        if n >= 2 and i == 1:
            pattern = "late"
        saturday = 0.25
        if senior_evenings and i in senior_set:
            pattern = _EVENING_SENIORS[senior_rank[i] % len(_EVENING_SENIORS)]
            saturday = 0.5
        shifts: list[dict[str, Any]] = []
        part_time_off = 2 if rng.random() < 0.2 else None  # Wednesday off
        for weekday in range(5):
            if weekday == part_time_off:
                continue
            shifts.extend(
                {"weekday": weekday, "start": start, "end": min(end, _FRIDAY_END) if weekday == 4 else end}
                for start, end in _SHIFT_PATTERNS[pattern]
            )
        if rng.random() < saturday:
            shifts.append({"weekday": 5, "start": _SATURDAY[0], "end": _SATURDAY[1]})
        first = fake.first_name_female() if rng.random() < 0.85 else fake.first_name_male()
        nurses.append(
            Nurse(
                code=f"N{i + 1:03d}",
                display_name=f"{first} {fake.last_name()}",
                level="senior" if i in senior_set else "junior",
                skills=skills,
                shifts=shifts,
                timezone="Europe/Paris",
                active=True,
            )
        )
    if n >= 2:
        senior = [x for x in nurses if x.level == "senior"]
        for skill in ("heart_failure", "copd"):
            if not any(skill in x.skills for x in senior):
                target = senior[0] if skill == "heart_failure" else senior[-1]
                target.skills = sorted({*target.skills, skill})
    return nurses
