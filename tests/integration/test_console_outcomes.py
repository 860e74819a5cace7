"""The consoles' dispositions, stored for real (SQLite and PostgreSQL): a callback promised
for another qualified nurse, hospitalised until a date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from factories import SENT_ON, add_nurse, add_patient, paris, running_wave
from sqlalchemy import func, select

from campaign import services, store
from campaign.errors import InvalidArgument
from campaign.explain.patient import explain_patient
from campaign.invariants import check_invariants
from campaign.model import ATTEMPT, OUTCOME, PATIENT, TASK
from campaign.states import EnrolmentStatus, OutcomeCode, TaskKind, TaskStatus

DAY = date(2026, 12, 14)  # a Monday of the wave


def _reach(ctx: services.Context, clock, patient_id: int, nurse: int) -> int:  # type: ignore[no-untyped-def]
    """The nurse's call to the patient's wave task is answered; returns the attempt."""
    with ctx.sessions() as s:
        task = s.execute(
            select(TASK.c.id).where(TASK.c.patient_id == patient_id, TASK.c.kind == TaskKind.wave)
        ).scalar_one()
    claimed = services.claim_and_start(ctx, task, nurse, "desk")
    assert isinstance(claimed, services.Claimed), claimed
    clock.advance_to(clock.now() + timedelta(seconds=20))
    services.mark_answered(ctx, claimed.attempt_id)
    clock.advance_to(clock.now() + timedelta(minutes=6))
    return claimed.attempt_id


def _task(ctx: services.Context, task_id: int):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return s.execute(select(TASK).where(TASK.c.id == task_id)).one()


def _patient(ctx: services.Context, patient_id: int):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return s.execute(select(PATIENT).where(PATIENT.c.id == patient_id)).one()


def _outcomes(ctx: services.Context) -> int:
    with ctx.sessions() as s:
        return int(s.execute(select(func.count()).select_from(OUTCOME)).scalar_one())


@pytest.fixture
def heart_patient(env):  # type: ignore[no-untyped-def]
    """A high-tier heart-failure patient in a running diet wave, on the Monday of the wave, and
    four nurses: the one on the call, a qualified colleague, a junior and a senior without the skill."""
    ctx, clock = env
    me = add_nurse(ctx, level="senior", skills=["heart_failure"])
    colleague = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    junior = add_nurse(ctx, level="junior", skills=["heart_failure"])
    unskilled = add_nurse(ctx, level="senior", skills=["copd"])
    patient = add_patient(ctx, tier="high", pathologies=["heart_failure"])
    running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))
    return (
        ctx,
        clock,
        patient.id,
        {"me": me, "colleague": colleague, "junior": junior, "unskilled": unskilled},
    )


def test_a_callback_for_a_qualified_colleague_waits_for_her(heart_patient) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    applied = services.record_outcome(
        ctx,
        attempt,
        OutcomeCode.callback_requested,
        n["me"],
        callback_at=paris(DAY + timedelta(days=1), 10),
        callback_nurse_id=n["colleague"],
    )
    assert applied.callback_task_id is not None
    task = _task(ctx, applied.callback_task_id)
    assert task.assigned_nurse_id == n["colleague"]
    assert task.not_before == paris(DAY + timedelta(days=1), 10)


def test_a_callback_by_default_is_promised_by_the_nurse_who_recorded_it(heart_patient) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    entry = services.OutcomeEntry(attempt, OutcomeCode.callback_requested, n["me"], paris(DAY, 16))
    (applied,) = services.record_outcomes(ctx, [entry])
    assert applied.callback_task_id is not None
    assert _task(ctx, applied.callback_task_id).assigned_nurse_id == n["me"]


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("junior", "is junior; a high-tier patient needs a senior nurse"),
        ("unskilled", "lacks the skills heart_failure"),
    ],
)
def test_a_callback_for_a_nurse_not_qualified_is_refused_and_nothing_is_stored(
    heart_patient, who: str, why: str
) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    with pytest.raises(InvalidArgument, match=f"attempt {attempt}: callback_nurse_id: nurse .* {why}"):
        services.record_outcome(
            ctx,
            attempt,
            OutcomeCode.callback_requested,
            n["me"],
            callback_at=paris(DAY, 16),
            callback_nurse_id=n[who],
        )
    assert _outcomes(ctx) == 0
    with ctx.sessions() as s:
        choices = store.qualified_nurses(s, patient, ctx.policy, "diet")
    assert [c.id for c in choices] == [n["me"], n["colleague"]]  # by code, the qualified ones only


def test_hospitalised_until_a_date_suspends_and_retries_the_task_after_the_stay(heart_patient) -> None:  # type: ignore[no-untyped-def]
    """Stay until Wednesday: no call on Wednesday, the task is due Thursday at the window's start."""
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    wednesday, thursday = DAY + timedelta(days=2), DAY + timedelta(days=3)
    applied = services.record_outcome(ctx, attempt, OutcomeCode.hospitalised, n["me"], until=wednesday)
    p = _patient(ctx, patient)
    assert (p.status, p.suspended_until, p.next_contact_on) == (
        EnrolmentStatus.suspended,
        wednesday,
        thursday,
    )
    with ctx.sessions() as s:
        task = s.execute(select(TASK).where(TASK.c.patient_id == patient)).one()
    assert task.status == TaskStatus.pending
    assert applied.next_contact.retry_at == task.not_before
    first_window = ctx.policy.calling_hours.by_weekday[thursday.weekday()][0].start
    assert task.not_before == paris(thursday, first_window.hour, first_window.minute)

    # on Wednesday the dialer may not call; `patient why` says so, and promises Thursday
    clock.advance_to(paris(wednesday, 11))
    refused = services.claim_and_start(ctx, task.id, n["me"], "desk")
    assert refused is None or isinstance(refused, services.NotDialable)
    member = p.member_id
    wed = explain_patient(ctx, member, wednesday, "test")
    assert not wed.due and f"until {wednesday}" in wed.verdict
    assert explain_patient(ctx, member, thursday, "test").due
    clock.advance_to(task.not_before)
    assert isinstance(services.claim_and_start(ctx, task.id, n["me"], "desk"), services.Claimed)


