"""The dialer under concurrency and crashes, and its routing, on real databases.

- Claims: several dialer threads race for the same due tasks through
  `services.claim_and_start`; each task is claimed once, a patient is never in
  two calls, the losers get None.
- Crash: a dialer is abandoned mid-call (no shutdown); a new one with the same
  worker id reconciles the calls left in flight, loses nothing, and does not
  redial those patients before the minimum gap.
- Routing: référent preference with a bounded wait, seniors only for high
  tier, skills for the theme's pathology, callbacks to the nurse who
  promised them.

The dialer runs on the event loop with the simulated telephone lines; the
nurses' presence is driven by the test.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import (
    add_nurse,
    add_patient,
    add_task,
    bulk_patients,
    dispose,
    engine_of,
    make_ctx,
    paris,
    promise_callback,
    running_wave,
    wave_status,
    with_clock,
)
from sqlalchemy import insert, select

from campaign import jobs, services
from campaign.clock import VirtualClock
from campaign.invariants import check_invariants
from campaign.model import ATTEMPT, TASK
from campaign.states import AttemptResult, AttemptState, OutcomeCode, TaskKind, TaskStatus, WaveStatus
from dialer.backends.scripted import ScriptedLines, nobody_answers
from dialer.backends.simulated import SimulatedBackend
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.scheduler_loop import EventLoop
from dialer.simulation import load_population, run_simulation, voicemail_text
from dialer.step import step

SENT_ON = date(2026, 12, 7)
LAST_DAY = date(2026, 12, 28)  # a Monday, the wave's last calling day: every task is due
THREADS = 8


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[services.Context, VirtualClock]]:
    ctx, clock = make_ctx(db_url, paris(SENT_ON, 8), pool_size=THREADS + 2, max_overflow=4)
    yield ctx, clock
    dispose(ctx)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _attempts(ctx: services.Context, **where: Any) -> list[Any]:
    q = select(ATTEMPT).order_by(ATTEMPT.c.started_at, ATTEMPT.c.id)
    for k, v in where.items():
        q = q.where(getattr(ATTEMPT.c, k) == v)
    with ctx.sessions() as s:
        return list(s.execute(q).all())


# ---------------------------------------------------------------- concurrent claims


def _race(ctx: services.Context, task_ids: list[int], nurse_id: int) -> dict[str, list[tuple[int, Any]]]:
    """THREADS workers, each trying every task in its own order, all starting together."""
    start = threading.Barrier(THREADS)
    results: dict[str, list[tuple[int, Any]]] = {}
    errors: list[BaseException] = []

    def work(worker: str, order: list[int]) -> None:
        out: list[tuple[int, Any]] = []
        try:
            start.wait(timeout=30)
            for tid in order:
                out.append((tid, services.claim_and_start(ctx, tid, nurse_id, worker)))
        except BaseException as exc:  # reported below, with the worker that failed
            errors.append(exc)
        results[worker] = out

    threads = []
    for i in range(THREADS):
        order = list(task_ids)
        random.Random(i).shuffle(order)
        threads.append(threading.Thread(target=work, args=(f"dialer-{i}", order)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"a claim raised: {errors[0]!r}"
    return results


def test_concurrent_claims_each_task_once(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    bulk_patients(ctx, 40)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))
    with ctx.sessions() as s:
        task_ids = [i for (i,) in s.execute(select(TASK.c.id).where(TASK.c.wave_id == info.wave_id)).all()]
    assert len(task_ids) == 40

    results = _race(ctx, task_ids, nurse)

    won: Counter[int] = Counter()
    winner: dict[int, str] = {}
    for worker, outcomes in results.items():
        assert len(outcomes) == len(task_ids)
        for tid, res in outcomes:
            if isinstance(res, services.Claimed):
                won[tid] += 1
                winner[tid] = worker
                assert res.task_id == tid
            else:
                assert res is None, f"{worker} on task {tid}: {res!r} (a lost claim returns None)"
    assert set(won) == set(task_ids) and set(won.values()) == {1}, "every task claimed exactly once"

    attempts = _attempts(ctx)
    assert len(attempts) == len(task_ids)
    per_patient = Counter(a.patient_id for a in attempts if a.state == AttemptState.in_flight)
    assert max(per_patient.values()) == 1, "a patient in two calls at once"
    with ctx.sessions() as s:
        tasks = {r.id: r for r in s.execute(select(TASK).where(TASK.c.id.in_(task_ids))).all()}
    for a in attempts:
        assert a.worker == winner[a.task_id]
        t = tasks[a.task_id]
        assert t.status == TaskStatus.in_progress and t.claimed_by == a.worker and t.attempts == 1


def test_two_dialers_never_call_one_patient_twice_at_once(env) -> None:  # type: ignore[no-untyped-def]
    """A patient with two open tasks (a wave call and an inbound request) claimed at the same instant.

    The interleaving that only the patient lock covers is forced step by step in
    tests/integration/test_invariant1_guards.py; this is the plain race.
    """
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    patient = add_patient(ctx)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))
    with ctx.sessions() as s:
        wave_task = s.execute(select(TASK.c.id).where(TASK.c.wave_id == info.wave_id)).scalar_one()
    inbound = add_task(ctx, patient.id)
    engine = engine_of(ctx)
    with engine.connect(), engine.connect():
        pass  # two pooled connections ready before the race
    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def work(worker: str, task_id: int) -> None:
        start.wait(timeout=30)
        results[worker] = services.claim_and_start(ctx, task_id, nurse, worker)

    threads = [
        threading.Thread(target=work, args=("dialer-a", wave_task)),
        threading.Thread(target=work, args=("dialer-b", inbound)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    in_flight = _attempts(ctx, patient_id=patient.id, state=AttemptState.in_flight)
    claimed = [r for r in results.values() if isinstance(r, services.Claimed)]
    assert len(in_flight) == 1, f"{len(in_flight)} calls to one patient at once"
    assert len(claimed) == 1
    refused = [r for r in results.values() if isinstance(r, services.NotDialable)]
    assert refused and refused[0].decision.reason.value == "in_call"


# ---------------------------------------------------------------- the dialer's own guard


def _patient_with_two_open_tasks(
    ctx: services.Context, clock: VirtualClock, inbound_due_in: timedelta
) -> tuple[int, dict[int, datetime]]:
    """A patient with a wave task due now and an inbound request due `inbound_due_in` from now.

    Returns the patient and each task's stored not_before.
    """
    patient = add_patient(ctx)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))
    with ctx.sessions() as s:
        s.execute(
            insert(TASK).values(
                wave_id=None,
                patient_id=patient.id,
                kind=TaskKind.inbound,
                status=TaskStatus.pending,
                tier="medium",
                priority=50,
                not_before=clock.now() + inbound_due_in,
                deadline=clock.now() + timedelta(days=2),
                created_at=clock.now(),
                attempts=0,
            )
        )
        s.commit()
        rows = s.execute(select(TASK.c.id, TASK.c.not_before).where(TASK.c.patient_id == patient.id)).all()
    assert len(rows) == 2 and info.wave_id
    return patient.id, {r.id: _aware(r.not_before) for r in rows}


def _untouched(ctx: services.Context, task_id: int, not_before: datetime) -> bool:
    """As stored before the dialer ran: no claim was made on it."""
    (row,) = _task_rows(ctx, {task_id})
    return row.status == TaskStatus.pending and row.attempts == 0 and _aware(row.not_before) == not_before


def _ringing(_rank: int, _request: Any) -> None:
    """Every call rings until it is hung up: the patient stays in the call."""
    return None


@pytest.mark.parametrize(
    "second_task_due_in",
    [timedelta(minutes=-5), timedelta(minutes=5)],
    ids=["due_together", "due_in_the_call"],
)
def test_the_dialer_never_offers_the_database_a_patient_it_is_calling(  # type: ignore[no-untyped-def]
    env, second_task_due_in: timedelta
) -> None:
    """Invariant 1, the dialer's in-process guard: a patient with two open tasks is offered to
    the database once, whether both tasks are handed out in one batch (due together, two
    nurses free) or the second falls due while the first call rings. The database would
    refuse the second claim too; the guard keeps it from being spent: the second task waits
    in the queue for the minimum gap, untouched in the database, and is dialed then."""
    ctx, clock = env
    nurses = [add_nurse(ctx, level="senior", skills=["heart_failure", "copd"]) for _ in range(2)]
    patient, not_before = _patient_with_two_open_tasks(ctx, clock, second_task_due_in)
    lines = ScriptedLines(clock, _ringing)
    d = Dialer(ctx, lines, "dialer-g", None, deferred=True)
    d.start()
    together = second_task_due_in <= timedelta(0)
    d.nurse_ready(nurses[0])
    if together:
        d.nurse_ready(nurses[1])
    step(d, tick=True, sweep=False)
    if not together:
        clock.advance_to(clock.now() + second_task_due_in)
        d.nurse_ready(nurses[1])
        step(d, tick=True, sweep=False)

    (first,) = _attempts(ctx, patient_id=patient)
    assert lines.dials == 1
    assert d.stats["refused_by_rules"] == 0 and d.stats["lost_claims"] == 0, "no claim spent and refused"
    (second,) = set(not_before) - {first.task_id}
    assert _untouched(ctx, second, not_before[second])
    gap = timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    assert d.queue.items[second].not_before == clock.now() + gap, "it waits in the queue for the gap"

    d.hangup(first.nurse_id)  # nobody answered the first call
    step(d, tick=True, sweep=False)
    clock.advance_to(clock.now() + gap - timedelta(minutes=1))
    step(d, tick=True, sweep=False)
    assert len(_attempts(ctx, patient_id=patient)) == 1, "not before the gap"
    clock.advance_to(clock.now() + timedelta(minutes=1))
    step(d, tick=True, sweep=False)
    assert [a.task_id for a in _attempts(ctx, patient_id=patient)] == [first.task_id, second]
    assert d.stats["refused_by_rules"] == 0


# ---------------------------------------------------------------- harness: a dialer on the event loop


@dataclass
class Harness:
    """One dialer process: its own engine (context), event loop and simulated lines."""

    ctx: services.Context
    clock: VirtualClock
    worker: str
    seed: int = 0
    share: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        self.loop = EventLoop(self.clock)
        self.backend = SimulatedBackend(
            self.loop, self.ctx.policy.simulation, load_population(self.ctx, self.seed), seed=self.seed
        )
        self.dialer = Dialer(self.ctx, self.backend, self.worker, voicemail_text(), share=self.share)

    def run(self, minutes: int) -> None:
        """Minute by minute: backend events, queue advance, and a refresh every 10 minutes."""
        for i in range(minutes):
            self.loop.run_until(self.clock.now() + timedelta(minutes=1))
            if i % 10 == 0:
                self.dialer.refresh()
            self.dialer.tick()


def _first_attempt(ctx: services.Context, patient_id: int) -> Any | None:
    rows = _attempts(ctx, patient_id=patient_id)
    return rows[0] if rows else None


def _not_before(ctx: services.Context, patient_id: int) -> datetime:
    with ctx.sessions() as s:
        return _aware(
            s.execute(
                select(TASK.c.not_before)
                .where(TASK.c.patient_id == patient_id)
                .order_by(TASK.c.id.desc())
                .limit(1)
            ).scalar_one()
        )


# ---------------------------------------------------------------- several processes


def _dialed_by(ctx: services.Context) -> dict[int, set[str]]:
    """Task id -> the workers that dialed it."""
    out: dict[int, set[str]] = {}
    with ctx.sessions() as s:
        for task_id, worker in s.execute(select(ATTEMPT.c.task_id, ATTEMPT.c.worker)).all():
            out.setdefault(task_id, set()).add(worker)
    return out


def test_processes_dial_their_own_share_and_take_over_a_dead_ones(env, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Two dialer processes with a backlog never race for a task; when one dies, the other
    dials its share too, after the configured delay."""
    ctx, clock = env
    nurses = [add_nurse(ctx, level="senior", skills=["heart_failure", "copd"]) for _ in range(4)]
    bulk_patients(ctx, 16)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))  # every task is due: a backlog for both
    ctx_b, _ = make_ctx(db_url, clock.now())
    ctx_b = with_clock(ctx_b, clock)
    a = Harness(ctx, clock, "dialer-a", seed=1, share=(0, 2))
    b = Harness(ctx_b, clock, "dialer-b", seed=2, share=(1, 2))
    a.dialer.start(nurse_ids={nurses[0], nurses[2]})
    b.dialer.start(nurse_ids={nurses[1], nurses[3]})
    for n in (nurses[0], nurses[2]):
        a.dialer.nurse_ready(n)
    for n in (nurses[1], nurses[3]):
        b.dialer.nurse_ready(n)
    for _ in range(3):  # both working through their backlog
        a.run(1)
        b.run(1)
    assert a.dialer.stats["claims"] > 0 and b.dialer.stats["claims"] > 0
    assert a.dialer.stats["lost_claims"] == 0 and b.dialer.stats["lost_claims"] == 0, "no race for a task"
    dialed = _dialed_by(ctx)
    assert all(len(w) == 1 for w in dialed.values())
    assert all(a.dialer.feed.ours(t, None) == ("dialer-a" in w) for t, w in dialed.items()), (
        "each process dialed its own share"
    )

    # b dies (its engine is gone, nobody stops it); a takes over b's share after the delay
    dispose(ctx_b)
    with ctx.sessions() as s:
        b_share = {
            t
            for (t,) in s.execute(select(TASK.c.id).where(TASK.c.wave_id == info.wave_id)).all()
            if not a.dialer.feed.ours(t, None)
        }
    assert b_share - set(dialed), "b left tasks of its share undialed"
    delay = int(ctx.policy.dialer.other_share_delay_minutes) + 1
    for _ in range(delay + 180):  # its own backlog first, then b's; the nurses finish their calls
        a.run(1)
        for n in (nurses[0], nurses[2]):
            if a.dialer.presence.get(n) == NurseStatus.on_call:
                a.dialer.hangup(n)
                a.dialer.submit_outcome(n, OutcomeCode.reached)
    taken_over = {t for t, w in _dialed_by(ctx).items() if t in b_share and "dialer-a" in w}
    assert taken_over, "the dead process's tasks are dialed by the live one"
    # the calls b had in flight stay its own until their lease runs out (then the leader reconciles)
    assert a.dialer.stats["lost_claims"] <= b.dialer.stats["claims"]
    assert all(len(w) == 1 or t in b_share for t, w in _dialed_by(ctx).items())


