"""Why a patient is or is not called, why a wave is not dialing: answered from the
same rule code the dialer uses, so the explanation cannot drift from behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

from sqlalchemy import func, select

from campaign import calendar as cal
from campaign import rules, services, store
from campaign.errors import NotFound
from campaign.model import (
    ATTEMPT,
    MAILING,
    PATIENT,
    RECIPIENT,
    TASK,
    WAVE,
    CallTask,
    Mailing,
    Nurse,
    Patient,
    Wave,
)
from campaign.states import AttemptResult, EnrolmentStatus, TaskKind, TaskStatus, WaveStatus


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    blocking: bool = True


@dataclass
class Explanation:
    member_id: str
    day: date
    due: bool
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _patient(s: Any, member_id: str) -> Patient:
    p = s.exec(select(Patient).where(PATIENT.c.member_id == member_id)).scalars().first()
    if p is None:
        raise NotFound(f"no patient with member id {member_id!r}")
    return p


def patient_file(ctx: services.Context, member_id: str, actor: str) -> dict[str, Any]:
    """A person reads the file: the read is audited (invariant 5)."""
    now = ctx.clock.now()
    with ctx.sessions() as s:
        p = _patient(s, member_id)
        store.audit(s, now, actor, "patient.read", p.id, "file shown")
        s.commit()
        referent = s.get(Nurse, p.referent_nurse_id).code if p.referent_nurse_id else None  # type: ignore[union-attr]
        return {
            "member id": p.member_id,
            "name": f"{p.first_name} {p.last_name}",
            "born": p.birth_date,
            "phone": p.phone,
            "phone 2": p.phone_alt or "-",
            "wrong numbers": ", ".join(p.flagged_numbers) or "-",
            "address": f"{p.postal_code} {p.city}",
            "time zone": p.timezone,
            "pathologies": p.pathologies.strip("|"),
            "tier": p.tier,
            "status": p.status,
            "consent": p.consent,
            "preferred window": f"{p.preferred_start}-{p.preferred_end}" if p.preferred_start else "-",
            "référent": referent or "-",
            "last contact": p.last_contact_at or "-",
            "next contact": p.next_contact_on or "-",
        }


def explain_patient(ctx: services.Context, member_id: str, day: date | None, actor: str) -> Explanation:
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        p = _patient(s, member_id)
        assert p.id is not None
        store.audit(s, now, actor, "patient.why", p.id, f"day={day}")
        s.commit()
        row = store.patient_rule_row(s, p.id)
        state = store.patient_state_from_row(row)
        day = day or cal.local_date(now, state.place)
        exp = Explanation(member_id, day, False, "")
        f = exp.findings
        # standing rules, checked at the first window of the day (or noon when there is none)
        windows = cal.utc_intervals(day, state.place, policy.calling_hours)
        probe = windows[0][0] if windows else cal.at_local(day, time(12), state.place.timezone)
        if day == cal.local_date(now, state.place) and any(a <= now < b for a, b in windows):
            probe = now
        history = store.dial_history(s, p.id, probe, state.place, full=True)
        decision = rules.may_dial(state, history, probe, policy)
        f.append(
            Finding(
                "status",
                # suspended counts as ok only once the suspension is over on that day
                state.status == EnrolmentStatus.enrolled
                or (state.status == EnrolmentStatus.suspended and decision.reason != rules.Reason.suspended),
                f"{state.status.value}"
                + (f" until {state.suspended_until}" if state.suspended_until else ""),
            )
        )
        f.append(Finding("consent", state.consent, "recorded" if state.consent else "no consent recorded"))
        f.append(
            Finding(
                "phone numbers",
                state.dialable_numbers > 0,
                f"{state.dialable_numbers} dialable, {len(p.flagged_numbers)} flagged wrong",
            )
        )
        local = cal.local_windows(day, state.place, policy.calling_hours)
        holiday = cal.holiday_name(day, state.place.departement) if policy.calling_hours.holidays else None
        if holiday:
            f.append(
                Finding(
                    "calendar",
                    False,
                    f"{day} is a holiday where the patient lives ({holiday}, "
                    f"département {state.place.departement})",
                )
            )
        elif not local:
            f.append(Finding("calendar", False, f"no calling hours on {day:%A}s"))
        else:
            f.append(
                Finding(
                    "calling window",
                    True,
                    f"{', '.join(str(w) for w in local)} local time "
                    f"({state.place.timezone})"
                    + (" — the patient's preferred window" if p.preferred_start else ""),
                )
            )
        f.append(
            Finding(
                "contact cap",
                history.dials_on_day < policy.caps.max_attempts_per_day,
                f"{history.dials_on_day} dials on {day} (cap {policy.caps.max_attempts_per_day} a day)",
            )
        )
        if history.last_dial_at:
            f.append(
                Finding(
                    "last dial",
                    decision.reason != rules.Reason.min_gap,
                    f"{history.last_dial_at:%Y-%m-%d %H:%M} UTC (minimum gap "
                    f"{policy.retry.min_gap_minutes} min)",
                )
            )
        # tasks
        tasks = s.execute(
            select(CallTask, WAVE.c.status)
            .outerjoin(Wave, WAVE.c.id == TASK.c.wave_id)
            .where(TASK.c.patient_id == p.id)
            .order_by(TASK.c.id.desc())
            .limit(10)
        ).all()
        open_tasks = [(t, ws) for t, ws in tasks if t.status in store.OPEN_TASK_STATUSES]
        day_end = cal.at_local(day + timedelta(days=1), time(0), state.place.timezone)
        due_task = None
        for t, wave_status in open_tasks:
            label = f"task {t.id} ({t.kind}{', wave ' + str(t.wave_id) if t.wave_id else ''})"
            if wave_status and wave_status != WaveStatus.running:
                f.append(Finding(label, False, f"its wave is {wave_status}: nothing is dialed until it runs"))
                exp.changes.append(
                    f"carecall wave {'launch' if wave_status == WaveStatus.planned else 'resume'} {t.wave_id}"
                    if wave_status in (WaveStatus.planned, WaveStatus.paused)
                    else f"the scheduler plans wave {t.wave_id} from {_wave_plan_after(s, t.wave_id)}"
                )
                continue
            if t.status == TaskStatus.in_progress:
                f.append(Finding(label, False, "a call is under way now"))
                continue
            if t.not_before >= day_end:
                f.append(
                    Finding(
                        label,
                        False,
                        f"next attempt not before {t.not_before:%Y-%m-%d %H:%M} UTC "
                        f"({_why_not_before(s, t)})",
                    )
                )
                exp.changes.append(f"wait until {cal.local_date(t.not_before, state.place)}")
                continue
            if t.deadline <= probe:
                f.append(Finding(label, False, "its wave's window is over; it will be closed"))
                continue
            f.append(
                Finding(
                    label,
                    True,
                    f"due from {t.not_before:%Y-%m-%d %H:%M} UTC, "
                    f"attempt {t.attempts + 1} of at most {policy.retry.max_attempts}"
                    + (f", planned for {t.planned_day}" if t.planned_day else ""),
                )
            )
            due_task = t
        if not open_tasks:
            note = _recipient_note(s, p.id)
            if note:
                f.append(Finding("waves", False, note))
            else:
                f.append(Finding("waves", False, "no open call task: not in a wave being dialed"))
            if p.next_contact_on:
                f.append(
                    Finding(
                        "next regular contact",
                        p.next_contact_on > day,
                        f"{p.next_contact_on} (tier {p.tier} cadence "
                        f"{policy.tiers[state.tier].cadence_days} days)",
                        blocking=False,
                    )
                )
                exp.changes.append("record a mailing whose segment includes this patient")
        if not decision.allowed:
            f.append(Finding("rules", False, f"{decision.reason.value}: {decision.detail}"))
            if decision.retry_at:
                exp.changes.append(
                    f"the rules allow a call again from {decision.retry_at:%Y-%m-%d %H:%M} UTC"
                )
        exp.due = decision.allowed and due_task is not None
        if exp.due:
            exp.verdict = "due to be called on this day"
        else:
            first = next((x for x in f if not x.ok and x.blocking), None)
            exp.verdict = f"not called on this day: {first.check} — {first.detail}" if first else "not due"
        return exp


def _wave_plan_after(s: Any, wave_id: int | None) -> str:
    w = s.get(Wave, wave_id)
    return f"{w.plan_after:%Y-%m-%d %H:%M} UTC" if w else "?"


def _why_not_before(s: Any, t: CallTask) -> str:
    last = s.execute(
        select(ATTEMPT.c.result, ATTEMPT.c.ended_at)
        .where(ATTEMPT.c.task_id == t.id)
        .order_by(ATTEMPT.c.started_at.desc())
        .limit(1)
    ).first()
    if last is None:
        return f"planned day {t.planned_day}" if t.planned_day else "scheduled"
    if t.kind == TaskKind.callback:
        return "the callback time the patient asked for"
    result = AttemptResult(last.result) if last.result else None
    return f"retry after {result.value if result else 'an interrupted call'}"


def _recipient_note(s: Any, patient_id: int) -> str | None:
    row = s.execute(
        select(RECIPIENT.c.plan_note, MAILING.c.id, MAILING.c.theme_code)
        .join(MAILING, MAILING.c.id == RECIPIENT.c.mailing_id)
        .where(RECIPIENT.c.patient_id == patient_id, RECIPIENT.c.plan_note.is_not(None))
        .order_by(MAILING.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return f"left out of mailing {row.id} ({row.theme_code}): {row.plan_note}"


@dataclass
class WaveExplanation:
    wave_id: int
    theme: str
    status: str
    window_start: date
    window_end: date
    plan: dict[str, Any]
    tasks: dict[str, int]
    reasons: list[str]


def explain_wave(ctx: services.Context, wave_id: int) -> WaveExplanation:
    """Progress, and why the planned tasks are not being dialed right now."""
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        wave = services.get_wave(s, wave_id)
        mailing = s.get(Mailing, wave.mailing_id)
        assert mailing is not None
        counts = store.task_status_counts(s, wave_id)
        reasons: list[str] = []
        if wave.status == WaveStatus.scheduled:
            reasons.append(
                f"not planned yet: the scheduler plans it from {wave.plan_after:%Y-%m-%d %H:%M} UTC "
                f"(or now: carecall wave plan {wave_id})"
            )
        elif wave.status == WaveStatus.planned:
            reasons.append(
                f"planned but not launched: nothing is dialed until carecall wave launch {wave_id}"
            )
        elif wave.status == WaveStatus.paused:
            reasons.append(f"paused: resume with carecall wave resume {wave_id}")
        elif wave.status in (WaveStatus.done, WaveStatus.cancelled):
            reasons.append(f"the wave is {wave.status}")
        else:
            pending = counts.get(TaskStatus.pending, 0)
            due_now = s.execute(
                select(func.count()).where(
                    TASK.c.wave_id == wave_id,
                    TASK.c.status == TaskStatus.pending,
                    TASK.c.not_before <= now,
                )
            ).scalar_one()
            later = pending - due_now
            if later:
                nxt = s.execute(
                    select(func.min(TASK.c.not_before)).where(
                        TASK.c.wave_id == wave_id,
                        TASK.c.status == TaskStatus.pending,
                        TASK.c.not_before > now,
                    )
                ).scalar_one()
                reasons.append(
                    f"{later} pending tasks wait for their planned day or retry time "
                    f"(next from {nxt:%Y-%m-%d %H:%M} UTC)"
                )
            if due_now:
                sample = s.execute(
                    select(TASK.c.patient_id)
                    .where(
                        TASK.c.wave_id == wave_id,
                        TASK.c.status == TaskStatus.pending,
                        TASK.c.not_before <= now,
                    )
                    .limit(500)
                ).all()
                why: dict[str, int] = {}
                for (pid,) in sample:
                    row = store.patient_rule_row(s, pid)
                    st = store.patient_state_from_row(row)
                    d = rules.may_dial(st, store.dial_history(s, pid, now, st.place), now, policy)
                    key = (
                        "may be dialed now: waiting for a ready, qualified nurse"
                        if d.allowed
                        else d.reason.value
                    )
                    why[key] = why.get(key, 0) + 1
                detail = ", ".join(f"{k}: {v}" for k, v in sorted(why.items(), key=lambda kv: -kv[1]))
                reasons.append(f"{due_now} tasks are due now; of {len(sample)} examined — {detail}")
            if not pending and not counts.get(TaskStatus.in_progress):
                reasons.append("no task left to dial; the wave closes at its next check")
        return WaveExplanation(
            wave_id,
            mailing.theme_code,
            wave.status,
            wave.window_start,
            wave.window_end,
            wave.plan,
            counts,
            reasons,
        )
