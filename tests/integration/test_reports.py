"""Wave report and invariant checks, on databases built by hand with known answers.

Two small worlds, each on SQLite and on PostgreSQL:
- `violations`: one wave in which every invariant is broken by exactly the
  attempts named in the test, next to legal look-alikes (a Réunion call at
  07:00 UTC is 11:00 there; a callback 40 minutes after the last call);
- `clean`: a finished wave that breaks nothing, whose per-tier figures are
  worked out by hand in the comments.
All times are UTC. In December and early March Paris is UTC+1, La Réunion UTC+4.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from rich.console import Console
from sqlmodel import Session, SQLModel

from campaign.db import make_engine
from campaign.invariants import check_invariants
from campaign.model import (
    CallAttempt,
    CallTask,
    Mailing,
    MailingRecipient,
    Nurse,
    Outcome,
    Patient,
    ThemeRow,
    Wave,
)
from campaign.policy import Policy, load_policy
from campaign.reports import (
    DayLoad,
    load_by_day,
    max_daily_load_deviation,
    occupancy_by_nurse,
    occupancy_spread,
    render_html,
    wave_report,
    write_json,
)
from campaign.states import AttemptState, TaskKind, TaskStatus, WaveStatus
from dialer.cli.render import render_text

M = TypeVar("M", bound=SQLModel)
ROOT = Path(__file__).resolve().parents[2]
WEEKDAYS_9_17 = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]


WRAP_UP_MIN = 2  # a nurse's wrap-up after each answered call in these worlds


def dec(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2024 (Christmas is on a Wednesday)."""
    return datetime(2024, 12, day, hour, minute, tzinfo=UTC)