# ---------------------------------------------------------------- the dialer's queue


def _pending_in_order(ctx: services.Context, wave_id: int) -> list[int]:
    with ctx.sessions() as s:
        return list(
            s.execute(
                select(TASK.c.id)
                .where(TASK.c.wave_id == wave_id, TASK.c.status == TaskStatus.pending)
                .order_by(TASK.c.not_before, TASK.c.id)
            ).scalars()
        )


def _task_rows(ctx: services.Context, task_ids: set[int]) -> list[Any]:
    with ctx.sessions() as s:
        return list(s.execute(select(TASK).where(TASK.c.id.in_(sorted(task_ids)))).all())


def _set_status(ctx: services.Context, task_ids: list[int], status: TaskStatus) -> None:
    """What another process's claims or closes look like from here."""
    from sqlalchemy import update

    with ctx.sessions() as s:
        s.execute(update(TASK).where(TASK.c.id.in_(task_ids)).values(status=status))
        s.commit()


def test_queue_holds_the_earliest_due_tasks_topped_up_as_it_empties_and_pruned(env) -> None:  # type: ignore[no-untyped-def]
    """The queue is loaded page by page up to its horizon, refilled beyond its last task as
    tasks leave it, and a sweep drops what other processes took; a retry due later stays."""
    ctx, clock = env
    add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    bulk_patients(ctx, 40)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))  # every task is due
    h = Harness(ctx, clock, "dialer-q")
    d = Dialer(ctx, h.backend, "dialer-q", None, refresh_page=7, queue_horizon=20)
    due = _pending_in_order(ctx, info.wave_id)
    assert len(due) > 30

    # a sweep reads a page per step and stops at the horizon: the 20 earliest due tasks
    assert [d.feed.refresh_step() for _ in range(3)] == [False, False, True]
    assert set(d.queue.items) == set(due[:20])
    assert d.feed.top_up() == 0, "no room: nothing more is read"

    # 5 of them are claimed here; the queue is refilled with the next 5, not re-read
    claimed = due[:5]
    _set_status(ctx, claimed, TaskStatus.in_progress)
    for t in claimed:
        d.queue.discard(t)
    assert d.feed.top_up() == 7  # a page
    assert set(d.queue.items) == set(due[5:27])

    # another process closes 4 tasks this one holds: the next sweep drops them
    taken_elsewhere = due[10:14]
    _set_status(ctx, taken_elsewhere, TaskStatus.done)
    retry = d.queue.items[due[20]]  # a retry, due tomorrow: out of the sweep's reach, kept
    _set_status(ctx, [retry.task_id], TaskStatus.in_progress)
    d.queue.requeue(retry, clock.now() + timedelta(days=1))
    d.refresh()
    assert d.stats["pruned"] == 4
    assert not set(taken_elsewhere) & set(d.queue.items)
    assert retry.task_id in d.queue.items
    pending = _pending_in_order(ctx, info.wave_id)
    assert set(pending[:20]) <= set(d.queue.items)


