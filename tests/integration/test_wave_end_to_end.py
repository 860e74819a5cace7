"""A whole wave, end to end, checked from the database.

300 synthetic patients and 4 nurses; a 'diet' mailing posted on Monday
7 December 2026 (the wave runs over Christmas, and over 20 December, La
Réunion's abolition day). The scheduler's job plans it when the letters
arrive, the supervisor launches it, and the simulator (production dialer,
routing and services; simulated telephone lines and nurses) runs it to the
end on the virtual clock.

Every property is then checked with raw queries written here, not through
the report nor through `campaign.invariants`; and `check_invariants` must
agree, and must see a violation that is planted on purpose.

Runs once on a SQLite file and once on a throwaway PostgreSQL database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import ROOT, dispose, engine_of, import_synthetic, make_ctx, paris, recorded_wave, wave_status
from factories import add_nurses as make_nurses
from sqlalchemy import text

from campaign import calendar as cal
from campaign import jobs, services
from campaign.clock import VirtualClock
from campaign.invariants import check_invariants
from campaign.model import ATTEMPT
from campaign.policy import Tier
from campaign.states import AttemptState, OutcomeCode, TaskStatus, WaveStatus
from campaign.templates import render
from dialer.simulation import INBOUND_NUMBER, SimulationResult, run_simulation, voicemail_text

# the simulated wave (set up once per backend) takes ~20 s for the module
pytestmark = pytest.mark.slow

PATIENTS = 300
NURSES = 4
SEED = 1
SENT_ON = date(2026, 12, 7)
TERMINAL = {
    TaskStatus.done.value,
    TaskStatus.unreachable.value,
    TaskStatus.expired.value,
    TaskStatus.cancelled.value,
}


@dataclass
class World:
    backend: str
    ctx: services.Context
    clock: VirtualClock
    wave_id: int
    mailing_id: int
    window_start: date
    window_end: date
    sim: SimulationResult

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with engine_of(self.ctx).connect() as conn:
            return list(conn.execute(text(sql), params).all())


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'wave.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database()
    ctx, clock = make_ctx(url, paris(SENT_ON, 8))
    make_nurses(ctx, NURSES, seed=SEED)
    import_synthetic(ctx, PATIENTS, seed=SEED, tmp_dir=tmp)
    info = recorded_wave(ctx, "diet", SENT_ON)
    assert info.recipients > 200

    # the scheduler's job does nothing before the letters arrive…
    clock.advance_to(info.plan_after - timedelta(hours=1))
    assert jobs.plan_due_waves(ctx) == []
    assert wave_status(ctx, info.wave_id) == WaveStatus.scheduled
    # …and plans the wave once they do; nothing is dialed before the supervisor launches it
    clock.advance_to(info.plan_after)
    assert jobs.plan_due_waves(ctx) == [info.wave_id]
    assert wave_status(ctx, info.wave_id) == WaveStatus.planned
    services.change_wave(ctx, info.wave_id, "launch")

    with ctx.sessions() as s:
        end = services.get_wave(s, info.wave_id).deadline + timedelta(days=30)

    def finished() -> bool:
        return wave_status(ctx, info.wave_id) in (WaveStatus.done, WaveStatus.cancelled)

    sim = run_simulation(ctx, clock, end, seed=SEED, auto_launch=False, stop_when=finished)
    yield World(
        request.param, ctx, clock, info.wave_id, info.mailing_id, info.window_start, info.window_end, sim
    )
    dispose(ctx)


# ---------------------------------------------------------------- helpers


def _attempts(w: World) -> list[Any]:
    return w.rows(
        """
        SELECT a.id, a.task_id, a.patient_id, a.nurse_id, a.number, a.state, a.result,
               a.started_at, a.answered_at, a.ended_at, a.voicemail_left,
               t.kind, t.tier, t.theme_code, t.assigned_nurse_id,
               p.departement, p.timezone, p.preferred_start, p.preferred_end, p.pathologies
        FROM call_attempt a JOIN call_task t ON t.id = a.task_id JOIN patient p ON p.id = a.patient_id
        WHERE t.wave_id = :w ORDER BY a.patient_id, a.started_at, a.id
        """,
        w=w.wave_id,
    )


def _aware(value: Any) -> datetime:
    """SQLite hands back naive UTC strings/datetimes, PostgreSQL aware ones."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _time(value: Any) -> time | None:
    if value is None or isinstance(value, time):
        return value
    return time.fromisoformat(value)


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _place(r: Any) -> cal.Place:
    return cal.Place(r.departement, r.timezone, _time(r.preferred_start), _time(r.preferred_end))


