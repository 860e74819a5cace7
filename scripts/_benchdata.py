"""Shared pieces of the PostgreSQL benchmarks: bulk-loaded fictional patients, COPY floors, timers.

Importable by the benchmark scripts (scripts/ is on sys.path when they run);
nothing here is imported by carecall itself.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from _pgcluster import libpq_conninfo

from campaign import calendar as cal
from campaign.imports import parse_window
from campaign.model import Mailing, Nurse, Wave, pathologies_to_text
from campaign.policy import Policy, Tier
from campaign.states import WaveStatus
from campaign.synthetic.patients import (
    _METROPOLE,
    _OVERSEAS,
    _PATHOLOGIES,
    _TIERS_HEART_FAILURE,
    _TIERS_OTHER,
    _WINDOWS,
    FICTION_NUMBERS,
    OVERSEAS_SHARE,
    fiction_number,
)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss), MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    """The machine's 1/5/15-minute load: other work on a 2-core box skews every figure."""
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Timeline:
    """Named phases, measured with perf_counter, rounded for the JSON."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.phases.items()}


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


_PATIENT_COLUMNS = (
    "member_id",
    "first_name",
    "last_name",
    "birth_date",
    "sex",
    "phone",
    "phone_alt",
    "flagged_numbers",
    "postal_code",
    "city",
    "departement",
    "timezone",
    "pathologies",
    "tier",
    "status",
    "suspended_until",
    "consent",
    "enrolled_on",
    "preferred_start",
    "preferred_end",
    "referent_nurse_id",
    "next_contact_on",
    "updated_at",
)
_PATIENT_TYPES = (
    "text",
    "text",
    "text",
    "date",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "date",
    "bool",
    "date",
    "time",
    "time",
    "int4",
    "date",
    "timestamptz",
)


def _referents_by_tier(nurses: Iterable[Nurse], policy: Policy) -> dict[str, list[int]]:
    """Per tier, the nurses (in the given order) whose level may take its patients, as the policy says."""
    staff = [(n.id, n.level) for n in nurses if n.id is not None]
    return {
        tier.value: [i for i, level in staff if level in policy.tiers[tier].nurse_levels] for tier in Tier
    }


def bulk_load_patients(
    url: str,
    n: int,
    *,
    staff: Iterable[Nurse],
    policy: Policy,
    today: date,
    now: datetime,
    seed: int = 0,
    overseas: bool = True,
    all_enrolled: bool = False,
    windows: bool = True,
) -> dict[str, Any]:
    """`n` fictional patients straight into `patient` with one binary COPY (not through the importer).

    The mix follows campaign.synthetic (tiers, pathologies, 3 % overseas, preferred
    windows, a few suspended or withdrawn patients, next contact dates spread around
    `today`); 60 % get a référent among the `staff` whose level the `policy` allows
    for their tier; numbers are ARCEP fiction numbers in E.164. `overseas`
    False keeps everyone in metropolitan France; `all_enrolled` makes every patient
    callable (enrolled, consenting); `windows` False gives no one a preferred window.
    """
    rng = random.Random(seed)
    referents = _referents_by_tier(staff, policy)
    metro_weights = [w for _, _, w in _METROPOLE]
    choices = [parse_window(w) for w in _WINDOWS]
    places: dict[str, tuple[str, str]] = {}
    started = time.perf_counter()
    with psycopg.connect(libpq_conninfo(url)) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY patient ({', '.join(_PATIENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(_PATIENT_TYPES))
            for i in range(n):
                if overseas and rng.random() < OVERSEAS_SHARE:
                    postal, city = rng.choice(_OVERSEAS)
                else:
                    postal, city, _ = rng.choices(_METROPOLE, weights=metro_weights)[0]
                place = places.get(postal)
                if place is None:
                    dep = cal.departement_from_postal_code(postal)
                    place = places[postal] = (dep, cal.zone_for(dep))
                count = 2 if rng.random() < 0.25 else 1
                pool = list(_PATHOLOGIES)
                codes = []
                for _ in range(count):
                    code = _pick(rng, pool)
                    codes.append(code)
                    pool = [p for p in pool if p[0] != code]
                tier = _pick(rng, _TIERS_HEART_FAILURE if "heart_failure" in codes else _TIERS_OTHER)
                status, suspended_until, consent = "enrolled", None, True
                if not all_enrolled:
                    roll = rng.random()
                    if roll < 0.02:
                        status = "suspended"
                        suspended_until = date.fromordinal(today.toordinal() + rng.randint(7, 90))
                    elif roll < 0.03:
                        status = "withdrawn"
                    consent = rng.random() >= 0.01
                window = rng.choice(choices) if windows and rng.random() < 0.15 else (None, None)
                allowed = referents.get(tier, ())
                referent = rng.choice(allowed) if allowed and rng.random() < 0.6 else None
                nxt = (
                    date.fromordinal(today.toordinal() + rng.randint(-60, 60)) if rng.random() < 0.7 else None
                )
                digits = fiction_number(i % FICTION_NUMBERS)
                copy.write_row(
                    (
                        f"B{i:09d}",
                        "Prénom",
                        "Nom",
                        date(1940 + i % 50, 1 + i % 12, 1 + i % 28),
                        "F" if i % 2 else "M",
                        "+33" + digits[1:],
                        None,
                        "[]",
                        postal,
                        city,
                        place[0],
                        place[1],
                        pathologies_to_text(codes),
                        tier,
                        status,
                        suspended_until,
                        consent,
                        date(2024, 1, 1),
                        window[0],
                        window[1],
                        referent,
                        nxt,
                        now,
                    )
                )
        conn.commit()
    return {"rows": n, "seconds": round(time.perf_counter() - started, 2)}


def copy_floor(
    url: str,
    table: str,
    columns: Sequence[str],
    work: Path,
    prepare: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> dict[str, Any]:
    """The floor of writing a table's current rows: COPY them out, empty the table, COPY them in (timed).

    Done in text and in binary format; `floor_s` is the faster of the two, so a
    ratio to it is never flattered. The rows are left in the table as they were
    (new ids). `prepare(conn)` runs after the table is emptied (e.g. to undo what
    a cascade emptied).
    """
    col_list = ", ".join(columns)
    out: dict[str, Any] = {}
    with psycopg.connect(libpq_conninfo(url)) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
        out["rows"] = rows
        for fmt in ("text", "binary"):
            dump = work / f"{table}.{fmt}"
            options = " (FORMAT BINARY)" if fmt == "binary" else ""
            with (
                conn.cursor() as cur,
                dump.open("wb") as f,
                cur.copy(f"COPY {table} ({col_list}) TO STDOUT{options}") as copy,
            ):
                for block in copy:
                    f.write(block)
            conn.execute(f"TRUNCATE {table} RESTART IDENTITY CASCADE")
            if prepare is not None:
                prepare(conn)
            conn.commit()
            conn.execute("CHECKPOINT")
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                dump.open("rb") as f,
                cur.copy(f"COPY {table} ({col_list}) FROM STDIN{options}") as copy,
            ):
                while block := f.read(1 << 20):
                    copy.write(block)
            conn.commit()
            seconds = time.perf_counter() - started
            out[fmt] = {
                "seconds": round(seconds, 2),
                "bytes": dump.stat().st_size,
                "rows_per_s": round(rows / seconds) if seconds else None,
            }
            dump.unlink()
    out["floor_s"] = min(out["text"]["seconds"], out["binary"]["seconds"])
    return out


def emit(out: dict[str, Any], json_path: Path | None) -> None:
    """Print a benchmark's figures as JSON, and write them to `json_path` too when given."""
    text_out = json.dumps(out, indent=2, default=str)
    print(text_out)
    if json_path is not None:
        json_path.write_text(text_out + "\n")


def running_wave(s: Any, day: date, now: datetime, recipients: int) -> int:
    """A mailing whose letters arrived on `day` and its wave, running for four weeks (in `s`, flushed)."""
    mailing = Mailing(
        theme_code="adherence",
        segment="all",
        sent_on=day - timedelta(days=7),
        arrives_on=day,
        recipients=recipients,
        created_at=now,
    )
    s.add(mailing)
    s.flush()
    assert mailing.id is not None
    wave = Wave(
        mailing_id=mailing.id,
        status=WaveStatus.running,
        plan_after=now,
        window_start=day,
        window_end=day + timedelta(days=28),
        deadline=now + timedelta(days=30),
        launched_at=now,
        planned_at=now,
    )
    s.add(wave)
    s.flush()
    assert wave.id is not None
    return wave.id