def test_retries_stay_in_the_queue_yet_the_top_ups_keep_the_nurses_busy(env) -> None:  # type: ignore[no-untyped-def]
    """A retry due hours later stays in the queue, parked: it takes no room from the top-ups,
    so the nurse works through the whole backlog beyond the queue's horizon, and each retry
    is dialed at its time straight from the queue, without waiting for a sweep."""
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    bulk_patients(ctx, 40)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))  # every task is due
    lines = ScriptedLines(clock, nobody_answers)
    d = Dialer(ctx, lines, "dialer-r", None, refresh_page=7, queue_horizon=20, deferred=True)
    d.start()
    due = _pending_in_order(ctx, info.wave_id)
    assert len(due) > 30 and len(d.queue.items) == 20
    d.nurse_ready(nurse)
    for _ in range(40):  # as `serve` runs: a top-up, a tick and a flush each step
        step(d, tick=True, sweep=False)
    dialed = {a.task_id for a in _attempts(ctx)}
    assert len(dialed) == len(due), "the nurse dialed the whole backlog, beyond the queue's horizon"
    assert lines.dials == len(due), "each task once: its retry is hours away"
    retry_at = {r.id: _aware(r.not_before) for r in _task_rows(ctx, dialed)}
    assert min(retry_at.values()) > clock.now() + d.lookahead
    assert {t: d.queue.items[t].not_before for t in dialed if t in d.queue.items} == retry_at, (
        "every retry is held in the queue, for the time stored"
    )

    # the retries fall due: no sweep and no top-up, the queue alone brings them to the nurse
    first = min(retry_at.values())
    clock.advance_to(first)
    for _ in range(10):
        d.tick()
        d.flush()
    again = [a for a in _attempts(ctx) if _aware(a.started_at) > paris(LAST_DAY, 10)]
    due_then = {t for t, at in retry_at.items() if at <= first}
    assert {a.task_id for a in again} == due_then, "each retry due now is dialed, and no other"
    assert all(_aware(a.started_at) == retry_at[a.task_id] for a in again), "at its time"