def _is_holiday_where_they_live(day: date, departement: str) -> bool:
    """Straight from the `holidays` package (through the independent checker), not campaign.calendar."""
    from check_rules import is_holiday

    return is_holiday(day, departement)


# ---------------------------------------------------------------- the wave ran


def test_the_wave_ran_and_closed(world: World) -> None:
    assert world.sim.dials > PATIENTS / 2
    assert world.sim.outcomes.get(OutcomeCode.reached.value, 0) > 100
    assert wave_status(world.ctx, world.wave_id) == WaveStatus.done


def test_every_task_is_terminal(world: World) -> None:
    rows = world.rows(
        "SELECT status, kind, count(*) FROM call_task WHERE wave_id = :w GROUP BY status, kind",
        w=world.wave_id,
    )
    assert rows, "the wave has no tasks"
    open_ = [(s, k, n) for s, k, n in rows if s not in TERMINAL]
    assert open_ == []
    closed = world.rows(
        "SELECT count(*) FROM call_task WHERE wave_id = :w AND closed_at IS NULL", w=world.wave_id
    )
    assert closed[0][0] == 0, "a terminal task without closed_at"
    kinds = {k for _, k, _ in rows}
    assert "callback" in kinds, "no callback in 300 patients: the scenario no longer exercises callbacks"


def test_every_attempt_is_closed_and_stored(world: World) -> None:
    rows = _attempts(world)
    assert len(rows) == world.sim.dials, "every dial of the backend has its stored attempt"
    assert all(r.state == AttemptState.completed.value and r.ended_at is not None and r.result for r in rows)


def test_no_two_attempts_of_a_patient_overlap(world: World) -> None:
    by_patient: dict[int, list[Any]] = defaultdict(list)
    for r in _attempts(world):
        by_patient[r.patient_id].append(r)
    overlaps = []
    for attempts in by_patient.values():
        busy_until: datetime | None = None
        for cur in attempts:
            if busy_until is not None and _aware(cur.started_at) < busy_until:
                overlaps.append(cur.id)
            end = _aware(cur.ended_at)
            busy_until = end if busy_until is None else max(busy_until, end)
    assert overlaps == []


def test_no_redial_within_min_gap_unless_the_patient_asked_for_it(world: World) -> None:
    """Only the first dial of a callback task (the time the patient asked for) may come sooner."""
    gap = timedelta(minutes=world.ctx.policy.retry.min_gap_minutes)
    by_patient: dict[int, list[Any]] = defaultdict(list)
    for r in _attempts(world):
        by_patient[r.patient_id].append(r)
    too_soon = []
    for attempts in by_patient.values():
        seen_tasks: set[int] = set()
        for prev, cur in pairwise(attempts):
            seen_tasks.add(prev.task_id)
            asked_for = cur.kind == "callback" and cur.task_id not in seen_tasks
            if _aware(cur.started_at) - _aware(prev.started_at) < gap and not asked_for:
                too_soon.append((prev.id, cur.id))
    assert too_soon == []


def test_an_independent_check_of_the_readme_rules_passes(world: World) -> None:
    """scripts/check_rules.py: the rules decided from README and config/ alone, the daily cap and
    the callback exception included."""
    from check_rules import check

    url = engine_of(world.ctx).url.render_as_string(hide_password=False)
    result = check(url, ROOT / "config", world.wave_id)
    broken = {name: r for name, r in result["rules"].items() if r["count"]}
    assert result["ok"], broken
    assert result["attempts_checked"] == len(_attempts(world))


def test_every_attempt_inside_the_patients_local_window_and_not_on_a_holiday(world: World) -> None:
    hours = world.ctx.policy.calling_hours
    outside, on_holiday, zones = [], [], set()
    for r in _attempts(world):
        started = _aware(r.started_at)
        zone = ZoneInfo(r.timezone)
        zones.add(r.timezone)
        local = started.astimezone(zone)
        if _is_holiday_where_they_live(local.date(), r.departement):
            on_holiday.append(r.id)
        windows = cal.local_windows(local.date(), _place(r), hours)
        if not any(w.start <= local.time() < w.end for w in windows):
            outside.append((r.id, local.isoformat()))
    assert on_holiday == []
    assert outside == []
    assert len(zones) > 1, "no overseas patient dialed: the scenario lost its time-zone coverage"