def test_hospitalised_beyond_the_wave_closes_the_task_and_plans_the_next_contact_after(heart_patient) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    until = DAY + timedelta(days=60)
    services.record_outcome(ctx, attempt, OutcomeCode.hospitalised, n["me"], until=until)
    with ctx.sessions() as s:
        task = s.execute(select(TASK).where(TASK.c.patient_id == patient)).one()
    assert (task.status, task.close_reason) == (TaskStatus.expired, "hospitalised")
    p = _patient(ctx, patient)
    assert p.suspended_until == until and p.next_contact_on is not None and p.next_contact_on > until


def test_hospitalised_with_no_end_date_cancels_the_task(heart_patient) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    services.record_outcome(ctx, attempt, OutcomeCode.hospitalised, n["me"])
    p = _patient(ctx, patient)
    assert (p.status, p.suspended_until, p.next_contact_on) == (EnrolmentStatus.suspended, None, None)
    with ctx.sessions() as s:
        assert (
            s.execute(select(TASK.c.status).where(TASK.c.patient_id == patient)).scalar_one() == "cancelled"
        )


def test_a_stay_that_ended_before_today_is_refused_with_the_field_named(heart_patient) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    with pytest.raises(InvalidArgument, match=f"attempt {attempt}: until: 2026-12-13 is before today"):
        services.record_outcome(
            ctx, attempt, OutcomeCode.hospitalised, n["me"], until=DAY - timedelta(days=1)
        )
    assert _outcomes(ctx) == 0
    assert _patient(ctx, patient).status == EnrolmentStatus.enrolled


def test_the_call_on_which_the_stay_was_learnt_is_no_call_to_an_uncallable_patient(heart_patient) -> None:  # type: ignore[no-untyped-def]
    """Statuses are current: without the outcome's time, the check would blame the very call on
    which the nurse learnt of the stay. A dial during the stay is still blamed."""
    ctx, clock, patient, n = heart_patient
    attempt = _reach(ctx, clock, patient, n["me"])
    services.record_outcome(ctx, attempt, OutcomeCode.hospitalised, n["me"], until=DAY + timedelta(days=2))
    with ctx.sessions() as s:
        assert check_invariants(s, ctx.policy).calls_to_uncallable.count == 0
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient)).scalar_one()
        s.execute(
            ATTEMPT.insert().values(
                task_id=task,
                patient_id=patient,
                nurse_id=n["me"],
                number="+33199000001",
                state="completed",
                result="no_answer",
                started_at=paris(DAY + timedelta(days=1), 11),
                ended_at=paris(DAY + timedelta(days=1), 11, 1),
            )
        )
        s.commit()
        assert check_invariants(s, ctx.policy).calls_to_uncallable.count == 1