# ---------------------------------------------------------------- crash safety


def test_crash_mid_call_is_reconciled_without_loss_or_early_redial(env, db_url: str) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurses = [add_nurse(ctx, level="senior", skills=["heart_failure", "copd"]) for _ in range(4)]
    late = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    bulk_patients(ctx, 30)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        first_day = min(s.execute(select(TASK.c.not_before).where(TASK.c.wave_id == info.wave_id)).scalars())
    clock.advance_to(_aware(first_day))

    # process A: its own engine, dials, and dies mid-call
    ctx_a, _ = make_ctx(db_url, clock.now())
    ctx_a = with_clock(ctx_a, clock)
    a = Harness(ctx_a, clock, "dialer-1", seed=7)
    a.dialer.start()
    for n in nurses:
        a.dialer.nurse_ready(n)
    a.run(3)  # the first calls are answered (nobody hangs up here)…
    a.dialer.nurse_ready(late)  # …and one more is ringing when the process dies
    in_flight = _attempts(ctx, state=AttemptState.in_flight)
    assert in_flight, "the crash must happen with calls under way"
    before = {r.id: r for r in _attempts(ctx)}
    answered = [r.id for r in in_flight if r.answered_at is not None]
    assert answered and len(answered) < len(in_flight), "both talking and ringing calls are cut"
    dispose(ctx_a)  # the process is gone: no hangup, no clean shutdown
    del a

    clock.advance_to(clock.now() + timedelta(minutes=4))
    # another dialer process (another worker id) leaves dialer-1's calls alone
    other = Harness(ctx, clock, "dialer-2", seed=8)
    other.dialer.start()
    assert len(_attempts(ctx, state=AttemptState.in_flight)) == len(in_flight)

    # dialer-1 restarts: its calls in flight are reconciled
    restarted_at = clock.now()
    b = Harness(ctx, clock, "dialer-1", seed=9)
    b.dialer.start()
    after = {r.id: r for r in _attempts(ctx)}
    assert set(after) == set(before), "no attempt row lost"
    gap = timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    with ctx.sessions() as s:
        for att in in_flight:
            row = after[att.id]
            assert row.state == AttemptState.completed and row.result == AttemptResult.interrupted
            assert _aware(row.ended_at) == restarted_at
            assert row.answered_at == att.answered_at, "the answer time is kept"
            task = s.execute(select(TASK).where(TASK.c.id == att.task_id)).one()
            assert task.status == TaskStatus.pending and task.claimed_by is None
            assert _aware(task.not_before) >= _aware(att.started_at) + gap
    interrupted_patients = {att.patient_id: _aware(att.started_at) for att in in_flight}

    # a nurse records what was said in a call that had been answered before the crash
    if answered:
        applied = services.record_outcome(ctx, answered[0], OutcomeCode.reached, nurses[0])
        assert applied.next_contact.task_status == TaskStatus.done

    # the programme goes on: those patients are not redialed before the minimum gap
    del b, other
    # until the evening after next, when no call is under way (a run cut mid-call leaves its call open)
    evening = paris(clock.now().astimezone(ZoneInfo("Europe/Paris")).date() + timedelta(days=1), 21)
    run_simulation(ctx, clock, evening, seed=10, worker="dialer-1", auto_launch=False)
    for pid, started in interrupted_patients.items():
        starts = [_aware(r.started_at) for r in _attempts(ctx, patient_id=pid)]
        later = [t for t in starts if t > started]
        assert all(t >= started + gap for t in later), (pid, started, later)
    with ctx.sessions() as s:
        report = check_invariants(s, ctx.policy, info.wave_id)
    assert report.double_dials.count == 0 and report.calls_outside_window.count == 0
    assert report.answered_without_outcome.count == 0 or not answered