def test_no_call_on_christmas_nor_on_reunion_abolition_day(world: World) -> None:
    days = defaultdict(set)
    for r in _attempts(world):
        days[r.departement].add(_aware(r.started_at).astimezone(ZoneInfo(r.timezone)).date())
    assert all(date(2026, 12, 25) not in d for d in days.values())
    assert date(2026, 12, 20) not in days.get("974", set())


def test_every_answered_attempt_has_an_outcome(world: World) -> None:
    rows = world.rows(
        """
        SELECT a.id FROM call_attempt a JOIN call_task t ON t.id = a.task_id
        LEFT JOIN outcome o ON o.attempt_id = a.id
        WHERE t.wave_id = :w AND a.answered_at IS NOT NULL AND o.id IS NULL
        """,
        w=world.wave_id,
    )
    assert rows == []
    unanswered_with_outcome = world.rows(
        """
        SELECT a.id FROM call_attempt a JOIN outcome o ON o.attempt_id = a.id
        WHERE a.answered_at IS NULL
        """
    )
    assert unanswered_with_outcome == []


def test_reached_patients_next_contact_is_tier_cadence_on_a_callable_day(world: World) -> None:
    policy = world.ctx.policy
    rows = world.rows(
        """
        SELECT o.patient_id, o.code, o.recorded_at, o.next_contact_on AS outcome_next,
               p.next_contact_on AS patient_next, p.tier, p.departement, p.timezone,
               p.preferred_start, p.preferred_end
        FROM outcome o JOIN call_task t ON t.id = o.task_id JOIN patient p ON p.id = o.patient_id
        WHERE t.wave_id = :w ORDER BY o.patient_id, o.recorded_at, o.id
        """,
        w=world.wave_id,
    )
    last: dict[int, Any] = {}
    checked = 0
    for r in rows:
        last[r.patient_id] = r
        if r.code not in (OutcomeCode.reached.value, OutcomeCode.escalation.value):
            continue
        place = _place(r)
        expected = cal.local_date(_aware(r.recorded_at), place) + timedelta(
            days=policy.tiers[Tier(r.tier)].cadence_days
        )
        while not cal.local_windows(expected, place, policy.calling_hours):
            expected += timedelta(days=1)
        assert _day(r.outcome_next) == expected, (r.patient_id, r.outcome_next, expected)
        checked += 1
    assert checked > 100
    for pid, r in last.items():
        if r.code in (OutcomeCode.reached.value, OutcomeCode.escalation.value):
            assert _day(r.patient_next) == _day(r.outcome_next), pid


def test_opted_out_patients_are_withdrawn_and_never_called_again(world: World) -> None:
    rows = world.rows(
        """
        SELECT o.patient_id, o.recorded_at, p.status FROM outcome o
        JOIN call_task t ON t.id = o.task_id JOIN patient p ON p.id = o.patient_id
        WHERE t.wave_id = :w AND o.code = 'opted_out'
        """,
        w=world.wave_id,
    )
    for r in rows:
        assert r.status == "withdrawn"
        later = world.rows(
            "SELECT count(*) FROM call_attempt WHERE patient_id = :p AND started_at > :at",
            p=r.patient_id,
            at=r.recorded_at,
        )
        assert later[0][0] == 0
        still_open = world.rows(
            "SELECT count(*) FROM call_task WHERE patient_id = :p AND status IN ('pending', 'in_progress')",
            p=r.patient_id,
        )
        assert still_open[0][0] == 0
    withdrawn_called = world.rows(
        """
        SELECT a.id FROM call_attempt a JOIN patient p ON p.id = a.patient_id
        WHERE p.status = 'withdrawn' AND NOT EXISTS (
            SELECT 1 FROM outcome o WHERE o.patient_id = p.id AND o.code = 'opted_out')
        """
    )
    assert withdrawn_called == [], "a patient withdrawn before the wave was called"


def _on_shift(shifts: list[dict[str, Any]], zone: str, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(zone))
    if cal.is_holiday(local.date(), "75"):
        return False
    return any(
        s["weekday"] == local.weekday()
        and time.fromisoformat(s["start"]) <= local.time() < time.fromisoformat(s["end"])
        for s in shifts
    )


