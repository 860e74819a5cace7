"""`patient why` on the patient's own clock (SQLite and PostgreSQL).

An independent check found it answering "due to be called on this day" after
the patient's calling day was over (19:51 in La Réunion, 23:00 in Guadeloupe),
giving times in UTC, and promising a call after the wave had ended. The
answer must hold on the patient's wall clock, name the zone, and promise only
what the rules would do.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from factories import SENT_ON, add_nurse, add_patient, paris, running_wave
from sqlalchemy import select, update

from campaign import calendar as cal
from campaign import services
from campaign.explain import explain_patient
from campaign.model import PATIENT, TASK

DAY = date(2026, 12, 15)  # a Tuesday of the wave (10 → 30 December), no holiday anywhere


def _due_from(ctx: services.Context, patient_id: int, at: datetime) -> int:
    """The patient's wave task, due from `at` (as a retry would be)."""
    with ctx.sessions() as s:
        task_id = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient_id)).scalar_one()
        s.execute(update(TASK).where(TASK.c.id == task_id).values(not_before=at))
        s.commit()
    return int(task_id)


def _all_text(exp: object) -> str:
    return " ".join([exp.verdict, *(f.detail for f in exp.findings), *exp.changes])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("dep", "postal", "zone", "late", "last_window_end"),
    [
        ("974", "97400", "Indian/Reunion", time(19, 51), "19:00"),
        ("971", "97110", "America/Guadeloupe", time(23, 0), "19:00"),
    ],
)
def test_after_the_patients_calling_day_they_are_not_due_that_day(
    env, dep: str, postal: str, zone: str, late: time, last_window_end: str
) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="senior")
    patient = add_patient(ctx, departement=dep, postal_code=postal)
    running_wave(ctx, clock, "diet", SENT_ON)
    _due_from(ctx, patient.id, cal.at_local(DAY, time(9), zone))

    clock.advance_to(cal.at_local(DAY, time(10), zone))
    morning = explain_patient(ctx, patient.member_id, None, actor="test")
    assert morning.due, morning.verdict
    assert f"2026-12-15 10:00 ({zone})" in morning.verdict

    clock.advance_to(cal.at_local(DAY, late, zone))
    evening = explain_patient(ctx, patient.member_id, None, actor="test")
    assert evening.day == DAY  # the patient's own day, not Paris's
    assert not evening.due, evening.verdict
    assert f"the last window closed at {last_window_end} ({zone})" in evening.verdict
    # what would change it: the next call the rules allow, on the patient's clock
    assert f"the next call the rules allow: 2026-12-16 09:00 ({zone})" in evening.changes
    assert "UTC" not in _all_text(evening)


def test_between_two_windows_the_call_is_due_when_the_next_one_opens(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="senior")
    patient = add_patient(ctx)
    running_wave(ctx, clock, "diet", SENT_ON)
    _due_from(ctx, patient.id, paris(DAY, 9))
    clock.advance_to(paris(DAY, 12, 45))  # lunch break: 12:30-13:30
    exp = explain_patient(ctx, patient.member_id, None, actor="test")
    assert exp.due
    assert "from 2026-12-15 13:30 (Europe/Paris)" in exp.verdict


def test_no_promise_of_a_call_the_rules_would_not_make_before_the_wave_ends(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="senior")
    patient = add_patient(ctx)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    _due_from(ctx, patient.id, paris(DAY, 9))
    # hospitalised mid-wave until mid-January: the task stays open, the rules refuse it until then
    with ctx.sessions() as s:
        s.execute(
            update(PATIENT)
            .where(PATIENT.c.id == patient.id)
            .values(status="suspended", suspended_until=date(2027, 1, 15))
        )
        s.commit()
    clock.advance_to(paris(DAY, 10))

    exp = explain_patient(ctx, patient.member_id, None, actor="test")
    assert not exp.due
    text = _all_text(exp)
    assert "no call the rules allow before its wave ends" in text
    assert "suspended until 2027-01-15" in text
    # the rules would allow a call on 18 January: after the wave, so it is no promise to make
    assert not any("2027-01-18" in c or "next call" in c for c in exp.changes), exp.changes
    assert any("keeps their regular cadence" in c for c in exp.changes)
    assert info.window_end < date(2027, 1, 15)
    assert "UTC" not in text