def test_tasks_of_a_dialer_that_never_comes_back_are_recovered(env, db_url: str) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurses = [add_nurse(ctx, level="senior", skills=["heart_failure", "copd"]) for _ in range(2)]
    bulk_patients(ctx, 6)
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(LAST_DAY, 10))
    a = Harness(ctx, clock, "dialer-gone", seed=3)
    a.dialer.start()
    for n in nurses:
        a.dialer.nurse_ready(n)
    a.run(1)
    assert _attempts(ctx, state=AttemptState.in_flight)
    del a
    # well past the lease and the wave's deadline, the scheduler's job runs
    clock.advance_to(paris(LAST_DAY + timedelta(days=3), 10))
    jobs.expire_and_close(ctx)
    with ctx.sessions() as s:
        stuck = s.execute(
            select(TASK.c.id).where(TASK.c.wave_id == info.wave_id, TASK.c.status == TaskStatus.in_progress)
        ).all()
    assert stuck == []
    assert wave_status(ctx, info.wave_id) == WaveStatus.done


# ---------------------------------------------------------------- routing


def _wave_day(ctx: services.Context, clock: VirtualClock, theme: str = "diet") -> datetime:
    info = running_wave(ctx, clock, theme, SENT_ON)
    with ctx.sessions() as s:
        nb = min(s.execute(select(TASK.c.not_before).where(TASK.c.wave_id == info.wave_id)).scalars())
    return _aware(nb)


