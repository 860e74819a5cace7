"""Use cases of the programme. Each opens one transaction, commits it, and
returns plain data. The CLI, the scheduler's jobs and the dialer call these.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from campaign import calendar as cal
from campaign import planning, rules, store
from campaign.clock import Clock
from campaign.db import SessionFactory
from campaign.errors import ClaimLost, InvalidTransition, NotFound
from campaign.model import (
    ATTEMPT,
    NURSE,
    PATIENT,
    TASK,
    Mailing,
    Outcome,
    PhysicianMessage,
    ThemeRow,
    Wave,
    pathologies_from_text,
    pathologies_to_text,
)
from campaign.policy import Policy, Theme, Tier
from campaign.states import (
    AttemptResult,
    AttemptState,
    OutcomeCode,
    TaskKind,
    TaskStatus,
    WaveStatus,
)
from campaign.templates import render

log = structlog.get_logger("carecall.campaign")

SEGMENT_KEYS = ("pathology", "tier", "departement")
PARIS = "Europe/Paris"
LATEST_ZONE = "America/Martinique"  # the westernmost zone served: a wave's last calls end there


@dataclass(frozen=True)
class Context:
    """What every use case needs: storage, policy and the one clock."""

    sessions: SessionFactory
    policy: Policy
    clock: Clock
    # how long a claim holds its task without a heartbeat (in the clock's time)
    lease: timedelta = timedelta(minutes=90)


# ------------------------------------------------------------------ themes and segments


def sync_themes(ctx: Context) -> None:
    with ctx.sessions() as s:
        for theme in ctx.policy.themes.values():
            row = s.get(ThemeRow, theme.code)
            text = pathologies_to_text(theme.pathologies)
            if row is None:
                s.add(ThemeRow(code=theme.code, label=theme.label, pathologies=text))
            else:
                row.label, row.pathologies = theme.label, text
        s.commit()


def parse_segment(text: str | None, theme: Theme, policy: Policy) -> dict[str, list[str]]:
    """'pathology=diabetes,copd; tier=high' -> clauses. Empty: the theme's pathologies."""
    if text is None or not text.strip():
        return {"pathology": list(theme.pathologies)} if theme.pathologies else {}
    if text.strip().lower() == "all":
        return {}
    clauses: dict[str, list[str]] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(
                f"segment clause {part!r}: expected key=value[,value] (keys: {', '.join(SEGMENT_KEYS)})"
            )
        key, _, values = part.partition("=")
        key = key.strip().lower()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if key not in SEGMENT_KEYS:
            raise ValueError(f"segment key {key!r} is unknown (keys: {', '.join(SEGMENT_KEYS)})")
        if not vals:
            raise ValueError(f"segment clause {part!r} has no value")
        if key == "pathology":
            bad = [v for v in vals if v not in policy.pathologies]
            if bad:
                raise ValueError(
                    f"segment: unknown pathology {bad[0]!r} (known: {', '.join(policy.pathologies)})"
                )
        if key == "tier":
            bad = [v for v in vals if v not in {t.value for t in Tier}]
            if bad:
                raise ValueError(f"segment: unknown tier {bad[0]!r} (low, medium, high)")
        clauses[key] = vals
    return clauses


def required_skills(pathologies: list[str], theme_code: str | None, policy: Policy) -> frozenset[str]:
    """Skills a nurse needs for this call: those of the pathologies the theme is about."""
    theme = policy.themes.get(theme_code or "")
    relevant = pathologies
    if theme and theme.pathologies:
        relevant = [p for p in pathologies if p in theme.pathologies] or pathologies
    return frozenset(s for p in relevant if (s := policy.skill_for(p)))


# ------------------------------------------------------------------ mailings and waves


@dataclass(frozen=True)
class MailingRecorded:
    mailing_id: int
    wave_id: int
    recipients: int
    arrives_on: date
    window_start: date
    window_end: date
    plan_after: datetime


