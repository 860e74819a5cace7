"""Claims, attempts and their results: what the dialer stores before it dials and
after a call ends; leases and reconciliation after a crash."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from campaign import baseline, besttime, rules, store
from campaign import calendar as cal
from campaign.errors import ClaimLost
from campaign.policy import Policy, Tier
from campaign.services.base import Also, Context, keep_cadence
from campaign.states import AttemptResult, TaskKind, TaskStatus, WaveStatus
from campaign.store import answers

log = structlog.get_logger("carecall.campaign")


# ------------------------------------------------------------------ dialing


@dataclass(frozen=True)
class Claimed:
    attempt_id: int
    task_id: int
    patient_id: int
    number: str
    tier: Tier
    kind: TaskKind


@dataclass(frozen=True)
class NotDialable:
    decision: rules.Decision


ClaimResult = Claimed | NotDialable | None
# runs in the claim's own transaction with the attempts stored: (attempt, nurse) of each call to dial
# (the dialer opens its line records there, so no attempt is dialed without one)
OnClaimed = Callable[[Session, list[tuple[int, int]]], None]


def claim_and_start(
    ctx: Context, task_id: int, nurse_id: int, worker: str, on_claimed: OnClaimed | None = None
) -> ClaimResult:
    """Claim one task for a nurse; see `claim_and_start_many`."""
    return claim_and_start_many(ctx, [(task_id, nurse_id)], worker, on_claimed)[0]


def claim_and_start_many(
    ctx: Context, offers: Sequence[tuple[int, int]], worker: str, on_claimed: OnClaimed | None = None
) -> list[ClaimResult]:
    """Claim tasks for nurses and store their attempts before anything is dialed (invariant 3).

    `offers` are (task, nurse) pairs; one transaction serves them all, so a
    dialer hands out the calls of all its ready nurses for the price of a few
    statements. Per offer, in order: None when another worker had the task,
    NotDialable when the rules refuse the dial now (the task is moved to when
    they may allow it, or closed), else Claimed.
    """
    policy, now = ctx.policy, ctx.clock.now()
    nurse_of = dict(offers)
    if len(nurse_of) != len(offers):
        raise ValueError("a task offered twice in one batch")
    results: dict[int, ClaimResult] = {}
    starts: list[tuple[Any, str]] = []
    try:
        with ctx.sessions() as s:
            rows, histories = store.claim_tasks(s, list(nurse_of), worker, now, ctx.lease)
            states = {r.task_id: store.patient_state_from_row(r) for r in rows}
            releases: list[store.Release] = []
            dialing: set[int] = set()
            for r in rows:
                history = histories[r.id]
                if r.id in dialing:  # two tasks of one patient in this batch: the first is dialed
                    history = rules.DialHistory(True, now, history.dials_on_day + 1)
                requested = rules.requested_dial(r.kind, r.attempts)
                decision = rules.may_dial(states[r.task_id], history, now, policy, requested=requested)
                if not decision.allowed:
                    status = TaskStatus.cancelled if decision.retry_at is None else TaskStatus.pending
                    releases.append(
                        store.Release(
                            r.task_id, status, decision.retry_at, decision.reason.value, undo_attempt=True
                        )
                    )
                    results[r.task_id] = NotDialable(decision)
                    continue
                dialing.add(r.id)
                numbers = store.dialable_numbers(r.phone, r.phone_alt, r.flagged_numbers)
                starts.append((r, numbers[(r.attempts - 1) % len(numbers)]))
            attempt_ids = store.insert_attempts(
                s,
                [store.AttemptStart(r.task_id, r.id, nurse_of[r.task_id], number) for r, number in starts],
                now,
                worker,
            )
            store.release_tasks(s, releases, now)
            if on_claimed is not None and attempt_ids:
                on_claimed(
                    s, [(a, nurse_of[r.task_id]) for (r, _), a in zip(starts, attempt_ids, strict=True)]
                )
            s.commit()
    except IntegrityError:
        # the unique in-flight index: another process dialed one of these patients a moment ago
        if len(offers) > 1:
            return [claim_and_start(ctx, t, n, worker, on_claimed) for t, n in offers]  # one by one
        return [_patient_in_call(ctx, offers[0][0], now)]
    for (r, number), attempt_id in zip(starts, attempt_ids, strict=True):
        results[r.task_id] = Claimed(attempt_id, r.task_id, r.id, number, Tier(r.task_tier), TaskKind(r.kind))
    return [results.get(task_id) for task_id, _ in offers]


def _patient_in_call(ctx: Context, task_id: int, now: datetime) -> NotDialable:
    """The index refused the claim's attempt: the claim was rolled back whole (its attempt was
    never counted), so the task is only put off past the gap, and only if nobody claimed it since."""
    retry_at = now + timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    with ctx.sessions() as s:
        store.postpone_pending(s, task_id, retry_at)
        s.commit()
    return NotDialable(
        rules.Decision(False, rules.Reason.in_call, "the patient is already in a call", retry_at)
    )


def mark_answered(ctx: Context, attempt_id: int) -> None:
    if not mark_answered_many(ctx, [attempt_id]):
        raise ClaimLost(f"attempt {attempt_id} was reconciled (lease expired): hang up")


def mark_answered_many(ctx: Context, attempt_ids: Sequence[int], also: Also | None = None) -> set[int]:
    """Stored at once; the tasks' leases are renewed for the length of a conversation.

    Returns the attempts stored as answered; the others were reconciled meanwhile
    (their dialer's lease ran out) and must be hung up.
    """
    now = ctx.clock.now()
    with ctx.sessions() as s:
        rows = store.mark_attempts_answered(s, attempt_ids, now)
        store.renew_task_leases(s, [r.task_id for r in rows], now + ctx.lease)
        if also is not None:
            also(s)
        s.commit()
    return {r.id for r in rows}


def finish_unanswered(
    ctx: Context, attempt_id: int, result: AttemptResult, voicemail_left: bool = False
) -> rules.RetryDecision:
    decision = finish_unanswered_many(ctx, [(attempt_id, result, voicemail_left)])[0]
    if decision is None:
        # already reconciled by the scheduler (this dialer's lease ran out): its retry is decided
        raise ClaimLost(f"attempt {attempt_id} was already reconciled")
    return decision


def finish_unanswered_many(
    ctx: Context, ends: Sequence[tuple[int, AttemptResult, bool]], also: Also | None = None
) -> list[rules.RetryDecision | None]:
    """Store the results of unanswered attempts and decide their retries, in one transaction.

    `ends` are (attempt, result, voicemail left); per entry, in order, the retry
    decision, or None when the attempt had already been reconciled.
    """
    policy, now = ctx.policy, ctx.clock.now()
    groups: dict[tuple[AttemptResult, bool], list[int]] = {}
    for attempt_id, result, voicemail in ends:
        groups.setdefault((result, voicemail), []).append(attempt_id)
    with ctx.sessions() as s:
        done: dict[int, Ended] = {}
        not_in_service: list[tuple[int, str]] = []
        for (result, voicemail), ids in groups.items():
            for r in store.complete_attempts(s, ids, result, voicemail, now):
                done[r.id] = (r.task_id, r.patient_id, result, r.started_at)
                if result == AttemptResult.number_not_in_service:
                    not_in_service.append((r.patient_id, r.number))
        # the network says the number is no one's: never dialed again (before the retry is decided,
        # which then sees whether the patient has another)
        store.flag_numbers(s, not_in_service, now)
        retries, counted = _retry_many(s, list(done.values()), now, policy)
        decisions = dict(zip(done, retries, strict=True))
        if also is not None:
            also(s)
        answers.add_answers(s, counted)  # last: cohort rows are shared by every dialer process
        s.commit()
    return [decisions.get(attempt_id) for attempt_id, _, _ in ends]


# an attempt that ended unanswered: (task, patient, result, started at)
Ended = tuple[int, int, AttemptResult, datetime]


def _retry_many(
    s: Session, ended: Sequence[Ended], now: datetime, policy: Policy
) -> tuple[list[rules.RetryDecision], list[besttime.AnswerEvent]]:
    """After unanswered attempts: retry each task later, or close it.

    With best time to call, the retries go where the patients' answer models say,
    and the attempts' answer events come back for the caller to count last in its
    transaction (`answers.add_answers`).
    """
    task_ids = [task_id for task_id, _, _, _ in ended]
    rows = store.tasks_with_patients(s, task_ids)
    starts, patient_starts = store.attempt_starts(
        s, task_ids, {patient_id for _, patient_id, _, _ in ended}, now - store.HISTORY_LOOKBACK
    )
    retry_policy = baseline.retry_policy(policy)  # policy itself, or fifo's one fixed spacing
    models, events = learned(s, [(rows[t], r, at) for t, _, r, at in ended], retry_policy)
    releases: list[store.Release] = []
    closed_patients: list[int] = []
    no_number: list[int] = []
    out: list[rules.RetryDecision] = []
    for task_id, patient_id, result, _ in ended:
        task = rows[task_id]
        if task.kind == TaskKind.incoming:
            # the patient called us: never dialed, so never retried; the nurse may still record
            # what was said (the task is done, the outcome re-closes it)
            reason = f"incoming call ended ({result.value}) before its outcome"
            releases.append(store.Release(task_id, TaskStatus.done, reason=reason))
            out.append(rules.RetryDecision(TaskStatus.done, None, reason))
            continue
        if task.wave_status == WaveStatus.cancelled:
            releases.append(store.Release(task_id, TaskStatus.cancelled, reason="wave cancelled"))
            out.append(rules.RetryDecision(TaskStatus.cancelled, None, "wave cancelled"))
            continue
        state = store.patient_state_from_row(task)
        task_state = rules.TaskState(
            task.attempts, task.deadline, tuple(starts[task_id]), tuple(patient_starts[patient_id])
        )
        decision = rules.after_attempt(result, now, task_state, state, retry_policy, models.get(patient_id))
        if decision.close is not None:
            releases.append(store.Release(task_id, decision.close, reason=decision.reason))
            if decision.reason == rules.NO_NUMBER_LEFT:
                no_number.append(patient_id)  # as after a wrong number: no contact until a new one
            else:
                closed_patients.append(patient_id)
        else:
            e = decision.estimate
            band, p = (e.band, e.p) if e else (None, None)
            releases.append(store.Release(task_id, not_before=decision.next_at, best_band=band, answer_p=p))
        out.append(decision)
    store.release_tasks(s, releases, now)
    if closed_patients:
        keep_cadence(s, closed_patients, now, policy)
    store.set_next_contact(s, dict.fromkeys(no_number))
    return out, events


def renew_leases(ctx: Context, worker: str, also: Also | None = None) -> None:
    with ctx.sessions() as s:
        store.renew_worker_leases(s, worker, ctx.clock.now() + ctx.lease)
        if also is not None:
            also(s)
        s.commit()


def reconcile_in_flight(ctx: Context, worker: str | None = None, *, expired_leases: bool = False) -> int:
    """After a crash: attempts left in flight are closed as interrupted, never redialed at once.

    A restarting dialer reconciles its own (`worker`); the scheduler's job
    reconciles those of any dialer whose lease ran out (`expired_leases`), so a
    dialer that never comes back leaves nothing open. A call that may have been
    answered just before the crash keeps its answer time, is not dialed again
    before the policy's minimum gap, and a nurse can still record what was said.
    """
    now = ctx.clock.now()
    with ctx.sessions() as s:
        attempts = store.in_flight_attempts(s, worker, lease_expired_at=now if expired_leases else None)
        n = len(attempts)
        if attempts:
            store.complete_attempts(s, [a.id for a in attempts], AttemptResult.interrupted, False, now)
        statuses = store.task_statuses(s, [a.task_id for a in attempts])
        claimed = [
            (a.task_id, a.patient_id, AttemptResult.interrupted, a.started_at)
            for a in attempts
            if statuses.get(a.task_id) == TaskStatus.in_progress
        ]
        counted: list[besttime.AnswerEvent] = []
        if claimed:
            _, counted = _retry_many(s, claimed, now, ctx.policy)
        store.free_undialed_claims(s, now, worker, expired_leases)
        answers.add_answers(s, counted)
        s.commit()
    if n:
        log.warning("in-flight attempts reconciled", attempts=n)
    return n


def learned(
    s: Session, attempts: Sequence[tuple[Any, AttemptResult, datetime]], policy: Policy
) -> tuple[dict[int, besttime.AnswerModel], list[besttime.AnswerEvent]]:
    """Best time to call: the answer models of these attempts' patients (rows of patient rule
    data with birth_date), this batch's attempts included, and the events that count them.
    Nothing when best time is off, and no incoming call counts (the patient called us)."""
    if not policy.outreach.best_time:
        return {}, []
    cohorts_of: dict[int, tuple[str, ...]] = {}
    events: list[besttime.AnswerEvent] = []
    for row, result, started_at in attempts:
        if row.kind == TaskKind.incoming:
            continue
        place = store.place_of(row)
        cohorts_of[row.id] = besttime.cohort_keys(
            row.birth_date, cal.local_date(started_at, place), row.departement, row.tier
        )
        event = besttime.event_for(row.id, started_at, result, row.birth_date, place, row.tier)
        if event is not None:
            events.append(event)
    outreach = policy.outreach
    models = answers.models_for(s, cohorts_of, outreach.best_time_base_rate, outreach.best_time_prior_weight)
    for e in events:  # read before this batch is counted (counts are written last): add it here
        m = models[e.patient_id]
        own = dict(m.own)
        own[e.band] = own.get(e.band, besttime.NONE).plus(e.answered)
        models[e.patient_id] = dataclasses.replace(m, own=own)
    return models, events
