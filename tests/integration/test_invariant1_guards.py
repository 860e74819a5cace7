"""Invariant 1, one guard at a time: each test here fails when its guard alone is removed.

A patient is never in two calls at once, and never dialed twice within the
policy's minimum gap unless they asked for a callback. Layers back each other
up, so removing one leaves the others' tests green; these pin each one:

1. `FOR UPDATE SKIP LOCKED` on the task rows (PostgreSQL): a claim never
   waits for a task another transaction holds, it leaves it (lost, None).
2. The patient row lock (`FOR UPDATE OF p`, PostgreSQL), taken before the
   dial history is read: a claim sees the attempt of whoever held the lock
   before, even when that call has already ended (so the in-flight index
   cannot catch it).
3. The partial unique index `uq_call_attempt_patient_in_flight`: the database
   refuses a second call in flight, whatever inserts it, and a claim turns
   that refusal into "patient in a call".

And the history a claim reads spans the patient's other tasks, far enough
back for the minimum gap and the daily cap (`store.HISTORY_LOOKBACK`).
"""

from __future__ import annotations

import threading
import time as walltime
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from factories import add_nurse, add_patient, add_task, dispose, engine_of, make_ctx, paris, running_wave
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import IntegrityError

from campaign import services
from campaign.clock import VirtualClock
from campaign.model import ATTEMPT, TASK
from campaign.states import AttemptResult, AttemptState, TaskKind, TaskStatus

SENT_ON = date(2026, 12, 7)
DAY = date(2026, 12, 28)  # a Monday, the wave's last calling day (09:00-12:30, 13:30-19:00)
NEXT_DAY = DAY + timedelta(days=1)
WAIT = 30.0  # seconds a step may take on a loaded 2-core machine before the test gives up

Env = tuple[services.Context, VirtualClock]


@pytest.fixture
def env(db_url: str) -> Iterator[Env]:
    ctx, clock = make_ctx(db_url, paris(SENT_ON, 8))
    yield ctx, clock
    dispose(ctx)


def _open_task(ctx: services.Context, patient_id: int, kind: TaskKind = TaskKind.inbound) -> int:
    """An open task outside any wave (an inbound request), due at once for two days."""
    return add_task(ctx, patient_id, kind=kind)


def _wave_task(ctx: services.Context, clock: VirtualClock, patient_id: int) -> int:
    """The patient's task in a real wave (planned and launched), due by DAY 09:00."""
    info = running_wave(ctx, clock, "diet", SENT_ON)
    with ctx.sessions() as s:
        task_id, not_before = s.execute(
            select(TASK.c.id, TASK.c.not_before).where(
                TASK.c.wave_id == info.wave_id, TASK.c.patient_id == patient_id
            )
        ).one()
    assert _utc(not_before) <= paris(DAY, 9), "the scenario needs the wave task due on DAY"
    return int(task_id)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _attempts(ctx: services.Context, patient_id: int) -> list[Any]:
    with ctx.sessions() as s:
        return list(
            s.execute(select(ATTEMPT).where(ATTEMPT.c.patient_id == patient_id).order_by(ATTEMPT.c.id)).all()
        )


def _task(ctx: services.Context, task_id: int) -> Any:
    with ctx.sessions() as s:
        return s.execute(select(TASK).where(TASK.c.id == task_id)).one()


def _dial_and_hang_up(ctx: services.Context, clock: VirtualClock, task_id: int, nurse: int) -> None:
    """One real call through the services: claimed, dialed, unanswered a minute later."""
    claimed = services.claim_and_start(ctx, task_id, nurse, "dialer-1")
    assert isinstance(claimed, services.Claimed), claimed
    clock.advance_to(clock.now() + timedelta(minutes=1))
    services.finish_unanswered(ctx, claimed.attempt_id, AttemptResult.no_answer)


def _refused(result: services.ClaimResult, reason: str) -> services.NotDialable:
    assert isinstance(result, services.NotDialable), f"expected a refusal ({reason}), got {result!r}"
    assert result.decision.reason.value == reason, result.decision
    return result


# ---------------------------------------------------------------- the history spans the patient's tasks


