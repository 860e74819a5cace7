"""A patient calls the programme and a nurse answers (SQLite and PostgreSQL): the contact is
stored like a dialed one, counts in the caps, is never blamed as a dial, and settles the
patient's pending outbound tasks for the same need."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from factories import SENT_ON, add_nurse, add_patient, add_task, paris, promise_callback, running_wave
from sqlalchemy import select

from campaign import services, store
from campaign.errors import PatientInCall
from campaign.explain.patient import explain_patient
from campaign.invariants import check_invariants
from campaign.model import ATTEMPT, PATIENT, TASK
from campaign.reports import wave_report
from campaign.states import AttemptResult, AttemptState, OutcomeCode, TaskKind, TaskStatus

DAY = date(2026, 12, 14)  # a Monday of the wave


@pytest.fixture
def called_in(env):  # type: ignore[no-untyped-def]
    """A patient of a running diet wave with a pending wave task, and a nurse; Monday 10:00."""
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    patient = add_patient(ctx)
    wave = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))
    with ctx.sessions() as s:
        wave_task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient.id)).scalar_one()
    return ctx, clock, patient, nurse, wave.wave_id, int(wave_task)


def _task(ctx: services.Context, task_id: int):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return s.execute(select(TASK).where(TASK.c.id == task_id)).one()


def test_an_answered_incoming_call_is_a_task_in_progress_with_its_answered_attempt(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, nurse, wave_id, _ = called_in
    task_id, attempt_id = services.start_incoming(ctx, patient.id, nurse, "web-1", number=patient.phone)
    task = _task(ctx, task_id)
    assert (task.kind, task.status, task.wave_id, task.theme_code) == (
        "incoming",
        "in_progress",
        wave_id,
        "diet",
    )
    assert (task.assigned_nurse_id, task.claimed_by) == (nurse, "web-1")
    with ctx.sessions() as s:
        a = s.execute(select(ATTEMPT).where(ATTEMPT.c.id == attempt_id)).one()
    assert (a.state, a.result, a.nurse_id, a.answered_at) == ("in_flight", "answered", nurse, clock.now())


def test_its_reached_outcome_closes_the_wave_task_and_sets_the_next_contact(called_in) -> None:  # type: ignore[no-untyped-def]
    """The Done-when test of the inbound line: an inbound contact closes the matching outbound task."""
    ctx, clock, patient, nurse, wave_id, wave_task = called_in
    _, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1", number=patient.phone)
    clock.advance_to(clock.now() + timedelta(minutes=12))
    applied = services.record_outcome(
        ctx, attempt, OutcomeCode.reached, nurse, note="questions sur le régime"
    )
    closed = _task(ctx, wave_task)
    assert (closed.status, closed.close_reason) == ("done", "reached on an incoming call")
    with ctx.sessions() as s:
        p = s.execute(select(PATIENT).where(PATIENT.c.id == patient.id)).one()
    assert p.next_contact_on == applied.next_contact.next_contact_on is not None
    assert p.last_contact_at == clock.now()
    with ctx.sessions() as s:
        report = wave_report(s, ctx.policy, wave_id)
    assert (report["reached"], report["incoming_calls"], report["tasks_by_kind"]) == (
        1,
        1,
        {"incoming": 1, "wave": 1},
    )


def test_an_incoming_call_at_night_on_a_suspended_patient_is_not_blamed_as_a_dial(env) -> None:  # type: ignore[no-untyped-def]
    """A patient may call whenever the line is open, suspended or not: that is no dial outside
    the window nor to an uncallable patient, and it needs no gap after a dial of ours."""
    ctx, clock = env
    nurse = add_nurse(ctx)
    patient = add_patient(ctx)
    wave = running_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient.id)).scalar_one()
    clock.advance_to(paris(DAY, 10))
    claimed = services.claim_and_start(ctx, task, nurse, "desk")
    assert isinstance(claimed, services.Claimed)
    clock.advance_to(clock.now() + timedelta(seconds=40))
    services.finish_unanswered(ctx, claimed.attempt_id, AttemptResult.no_answer)
    clock.advance_to(clock.now() + timedelta(minutes=5))  # the patient calls back at once
    _, first = services.start_incoming(ctx, patient.id, nurse, "web-1", number=patient.phone)
    services.record_outcome(ctx, first, OutcomeCode.hospitalised, nurse, until=DAY + timedelta(days=3))
    clock.advance_to(paris(DAY, 22, 30))  # and again, from hospital, at night
    _, second = services.start_incoming(ctx, patient.id, nurse, "web-1")
    services.record_outcome(ctx, second, OutcomeCode.reached, nurse)
    with ctx.sessions() as s:
        report = check_invariants(s, ctx.policy, wave.wave_id)
    assert report.attempts_checked == 3
    counts = report.counts()
    blamed = ("calls_outside_window", "calls_to_uncallable", "double_dials", "over_daily_cap")
    assert {k: counts[k] for k in blamed} == dict.fromkeys(blamed, 0), report.as_dict()
    assert counts["answered_without_outcome"] == 0 and counts["in_flight_attempts"] == 0


def test_an_incoming_call_counts_in_the_caps_of_the_next_dial(called_in) -> None:  # type: ignore[no-untyped-def]
    """The dialer keeps the minimum gap after the patient's call, and the invariant check blames a
    dial that did not."""
    ctx, clock, patient, nurse, _, _ = called_in
    callback = add_task(ctx, patient.id, wave_id=None)  # an earlier request left on the line, due now
    _, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1", number="+33199009999")
    clock.advance_to(clock.now() + timedelta(minutes=10))
    services.record_outcome(ctx, attempt, OutcomeCode.wrong_number, nurse)  # not the patient: nothing settled
    assert _task(ctx, callback).status == "pending"
    clock.advance_to(clock.now() + timedelta(minutes=20))
    refused = services.claim_and_start(ctx, callback, nurse, "desk")
    assert isinstance(refused, services.NotDialable) and refused.decision.reason.value == "min_gap"

    # a dialer that ignored the gap: the check blames its dial, not the patient's call
    with ctx.sessions() as s:
        s.execute(
            ATTEMPT.insert().values(
                task_id=callback,
                patient_id=patient.id,
                nurse_id=nurse,
                number=patient.phone,
                state=AttemptState.completed,
                result=AttemptResult.no_answer,
                started_at=clock.now(),
                ended_at=clock.now() + timedelta(seconds=30),
            )
        )
        s.commit()
    with ctx.sessions() as s:
        report = check_invariants(s, ctx.policy)
        planted = s.execute(select(ATTEMPT.c.id).where(ATTEMPT.c.task_id == callback)).scalar_one()
    assert report.redials_too_soon.examples == [planted]


def test_while_the_patient_is_on_an_incoming_call_nobody_dials_them_and_vice_versa(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, _, patient, nurse, _, wave_task = called_in
    other = add_nurse(ctx)
    services.start_incoming(ctx, patient.id, nurse, "web-1")
    refused = services.claim_and_start(ctx, wave_task, other, "desk")
    assert isinstance(refused, services.NotDialable) and refused.decision.reason.value == "in_call"

    second = add_patient(ctx)
    with ctx.sessions() as s:
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == second.id)).scalar_one_or_none()
    task = task or add_task(ctx, second.id, kind=TaskKind.callback)
    assert isinstance(services.claim_and_start(ctx, task, other, "desk"), services.Claimed)
    with pytest.raises(PatientInCall, match=f"patient {second.id} is already on a call"):
        services.start_incoming(ctx, second.id, nurse, "web-1")


def test_a_callback_asked_on_an_incoming_call_replaces_the_earlier_ones(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, nurse, wave_id, wave_task = called_in
    request = services.create_request_callback(
        ctx, patient.id, clock.now() + timedelta(hours=2), 200, "closed"
    )
    _, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1", number=patient.phone)
    applied = services.record_outcome(
        ctx, attempt, OutcomeCode.callback_requested, nurse, callback_at=paris(DAY + timedelta(days=1), 10)
    )
    assert _task(ctx, wave_task).status == "done"
    replaced = _task(ctx, request)
    assert (replaced.status, replaced.close_reason) == (
        "cancelled",
        "replaced by a callback asked for on an incoming call",
    )
    assert applied.callback_task_id is not None
    new = _task(ctx, applied.callback_task_id)
    assert (new.kind, new.status, new.wave_id, new.theme_code, new.assigned_nurse_id) == (
        "callback",
        "pending",
        wave_id,
        "diet",
        nurse,
    )


def test_a_wave_task_of_another_theme_is_left_alone(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, _, patient, nurse, _, wave_task = called_in
    _, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1", theme_code="foot_care")
    services.record_outcome(ctx, attempt, OutcomeCode.reached, nurse)
    assert _task(ctx, wave_task).status == "pending"


def test_an_incoming_task_a_crash_interrupted_is_closed_never_dialed(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, nurse, _, _ = called_in
    task_id, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1")
    assert services.reconcile_in_flight(ctx, "web-1") == 1
    assert _task(ctx, task_id).status == TaskStatus.done
    with ctx.sessions() as s:
        assert task_id not in [
            t for _, t in store.dialable_page(s, clock.now() + timedelta(days=30), None, 100)
        ]
    # what was said can still be recorded
    services.record_outcome(ctx, attempt, OutcomeCode.reached, nurse)


def test_a_callback_request_is_high_priority_and_one_per_patient(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, clock, patient, _, _, _ = called_in
    later, sooner = clock.now() + timedelta(hours=3), clock.now() + timedelta(hours=1)
    first = services.create_request_callback(ctx, patient.id, later, 150, "nobody ready")
    again = services.create_request_callback(ctx, patient.id, sooner, 200, "nobody ready")
    assert again == first
    task = _task(ctx, first)
    assert (task.kind, task.status, task.priority, task.not_before) == ("inbound", "pending", 200, sooner)
    assert task.deadline > later
    with ctx.sessions() as s:
        trail = store.audit_trail(s, patient_id=patient.id)
    assert [(e.actor, e.action) for e in trail] == [("inbound", "callback.request")] * 2


def test_patient_why_explains_a_patient_on_an_incoming_call_and_after(called_in) -> None:  # type: ignore[no-untyped-def]
    ctx, _, patient, nurse, _, _ = called_in
    task_id, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1")
    now = explain_patient(ctx, patient.member_id, None, "test")
    assert any(f"task {task_id} (incoming" in f.check and "under way" in f.detail for f in now.findings)
    services.record_outcome(ctx, attempt, OutcomeCode.reached, nurse)
    after = explain_patient(ctx, patient.member_id, None, "test")
    assert not after.due


def test_the_cap_per_period_counts_an_incoming_call_that_stood_in_for_no_wave_task(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx)
    patient = add_patient(ctx)
    clock.advance_to(paris(DAY, 10))
    task_id, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1")
    assert _task(ctx, task_id).wave_id is None
    services.record_outcome(ctx, attempt, OutcomeCode.reached, nurse)
    with ctx.sessions() as s:
        counts = store.wave_task_counts_since(s, clock.now() - timedelta(days=30), exclude_wave_id=0)
    assert counts == {patient.id: 1}


def test_promise_callback_factory_still_works_with_positional_entries(called_in) -> None:  # type: ignore[no-untyped-def]
    """The dialer builds OutcomeEntry positionally: the new fields come last, with defaults."""
    ctx, clock, _, nurse, _, wave_task = called_in
    callback, _ = promise_callback(ctx, clock, nurse, wave_task, timedelta(hours=2))
    assert _task(ctx, callback).assigned_nurse_id == nurse