def _dialer_when_due(
    ctx: services.Context, clock: VirtualClock, theme: str = "diet"
) -> tuple[Harness, datetime]:
    """A running wave, the clock at its first calls, and a dialer started then."""
    due = _wave_day(ctx, clock, theme)
    clock.advance_to(due)
    h = Harness(ctx, clock, "dialer-1")
    h.dialer.start()
    return h, due


def test_referent_on_shift_gets_her_patient_then_after_the_wait_another_nurse(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    wait = timedelta(minutes=ctx.policy.dialer.referent_wait_minutes)
    referent = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")
    patient = add_patient(ctx, referent_nurse_id=referent)
    due = _wave_day(ctx, clock)
    clock.advance_to(due)

    h = Harness(ctx, clock, "dialer-1")
    h.dialer.presence.set(referent, NurseStatus.paused)  # on shift, on a break
    h.dialer.start()
    h.dialer.nurse_ready(other)
    h.run(wait // timedelta(minutes=1) - 2)
    assert _first_attempt(ctx, patient.id) is None, "the patient waits for the référent who is on shift"
    h.run(5)
    first = _first_attempt(ctx, patient.id)
    assert first is not None and first.nurse_id == other
    assert _aware(first.started_at) >= due + wait


@pytest.mark.parametrize(
    ("referent_level", "referent_skills", "tier", "pathologies", "theme"),
    [
        ("junior", (), "high", ["diabetes"], "diet"),  # high tier: seniors only
        ("senior", (), "medium", ["heart_failure"], "weight_watch"),  # needs the heart-failure skill
    ],
)
def test_a_referent_who_may_not_take_the_call_does_not_hold_it(  # type: ignore[no-untyped-def]
    env, referent_level: str, referent_skills: tuple[str, ...], tier: str, pathologies: list[str], theme: str
) -> None:
    """Waiting for a référent who could never take the call only delays the patient (the
    heart-failure and high-tier calls few nurses may take were the ones that expired)."""
    ctx, clock = env
    referent = add_nurse(ctx, level=referent_level, skills=referent_skills)
    other = add_nurse(ctx, level="senior", skills=["heart_failure", "copd"])
    patient = add_patient(ctx, referent_nurse_id=referent, tier=tier, pathologies=pathologies)
    due = _wave_day(ctx, clock, theme)
    clock.advance_to(due)

    h = Harness(ctx, clock, "dialer-1")
    h.dialer.nurse_ready(referent)  # on shift and idle all along
    h.dialer.start()
    h.dialer.nurse_ready(other)
    h.run(3)
    first = _first_attempt(ctx, patient.id)
    assert first is not None and first.nurse_id == other, "dialed by a nurse who may take it"
    assert _aware(first.started_at) < due + timedelta(minutes=3), "without waiting for the référent"


def test_referent_ready_gets_her_patient_first(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    referent = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")
    patients = [add_patient(ctx, referent_nurse_id=referent) for _ in range(2)]
    due = _wave_day(ctx, clock)
    clock.advance_to(due - timedelta(minutes=5))
    h = Harness(ctx, clock, "dialer-1")
    h.dialer.nurse_ready(referent)  # on shift before the dialer loads the day's tasks
    h.dialer.start()
    h.dialer.nurse_ready(other)  # idle too, and first in line
    h.run(8)
    first = _first_attempt(ctx, patients[0].id)
    assert first is not None and first.nurse_id == referent
    # her first call may end at once (a machine): she then takes the second herself
    second = _first_attempt(ctx, patients[1].id)
    assert second is None or second.nurse_id == referent, (
        "her second patient waits for her, not for the other"
    )


def test_referent_coming_on_shift_after_the_tasks_were_loaded_still_gets_her_patient(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    referent = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")
    patient = add_patient(ctx, referent_nurse_id=referent)
    due = _wave_day(ctx, clock)
    clock.advance_to(due - timedelta(minutes=20))
    h = Harness(ctx, clock, "dialer-1")
    h.dialer.start()  # loads the tasks due within its 30-minute lookahead
    h.run(15)
    h.dialer.nurse_ready(other)  # both arrive before the patient's call is due
    h.dialer.nurse_ready(referent)
    h.run(10)
    first = _first_attempt(ctx, patient.id)
    assert first is not None and first.nurse_id == referent


def test_referent_off_shift_does_not_hold_her_patient(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    referent = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")
    patient = add_patient(ctx, referent_nurse_id=referent)
    h, due = _dialer_when_due(ctx, clock)
    h.dialer.nurse_ready(other)  # the référent is offline
    h.run(2)
    first = _first_attempt(ctx, patient.id)
    assert first is not None and first.nurse_id == other
    assert _aware(first.started_at) < due + timedelta(minutes=2)


@pytest.mark.parametrize(
    ("idle", "qualified", "patient", "theme"),
    [
        # a high-tier patient never goes to a junior, whatever her skills
        (("junior", ["heart_failure", "copd"]), ("senior", []), {"tier": "high"}, "diet"),
        # a heart-failure theme only to a nurse with the skill, whatever her level
        (
            ("senior", ["copd"]),
            ("junior", ["heart_failure"]),
            {"pathologies": ["heart_failure", "diabetes"], "tier": "medium"},
            "weight_watch",
        ),
    ],
)
def test_a_call_waits_for_a_nurse_who_may_take_it(  # type: ignore[no-untyped-def]
    env,
    idle: tuple[str, list[str]],
    qualified: tuple[str, list[str]],
    patient: dict[str, Any],
    theme: str,
) -> None:
    ctx, clock = env
    unqualified = add_nurse(ctx, level=idle[0], skills=idle[1])
    able = add_nurse(ctx, level=qualified[0], skills=qualified[1])
    p = add_patient(ctx, **patient)
    h, _ = _dialer_when_due(ctx, clock, theme)
    h.dialer.nurse_ready(unqualified)
    h.run(180)
    assert _first_attempt(ctx, p.id) is None, "an idle nurse who may not take the call never gets it"
    h.dialer.nurse_ready(able)
    h.run(2)
    first = _first_attempt(ctx, p.id)
    assert first is not None and first.nurse_id == able


@pytest.mark.parametrize("promiser_state", ["ready", "on_break", "off_shift"])
def test_callback_goes_to_the_nurse_who_promised_it(env, promiser_state: str) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    grace = timedelta(minutes=ctx.policy.dialer.callback_grace_minutes)
    promiser = add_nurse(ctx, level="senior")
    other = add_nurse(ctx, level="senior")
    patient = add_patient(ctx)
    due = _wave_day(ctx, clock)
    clock.advance_to(due + timedelta(minutes=30))
    with ctx.sessions() as s:
        task_id = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient.id)).scalar_one()
    _, at = promise_callback(ctx, clock, promiser, task_id, timedelta(hours=3))
    clock.advance_to(at - timedelta(minutes=20))

    h = Harness(ctx, clock, "dialer-1")
    if promiser_state == "on_break":
        h.dialer.presence.set(promiser, NurseStatus.paused)
    if promiser_state == "ready":
        h.dialer.nurse_ready(promiser)  # on shift when the dialer loads the callback
    h.dialer.start()
    h.dialer.nurse_ready(other)  # the other nurse is idle all along
    h.run(20 + grace // timedelta(minutes=1) + 5)
    callback = [r for r in _attempts(ctx, patient_id=patient.id) if _aware(r.started_at) >= at]
    assert callback, "the callback was dialed"
    first = callback[0]
    if promiser_state == "ready":
        assert first.nurse_id == promiser
        assert _aware(first.started_at) < at + timedelta(minutes=2), "on time"
    elif promiser_state == "on_break":
        assert first.nurse_id == other and _aware(first.started_at) >= at + grace
    else:
        assert first.nurse_id == other and _aware(first.started_at) < at + timedelta(minutes=2)