def test_minimum_gap_holds_across_a_patients_tasks(env: Env) -> None:
    """A wave call, then the patient's inbound request just inside the gap: refused until the gap ends.

    Catches a history that sees only recent attempts (`HISTORY_LOOKBACK` cut
    short): the inbound task has no attempt of its own, only the wave task's
    call, 1 minute short of the gap, can refuse it.
    """
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    patient = add_patient(ctx)
    wave_task = _wave_task(ctx, clock, patient.id)
    gap = timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    first = paris(DAY, 9, 30)
    assert first + gap < paris(DAY, 12, 30), "the scenario needs the gap inside the morning window"

    clock.advance_to(first)
    _dial_and_hang_up(ctx, clock, wave_task, nurse)
    clock.advance_to(first + gap - timedelta(minutes=1))
    inbound = _open_task(ctx, patient.id, TaskKind.inbound)

    refusal = _refused(services.claim_and_start(ctx, inbound, nurse, "dialer-2"), "min_gap")
    assert refusal.decision.retry_at == first + gap
    task = _task(ctx, inbound)
    assert task.status == TaskStatus.pending and task.attempts == 0
    assert _utc(task.not_before) == first + gap
    assert len(_attempts(ctx, patient.id)) == 1, "dialed again within the minimum gap"

    clock.advance_to(first + gap)
    assert isinstance(services.claim_and_start(ctx, inbound, nurse, "dialer-2"), services.Claimed)


def test_daily_cap_counts_the_dials_of_all_a_patients_tasks(env: Env) -> None:
    """The day's dials of a wave task and an inbound task fill the cap: a third task waits a day.

    The third task has no attempt of its own and the last dial is hours past
    the gap: only dials of other tasks, since the morning, can refuse it.
    """
    ctx, clock = env
    cap = ctx.policy.caps.max_attempts_per_day
    gap = timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    assert cap == 2, "the scenario dials twice (a wave task, an inbound task) to fill the cap"
    nurse = add_nurse(ctx, level="senior")
    patient = add_patient(ctx)
    wave_task = _wave_task(ctx, clock, patient.id)
    morning, noon, evening = paris(DAY, 9, 5), paris(DAY, 11, 30), paris(DAY, 18, 45)
    assert noon - morning > gap and evening - noon > gap

    clock.advance_to(morning)
    _dial_and_hang_up(ctx, clock, wave_task, nurse)
    clock.advance_to(noon)
    _dial_and_hang_up(ctx, clock, _open_task(ctx, patient.id, TaskKind.inbound), nurse)
    clock.advance_to(evening)
    third = _open_task(ctx, patient.id, TaskKind.inbound)

    refusal = _refused(services.claim_and_start(ctx, third, nurse, "dialer-2"), "daily_cap")
    assert refusal.decision.retry_at == paris(NEXT_DAY, 9), "the next calling day's first window"
    assert len(_attempts(ctx, patient.id)) == 2, "dialed beyond the daily cap"

    clock.advance_to(paris(NEXT_DAY, 9))
    assert isinstance(services.claim_and_start(ctx, third, nurse, "dialer-2"), services.Claimed)


# ---------------------------------------------------------------- guard 1: SKIP LOCKED on the task rows


def test_a_claim_leaves_a_task_another_transaction_holds_and_never_waits(pg_env: Env) -> None:
    """Another dialer holds a task row at this instant: the claim returns it as lost, at once.

    Without SKIP LOCKED the claim waits for the holder (every nurse of this
    dialer waits with it) and then dials the task the holder was taking.
    """
    ctx, clock = pg_env
    nurse = add_nurse(ctx, level="senior")
    clock.advance_to(paris(DAY, 10))
    held = _open_task(ctx, add_patient(ctx).id)
    free = _open_task(ctx, add_patient(ctx).id)
    results: list[services.ClaimResult] = []
    claim = threading.Thread(
        target=lambda: results.extend(services.claim_and_start_many(ctx, [(held, nurse), (free, nurse)], "b"))
    )
    with engine_of(ctx).connect() as holder:
        holder.execute(select(TASK.c.id).where(TASK.c.id == held).with_for_update())
        try:
            claim.start()
            claim.join(timeout=WAIT)
            waited = claim.is_alive()
        finally:
            holder.rollback()  # lets a waiting claim go on, so the test ends either way
            claim.join(timeout=WAIT)
    assert not waited, f"the claim still waited for the held task row after {WAIT:.0f} s"
    lost, won = results
    assert lost is None, f"the held task was not left to its holder: {lost!r}"
    assert isinstance(won, services.Claimed) and won.task_id == free, "the rest of the batch goes on"
    task = _task(ctx, held)
    assert task.status == TaskStatus.pending and task.attempts == 0 and task.claimed_by is None

    claimed = services.claim_and_start(ctx, held, nurse, "b")
    assert isinstance(claimed, services.Claimed), "once released, the task is claimed as any other"


