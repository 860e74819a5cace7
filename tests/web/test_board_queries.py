"""The live board's figures (campaign/store/progress.py), on SQLite and PostgreSQL: what a supervisor
reads must be what the dialer did."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from factories import add_nurse, add_patient, add_task, planned_wave
from sqlalchemy import update

from campaign import calendar as cal
from campaign import services
from campaign.model import TASK, WAVE
from campaign.states import AttemptResult, OutcomeCode, TaskStatus, WaveStatus
from campaign.store import progress


def _due_tasks(ctx: services.Context, wave_id: int) -> list[Any]:
    with ctx.sessions() as s:
        return list(
            s.execute(
                TASK.select()
                .where(
                    TASK.c.wave_id == wave_id,
                    TASK.c.status == "pending",
                    TASK.c.not_before <= ctx.clock.now(),
                )
                .order_by(TASK.c.id)
            ).all()
        )


def _wave_on_its_first_day(env: Any) -> tuple[services.Context, Any, int, int]:
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    for tier in ("high", "high", "medium", "low"):
        add_patient(ctx, tier=tier)
    left_out = add_patient(ctx, tier="medium", consent=False)
    wave = planned_wave(ctx, clock, "diet")
    services.change_wave(ctx, wave.wave_id, "launch")
    clock.advance_to(cal.at_local(wave.window_start, time(10), "Europe/Paris"))
    return ctx, left_out, wave.wave_id, nurse


def test_progress_reach_abandoned_and_left_out(env: Any) -> None:
    ctx, left_out, wave_id, nurse = _wave_on_its_first_day(env)
    due = _due_tasks(ctx, wave_id)
    # high and medium tiers start on the first day, the low tier two days later (config/programme.toml)
    assert [t.tier for t in due] == ["high", "high", "medium"]
    high = due[:2]

    reached = services.claim_and_start(ctx, high[0].id, nurse, "w1")
    assert isinstance(reached, services.Claimed)
    services.mark_answered(ctx, reached.attempt_id)
    services.record_outcome(ctx, reached.attempt_id, OutcomeCode.reached, nurse)
    abandoned = services.claim_and_start(ctx, high[1].id, nurse, "w1")
    assert isinstance(abandoned, services.Claimed)
    services.finish_unanswered(ctx, abandoned.attempt_id, AttemptResult.no_nurse)

    with ctx.sessions() as s:
        tallies = progress.task_tallies(s, [wave_id])[wave_id]
        assert tallies[("high", TaskStatus.done)] == 1
        assert sum(tallies.values()) == 4
        assert progress.wave_patients_by_tier(s, [wave_id])[wave_id] == {"high": 2, "medium": 1, "low": 1}
        assert progress.reached_by_tier(s, [wave_id])[wave_id] == {"high": 1}
        assert progress.attempts_by_wave(s, [wave_id]) == {wave_id: 2}
        day_start = cal.at_local(
            cal.local_time_of(ctx.clock.now(), "Europe/Paris").date(), time(0), "Europe/Paris"
        )
        assert progress.abandoned_since(s, day_start) == (1, 1)
        assert progress.abandoned_since(s, ctx.clock.now() + timedelta(seconds=1)) == (0, 0)
        count, rows = progress.left_out(s, _mailing_of(s, wave_id), 10)
    assert count == 1
    assert [(r.tier, r.plan_note) for r in rows] == [("medium", services.waves.SKIP_NOTES["no_consent"])]
    assert rows[0].member_id == left_out.member_id


def test_a_patient_reached_twice_counts_once_in_the_tier_of_their_wave_task(env: Any) -> None:
    ctx, _, wave_id, nurse = _wave_on_its_first_day(env)
    task = _due_tasks(ctx, wave_id)[0]
    first = services.claim_and_start(ctx, task.id, nurse, "w1")
    assert isinstance(first, services.Claimed)
    services.mark_answered(ctx, first.attempt_id)
    applied = services.record_outcome(
        ctx,
        first.attempt_id,
        OutcomeCode.callback_requested,
        nurse,
        callback_at=ctx.clock.now() + timedelta(hours=2),
    )
    assert applied.callback_task_id is not None
    ctx.clock.advance_to(ctx.clock.now() + timedelta(hours=2))  # type: ignore[attr-defined]
    with ctx.sessions() as s:  # the callback task is of the wave, in the task's tier
        s.execute(update(TASK).where(TASK.c.id == applied.callback_task_id).values(tier="low"))
        s.commit()
    again = services.claim_and_start(ctx, applied.callback_task_id, nurse, "w1")
    assert isinstance(again, services.Claimed)
    services.mark_answered(ctx, again.attempt_id)
    services.record_outcome(ctx, again.attempt_id, OutcomeCode.reached, nurse)
    with ctx.sessions() as s:
        assert progress.reached_by_tier(s, [wave_id])[wave_id] == {"high": 1}


def test_queue_depth_counts_what_the_dialer_may_take_now(env: Any) -> None:
    ctx, left_out, wave_id, _ = _wave_on_its_first_day(env)
    due = len(_due_tasks(ctx, wave_id))
    assert due == 3  # high, high, medium: low starts later
    with ctx.sessions() as s:
        assert progress.queue_depth(s, ctx.clock.now()) == due
    add_task(ctx, left_out.id)  # an inbound request, in no wave, due five minutes ago
    add_task(ctx, left_out.id, not_before=ctx.clock.now() + timedelta(hours=1))  # not yet due
    add_task(ctx, left_out.id, deadline=ctx.clock.now() - timedelta(minutes=1))  # its window is over
    with ctx.sessions() as s:
        assert progress.queue_depth(s, ctx.clock.now()) == due + 1
    services.change_wave(ctx, wave_id, "pause")  # a paused wave's tasks wait
    with ctx.sessions() as s:
        assert progress.queue_depth(s, ctx.clock.now()) == 1


def test_board_waves_follow_open_waves_and_those_closed_lately(env: Any) -> None:
    ctx, _, running, _ = _wave_on_its_first_day(env)
    now = ctx.clock.now()
    other = services.record_mailing(ctx, "foot_care", "all", cal.local_time_of(now, "Europe/Paris").date())
    old = services.record_mailing(ctx, "smoking", "all", cal.local_time_of(now, "Europe/Paris").date())
    services.change_wave(ctx, old.wave_id, "cancel")
    with ctx.sessions() as s:
        s.execute(update(WAVE).where(WAVE.c.id == old.wave_id).values(closed_at=now - timedelta(days=2)))
        s.commit()
        shown = {w.id: w.status for w in progress.board_waves(s, now - timedelta(days=1))}
    # the scheduled wave is not planned yet: nothing to follow on the board
    assert shown == {running: WaveStatus.running}
    services.change_wave(ctx, other.wave_id, "cancel")
    with ctx.sessions() as s:
        shown = {w.id: w.status for w in progress.board_waves(s, now - timedelta(days=1))}
    assert shown == {running: WaveStatus.running, other.wave_id: WaveStatus.cancelled}


def _mailing_of(s: Any, wave_id: int) -> int:
    from campaign import store

    wave = store.wave_row(s, wave_id)
    assert wave is not None
    return wave.mailing_id