def record_mailing(ctx: Context, theme_code: str, segment: str | None, sent_on: date) -> MailingRecorded:
    policy = ctx.policy
    theme = policy.themes.get(theme_code)
    if theme is None:
        raise NotFound(
            f"theme {theme_code!r} is not in config/themes.toml (known: {', '.join(policy.themes)})"
        )
    clauses = parse_segment(segment, theme, policy)
    hours = policy.calling_hours
    arrives = cal.add_working_days(sent_on, policy.mailing.delivery_working_days, hours)
    start = cal.add_working_days(arrives, 0, hours)
    end = cal.add_working_days(start, policy.mailing.wave_working_days - 1, hours)
    plan_day = start - timedelta(days=1)
    plan_after = cal.at_local(plan_day, time(policy.mailing.plan_hour), PARIS)
    deadline = cal.at_local(end + timedelta(days=1), time(0), LATEST_ZONE)
    sync_themes(ctx)
    now = ctx.clock.now()
    with ctx.sessions() as s:
        mailing = Mailing(
            theme_code=theme_code,
            segment=segment or "",
            sent_on=sent_on,
            arrives_on=arrives,
            created_at=now,
        )
        s.add(mailing)
        s.flush()
        assert mailing.id is not None
        recipients = mailing.recipients = store.add_recipients(s, mailing.id, clauses)
        wave = Wave(
            mailing_id=mailing.id,
            status=WaveStatus.scheduled,
            plan_after=plan_after,
            window_start=start,
            window_end=end,
            deadline=deadline,
        )
        s.add(wave)
        s.flush()
        assert wave.id is not None
        store.audit(
            s, now, "supervisor", "mailing.record", detail=f"mailing={mailing.id} recipients={recipients}"
        )
        s.commit()
        log.info(
            "mailing recorded", mailing=mailing.id, wave=wave.id, theme=theme_code, recipients=recipients
        )
        return MailingRecorded(mailing.id, wave.id, recipients, arrives, start, end, plan_after)


