"""The dialer's hot path, held to one contract on SQLite and PostgreSQL.

`campaign/store/dialing.py` writes its claims twice: raw, pipelined psycopg on
PostgreSQL and SQLAlchemy on SQLite. This test gives both the same data and
the same expectations, so neither form can drift from the other unseen.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from factories import SENT_ON, add_nurse, bulk_patients, paris, running_wave
from sqlalchemy import insert, select, update

from campaign import store
from campaign.model import ATTEMPT, TASK, WAVE
from campaign.states import AttemptState, TaskKind, TaskStatus, WaveStatus

LAST_DAY = date(2026, 12, 28)  # every task of the wave is due by then


def _due_wave(ctx: Any, clock: Any, n: int) -> tuple[int, Any, list[int], list[int]]:
    """A senior nurse, `n` patients and their running wave, every task due: (nurse, wave, patients, tasks)."""
    nurse = add_nurse(ctx, level="senior")
    patients = bulk_patients(ctx, n)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))
    with ctx.sessions() as s:
        tasks = dict(
            s.execute(select(TASK.c.patient_id, TASK.c.id).where(TASK.c.wave_id == info.wave_id)).all()
        )
    return nurse, info, patients, [tasks[p] for p in patients]


def test_claims_pages_attempts_and_releases_keep_one_contract(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse, info, patients, t = _due_wave(ctx, clock, 6)
    now = clock.now()
    with ctx.sessions() as s:
        # t[1] is not due yet, t[2] is already in progress, t[3] belongs to a paused wave
        s.execute(update(TASK).where(TASK.c.id == t[1]).values(not_before=now + timedelta(hours=1)))
        s.execute(update(TASK).where(TASK.c.id == t[2]).values(status=TaskStatus.in_progress))
        paused = s.execute(
            insert(WAVE)
            .values(
                mailing_id=info.mailing_id,
                status=WaveStatus.paused,
                plan_after=now,
                window_start=LAST_DAY,
                window_end=LAST_DAY,
                deadline=now + timedelta(days=2),
                plan={},
            )
            .returning(WAVE.c.id)
        ).scalar_one()
        s.execute(update(TASK).where(TASK.c.id == t[3]).values(wave_id=paused))
        # t[0]'s patient has an earlier attempt (another task, yesterday): the claim's history sees it
        other = s.execute(
            insert(TASK)
            .values(
                wave_id=None,
                patient_id=patients[0],
                kind=TaskKind.inbound,
                status=TaskStatus.done,
                tier="medium",
                not_before=now - timedelta(days=1),
                deadline=now + timedelta(days=1),
                created_at=now - timedelta(days=1),
            )
            .returning(TASK.c.id)
        ).scalar_one()
        s.execute(
            insert(ATTEMPT).values(
                task_id=other,
                patient_id=patients[0],
                number="+33199000001",
                state=AttemptState.completed,
                started_at=now - timedelta(hours=3),
                ended_at=now - timedelta(hours=3) + timedelta(seconds=30),
            )
        )
        s.commit()

    # the dialable pages: due, pending, of a running wave, in (not_before, id) order, by cursor
    with ctx.sessions() as s:
        page = store.dialable_page(s, now, None, 2)
        rest = store.dialable_page(s, now, page[-1], 10)
    due = [t[0], t[4], t[5]]
    assert sorted(i for _, i in page + rest) == sorted(due)
    assert page + rest == sorted(page + rest)
    with ctx.sessions() as s:
        rows = store.dialable_rows(s, t)
    assert sorted(r.task_id for r in rows) == sorted([t[0], t[1], t[4], t[5]])  # pending, running wave

    # the claim: only what is due and free; attempts counted; the patients' rule data and histories
    with ctx.sessions() as s:
        claimed, histories = store.claim_tasks(s, t, "w1", now, timedelta(minutes=90))
        s.commit()
    assert sorted(r.task_id for r in claimed) == sorted(due)
    assert [r.id for r in claimed] == sorted(r.id for r in claimed), "patients in id order"
    for r in claimed:
        assert r.attempts == 1 and r.kind == TaskKind.wave and r.task_tier == "medium"
        assert (r.departement, r.timezone, r.status, r.consent) == ("75", "Europe/Paris", "enrolled", True)
    assert set(histories) == {patients[0], patients[4], patients[5]}
    assert histories[patients[0]].last_dial_at == now - timedelta(hours=3)
    assert histories[patients[0]].dials_on_day == 1 and not histories[patients[0]].in_call
    assert histories[patients[4]].last_dial_at is None
    with ctx.sessions() as s:
        again, _ = store.claim_tasks(s, t, "w2", now, timedelta(minutes=90))
        state = dict(s.execute(select(TASK.c.id, TASK.c.claimed_by).where(TASK.c.id.in_(due))).all())
        s.commit()
    assert again == [], "a claimed task is nobody else's"
    assert set(state.values()) == {"w1"}

    # attempts: one statement, ids back in the order of the starts
    starts = [
        store.AttemptStart(r.task_id, r.id, nurse, f"+3319900{k:04d}")
        for k, r in enumerate(reversed(claimed))
    ]
    with ctx.sessions() as s:
        ids = store.insert_attempts(s, starts, now, "w1")
        s.commit()
        stored = {
            a.id: (a.task_id, a.state, a.worker)
            for a in s.execute(select(ATTEMPT).where(ATTEMPT.c.id.in_(ids))).all()
        }
    assert [stored[i][0] for i in ids] == [a.task_id for a in starts]
    assert {v[1:] for v in stored.values()} == {(AttemptState.in_flight, "w1")}
    with ctx.sessions() as s:
        histories = store.dial_histories(s, {r.id: store.place_of(r) for r in claimed}, now)
    assert all(h.in_call for h in histories.values())

    # releases: back to pending later (attempt undone when never dialed), or closed with a reason
    later = now + timedelta(hours=4)
    with ctx.sessions() as s:
        store.release_tasks(
            s,
            [
                store.Release(due[0], not_before=later, undo_attempt=True),
                store.Release(due[1], TaskStatus.unreachable, reason="max attempts"),
            ],
            now,
        )
        s.commit()
        back = {r.id: r for r in s.execute(select(TASK).where(TASK.c.id.in_(due[:2]))).all()}
    first, second = back[due[0]], back[due[1]]
    assert (first.status, first.attempts, first.claimed_by, first.lease_until) == ("pending", 0, None, None)
    assert first.not_before.replace(tzinfo=None) == later.replace(tzinfo=None)
    assert (second.status, second.close_reason, second.attempts) == ("unreachable", "max attempts", 1)
    assert second.closed_at is not None


def test_no_claim_once_the_task_window_has_ended(env) -> None:  # type: ignore[no-untyped-def]
    """A retry due before the deadline but reached late by a lagging dialer is not dialed after it
    (the upkeep job closes the task); the independent check found three such calls in the serve test."""
    ctx, clock = env
    _, _, _, (late, fine) = _due_wave(ctx, clock, 2)
    now = clock.now()
    with ctx.sessions() as s:
        s.execute(update(TASK).where(TASK.c.id == late).values(deadline=now - timedelta(seconds=1)))
        s.commit()
        claimed, _ = store.claim_tasks(s, [late, fine], "w1", now, timedelta(minutes=90))
        s.commit()
        status = s.execute(select(TASK.c.status).where(TASK.c.id == late)).scalar_one()
    assert [r.task_id for r in claimed] == [fine]
    assert status == "pending", "left to the upkeep job, which closes it"


def test_first_calls_ahead_are_undialed_planned_tasks_and_moving_them_is_guarded(env) -> None:  # type: ignore[no-untyped-def]
    """What an idle nurse may bring forward (dialer/ahead.py): on both dialects, only first calls
    planned inside the horizon, best first; a task claimed or already due since is not moved."""
    ctx, clock = env
    _, info, _, t = _due_wave(ctx, clock, 7)
    now = clock.now()
    planned = {
        t[0]: (now + timedelta(hours=2), 0, TaskStatus.pending, 10),
        t[1]: (now + timedelta(hours=30), 0, TaskStatus.pending, 50),  # later but of higher priority
        t[2]: (now + timedelta(hours=40), 0, TaskStatus.pending, 90),  # beyond the horizon
        t[3]: (now + timedelta(hours=2), 1, TaskStatus.pending, 90),  # a retry: dialed once already
        t[4]: (now + timedelta(hours=2), 0, TaskStatus.in_progress, 90),  # claimed
        t[5]: (now, 0, TaskStatus.pending, 90),  # due already
        t[6]: (now + timedelta(hours=3), 0, TaskStatus.pending, 10),
    }
    with ctx.sessions() as s:
        for task_id, (nb, attempts, status, priority) in planned.items():
            s.execute(
                update(TASK)
                .where(TASK.c.id == task_id)
                .values(
                    not_before=nb,
                    attempts=attempts,
                    status=status,
                    priority=priority,
                    deadline=now + timedelta(days=5),
                    best_band=3,
                )
            )
        tier = s.execute(select(TASK.c.tier).where(TASK.c.id == t[0])).scalar_one()
        s.commit()
        until = now + timedelta(hours=36)
        ahead = store.first_calls_ahead(s, [tier], now, until, 10, opened_by=LAST_DAY)
        assert [r.task_id for r in ahead] == [t[1], t[0], t[6]]
        assert ahead[0].not_before == now + timedelta(hours=30), "rows as routing reads them"
        assert [r.task_id for r in store.first_calls_ahead(s, [tier], now, until, 2, opened_by=LAST_DAY)] == [
            t[1],
            t[0],
        ]
        opens = s.execute(select(WAVE.c.window_start).where(WAVE.c.id == info.wave_id)).scalar_one()
        before = opens - timedelta(days=1)
        assert store.first_calls_ahead(s, [tier], now, until, 10, opened_by=before) == [], "no letter yet"
        other = "low" if tier != "low" else "medium"
        assert store.first_calls_ahead(s, [other], now, until, 10, opened_by=LAST_DAY) == []
        # t[6] is claimed by another process between the read and the move
        s.execute(update(TASK).where(TASK.c.id == t[6]).values(status=TaskStatus.in_progress))
        moved = store.move_first_calls_to_now(s, [t[0], t[1], t[3], t[5], t[6]], now)
        s.commit()
        assert moved == sorted([t[0], t[1]])
        assert store.move_first_calls_to_now(s, [t[0], t[1]], now) == [], "already due: nothing moves"
        bands = dict(s.execute(select(TASK.c.id, TASK.c.best_band).where(TASK.c.id.in_(t))).all())
        assert bands[t[0]] is None and bands[t[1]] is None, "the band that placed them no longer does"
        assert bands[t[3]] == 3, "a task not moved keeps its band"
        due = dict(s.execute(select(TASK.c.id, TASK.c.not_before).where(TASK.c.id.in_(t))).all())
        assert due[t[0]] == due[t[1]] == now
        assert due[t[3]] == now + timedelta(hours=2), "a retry keeps its time"
        assert due[t[6]] == now + timedelta(hours=3)
        ahead_of = dict(s.execute(select(TASK.c.id, TASK.c.ahead_of).where(TASK.c.id.in_(t))).all())
        assert ahead_of[t[0]] == now + timedelta(hours=2), "a moved task keeps the time it was planned at"
        assert ahead_of[t[1]] == now + timedelta(hours=30)
        assert ahead_of[t[3]] is None and ahead_of[t[6]] is None, "nor do the tasks not moved"
        claimed, _ = store.claim_tasks(s, [t[0], t[1]], "w1", now, timedelta(minutes=90))
        s.commit()
    assert sorted(r.task_id for r in claimed) == sorted([t[0], t[1]]), "due now: claimable at once"