def test_callbacks_are_dialed_at_the_time_asked_by_the_nurse_who_promised_them(world: World) -> None:
    import json

    grace = timedelta(minutes=world.ctx.policy.dialer.callback_grace_minutes)
    nurses = {
        r.id: (json.loads(r.shifts) if isinstance(r.shifts, str) else r.shifts, r.timezone)
        for r in world.rows("SELECT id, shifts, timezone FROM nurse")
    }
    rows = world.rows(
        """
        SELECT t.id, t.assigned_nurse_id, o.nurse_id AS promised_by, o.callback_at,
               (SELECT min(a.started_at) FROM call_attempt a WHERE a.task_id = t.id) AS first_start
        FROM call_task t JOIN outcome o
          ON o.patient_id = t.patient_id AND o.code = 'callback_requested' AND o.recorded_at = t.created_at
        WHERE t.wave_id = :w AND t.kind = 'callback'
        """,
        w=world.wave_id,
    )
    total_callbacks = world.rows(
        "SELECT count(*) FROM call_task WHERE wave_id = :w AND kind = 'callback'", w=world.wave_id
    )[0][0]
    assert len(rows) == total_callbacks > 0, "every callback task comes from a callback_requested outcome"
    by_promiser = 0
    dialed = 0
    for r in rows:
        assert r.assigned_nurse_id == r.promised_by
        if r.first_start is None:
            continue
        dialed += 1
        first = world.rows(
            "SELECT nurse_id, started_at FROM call_attempt WHERE task_id = :t ORDER BY started_at, id",
            t=r.id,
        )[0]
        asked = _aware(r.callback_at)
        start = _aware(first.started_at)
        assert start >= asked, f"callback task {r.id} dialed before the time the patient asked"
        if first.nurse_id == r.promised_by:
            by_promiser += 1
            continue
        shifts, zone = nurses[r.promised_by]
        # another nurse may take it only once the grace period is over, or if its nurse is not working
        assert start >= asked + grace or not _on_shift(shifts, zone, start), (
            f"callback task {r.id} taken by nurse {first.nurse_id} at {start} while nurse "
            f"{r.promised_by}, who promised it, was on shift and the grace period was running"
        )
    assert dialed > 0
    assert by_promiser >= dialed / 2


def test_wrong_numbers_are_flagged_and_never_dialed_again(world: World) -> None:
    import json

    rows = world.rows(
        """
        SELECT o.patient_id, o.recorded_at, a.number, p.flagged_numbers
        FROM outcome o JOIN call_attempt a ON a.id = o.attempt_id JOIN patient p ON p.id = o.patient_id
        JOIN call_task t ON t.id = o.task_id
        WHERE t.wave_id = :w AND o.code = 'wrong_number'
        """,
        w=world.wave_id,
    )
    assert rows, "no wrong number in 300 patients: the scenario no longer exercises them"
    for r in rows:
        flagged = json.loads(r.flagged_numbers) if isinstance(r.flagged_numbers, str) else r.flagged_numbers
        assert r.number in flagged
        again = world.rows(
            "SELECT count(*) FROM call_attempt WHERE number = :n AND started_at > :at",
            n=r.number,
            at=r.recorded_at,
        )
        assert again[0][0] == 0


def test_high_tier_only_to_seniors_and_skills_respected(world: World) -> None:
    import json

    policy = world.ctx.policy
    nurses = {
        r.id: (r.level, set(json.loads(r.skills) if isinstance(r.skills, str) else r.skills))
        for r in world.rows("SELECT id, level, skills FROM nurse")
    }
    theme = policy.themes["diet"]
    checked_hf = 0
    for r in _attempts(world):
        level, skills = nurses[r.nurse_id]
        if r.kind == "callback":
            continue  # a callback goes to the nurse who promised it
        assert level in {lv.value for lv in policy.tiers[Tier(r.tier)].nurse_levels}, (r.id, r.tier, level)
        pathologies = [p for p in r.pathologies.split("|") if p]
        relevant = [p for p in pathologies if p in theme.pathologies] or pathologies
        needed = {policy.skill_for(p) for p in relevant} - {""}
        assert needed <= skills, (r.id, needed, skills)
        checked_hf += "heart_failure" in needed
    assert checked_hf > 0, "no heart-failure patient called: the scenario lost its skill coverage"


def _forbidden_words(world: World) -> set[str]:
    policy = world.ctx.policy
    words = {
        "diabète",
        "diabete",
        "cardiaque",
        "rénal",
        "renal",
        "coronar",
        "bpco",
        "asthme",
        "tabac",
        "poids",
        "pieds",
        "alimentation",
        "activité physique",
        "examens",
        "observance",
        "traitement",
        "insuffisance",
        "pathologie",
        "maladie chronique",
    }
    for theme in policy.themes.values():
        words |= {theme.code.replace("_", " "), theme.code, theme.label.lower()}
    for code, p in policy.pathologies.items():
        words |= {code.replace("_", " "), code, p.label.lower()}
    return words


