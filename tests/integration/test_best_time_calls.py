"""Best time to call through the real services (SQLite and PostgreSQL).

Every attempt's result is counted for its patient and cohorts in the
transaction that stores it; a retry goes to the band the patient answers in
and the task keeps the estimate that placed it, which `patient why` shows; a
new wave places a first call in the day's best band. With best time off,
nothing of this happens: the retry is today's, nothing is counted.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from factories import SENT_ON, add_nurse, add_patient, paris, running_wave
from sqlalchemy import select, update

from campaign import besttime, services
from campaign.besttime import AnswerEvent, BandCounts
from campaign.explain import explain_patient
from campaign.model import ANSWER_BAND, ANSWER_COHORT, TASK
from campaign.policy import Policy
from campaign.states import AttemptResult, OutcomeCode
from campaign.store import answers

DAY = date(2026, 12, 10)  # Thursday, the wave's first day
EVENING = 8  # weekday 17:00-19:00
MORNING = 4  # weekday 09:00-11:00


def _off(policy: Policy) -> Policy:
    return policy.model_copy(update={"outreach": policy.outreach.model_copy(update={"best_time": False})})


def _answers_in(ctx: services.Context, patient_id: int, band: int, n: int = 5) -> None:
    """The patient answered their last `n` calls in that band (as counted by earlier waves)."""
    with ctx.sessions() as s:
        answers.add_answers(s, [AnswerEvent(patient_id, band, True, ())] * n)
        s.commit()


def _task(ctx: services.Context, patient_id: int) -> Any:
    with ctx.sessions() as s:
        return s.execute(select(TASK).where(TASK.c.patient_id == patient_id)).one()


def _claimed_at_ten(ctx: services.Context, clock: Any, patient_id: int, nurse: int) -> services.Claimed:
    with ctx.sessions() as s:  # due from the wave's first morning, whatever day planning chose
        s.execute(update(TASK).where(TASK.c.patient_id == patient_id).values(not_before=paris(DAY, 9)))
        s.commit()
    clock.advance_to(paris(DAY, 10))
    claimed = services.claim_and_start(ctx, _task(ctx, patient_id).id, nurse, "w1")
    assert isinstance(claimed, services.Claimed), claimed
    return claimed


def _unanswered_at_ten(ctx: services.Context, clock: Any, patient_id: int, nurse: int) -> Any:
    claimed = _claimed_at_ten(ctx, clock, patient_id, nurse)
    clock.advance_to(paris(DAY, 10, 1))
    return claimed, services.finish_unanswered(ctx, claimed.attempt_id, AttemptResult.no_answer)


def test_counts_add_up_for_the_patient_and_their_cohorts(env) -> None:  # type: ignore[no-untyped-def]
    ctx, _ = env
    p = add_patient(ctx)
    with ctx.sessions() as s:
        answers.add_answers(
            s, [AnswerEvent(p.id, 3, True, ("a", "b")), AnswerEvent(p.id, 3, False, ("a", "b"))]
        )
        answers.add_answers(s, [AnswerEvent(p.id, 3, True, ("a",))])
        s.commit()
        model = answers.models_for(s, {p.id: ("a", "b")}, 0.3, 4.0)[p.id]
    assert model.own == {3: BandCounts(3, 2)}
    assert [dict(c) for c in model.cohorts] == [{3: BandCounts(3, 2)}, {3: BandCounts(2, 1)}]


def test_a_retry_goes_to_the_band_the_patient_answers_in(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(
        ctx, level="senior", shifts=[{"weekday": d, "start": "09:00", "end": "19:00"} for d in range(5)]
    )
    p = add_patient(ctx)
    running_wave(ctx, clock, "diet", SENT_ON)
    _answers_in(ctx, p.id, EVENING)

    _, decision = _unanswered_at_ten(ctx, clock, p.id, nurse)

    # without best time: 4 hours' spacing, then an afternoon (the morning was tried): 14:01
    assert decision.next_at == paris(DAY, 17), decision
    t = _task(ctx, p.id)
    assert t.not_before == paris(DAY, 17)
    assert t.best_band == EVENING and t.answer_p is not None and t.answer_p > 0.5
    with ctx.sessions() as s:
        own = answers.answer_counts(s, [p.id])[p.id]
        cohorts = s.execute(select(ANSWER_COHORT.c.cohort, ANSWER_COHORT.c.attempts)).all()
    assert own[MORNING] == BandCounts(1, 0)  # the 10:00 attempt, counted unanswered
    assert own[EVENING] == BandCounts(5, 5)
    age = besttime.age_band(p.birth_date, DAY)
    assert sorted(cohorts) == [(f"{age}|75|medium", 1), (f"{age}|medium", 1)]

    exp = explain_patient(ctx, p.member_id, DAY, actor="test")
    found = [f for f in exp.findings if f.check.startswith("best time")]
    assert found, [f.check for f in exp.findings]
    assert "2026-12-10 17:00 (Europe/Paris)" in found[0].detail
    assert "weekday 17:00-19:00" in found[0].detail
    assert f"{t.answer_p:.0%}" in found[0].detail


def test_an_answered_call_is_counted_with_its_outcome(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    p = add_patient(ctx)
    running_wave(ctx, clock, "diet", SENT_ON)
    claimed = _claimed_at_ten(ctx, clock, p.id, nurse)
    services.mark_answered(ctx, claimed.attempt_id)
    clock.advance_to(paris(DAY, 10, 20))
    services.record_outcome(ctx, claimed.attempt_id, OutcomeCode.reached, nurse)
    with ctx.sessions() as s:
        assert answers.answer_counts(s, [p.id]) == {p.id: {MORNING: BandCounts(1, 1)}}


def test_with_best_time_off_the_retry_is_todays_and_nothing_is_counted(db_url: str) -> None:
    from factories import dispose, make_ctx, policy

    ctx, clock = make_ctx(db_url, paris(SENT_ON, 8), pol=_off(policy()))
    try:
        nurse = add_nurse(ctx, level="senior")
        p = add_patient(ctx)
        running_wave(ctx, clock, "diet", SENT_ON)
        _answers_in(ctx, p.id, EVENING)
        _, decision = _unanswered_at_ten(ctx, clock, p.id, nurse)
        assert decision.next_at == paris(DAY, 14, 1)  # 10:01 + 4 hours, an afternoon
        t = _task(ctx, p.id)
        assert t.best_band is None and t.answer_p is None
        with ctx.sessions() as s:
            assert answers.answer_counts(s, [p.id]) == {p.id: {EVENING: BandCounts(5, 5)}}
            assert s.execute(select(ANSWER_BAND.c.band).where(ANSWER_BAND.c.band == MORNING)).first() is None
    finally:
        dispose(ctx)


def test_a_new_wave_places_the_first_call_in_the_days_best_band(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    add_nurse(ctx, level="senior")
    answers_late = add_patient(ctx)
    unknown = add_patient(ctx)
    _answers_in(ctx, answers_late.id, 7)  # weekday 15:00-17:00
    running_wave(ctx, clock, "diet", SENT_ON)
    late, plain = _task(ctx, answers_late.id), _task(ctx, unknown.id)
    assert late.planned_day is not None and plain.planned_day is not None
    assert late.not_before == paris(late.planned_day, 15)
    assert late.best_band == 7
    # nothing known of this one (their cohort has no count): the day's first window, as without best time
    assert plain.not_before == paris(plain.planned_day, 9)
    assert plain.best_band is None