# ---------------------------------------------------------------- guard 2: the patient row lock


class InsertGate:
    """Stops chosen threads just before they store their attempts, until released.

    Claim and history are already read at that point, and the claim's locks
    held: the window in which another dialer's call may start and end.
    """

    def __init__(self, ctx: services.Context, names: tuple[str, ...]) -> None:
        self.engine = engine_of(ctx)
        self.reached = {n: threading.Event() for n in names}
        self.go = {n: threading.Event() for n in names}
        event.listen(self.engine, "before_cursor_execute", self._hold)

    def _hold(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        name = threading.current_thread().name
        if name in self.reached and statement.lstrip().upper().startswith("INSERT INTO CALL_ATTEMPT"):
            self.reached[name].set()
            self.go[name].wait(timeout=WAIT)

    def close(self) -> None:
        for go in self.go.values():
            go.set()
        event.remove(self.engine, "before_cursor_execute", self._hold)


def _waiting_on_a_lock(ctx: services.Context) -> bool:
    """Is a session of this database waiting for a row lock (PostgreSQL)?"""
    with engine_of(ctx).connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = walltime.monotonic() + timeout
    while not condition():
        if walltime.monotonic() > deadline:
            return False
        walltime.sleep(0.02)
    return True


def test_a_claim_sees_a_call_that_started_and_ended_while_it_waited_for_the_patient(env: Env) -> None:
    """Two dialers claim two tasks of one patient at once; the first call ends before the second dials.

    Dialer A has claimed the wave task and is about to store its attempt when
    dialer B claims the patient's inbound task. A's call is placed and over
    before B stores its own: the in-flight index has nothing left to refuse,
    so only B's history can stop a second dial within the minimum gap. On
    PostgreSQL the patient row lock makes B wait for A and then read A's
    attempt; without it B read the history before A's attempt existed and
    dials again. SQLite's single writer holds B back the same way.
    """
    ctx, clock = env
    on_pg = engine_of(ctx).dialect.name == "postgresql"
    nurses = (add_nurse(ctx, level="senior"), add_nurse(ctx, level="senior"))
    patient = add_patient(ctx)
    wave_task = _wave_task(ctx, clock, patient.id)
    clock.advance_to(paris(DAY, 10))
    inbound = _open_task(ctx, patient.id, TaskKind.inbound)
    results: dict[str, services.ClaimResult] = {}

    def claim(name: str, task_id: int, nurse: int) -> threading.Thread:
        def run() -> None:
            results[name] = services.claim_and_start(ctx, task_id, nurse, name)

        t = threading.Thread(target=run, name=name)
        t.start()
        return t

    gate = InsertGate(ctx, ("dialer-a", "dialer-b"))
    try:
        a = claim("dialer-a", wave_task, nurses[0])
        assert gate.reached["dialer-a"].wait(WAIT), "dialer A never reached its dial"
        b = claim("dialer-b", inbound, nurses[1])
        # B either gets to its dial (nothing held it back) or waits for A's lock; on SQLite that
        # wait cannot be seen from here, so give it a moment
        held_back = _until(
            lambda: gate.reached["dialer-b"].is_set() or (on_pg and _waiting_on_a_lock(ctx)),
            WAIT if on_pg else 1.0,
        )
        assert held_back or not on_pg, "dialer B neither dialed nor waited for a lock"
        gate.go["dialer-a"].set()
        a.join(timeout=WAIT)
        first = results["dialer-a"]
        assert isinstance(first, services.Claimed), first
        clock.advance_to(clock.now() + timedelta(minutes=1))
        services.finish_unanswered(ctx, first.attempt_id, AttemptResult.no_answer)  # A's call is over
        gate.go["dialer-b"].set()
        b.join(timeout=WAIT)
    finally:
        gate.close()

    assert not a.is_alive() and not b.is_alive()
    dials = _attempts(ctx, patient.id)
    assert len(dials) == 1, f"the patient was dialed {len(dials)} times within the minimum gap"
    second = results["dialer-b"]
    assert isinstance(second, services.NotDialable), second
    assert second.decision.reason.value in {"in_call", "min_gap"}, second.decision
    assert _task(ctx, inbound).attempts == 0


# ---------------------------------------------------------------- guard 3: the partial unique index


def _insert_attempt(
    ctx: services.Context,
    task_id: int,
    patient_id: int,
    state: AttemptState,
    started_at: datetime | None = None,
    worker: str = "elsewhere",
) -> None:
    """An attempt row written straight to the table, as any code (or a hand) could."""
    with ctx.sessions() as s:
        s.execute(
            insert(ATTEMPT).values(
                task_id=task_id,
                patient_id=patient_id,
                number="+33199009999",
                state=state,
                started_at=started_at or ctx.clock.now(),
                worker=worker,
            )
        )
        s.commit()


def test_the_database_refuses_a_second_call_in_flight_for_one_patient(env: Env) -> None:
    """One call in flight per patient, enforced by the database whatever code inserts it."""
    ctx, _clock = env
    patient, other = add_patient(ctx), add_patient(ctx)
    tasks = [_open_task(ctx, patient.id) for _ in range(3)]
    _insert_attempt(ctx, tasks[0], patient.id, AttemptState.completed)
    _insert_attempt(ctx, tasks[1], patient.id, AttemptState.in_flight)  # a finished call does not count
    _insert_attempt(ctx, _open_task(ctx, other.id), other.id, AttemptState.in_flight)  # nor another patient

    with pytest.raises(IntegrityError, match=r"(?i)unique"):
        _insert_attempt(ctx, tasks[2], patient.id, AttemptState.in_flight)
    assert [a.state for a in _attempts(ctx, patient.id)] == [AttemptState.completed, AttemptState.in_flight]


def _stuck_call(ctx: services.Context, clock: VirtualClock, patient_id: int) -> None:
    """A call left in flight a week ago (a dialer died, nothing reconciled its calls since):
    older than any history a claim reads, so only the index still sees it."""
    now = clock.now()
    task_id = add_task(
        ctx,
        patient_id,
        status=TaskStatus.in_progress,
        not_before=now - timedelta(days=7),
        deadline=now + timedelta(days=2),
        created_at=now - timedelta(days=7),
        attempts=1,
        claimed_by="dead-dialer",
    )
    _insert_attempt(ctx, task_id, patient_id, AttemptState.in_flight, now - timedelta(days=7), "dead-dialer")


def test_a_claim_the_database_refuses_is_a_patient_in_a_call_and_the_batch_goes_on(env: Env) -> None:
    """The rules allow the dial (the stuck call is beyond the history); the database refuses a
    second call in flight; the claim reports the patient in a call and puts the task back for
    after the gap, and the other claims of the batch are still served."""
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    stuck, other = add_patient(ctx), add_patient(ctx)
    clock.advance_to(paris(DAY, 10))
    _stuck_call(ctx, clock, stuck.id)
    task, other_task = _open_task(ctx, stuck.id), _open_task(ctx, other.id)

    refused, claimed = services.claim_and_start_many(ctx, [(task, nurse), (other_task, nurse)], "dialer-1")

    _refused(refused, "in_call")
    assert isinstance(claimed, services.Claimed) and claimed.task_id == other_task
    row = _task(ctx, task)
    assert row.status == TaskStatus.pending and row.claimed_by is None
    assert _utc(row.not_before) == clock.now() + timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    in_flight = [a for a in _attempts(ctx, stuck.id) if a.state == AttemptState.in_flight]
    assert len(in_flight) == 1, "a second call in flight for one patient"


def test_a_claim_the_database_refuses_counts_no_attempt(env: Env) -> None:
    """A refused claim dialed nobody: the task's attempt count (which closes it after
    `retry.max_attempts`) is what it was before."""
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    stuck = add_patient(ctx)
    clock.advance_to(paris(DAY, 10))
    _stuck_call(ctx, clock, stuck.id)
    task = _open_task(ctx, stuck.id)

    _refused(services.claim_and_start(ctx, task, nurse, "dialer-1"), "in_call")
    assert _task(ctx, task).attempts == 0