def get_wave(s: Session, wave_id: int) -> Wave:
    wave = s.get(Wave, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    return wave


def plan_wave(ctx: Context, wave_id: int, *, replan: bool = False) -> planning.WavePlan:
    """Place each recipient's first call on a day of the wave, within nurse capacity.

    Sized for a national wave (a million recipients) within a few times what
    PostgreSQL takes to write the tasks: the recipients are streamed into the
    planning candidates, what depends only on a patient's pathologies, place or
    time zone is computed once per distinct value, and the task rows are
    generated straight into store.insert_tasks (COPY on PostgreSQL).
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s, _cyclic_gc_paused():
        wave = get_wave(s, wave_id)
        if wave.status not in (WaveStatus.scheduled, WaveStatus.planned):
            raise InvalidTransition(
                f"wave {wave_id} is {wave.status}; only a scheduled or planned wave can be planned"
            )
        if wave.status == WaveStatus.planned and not replan:
            raise InvalidTransition(f"wave {wave_id} is already planned; use --replan to plan it again")
        mailing = s.get(Mailing, wave.mailing_id)
        assert mailing is not None and mailing.id is not None
        theme_code = mailing.theme_code
        store.delete_pending_wave_tasks(s, wave_id)
        busy = store.open_task_patients(s, exclude_wave_id=wave_id)
        counts = store.wave_task_counts_since(s, now - timedelta(days=policy.caps.period_days), wave_id)

        @functools.cache
        def skills_of(pathologies: str) -> frozenset[str]:
            return required_skills(pathologies_from_text(pathologies), theme_code, policy)

        cands = [
            planning.Candidate(
                patient_id=r.id,
                state=store.patient_state_from_row(r),
                skills=skills_of(r.pathologies),
                open_task_elsewhere=r.id in busy,
                tasks_in_period=counts.get(r.id, 0),
            )
            for r in store.recipients_rows(s, mailing.id)
        ]
        nurses = [
            planning.NurseShifts(n.id, n.level, n.skills, n.shifts, n.timezone) for n in store.nurses(s)
        ]
        days = cal.working_days(wave.window_start, wave.window_end, policy.calling_hours)
        plan = planning.plan_wave(cands, nurses, days, policy)
        state_of = {c.patient_id: c.state for c in cands}
        del cands

        @functools.cache
        def first_call(day: date, place: cal.Place) -> datetime:
            return cal.utc_intervals(day, place, policy.calling_hours)[0][0]

        @functools.cache
        def deadline_in(zone: str) -> datetime:
            return cal.at_local(wave.window_end + timedelta(days=1), time(0), zone)

        priority = {t: policy.tiers[t].priority for t in Tier}
        kind, pending = TaskKind.wave.value, TaskStatus.pending.value

        def task_rows() -> Iterator[dict[str, Any]]:
            for pid, day in plan.assignments.items():
                state = state_of[pid]
                yield {
                    "wave_id": wave_id,
                    "patient_id": pid,
                    "kind": kind,
                    "status": pending,
                    "tier": state.tier.value,
                    "priority": priority[state.tier],
                    "planned_day": day,
                    "not_before": first_call(day, state.place),
                    "deadline": deadline_in(state.place.timezone),
                    "theme_code": theme_code,
                    "attempts": 0,
                    "created_at": now,
                }

        inserted = store.insert_tasks(s, task_rows())
        notes = {
            pid: _SKIP_NOTES.get(reason, reason) for reason, ids in plan.skipped_ids.items() for pid in ids
        }
        notes.update({pid: "no nurse capacity left in the wave's window" for pid in plan.unplaced})
        store.set_plan_notes(s, mailing.id, notes)
        summary = plan.as_dict()
        summary["nurses"] = len(nurses)
        wave.plan = summary
        wave.status = WaveStatus.planned
        wave.planned_at = now
        store.audit(s, now, "scheduler", "wave.plan", detail=f"wave={wave_id} tasks={inserted}")
        s.commit()
    log.info(
        "wave planned",
        wave=wave_id,
        tasks=len(plan.assignments),
        unplaced=len(plan.unplaced),
        skipped=sum(plan.skipped.values()),
    )
    return plan


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (process-wide) until the block ends.

    Planning a national wave builds millions of small objects that are in no
    reference cycle (reference counting frees them), but every collection of the
    oldest generation walks them all again: about a third of the candidates'
    build time at 500,000 recipients. Whatever cycles the block leaves are
    collected once it is re-enabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_SKIP_NOTES = {
    "withdrawn": "withdrawn from the programme",
    "deceased": "deceased",
    "suspended": "suspended for the whole wave",
    "no_consent": "no consent to be called",
    "no_number": "no valid phone number",
    "open_task_in_other_wave": "already has an open call in another wave (overlapping waves)",
    "contact_cap": "contact cap reached for the period",
    planning.NO_NURSE_IN_WINDOW: "no nurse allowed to take the call works in the patient's calling window",
}


_TRANSITIONS = {
    "launch": ({WaveStatus.planned}, WaveStatus.running),
    "pause": ({WaveStatus.running}, WaveStatus.paused),
    "resume": ({WaveStatus.paused}, WaveStatus.running),
    "cancel": (
        {WaveStatus.scheduled, WaveStatus.planned, WaveStatus.running, WaveStatus.paused},
        WaveStatus.cancelled,
    ),
}


def change_wave(ctx: Context, wave_id: int, action: str, actor: str = "supervisor") -> Wave:
    allowed, target = _TRANSITIONS[action]
    now = ctx.clock.now()
    with ctx.sessions() as s:
        wave = get_wave(s, wave_id)
        if wave.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} wave {wave_id}: it is {wave.status} "
                f"(only from {', '.join(sorted(allowed))})"
            )
        wave.status = target
        if action == "launch":
            wave.launched_at = now
        if action == "cancel":
            n = store.cancel_open_tasks(
                s, wave_id=wave_id, now=now, reason="wave cancelled", only_pending=True
            )
            wave.closed_at = now
            log.info("wave cancelled", wave=wave_id, tasks_cancelled=n)
        store.audit(s, now, actor, f"wave.{action}", detail=f"wave={wave_id}")
        s.commit()
        log.info("wave status changed", wave=wave_id, action=action, status=target.value, actor=actor)
        return wave


# ------------------------------------------------------------------ scheduler jobs


def plan_due_waves(ctx: Context, auto_launch: bool = False) -> list[int]:
    now = ctx.clock.now()
    with ctx.sessions() as s:
        due = [w.id for w in store.waves_with_status(s, WaveStatus.scheduled) if w.plan_after <= now]
    for wid in due:
        assert wid is not None
        plan_wave(ctx, wid)
        if auto_launch:
            change_wave(ctx, wid, "launch", actor="scheduler")
    return [w for w in due if w is not None]


def keep_cadence(s: Session, patient_ids: Iterable[int], now: datetime, policy: Policy) -> None:
    """A patient the wave could not reach keeps their regular cadence from today."""
    rows = store.patients_without_future_contact(s, patient_ids, now.date())
    values = {}
    for r in rows:
        state = store.patient_state_from_row(r)
        values[r.id] = rules.next_regular_contact(cal.local_date(now, state.place), state, policy)
    store.set_next_contact(s, values)


def expire_and_close(ctx: Context) -> dict[str, int]:
    reconcile_in_flight(ctx, expired_leases=True)
    now = ctx.clock.now()
    with ctx.sessions() as s:
        expired, unreachable, patients = store.expire_due_tasks(s, now)
        keep_cadence(s, patients, now, ctx.policy)
        closed = 0
        for wave in store.waves_with_status(s, WaveStatus.running, WaveStatus.paused):
            assert wave.id is not None
            over = wave.status == WaveStatus.running or now >= wave.deadline
            if over and store.open_task_count(s, wave.id) == 0:
                wave.status = WaveStatus.done
                wave.closed_at = now
                closed += 1
        s.commit()
    if expired or unreachable or closed:
        log.info("tasks expired", expired=expired, unreachable=unreachable, waves_closed=closed)
    return {"expired": expired, "unreachable": unreachable, "waves_closed": closed}


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


def claim_and_start(ctx: Context, task_id: int, nurse_id: int, worker: str) -> Claimed | NotDialable | None:
    """Claim a task and store its attempt before anything is dialed (invariant 3).

    Returns None when another worker had it, NotDialable when the rules refuse
    the dial now (the task is moved to when they may allow it, or closed).
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        if not store.claim_task(s, task_id, worker, now, lease=ctx.lease):
            s.rollback()
            return None
        store.lock_patient_of_task(s, task_id)
        row = store.task_and_patient_row(s, task_id)
        task = row
        state = store.patient_state_from_row(row)
        history = store.dial_history(s, row.id, now, state.place)
        decision = rules.may_dial(state, history, now, policy, callback=task.kind == TaskKind.callback)
        if not decision.allowed:
            if decision.retry_at is None:
                store.release_task(
                    s,
                    task_id,
                    status=TaskStatus.cancelled,
                    now=now,
                    reason=decision.reason.value,
                    undo_attempt=True,
                )
            else:
                store.release_task(s, task_id, not_before=decision.retry_at, undo_attempt=True)
            s.commit()
            return NotDialable(decision)
        numbers = store.dialable_numbers(row.phone, row.phone_alt, row.flagged_numbers)
        number = numbers[(task.attempts - 1) % len(numbers)]
        try:
            attempt_id = store.insert_attempt(
                s,
                task_id=task_id,
                patient_id=row.id,
                nurse_id=nurse_id,
                number=number,
                state=AttemptState.in_flight,
                started_at=now,
                worker=worker,
            )
            s.commit()
        except IntegrityError:
            # the unique in-flight index: another process dialed this patient a moment ago
            s.rollback()
            with ctx.sessions() as s2:
                store.release_task(
                    s2,
                    task_id,
                    not_before=now + timedelta(minutes=policy.retry.min_gap_minutes),
                    undo_attempt=True,
                )
                s2.commit()
            return NotDialable(
                rules.Decision(
                    False,
                    rules.Reason.in_call,
                    "the patient is already in a call",
                    now + timedelta(minutes=policy.retry.min_gap_minutes),
                )
            )
        return Claimed(attempt_id, task_id, row.id, number, Tier(task.task_tier), TaskKind(task.kind))


def mark_answered(ctx: Context, attempt_id: int) -> None:
    """Stored at once; the task's lease is renewed for the length of a conversation."""
    now = ctx.clock.now()
    with ctx.sessions() as s:
        res = s.execute(
            update(ATTEMPT)
            .where(ATTEMPT.c.id == attempt_id, ATTEMPT.c.state == AttemptState.in_flight)
            .values(result=AttemptResult.answered, answered_at=now)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            s.rollback()
            raise ClaimLost(f"attempt {attempt_id} was reconciled (lease expired): hang up")
        store.renew_lease(s, attempt_id, now + ctx.lease)
        s.commit()


def finish_unanswered(
    ctx: Context, attempt_id: int, result: AttemptResult, voicemail_left: bool = False
) -> rules.RetryDecision:
    """Store the result and decide the retry in one transaction."""
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        a = s.execute(select(ATTEMPT.c.task_id, ATTEMPT.c.patient_id).where(ATTEMPT.c.id == attempt_id)).one()
        res = s.execute(
            update(ATTEMPT)
            .where(ATTEMPT.c.id == attempt_id, ATTEMPT.c.state == AttemptState.in_flight)
            .values(result=result, ended_at=now, state=AttemptState.completed, voicemail_left=voicemail_left)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            # already reconciled by the scheduler (this dialer's lease ran out): its retry is decided
            s.rollback()
            raise ClaimLost(f"attempt {attempt_id} was already reconciled")
        decision = _retry(s, a.task_id, a.patient_id, result, now, policy)
        s.commit()
        return decision


def _retry(
    s: Session, task_id: int, patient_id: int, result: AttemptResult, now: datetime, policy: Policy
) -> rules.RetryDecision:
    task = store.task_and_patient_row(s, task_id)
    state = store.patient_state_from_row(task)
    starts = tuple(store.attempt_starts(s, task_id))
    decision = rules.after_attempt(
        result, now, rules.TaskState(task.attempts, task.deadline, starts), state, policy
    )
    if task.wave_status == WaveStatus.cancelled:
        store.release_task(s, task_id, status=TaskStatus.cancelled, now=now, reason="wave cancelled")
        return rules.RetryDecision(TaskStatus.cancelled, None, "wave cancelled")
    if decision.close is not None:
        store.release_task(s, task_id, status=decision.close, now=now, reason=decision.reason)
        keep_cadence(s, [patient_id], now, policy)
    else:
        store.release_task(s, task_id, not_before=decision.next_at)
    return decision


@dataclass(frozen=True)
class OutcomeApplied:
    next_contact: rules.NextContact
    callback_task_id: int | None
    cancelled_tasks: int


def record_outcome(
    ctx: Context,
    attempt_id: int,
    code: OutcomeCode,
    nurse_id: int | None,
    *,
    callback_at: datetime | None = None,
    note: str = "",
    message_body: str | None = None,
) -> OutcomeApplied:
    """The nurse's outcome and everything it implies, stored in one transaction."""
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        a = s.execute(
            select(ATTEMPT.c.task_id, ATTEMPT.c.patient_id, ATTEMPT.c.number, ATTEMPT.c.state).where(
                ATTEMPT.c.id == attempt_id
            )
        ).one()
        task = s.execute(
            select(TASK.c.deadline, TASK.c.wave_id, TASK.c.tier, TASK.c.theme_code).where(
                TASK.c.id == a.task_id
            )
        ).one()
        row = store.patient_rule_row(s, a.patient_id)
        state = store.patient_state_from_row(row)
        decision = rules.next_contact(
            state, code, now, policy, nurse_id=nurse_id, callback_at=callback_at, task_deadline=task.deadline
        )
        s.execute(
            update(ATTEMPT)
            .where(ATTEMPT.c.id == attempt_id)
            .values(ended_at=now, state=AttemptState.completed, result=AttemptResult.answered)
        )
        s.add(
            Outcome(
                attempt_id=attempt_id,
                task_id=a.task_id,
                patient_id=a.patient_id,
                nurse_id=nurse_id,
                code=code,
                callback_at=decision.callback_at,
                note=note,
                next_contact_on=decision.next_contact_on,
                recorded_at=now,
            )
        )
        patient_values: dict[str, Any] = {"updated_at": now}
        if code in (OutcomeCode.reached, OutcomeCode.escalation, OutcomeCode.callback_requested):
            patient_values["last_contact_at"] = now
        if decision.next_contact_on != state.next_contact_on:
            patient_values["next_contact_on"] = decision.next_contact_on
        if decision.flag_number:
            patient_values["flagged_numbers"] = sorted({*(row.flagged_numbers or []), a.number})
        if decision.withdraw:
            patient_values["status"] = "withdrawn"
        s.execute(update(PATIENT).where(PATIENT.c.id == a.patient_id).values(**patient_values))
        if decision.task_status is not None:
            store.release_task(s, a.task_id, status=decision.task_status, now=now, reason=code.value)
        elif decision.retry_at is not None:
            store.release_task(s, a.task_id, not_before=decision.retry_at)
        cancelled = 0
        if decision.withdraw:
            cancelled = store.cancel_open_tasks(s, patient_id=a.patient_id, now=now, reason="opted out")
        callback_id = None
        if decision.callback_at is not None:
            deadline = max(decision.callback_at + timedelta(days=7), task.deadline)
            callback_id = int(
                s.execute(
                    TASK.insert()
                    .values(
                        wave_id=task.wave_id,
                        patient_id=a.patient_id,
                        kind=TaskKind.callback,
                        status=TaskStatus.pending,
                        tier=task.tier,
                        priority=100,
                        not_before=decision.callback_at,
                        deadline=deadline,
                        assigned_nurse_id=nurse_id,
                        theme_code=task.theme_code,
                        attempts=0,
                        created_at=now,
                    )
                    .returning(TASK.c.id)
                ).scalar_one()
            )
        if decision.message_physician:
            pat = s.execute(
                select(PATIENT.c.physician_id, PATIENT.c.member_id, PATIENT.c.timezone).where(
                    PATIENT.c.id == a.patient_id
                )
            ).one()
            theme = policy.themes.get(task.theme_code or "")
            nurse_code = s.execute(select(NURSE.c.code).where(NURSE.c.id == nurse_id)).scalar_one_or_none()
            body = message_body or render(
                "physician/escalation.fr.j2",
                member_id=pat.member_id,
                theme_label=theme.label if theme else "accompagnement",
                date=cal.local_time_of(now, pat.timezone).date(),
                nurse_code=nurse_code or "-",
                note=note,
            )
            s.add(
                PhysicianMessage(
                    physician_id=pat.physician_id,
                    patient_id=a.patient_id,
                    kind="escalation",
                    body=body,
                    created_at=now,
                )
            )
        s.commit()
    return OutcomeApplied(decision, callback_id, cancelled)


def renew_leases(ctx: Context, worker: str) -> None:
    with ctx.sessions() as s:
        store.renew_worker_leases(s, worker, ctx.clock.now() + ctx.lease)
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
    n = 0
    with ctx.sessions() as s:
        attempts = store.in_flight_attempts(s, worker, lease_expired_at=now if expired_leases else None)
        for a in attempts:
            s.execute(
                update(ATTEMPT)
                .where(ATTEMPT.c.id == a.id)
                .values(state=AttemptState.completed, result=AttemptResult.interrupted, ended_at=now)
            )
            status = s.execute(select(TASK.c.status).where(TASK.c.id == a.task_id)).scalar_one()
            if status == TaskStatus.in_progress:
                _retry(s, a.task_id, a.patient_id, AttemptResult.interrupted, now, ctx.policy)
            n += 1
        # tasks claimed but never dialed (cannot happen: claim and attempt share a transaction;
        # kept as a guard for tasks edited by hand): free them
        s.execute(
            update(TASK)
            .where(
                TASK.c.status == TaskStatus.in_progress,
                TASK.c.id.not_in(select(ATTEMPT.c.task_id).where(ATTEMPT.c.state == AttemptState.in_flight)),
                *([TASK.c.claimed_by == worker] if worker else []),
                *([TASK.c.lease_until < now] if expired_leases else []),
            )
            .values(status=TaskStatus.pending, claimed_by=None, lease_until=None)
        )
        s.commit()
    if n:
        log.warning("in-flight attempts reconciled", attempts=n)
    return n