def at(month: int, day: int, hour: int, minute: int = 0, *, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    p = load_policy()
    # the figures below are worked out with these values of config/programme.toml
    assert p.retry.min_gap_minutes == 120
    assert p.caps.max_attempts_per_day == 2
    return p


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


@dataclass
class World:
    """Builds rows and remembers every name and number it used, to hunt for them later."""

    s: Session
    personal: list[str] = field(default_factory=list)
    _n: int = 0

    def commit(self) -> None:
        self.s.commit()

    def _add(self, row: M) -> M:
        self.s.add(row)
        self.s.flush()
        return row

    def nurse(self, code: str, shifts: list[dict[str, object]], level: str = "senior") -> int:
        n = self._add(Nurse(code=code, display_name=f"Infirmière {code}", level=level, shifts=shifts))
        self.personal.append(n.display_name)
        assert n.id is not None
        return n.id

    def patient(self, *, tier: str = "medium", reunion: bool = False, **kw: object) -> int:
        self._n += 1
        first, last = f"Prénom{self._n:02d}x", f"Nomfictif{self._n:02d}x"
        phone = f"+3319900{self._n:04d}"
        p = Patient(
            member_id=f"MBR{self._n:06d}",
            first_name=first,
            last_name=last,
            birth_date=date(1950, 1, self._n),
            phone=phone,
            postal_code="97400" if reunion else "75011",
            city="Saint-Denis" if reunion else "Paris",
            departement="974" if reunion else "75",
            timezone="Indian/Reunion" if reunion else "Europe/Paris",
            pathologies="|diabetes|",
            tier=tier,
            **kw,  # type: ignore[arg-type]
        )
        self._add(p)
        self.personal += [first, last, phone, phone[3:], p.member_id, str(p.birth_date)]
        assert p.id is not None
        return p.id

    def wave(self, patients: list[int], *, start: date, end: date, status: WaveStatus) -> int:
        if self.s.get(ThemeRow, "diet") is None:
            self._add(ThemeRow(code="diet", label="Alimentation équilibrée"))
        m = self._add(
            Mailing(
                theme_code="diet",
                segment="",
                sent_on=start - timedelta(days=7),
                arrives_on=start - timedelta(days=1),
                recipients=len(patients),
                created_at=datetime.combine(start - timedelta(days=7), time(8), UTC),
            )
        )
        assert m.id is not None
        for pid in patients:
            self._add(MailingRecipient(mailing_id=m.id, patient_id=pid))
        w = self._add(
            Wave(
                mailing_id=m.id,
                status=status,
                plan_after=datetime.combine(start - timedelta(days=1), time(5), UTC),
                window_start=start,
                window_end=end,
                # as services.record_mailing: midnight after the last day, in Martinique
                deadline=datetime.combine(end + timedelta(days=1), time(4), UTC),
            )
        )
        assert w.id is not None
        return w.id

    def task(
        self,
        wave_id: int,
        patient_id: int,
        status: TaskStatus,
        *,
        tier: str = "medium",
        kind: TaskKind = TaskKind.wave,
    ) -> int:
        wave = self.s.get(Wave, wave_id)
        assert wave is not None
        t = self._add(
            CallTask(
                wave_id=wave_id,
                patient_id=patient_id,
                kind=kind,
                status=status,
                tier=tier,
                not_before=datetime.combine(wave.window_start, time(8), UTC),
                deadline=wave.deadline,
                created_at=wave.plan_after,
                closed_at=None if status in (TaskStatus.pending, TaskStatus.in_progress) else wave.deadline,
            )
        )
        assert t.id is not None
        return t.id

    def attempt(
        self,
        task_id: int,
        start: datetime,
        result: str | None = "no_answer",
        *,
        nurse: int | None = None,
        ring_s: int = 30,
        talk_min: float = 0,
        outcome: str | None = None,
        state: AttemptState = AttemptState.completed,
    ) -> int:
        task = self.s.get(CallTask, task_id)
        assert task is not None
        answered = start + timedelta(seconds=ring_s) if result == "answered" else None
        ended = None
        if state == AttemptState.completed:  # an answered call ends when its outcome is stored:
            ended = (  # after the talk and her wrap-up (WRAP_UP_MIN)
                (answered + timedelta(minutes=talk_min + WRAP_UP_MIN))
                if answered
                else start + timedelta(seconds=ring_s)
            )
        a = self._add(
            CallAttempt(
                task_id=task_id,
                patient_id=task.patient_id,
                nurse_id=nurse,
                number="+33199000000",
                state=state,
                result=result,
                started_at=start,
                answered_at=answered,
                ended_at=ended,
            )
        )
        assert a.id is not None
        if outcome is not None:
            assert ended is not None
            self._add(
                Outcome(
                    attempt_id=a.id,
                    task_id=task_id,
                    patient_id=task.patient_id,
                    nurse_id=nurse,
                    code=outcome,
                    recorded_at=ended,
                )
            )
        return a.id


# ------------------------------------------------------------------ violations


@dataclass
class Violating:
    world: World
    wave_id: int
    expected: dict[str, list[int]]


@pytest.fixture
def violating(session: Session) -> Violating:
    w = World(session)
    nurse = w.nurse("IDE-V", WEEKDAYS_9_17)
    pa, pc, pd, pi, pj = (w.patient() for _ in range(5))
    pb = w.patient(reunion=True)
    pe = w.patient(status="withdrawn")  # opted out during a call
    pf = w.patient(status="deceased")  # no outcome says when: before the wave
    pg = w.patient(status="suspended", suspended_until=date(2024, 12, 18))
    ph = w.patient(consent=False)
    pk, pl = w.patient(tier="high"), w.patient(tier="medium")  # seven attempts each
    old_patient = w.patient()
    patients = [pa, pb, pc, pd, pe, pf, pg, ph, pi, pj, pk, pl]
    wave = w.wave(patients, start=date(2024, 12, 16), end=date(2024, 12, 31), status=WaveStatus.running)
    # an older, finished wave that forgot a task: only seen when no wave is asked for
    old = w.wave([old_patient], start=date(2024, 11, 4), end=date(2024, 11, 22), status=WaveStatus.done)
    forgotten = w.task(old, old_patient, TaskStatus.pending)

    ta = w.task(wave, pa, TaskStatus.unreachable)
    w.attempt(ta, dec(16, 9), nurse=nurse)  # 10:00 Paris, legal
    a_10min = w.attempt(ta, dec(16, 9, 10), nurse=nurse)  # 10 minutes later
    a_20h = w.attempt(ta, dec(17, 19), nurse=nurse)  # 20:00 Paris
    a_xmas = w.attempt(ta, dec(25, 10), nurse=nurse)  # 11:00 Paris, Christmas

    tb = w.task(wave, pb, TaskStatus.pending)
    w.attempt(tb, dec(17, 7), nurse=nurse)  # 11:00 in Réunion, legal
    b_20h = w.attempt(tb, dec(18, 16), nurse=nurse)  # 20:00 in Réunion
    b_silent = w.attempt(tb, dec(19, 7), "answered", nurse=nurse, talk_min=15)  # no outcome

    tc = w.task(wave, pc, TaskStatus.done)
    w.attempt(tc, dec(19, 9), "answered", nurse=nurse, talk_min=20, outcome="reached")
    c_overlap = w.attempt(tc, dec(19, 9, 10), nurse=nurse)  # rings during the call

    td = w.task(wave, pd, TaskStatus.unreachable)
    w.attempt(td, dec(16, 8), nurse=nurse)  # 09:00 Paris
    w.attempt(td, dec(16, 10, 30), nurse=nurse)  # 2 h 30 later
    d_third = w.attempt(td, dec(16, 13), nurse=nurse)  # third of the day

    te = w.task(wave, pe, TaskStatus.done)
    w.attempt(te, dec(17, 10), "answered", nurse=nurse, talk_min=5, outcome="opted_out")
    e_after = w.attempt(te, dec(18, 10), nurse=nurse)

    tf = w.task(wave, pf, TaskStatus.cancelled)
    f_dead = w.attempt(tf, dec(17, 10), nurse=nurse)

    tg = w.task(wave, pg, TaskStatus.unreachable)
    g_suspended = w.attempt(tg, dec(18, 10), nurse=nurse)  # last suspended day
    w.attempt(tg, dec(19, 10), nurse=nurse)  # suspension over

    th = w.task(wave, ph, TaskStatus.cancelled)
    h_no_consent = w.attempt(th, dec(17, 14), nurse=nurse)

    ti = w.task(wave, pi, TaskStatus.in_progress)
    i_live = w.attempt(ti, dec(20, 10), None, nurse=nurse, state=AttemptState.in_flight)

    # the patient asks for a callback: its first dial, 40 minutes later, is what they asked for
    # (legal); its retries are ordinary dials: too soon, then over the daily cap
    tj = w.task(wave, pj, TaskStatus.done)
    w.attempt(tj, dec(16, 9), "answered", nurse=nurse, talk_min=5, outcome="callback_requested")
    tjc = w.task(wave, pj, TaskStatus.unreachable, kind=TaskKind.callback)
    w.attempt(tjc, dec(16, 9, 40), "machine", nurse=nurse)  # the asked-for dial: second of the day
    j_retry = w.attempt(tjc, dec(16, 10, 10), "machine", nurse=nurse)  # 30 minutes later, third
    j_fourth = w.attempt(tjc, dec(16, 13), nurse=nurse)  # gap kept, fourth of the day
    # seven legal dials each (two a day, hours apart): the high tier may make eight, the others six
    seven = [dec(16, 9), dec(16, 13), dec(17, 9), dec(17, 13), dec(18, 9), dec(18, 13), dec(19, 9)]
    tk, tl = w.task(wave, pk, TaskStatus.unreachable), w.task(wave, pl, TaskStatus.unreachable)
    for at in seven:
        w.attempt(tk, at, nurse=nurse)
    l_seventh = [w.attempt(tl, at, nurse=nurse) for at in seven][-1]
    w.commit()
    return Violating(
        w,
        wave,
        {
            "calls_outside_window": [a_20h, a_xmas, b_20h],
            "calls_to_uncallable": [e_after, f_dead, g_suspended, h_no_consent],
            "double_dials": [a_10min, c_overlap, j_retry],
            "overlapping_calls": [c_overlap],
            "redials_too_soon": [a_10min, j_retry],
            "over_daily_cap": [d_third, j_retry, j_fourth],
            "open_tasks": [tb, ti],
            "answered_without_outcome": [b_silent],
            "in_flight_attempts": [i_live],
            "forgotten": [forgotten],
            "over_max_attempts": [l_seventh],
        },
    )


def test_each_check_counts_exactly_the_planted_violations(
    session: Session, policy: Policy, violating: Violating
) -> None:
    report = check_invariants(session, policy, violating.wave_id)

    assert not report.ok
    found = {name: sorted(v.examples) for name, v in report.checks()}
    counts = report.counts()
    for name, ids in violating.expected.items():
        if name in ("forgotten", "over_max_attempts"):  # the independent check's only
            continue
        assert found[name] == sorted(ids), name
        assert counts[name] == len(ids), name
    assert report.attempts_checked == 37


def test_without_a_wave_every_attempt_and_the_closed_waves_tasks_are_checked(
    session: Session, policy: Policy, violating: Violating
) -> None:
    report = check_invariants(session, policy)

    # the running wave's open tasks are legitimate; the finished wave's is not
    assert report.open_tasks.examples == violating.expected["forgotten"]
    assert report.calls_outside_window.count == 3
    assert report.double_dials.count == 3
    assert report.attempts_checked == 37


def test_the_independent_check_finds_the_same_violations(
    session: Session, policy: Policy, violating: Violating
) -> None:
    """scripts/check_rules.py decides the README's rules on its own; on the planted world it must
    agree with check_invariants, callbacks included, or one of the two is wrong."""
    from check_rules import check

    url = session.get_bind().url.render_as_string(hide_password=False)
    result = check(url, ROOT / "config", violating.wave_id)
    found = {name: sorted(r["examples"]) for name, r in result["rules"].items() if r["count"]}
    e = violating.expected
    assert found == {
        "outside_window": sorted(e["calls_outside_window"]),
        "two_calls_at_once": sorted(e["overlapping_calls"]),
        "within_min_gap": sorted(e["redials_too_soon"]),
        "over_daily_cap": sorted(e["over_daily_cap"]),
        "to_uncallable": sorted(e["calls_to_uncallable"]),
        "answered_without_outcome": sorted(e["answered_without_outcome"]),
        "in_flight": sorted(e["in_flight_attempts"]),
        "over_max_attempts": sorted(e["over_max_attempts"]),
    }
    assert result["attempts_checked"] == 37 and not result["ok"]


def test_the_html_shows_violations_in_red(session: Session, policy: Policy, violating: Violating) -> None:
    report = wave_report(session, policy, violating.wave_id)
    html = render_html(report)

    assert report["calls_outside_window"] == 3
    assert report["double_dials"] == 3
    assert report["open_tasks"] == 2
    assert 'class="ko">3</td>' in html
    assert "des écarts sont à examiner" in html
    _assert_no_personal_data(html, violating.world.personal)


# ------------------------------------------------------------------ a clean wave


@dataclass
class Clean:
    world: World
    wave_id: int
    nurses: dict[str, int]


@pytest.fixture
def clean(session: Session) -> Clean:
    """A finished wave, 3-7 March 2025 (Monday to Friday), that breaks nothing."""
    w = World(session)
    n1 = w.nurse("IDE-A", WEEKDAYS_9_17)
    n2 = w.nurse("IDE-B", [{"weekday": d, "start": "09:00", "end": "13:00"} for d in (0, 2)], "junior")
    q1 = w.patient(tier="high", referent_nurse_id=n1, next_contact_on=date(2025, 4, 3))
    q2 = w.patient(tier="high", referent_nurse_id=n1, next_contact_on=date(2025, 4, 2))
    q3 = w.patient(tier="medium", referent_nurse_id=n2, next_contact_on=date(2025, 5, 5))
    q4 = w.patient(tier="medium", reunion=True)
    q5 = w.patient(tier="low", referent_nurse_id=n2, next_contact_on=date(2025, 7, 8))
    q6 = w.patient(tier="low")
    q7 = w.patient(tier="low", referent_nurse_id=n2, status="withdrawn")
    q8 = w.patient(tier="low")
    q9 = w.patient(tier="low")  # in the mailing, never given a task
    wave = w.wave(
        [q1, q2, q3, q4, q5, q6, q7, q8, q9],
        start=date(2025, 3, 3),
        end=date(2025, 3, 7),
        status=WaveStatus.done,
    )
    done = TaskStatus.done

    k1 = w.task(wave, q1, done, tier="high")
    w.attempt(k1, at(3, 3, 9), nurse=n1)
    w.attempt(k1, at(3, 4, 9), "answered", nurse=n1, ring_s=20, talk_min=25, outcome="reached")

    k2 = w.task(wave, q2, done, tier="high")
    w.attempt(k2, at(3, 3, 13), "answered", nurse=n2, ring_s=20, talk_min=20,
              outcome="callback_requested")  # fmt: skip
    k2c = w.task(wave, q2, done, tier="high", kind=TaskKind.callback)
    # 40 minutes after the last dial: allowed, the patient asked for it
    w.attempt(k2c, at(3, 3, 13, 40), "answered", nurse=n1, ring_s=20, talk_min=20, outcome="reached")

    k3 = w.task(wave, q3, done)
    w.attempt(k3, at(3, 3, 9, 30), nurse=n2)
    w.attempt(k3, at(3, 3, 14), "busy", nurse=n2, ring_s=5)
    w.attempt(k3, at(3, 5, 10), "answered", nurse=n2, ring_s=20, talk_min=18, outcome="reached")

    k4 = w.task(wave, q4, TaskStatus.unreachable)
    for day in (4, 6, 7):
        w.attempt(k4, at(3, day, 6), nurse=n2)  # 10:00 in Réunion

    k5 = w.task(wave, q5, done, tier="low")
    # reached after the wave's deadline (8 March 04:00 UTC)
    w.attempt(k5, at(3, 10, 10), "answered", nurse=n1, ring_s=20, talk_min=12, outcome="escalation")
    w.task(wave, q6, TaskStatus.expired, tier="low")
    k7 = w.task(wave, q7, done, tier="low")
    w.attempt(k7, at(3, 4, 10), "answered", nurse=n2, ring_s=20, talk_min=3, outcome="opted_out")
    w.task(wave, q8, TaskStatus.cancelled, tier="low")
    w.commit()
    return Clean(w, wave, {"IDE-A": n1, "IDE-B": n2})


def test_a_clean_wave_has_no_violation(session: Session, policy: Policy, clean: Clean) -> None:
    for wave_id in (clean.wave_id, None):
        report = check_invariants(session, policy, wave_id)
        assert report.ok, report.counts()
        assert set(report.counts().values()) == {0}
        assert report.attempts_checked == 12


def test_report_figures_match_the_hand_computed_ones(session: Session, policy: Policy, clean: Clean) -> None:
    r = wave_report(session, policy, clean.wave_id)

    assert r["wave"]["theme"] == "diet"
    assert r["wave"]["window_start"] == "2025-03-03"
    assert (r["patients"], r["patients_in_wave"], r["tasks"], r["attempts"]) == (9, 8, 9, 12)
    # patients: q1 (Tue), q2 (through its callback, Mon), q3 (Wed), q5 (escalation, Mon 10, late)
    # are reached; q7 spoke but opted out, q2 also asked for a callback first: each counted once
    assert (r["reached"], r["spoke"], r["opted_out"], r["patients_to_fix"]) == (4, 5, 1, 0)
    assert r["reached_share"] == 0.5
    assert r["attempts_per_reach"] == 3.0
    assert r["median_days_to_reach"] == 1.5  # days [1, 0, 2, 7]
    # tasks: k2 and k2c are two done tasks of one patient, k7 (opt-out) is done too
    assert (r["tasks_done"], r["unreachable"], r["expired"], r["cancelled"], r["open"]) == (6, 1, 1, 1, 0)
    assert r["tasks_done_share"] == pytest.approx(6 / 9, abs=1e-4)
    assert r["tasks_by_kind"] == {"callback": 1, "wave": 8}
    assert (r["calls_outside_window"], r["double_dials"], r["open_tasks"]) == (0, 0, 0)
    assert r["invariants"]["ok"] is True

    high, medium, low = (r["by_tier"][t] for t in ("high", "medium", "low"))
    assert list(r["by_tier"]) == ["high", "medium", "low"]
    # high: q1 (2 attempts, reached Tue by IDE-A, her référent: 1 day), q2 (k2 answered by IDE-B
    # with a callback request, then k2c reached Mon by IDE-A, the référent: 0 days) -> 4 attempts
    assert (high["patients"], high["reached"], high["attempts"]) == (2, 2, 4)
    assert (high["tasks"], high["tasks_done"]) == (3, 3)
    assert high["reached_share"] == 1.0
    assert high["attempts_per_reach"] == 2.0
    assert high["median_days_to_reach"] == 0.5  # days [1, 0]
    assert high["referent_share"] == 1.0
    assert high["reached_in_window_share"] == 1.0
    # medium: q3 (3 attempts, reached Wed by its référent: 2 days), q4 (Réunion, 3 attempts, unreachable)
    assert (medium["patients"], medium["reached"], medium["unreachable"], medium["attempts"]) == (2, 1, 1, 6)
    assert medium["reached_share"] == 0.5
    assert medium["attempts_per_reach"] == 6.0
    assert medium["median_days_to_reach"] == 2
    assert medium["referent_share"] == 1.0
    assert medium["reached_in_window_share"] == 0.5
    # low: q5 (reached Mon 10 by IDE-A, référent IDE-B: 7 days, after the deadline), q6 expired,
    # q7 (opted out on Tue: spoke, not reached), q8 cancelled
    assert (low["patients"], low["reached"], low["attempts"]) == (4, 1, 2)
    assert (low["tasks"], low["tasks_done"], low["expired"], low["cancelled"]) == (4, 2, 1, 1)
    assert low["reached_share"] == 0.25
    assert low["attempts_per_reach"] == 2.0
    assert low["median_days_to_reach"] == 7
    assert low["referent_share"] == 0.0
    assert low["reached_in_window_share"] == 0.0

    a, b = r["nurse_occupancy"]["IDE-A"], r["nurse_occupancy"]["IDE-B"]
    # IDE-A: 30 s + (20 s + 25 min) + (20 s + 20 min) + (20 s + 12 min) + 3 × 2 min wrap-up
    assert (a["attempts"], a["handled_calls"], a["answered_minutes"]) == (4, 3, 57.0 + 3 * WRAP_UP_MIN)
    assert a["shift_minutes"] == 5 * 480
    assert a["occupancy"] == pytest.approx(64.5 / 2400, abs=1e-4)
    # IDE-B: 3 answered (rings 20 s, talk 41 min, 3 × 2 min wrap-up), 4 unanswered × 30 s,
    # one busy of 5 s; shifts on Monday and Wednesday only, 4 h each
    assert (b["attempts"], b["handled_calls"], b["answered_minutes"], b["shift_minutes"]) == (
        8, 3, 41.0 + 3 * WRAP_UP_MIN, 480,
    )  # fmt: skip
    assert b["occupancy"] == pytest.approx((41 + 1 + 4 * 0.5 + 5 / 60 + 6) / 480, abs=1e-4)

    assert r["outcomes"] == {"callback_requested": 1, "escalation": 1, "opted_out": 1, "reached": 3}
    assert r["attempt_results"] == {"answered": 6, "busy": 1, "no_answer": 5}
    assert r["next_contact"]["counts"] == {"2025-W14": 2, "2025-W19": 1, "2025-W28": 1}
    assert r["next_contact"]["unscheduled"] == 5
    daily = r["daily"]
    # a patient counts on the day of the first call that reached them
    assert daily["2025-03-03"] == {"attempts": 5, "reached": 1}
    assert daily["2025-03-04"] == {"attempts": 3, "reached": 1}  # the Réunion call is local
    assert daily["2025-03-05"] == {"attempts": 1, "reached": 1}
    assert daily["2025-03-08"] == {"attempts": 0, "reached": 0}
    assert daily["2025-03-10"] == {"attempts": 1, "reached": 1}
    assert sum(d["attempts"] for d in daily.values()) == 12
    assert sum(d["reached"] for d in daily.values()) == 4


def test_planned_against_actual_load_per_day_and_occupancy_spread(
    session: Session, policy: Policy, clean: Clean
) -> None:
    """Actual minutes per patient-local day, counted as occupancy counts them (ring + talk + the 2-min
    wrap-up per answered call), against the minutes the plan stored:
    Mon 3: k1 30 s, k2 20 s + 20 min + 2, k2c the same, k3 30 s and busy 5 s      = 45.75
    Tue 4: k1 20 s + 25 min + 2, k4 (Réunion 10:00) 30 s, k7 20 s + 3 min + 2    = 33.1667
    Wed 5: k3 20 s + 18 min + 2 = 20.3333; Thu 6 and Fri 7: k4 30 s each; Mon 10 (after the
    window, not a plan day): k5 20 s + 12 min + 2 = 14.3333. All days: IDE-A's 64.5 + IDE-B's 50.0833.
    Deviations: Mon -0.085, Tue +0.1056, Wed +0.0167, Thu 0, Fri -0.95: the largest is Friday's."""
    wave = session.get(Wave, clean.wave_id)
    assert wave is not None
    planned = {
        "2025-03-03": 50.0,
        "2025-03-04": 30.0,
        "2025-03-05": 20.0,
        "2025-03-06": 0.5,
        "2025-03-07": 10.0,
    }
    wave.plan = {"days": {d: {"minutes": m, "capacity": 400.0, "tasks": {}} for d, m in planned.items()}}
    session.commit()

    days = load_by_day(session, policy, clean.wave_id)
    actual = {"2025-03-03": 45.75, "2025-03-04": 33.1667, "2025-03-05": 20.3333, "2025-03-06": 0.5,
              "2025-03-07": 0.5, "2025-03-10": 14.3333}  # fmt: skip
    assert [d.day.isoformat() for d in days] == sorted(actual)
    for d in days:
        assert d.actual_min == pytest.approx(actual[d.day.isoformat()], abs=1e-3)
        assert d.planned_min == planned.get(d.day.isoformat(), 0.0)
        assert d.working == (d.day.isoformat() in planned)
    assert sum(d.actual_min for d in days) == pytest.approx(64.5 + 50 + 5 / 60, abs=1e-3)
    assert max_daily_load_deviation(days) == pytest.approx(0.95)
    # a working day with load but nothing planned is all unplanned: counted as 100 %
    assert max_daily_load_deviation([DayLoad(date(2025, 3, 6), 0.0, 3.0, True), *days]) == 1.0
    assert max_daily_load_deviation([DayLoad(date(2025, 3, 10), 0.0, 3.0, False)]) is None

    occ = occupancy_by_nurse(session, policy, clean.wave_id)
    assert occ == pytest.approx({"IDE-A": 64.5 / 2400, "IDE-B": (50 + 5 / 60) / 480}, abs=1e-4)
    assert occupancy_spread(occ, 0.85) == pytest.approx(0.85 - 64.5 / 2400, abs=1e-4)

    r = wave_report(session, policy, clean.wave_id)
    assert r["max_daily_load_deviation"] == pytest.approx(0.95)
    assert r["occupancy_spread"] == occupancy_spread(occ, 0.85)
    assert [d["day"] for d in r["load_by_day"]] == sorted(actual)
    assert r["load_by_day"][1] == {
        "day": "2025-03-04", "planned_min": 30.0, "launch_planned_min": 30.0, "actual_min": 33.2,
        "working": True, "deviation": 0.1056,
    }  # fmt: skip
    assert r["days_replanned"] == 0 and r["max_daily_load_deviation_from_launch_plan"] == pytest.approx(0.95)
    console = Console(record=True, width=160, color_system=None)
    render_text(r, console)
    text = console.export_text()
    assert "Per day: nurse minutes, planned and actual" in text and "planned at launch" not in text
    assert "2025-03-10 (outside the plan)" in text and "Occupancy spread: 82%" in text

    # a morning top-up re-planned Friday (10 min at launch, 0.5 that morning): the day is judged on
    # that morning's plan, the launch plan's figure is kept beside it
    wave.plan = {
        "days": {
            **wave.plan["days"],
            "2025-03-07": {"minutes": 0.5, "launch_minutes": 10.0, "capacity": 400.0, "tasks": {}},
        }
    }
    session.commit()
    days = load_by_day(session, policy, clean.wave_id)
    friday = next(d for d in days if d.day == date(2025, 3, 7))
    assert (friday.planned_min, friday.launch_planned_min, friday.deviation) == (0.5, 10.0, 0.0)
    assert max_daily_load_deviation(days) == pytest.approx(0.1056, abs=1e-4)  # Tuesday's, now
    assert max_daily_load_deviation(days, from_launch=True) == pytest.approx(0.95)
    r = wave_report(session, policy, clean.wave_id)
    assert r["days_replanned"] == 1 and r["max_daily_load_deviation_from_launch_plan"] == pytest.approx(0.95)
    console = Console(record=True, width=160, color_system=None)
    render_text(r, console)
    text = console.export_text()
    assert "planned at launch" in text
    assert (
        "Morning top-ups re-planned 1 day:" in text and "from the launch plan, daily load was 95% off" in text
    )
    assert r["days_filled_by_top_ups"] == 0 and "not counted" not in text

    # Thursday's morning added patients the launch plan had left out: 0.1 min at launch, 0.5 that
    # morning. Against the launch plan it would be 400 % off, which says how much was added, not
    # how good the launch plan was: counted apart, the launch plan's worst day stays Friday's
    wave.plan = {
        "days": {
            **wave.plan["days"],
            "2025-03-06": {"minutes": 0.5, "launch_minutes": 0.1, "capacity": 400.0, "tasks": {}},
        }
    }
    session.commit()
    r = wave_report(session, policy, clean.wave_id)
    assert r["days_replanned"] == 2 and r["days_filled_by_top_ups"] == 1
    assert r["max_daily_load_deviation_from_launch_plan"] == pytest.approx(0.95)
    console = Console(record=True, width=160, color_system=None)
    render_text(r, console)
    text = console.export_text()
    assert "95% off at most (1 day mostly of patients the top-ups added, not counted)" in " ".join(
        text.split()
    )


def test_json_round_trip_and_terminal_report(
    session: Session, policy: Policy, clean: Clean, tmp_path: Path
) -> None:
    r = wave_report(session, policy, clean.wave_id)
    path = write_json(r, tmp_path / "out" / "wave.json")

    assert json.loads(path.read_text(encoding="utf-8")) == r
    console = Console(record=True, width=160, color_system=None)
    render_text(r, console)
    text = console.export_text()
    assert "Per tier" in text and "Per nurse" in text and "Invariants" in text
    assert "IDE-A" in text
    _assert_no_personal_data(text, clean.world.personal)


def test_html_is_self_contained_french_and_anonymous(session: Session, policy: Policy, clean: Clean) -> None:
    html = render_html(wave_report(session, policy, clean.wave_id))

    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in html
    for title in ("Rapport de vague", "Patients joints", "Occupation des infirmiers",
                  "Contrôle des invariants", "Tous les contrôles sont conformes"):  # fmt: skip
        assert title in html
    assert html.count("<svg") == 4  # tiers, days, occupancy, next contact
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "Alimentation équilibrée" in html
    assert "50\u202f%" in html  # the share of the wave's patients reached, French style
    _assert_no_personal_data(html, clean.world.personal)


def _assert_no_personal_data(text: str, personal: list[str]) -> None:
    leaked = [p for p in personal if p in text]
    assert not leaked, f"personal data in the report: {leaked}"
    assert not re.search(r"\+33\d{9}", text)


# ------------------------------------------------------------------ the shared template environment


def test_templates_escape_html_only_and_refuse_missing_variables(tmp_path: Path) -> None:
    from jinja2 import UndefinedError

    from campaign import templates

    (tmp_path / "page.fr.html.j2").write_text("<p>{{ x }}</p>", encoding="utf-8")
    (tmp_path / "script.fr.j2").write_text("Bonjour {{ x }}, le {{ d | fr_date }}.", encoding="utf-8")
    env = templates.environment(tmp_path)

    assert env.get_template("page.fr.html.j2").render(x="<b>") == "<p>&lt;b&gt;</p>"
    text = env.get_template("script.fr.j2").render(x="<b>", d=date(2025, 3, 1))
    assert text == "Bonjour <b>, le 1er mars 2025."
    with pytest.raises(UndefinedError):
        env.get_template("page.fr.html.j2").render()
    assert templates.fr_number(12345.678, 1) == "12\u202f345,7"
    assert templates.fr_percent(0.125, 1) == "12,5\u202f%"
    assert templates.fr_date("2025-03-03", weekday=True) == "lundi 3 mars 2025"
