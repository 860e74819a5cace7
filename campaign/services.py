"""Use cases of the programme. Each opens one transaction, commits it, and
returns plain data. The CLI, the scheduler's jobs and the dialer call these.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterable, Iterator, Sequence
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
    OUTCOME,
    PATIENT,
    TASK,
    Mailing,
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


ClaimResult = Claimed | NotDialable | None


def claim_and_start(ctx: Context, task_id: int, nurse_id: int, worker: str) -> ClaimResult:
    """Claim one task for a nurse; see `claim_and_start_many`."""
    return claim_and_start_many(ctx, [(task_id, nurse_id)], worker)[0]


def claim_and_start_many(ctx: Context, offers: Sequence[tuple[int, int]], worker: str) -> list[ClaimResult]:
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
                callback = r.kind == TaskKind.callback
                decision = rules.may_dial(states[r.task_id], history, now, policy, callback=callback)
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
            s.commit()
    except IntegrityError:
        # the unique in-flight index: another process dialed one of these patients a moment ago
        if len(offers) > 1:
            return [claim_and_start(ctx, t, n, worker) for t, n in offers]  # one by one, to find which
        return [_patient_in_call(ctx, offers[0][0], now)]
    for (r, number), attempt_id in zip(starts, attempt_ids, strict=True):
        results[r.task_id] = Claimed(attempt_id, r.task_id, r.id, number, Tier(r.task_tier), TaskKind(r.kind))
    return [results.get(task_id) for task_id, _ in offers]


def _patient_in_call(ctx: Context, task_id: int, now: datetime) -> NotDialable:
    retry_at = now + timedelta(minutes=ctx.policy.retry.min_gap_minutes)
    with ctx.sessions() as s:
        store.release_task(s, task_id, not_before=retry_at, undo_attempt=True)
        s.commit()
    return NotDialable(
        rules.Decision(False, rules.Reason.in_call, "the patient is already in a call", retry_at)
    )


def mark_answered(ctx: Context, attempt_id: int) -> None:
    if not mark_answered_many(ctx, [attempt_id]):
        raise ClaimLost(f"attempt {attempt_id} was reconciled (lease expired): hang up")


def mark_answered_many(ctx: Context, attempt_ids: Sequence[int]) -> set[int]:
    """Stored at once; the tasks' leases are renewed for the length of a conversation.

    Returns the attempts stored as answered; the others were reconciled meanwhile
    (their dialer's lease ran out) and must be hung up.
    """
    now = ctx.clock.now()
    with ctx.sessions() as s:
        rows = s.execute(
            update(ATTEMPT)
            .where(store.one_of(s, ATTEMPT.c.id, attempt_ids), ATTEMPT.c.state == AttemptState.in_flight)
            .values(result=AttemptResult.answered, answered_at=now)
            .returning(ATTEMPT.c.id, ATTEMPT.c.task_id)
        ).all()
        store.renew_task_leases(s, [r.task_id for r in rows], now + ctx.lease)
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
    ctx: Context, ends: Sequence[tuple[int, AttemptResult, bool]]
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
        done: dict[int, tuple[int, int, AttemptResult]] = {}
        for (result, voicemail), ids in groups.items():
            for r in s.execute(
                update(ATTEMPT)
                .where(store.one_of(s, ATTEMPT.c.id, ids), ATTEMPT.c.state == AttemptState.in_flight)
                .values(result=result, ended_at=now, state=AttemptState.completed, voicemail_left=voicemail)
                .returning(ATTEMPT.c.id, ATTEMPT.c.task_id, ATTEMPT.c.patient_id)
            ).all():
                done[r.id] = (r.task_id, r.patient_id, result)
        decisions = dict(zip(done, _retry_many(s, list(done.values()), now, policy), strict=True))
        s.commit()
    return [decisions.get(attempt_id) for attempt_id, _, _ in ends]


def _retry_many(
    s: Session, ended: Sequence[tuple[int, int, AttemptResult]], now: datetime, policy: Policy
) -> list[rules.RetryDecision]:
    """After unanswered attempts (task, patient, result): retry each task later, or close it."""
    task_ids = [task_id for task_id, _, _ in ended]
    rows = store.tasks_with_patients(s, task_ids)
    starts = store.attempt_starts(s, task_ids)
    releases: list[store.Release] = []
    closed_patients: list[int] = []
    out: list[rules.RetryDecision] = []
    for task_id, patient_id, result in ended:
        task = rows[task_id]
        if task.wave_status == WaveStatus.cancelled:
            releases.append(store.Release(task_id, TaskStatus.cancelled, reason="wave cancelled"))
            out.append(rules.RetryDecision(TaskStatus.cancelled, None, "wave cancelled"))
            continue
        state = store.patient_state_from_row(task)
        decision = rules.after_attempt(
            result, now, rules.TaskState(task.attempts, task.deadline, tuple(starts[task_id])), state, policy
        )
        if decision.close is not None:
            releases.append(store.Release(task_id, decision.close, reason=decision.reason))
            closed_patients.append(patient_id)
        else:
            releases.append(store.Release(task_id, not_before=decision.next_at))
        out.append(decision)
    store.release_tasks(s, releases, now)
    if closed_patients:
        keep_cadence(s, closed_patients, now, policy)
    return out


@dataclass(frozen=True)
class OutcomeApplied:
    next_contact: rules.NextContact
    callback_task_id: int | None
    cancelled_tasks: int


@dataclass(frozen=True)
class OutcomeEntry:
    """What a nurse says of an answered call."""

    attempt_id: int
    code: OutcomeCode
    nurse_id: int | None
    callback_at: datetime | None = None
    note: str = ""
    message_body: str | None = None


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
    entry = OutcomeEntry(attempt_id, code, nurse_id, callback_at, note, message_body)
    return record_outcomes(ctx, [entry])[0]


def record_outcomes(ctx: Context, entries: Sequence[OutcomeEntry]) -> list[OutcomeApplied]:
    """Nurses' outcomes and everything they imply, stored in one transaction.

    Applied in rounds of one entry per patient, so that two outcomes for one
    patient (rare) each see what the other wrote.
    """
    policy, now = ctx.policy, ctx.clock.now()
    applied: dict[int, OutcomeApplied] = {}
    with ctx.sessions() as s:
        pending = list(entries)
        while pending:
            rows = store.outcome_rows(s, [e.attempt_id for e in pending])
            seen: set[int] = set()
            this_round: list[tuple[OutcomeEntry, Any]] = []
            later: list[OutcomeEntry] = []
            for e in pending:
                row = rows.get(e.attempt_id)
                if row is None:
                    raise NotFound(f"attempt {e.attempt_id} does not exist")
                if row.id in seen:
                    later.append(e)
                else:
                    seen.add(row.id)
                    this_round.append((e, row))
            applied.update(_apply_outcomes(s, this_round, now, policy))
            pending = later
        s.commit()
    return [applied[e.attempt_id] for e in entries]


_CONTACT_CODES = (OutcomeCode.reached, OutcomeCode.escalation, OutcomeCode.callback_requested)


def _apply_outcomes(
    s: Session, entries: Sequence[tuple[OutcomeEntry, Any]], now: datetime, policy: Policy
) -> dict[int, OutcomeApplied]:
    """The common writes in a few statements for all entries; the rarer consequences one by one."""
    outcomes: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    releases: list[store.Release] = []
    decisions: list[rules.NextContact] = []
    for e, row in entries:
        state = store.patient_state_from_row(row)
        d = rules.next_contact(
            state,
            e.code,
            now,
            policy,
            nurse_id=e.nurse_id,
            callback_at=e.callback_at,
            task_deadline=row.deadline,
        )
        decisions.append(d)
        outcomes.append(
            {
                "attempt_id": e.attempt_id,
                "task_id": row.task_id,
                "patient_id": row.id,
                "nurse_id": e.nurse_id,
                "code": e.code.value,
                "callback_at": d.callback_at,
                "note": e.note,
                "next_contact_on": d.next_contact_on,
                "recorded_at": now,
            }
        )
        flagged = list(row.flagged_numbers or [])
        patients.append(
            {
                "p_id": row.id,
                "p_updated_at": now,
                "p_last_contact_at": now if e.code in _CONTACT_CODES else row.last_contact_at,
                "p_next_contact_on": d.next_contact_on,
                "p_flagged_numbers": sorted({*flagged, row.number}) if d.flag_number else flagged,
                "p_status": "withdrawn" if d.withdraw else row.status,
            }
        )
        if d.task_status is not None:
            releases.append(store.Release(row.task_id, d.task_status, reason=e.code.value))
        elif d.retry_at is not None:
            releases.append(store.Release(row.task_id, not_before=d.retry_at))
    s.execute(
        update(ATTEMPT)
        .where(store.one_of(s, ATTEMPT.c.id, [e.attempt_id for e, _ in entries]))
        .values(ended_at=now, state=AttemptState.completed, result=AttemptResult.answered)
    )
    s.execute(OUTCOME.insert(), outcomes)
    store.update_patients_after_outcome(s, patients)
    store.release_tasks(s, releases, now)
    out: dict[int, OutcomeApplied] = {}
    for (e, row), d in zip(entries, decisions, strict=True):
        cancelled = 0
        if d.withdraw:
            cancelled = store.cancel_open_tasks(s, patient_id=row.id, now=now, reason="opted out")
        callback_id = None
        if d.callback_at is not None:
            callback_id = _insert_callback(s, row, d.callback_at, e.nurse_id, now)
        if d.message_physician:
            _message_physician(s, row, e, now, policy)
        out[e.attempt_id] = OutcomeApplied(d, callback_id, cancelled)
    return out


def _insert_callback(s: Session, row: Any, at: datetime, nurse_id: int | None, now: datetime) -> int:
    """The callback a patient asked for, promised by this nurse; it may outlive the wave by a week."""
    return int(
        s.execute(
            TASK.insert()
            .values(
                wave_id=row.wave_id,
                patient_id=row.id,
                kind=TaskKind.callback,
                status=TaskStatus.pending,
                tier=row.task_tier,
                priority=100,
                not_before=at,
                deadline=max(at + timedelta(days=7), row.deadline),
                assigned_nurse_id=nurse_id,
                theme_code=row.theme_code,
                attempts=0,
                created_at=now,
            )
            .returning(TASK.c.id)
        ).scalar_one()
    )


def _message_physician(s: Session, row: Any, e: OutcomeEntry, now: datetime, policy: Policy) -> None:
    pat = s.execute(
        select(PATIENT.c.physician_id, PATIENT.c.member_id, PATIENT.c.timezone).where(PATIENT.c.id == row.id)
    ).one()
    theme = policy.themes.get(row.theme_code or "")
    nurse_code = s.execute(select(NURSE.c.code).where(NURSE.c.id == e.nurse_id)).scalar_one_or_none()
    body = e.message_body or render(
        "physician/escalation.fr.j2",
        member_id=pat.member_id,
        theme_label=theme.label if theme else "accompagnement",
        date=cal.local_time_of(now, pat.timezone).date(),
        nurse_code=nurse_code or "-",
        note=e.note,
    )
    s.add(
        PhysicianMessage(
            physician_id=pat.physician_id, patient_id=row.id, kind="escalation", body=body, created_at=now
        )
    )


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
                _retry_many(s, [(a.task_id, a.patient_id, AttemptResult.interrupted)], now, ctx.policy)
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
