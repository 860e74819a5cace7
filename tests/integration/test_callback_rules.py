"""The callback exception, stored and claimed for real (SQLite and PostgreSQL).

The rule (README, "How a wave goes"): the dial at the time the patient asked
for is the one exception to the minimum gap and the daily cap; its retries are
ordinary dials, and the daily cap counts the patient's dials of every task.
An independent check of the demo found a callback that reached a machine and
was retried as the third dial of its local day (cap 2).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from factories import SENT_ON, add_nurse, add_patient, paris, promise_callback, running_wave
from sqlalchemy import select, update

from campaign import calendar as cal
from campaign import services
from campaign.invariants import check_invariants
from campaign.model import TASK
from campaign.states import AttemptResult, TaskKind

DAY = date(2026, 12, 14)  # a Monday of the wave


def _wave_task(ctx: services.Context, patient_id: int) -> int:
    with ctx.sessions() as s:
        return int(
            s.execute(
                select(TASK.c.id).where(TASK.c.patient_id == patient_id, TASK.c.kind == TaskKind.wave)
            ).scalar_one()
        )


def _due_now(ctx: services.Context, task_id: int, at: datetime) -> None:
    """What a retry planner that forgot the cap would have stored: the task due at `at`."""
    with ctx.sessions() as s:
        s.execute(update(TASK).where(TASK.c.id == task_id).values(not_before=at))
        s.commit()


def test_a_callback_retry_is_an_ordinary_dial(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    patient = add_patient(ctx)
    running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))
    place = cal.Place("75", "Europe/Paris")

    # 10:00 the patient answers and asks to be called back in 40 minutes
    callback, at = promise_callback(ctx, clock, nurse, _wave_task(ctx, patient.id), timedelta(minutes=40))

    # the asked-for dial goes through the 120-minute gap: the patient's request
    clock.advance_to(at)
    first = services.claim_and_start(ctx, callback, nurse, "desk")
    assert isinstance(first, services.Claimed), first

    # it reaches a machine: that was the second dial of the day (cap 2), so the retry is another day
    clock.advance_to(clock.now() + timedelta(seconds=40))
    retry = services.finish_unanswered(ctx, first.attempt_id, AttemptResult.machine)
    assert retry.next_at is not None
    assert cal.local_date(retry.next_at, place) > DAY, "the cap counts the wave task's dial too"
    assert retry.next_at - clock.now() >= timedelta(minutes=ctx.policy.retry.min_gap_minutes)

    # and should the retry be due within the gap the same day, the claim refuses it
    soon = clock.now() + timedelta(minutes=30)
    _due_now(ctx, callback, soon)
    clock.advance_to(soon)
    refused = services.claim_and_start(ctx, callback, nurse, "desk")
    assert isinstance(refused, services.NotDialable), refused
    assert refused.decision.reason.value == "min_gap"
    # past the gap, the cap still stands on that day
    later = at + timedelta(minutes=ctx.policy.retry.min_gap_minutes + 30)
    _due_now(ctx, callback, later)
    clock.advance_to(later)
    capped = services.claim_and_start(ctx, callback, nurse, "desk")
    assert isinstance(capped, services.NotDialable), capped
    assert capped.decision.reason.value == "daily_cap"
    assert capped.decision.retry_at is not None and cal.local_date(capped.decision.retry_at, place) > DAY

    with ctx.sessions() as s:
        report = check_invariants(s, ctx.policy)
    assert report.over_daily_cap.count == 0 and report.double_dials.count == 0, report.counts()