def test_no_voicemail_names_the_theme_or_a_pathology(world: World) -> None:
    rendered = render("ivr/voicemail.fr.j2", inbound_number=INBOUND_NUMBER)
    assert rendered == voicemail_text(), "the simulator leaves the rendered template"
    lowered = rendered.lower()
    leaks = sorted(w for w in _forbidden_words(world) if w in lowered)
    assert leaks == []
    left = world.rows(
        """
        SELECT a.result, count(*) FROM call_attempt a JOIN call_task t ON t.id = a.task_id
        WHERE t.wave_id = :w AND a.voicemail_left = :yes GROUP BY a.result
        """,
        w=world.wave_id,
        yes=True,
    )
    assert left, "no voicemail was left in the whole wave"
    assert {r for r, _ in left} == {"machine"}


def test_check_invariants_agrees(world: World) -> None:
    with world.ctx.sessions() as s:
        report = check_invariants(s, world.ctx.policy, world.wave_id)
        everything = check_invariants(s, world.ctx.policy)
    assert report.attempts_checked == len(_attempts(world))
    assert report.counts() == dict.fromkeys(report.counts(), 0)
    assert everything.ok


def test_check_invariants_is_not_trivially_zero(world: World) -> None:
    """Plant violations in a transaction that is rolled back (a corrupted copy of the data)."""
    policy = world.ctx.policy
    answered = world.rows(
        """
        SELECT a.id, a.task_id, a.patient_id, a.nurse_id, a.number, a.started_at, p.timezone
        FROM call_attempt a JOIN call_task t ON t.id = a.task_id JOIN patient p ON p.id = a.patient_id
        JOIN outcome o ON o.attempt_id = a.id
        WHERE t.wave_id = :w AND t.kind = 'wave' AND o.code = 'reached' AND p.departement = '75'
        ORDER BY a.id LIMIT 1
        """,
        w=world.wave_id,
    )[0]
    started = _aware(answered.started_at)
    day = started.astimezone(ZoneInfo(answered.timezone)).date()
    at_22h = cal.at_local(day, time(22, 0), answered.timezone)
    ten_minutes_later = started + timedelta(minutes=10)  # overlaps the answered call, and too soon
    christmas = cal.at_local(date(2026, 12, 25), time(10, 0), answered.timezone)
    base = {
        "task_id": answered.task_id,
        "patient_id": answered.patient_id,
        "nurse_id": answered.nurse_id,
        "number": answered.number,
        "state": "completed",
        "worker": "forged",
    }
    with world.ctx.sessions() as s:
        s.execute(
            ATTEMPT.insert(),
            [
                {
                    **base,
                    "result": "no_answer",
                    "started_at": at_22h,
                    "ended_at": at_22h + timedelta(seconds=30),
                },
                {
                    **base,
                    "result": "no_answer",
                    "started_at": ten_minutes_later,
                    "ended_at": ten_minutes_later + timedelta(seconds=30),
                },
                {
                    **base,
                    "result": "answered",
                    "started_at": christmas,
                    "answered_at": christmas,
                    "ended_at": christmas + timedelta(minutes=5),
                },
            ],
        )
        s.flush()
        report = check_invariants(s, policy, world.wave_id)
        s.rollback()
    counts = report.counts()
    assert counts["calls_outside_window"] == 2  # 22:00 and Christmas Day
    assert counts["double_dials"] >= 1  # 10 minutes after a call
    assert counts["answered_without_outcome"] == 1  # the forged Christmas call
    with world.ctx.sessions() as s:
        assert check_invariants(s, policy, world.wave_id).ok, "the rollback restored the clean wave"


def test_open_task_and_in_flight_attempt_are_counted(world: World) -> None:
    with world.ctx.sessions() as s:
        task_id = s.execute(
            text("SELECT id FROM call_task WHERE wave_id = :w AND status = 'done' LIMIT 1"),
            {"w": world.wave_id},
        ).scalar_one()
        s.execute(text("UPDATE call_task SET status = 'pending' WHERE id = :t"), {"t": task_id})
        # the last attempt only: the database allows one call in flight per patient
        s.execute(
            text(
                "UPDATE call_attempt SET state = 'in_flight' WHERE id = "
                "(SELECT max(id) FROM call_attempt WHERE task_id = :t)"
            ),
            {"t": task_id},
        )
        s.flush()
        report = check_invariants(s, world.ctx.policy, world.wave_id)
        s.rollback()
    assert report.open_tasks.count == 1 and report.open_tasks.examples == [task_id]
    assert report.in_flight_attempts.count >= 1
