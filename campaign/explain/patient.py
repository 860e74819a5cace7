"""Why a patient is or is not called on a day, and what would change it.

Answered from the same rule code the dialer uses (`rules.may_dial`, the dial
histories the claims read), so the explanation cannot drift from behaviour.
Times are the patient's local time with the zone named; a call is only
promised when the rules would allow it before the task's wave ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from campaign import besttime, rules, services, store
from campaign import calendar as cal
from campaign.errors import NotFound
from campaign.policy import Policy
from campaign.states import AttemptResult, EnrolmentStatus, TaskKind, TaskStatus, WaveStatus
from campaign.store import answers

# how many refusals `_next_allowed` follows before it gives up (each moves time forward)
_MAX_STEPS = 50


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


def local_text(instant: datetime, zone: str) -> str:
    """'2026-12-08 09:00 (Indian/Reunion)': the patient's wall clock, zone named."""
    return f"{cal.local_time_of(instant, zone):%Y-%m-%d %H:%M} ({zone})"


def _patient(s: Any, member_id: str) -> Any:
    p = store.patient_by_member_id(s, member_id)
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
        referent = store.nurse_code(s, p.referent_nurse_id)
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


class _Histories:
    """The patient's dial history at any instant, from the attempts stored now (no new dial assumed)."""

    def __init__(self, attempts: list[tuple[datetime, str]], place: cal.Place, last_dial: datetime | None):
        self.attempts, self.place, self.last_dial = attempts, place, last_dial

    def at(self, instant: datetime) -> rules.DialHistory:
        h = store.history_from_attempts(self.attempts, instant, self.place)
        if h.last_dial_at is None and self.last_dial is not None and self.last_dial <= instant:
            return rules.DialHistory(h.in_call, self.last_dial, h.dials_on_day)
        return h


def _next_allowed(
    state: rules.PatientState,
    histories: _Histories,
    start: datetime,
    until: datetime,
    policy: Policy,
    requested: bool,
) -> tuple[datetime | None, rules.Decision]:
    """The first instant from `start`, before `until`, at which the rules allow a dial.

    Follows each refusal's `retry_at` (holiday, outside hours, gap, daily cap,
    suspension) as the dialer would; None when no such instant exists, with
    the last refusal.
    """
    at = start
    decision = rules.may_dial(state, histories.at(at), at, policy, requested=requested)
    for _ in range(_MAX_STEPS):
        if decision.allowed:
            return at, decision
        if decision.retry_at is None or decision.retry_at >= until:
            return None, decision
        at = max(decision.retry_at, at + timedelta(seconds=1))
        decision = rules.may_dial(state, histories.at(at), at, policy, requested=requested)
    return None, decision


def explain_patient(ctx: services.Context, member_id: str, day: date | None, actor: str) -> Explanation:
    """Is the patient due to be called on `day` (their local day; default today), and why (not)."""
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        p = _patient(s, member_id)
        assert p.id is not None
        store.audit(s, now, actor, "patient.why", p.id, f"day={day}")
        s.commit()
        state = store.patient_state_from_row(store.patient_rule_row(s, p.id))
        place, zone = state.place, state.place.timezone
        today = cal.local_date(now, place)
        day = day or today
        exp = Explanation(p.member_id, day, False, "")
        f = exp.findings
        day_start = cal.at_local(day, time(0), zone)
        day_end = cal.at_local(day + timedelta(days=1), time(0), zone)
        # from when on that day a call could still happen: now, for today
        from_ = max(now, day_start)
        windows = cal.utc_intervals(day, place, policy.calling_hours)
        left = [(max(a, from_), b) for a, b in windows if b > from_]
        probe = left[0][0] if left else (windows[0][0] if windows else cal.at_local(day, time(12), zone))
        histories = _Histories(
            store.patient_attempts_since(s, p.id, min(probe, now) - store.HISTORY_LOOKBACK),
            place,
            store.last_dial(s, p.id),
        )
        history = histories.at(probe)
        decision = rules.may_dial(state, history, probe, policy)

        _standing_findings(f, state, decision, p, day, policy, history)
        if day < today:
            f.append(Finding("day", False, f"{day} is over where the patient lives (today is {today})"))
        elif windows and not left:
            last_end = cal.local_time_of(windows[-1][1], zone)
            f.append(
                Finding(
                    "calling day",
                    False,
                    f"the patient's calling day is over: the last window closed at {last_end:%H:%M} ({zone})",
                )
            )

        due_at: datetime | None = None
        open_tasks = [t for t in store.recent_tasks(s, p.id) if t.status in store.OPEN_TASK_STATUSES]
        model = _answer_model(s, p, state, today, policy) if open_tasks else None
        for t in open_tasks:
            at = _explain_task(s, exp, t, state, histories, left, from_, day_end, policy)
            if model is not None and t.best_band is not None and t.answer_p is not None:
                f.append(_best_time(t, model, zone))
            if t.ahead_of is not None:
                f.append(_ahead(t, zone))
            if at is not None and (due_at is None or at < due_at):
                due_at = at
        if not open_tasks:
            note = store.recipient_note(s, p.id)
            if note is not None:
                f.append(
                    Finding(
                        "waves", False, f"left out of mailing {note.id} ({note.theme_code}): {note.plan_note}"
                    )
                )
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
            if state.dialable_numbers > 0:
                exp.changes.append("record a mailing whose segment includes this patient")
        if not decision.allowed and due_at is None:
            f.append(Finding("rules", False, f"{decision.reason.value}: {_local_detail(decision, zone)}"))
        exp.due = due_at is not None
        if exp.due:
            assert due_at is not None
            exp.verdict = f"due to be called on this day, from {local_text(due_at, zone)}"
        else:
            first = next((x for x in f if not x.ok and x.blocking), None)
            exp.verdict = f"not called on this day: {first.check} — {first.detail}" if first else "not due"
        if state.dialable_numbers <= 0:
            exp.changes.append("import the patient's file again with a new phone number")
        return exp


def _answer_model(
    s: Any, p: Any, state: rules.PatientState, today: date, policy: Policy
) -> besttime.AnswerModel | None:
    """The patient's answer model as it stands (best time to call), None when best time is off."""
    if not policy.outreach.best_time:
        return None
    keys = besttime.cohort_keys(p.birth_date, today, state.place.departement, state.tier.value)
    o = policy.outreach
    return answers.models_for(s, {p.id: keys}, o.best_time_base_rate, o.best_time_prior_weight)[p.id]


def _best_time(t: Any, model: besttime.AnswerModel, zone: str) -> Finding:
    """The estimate that placed the task's call, and the same band's estimate now."""
    return Finding(
        f"best time (task {t.id})",
        True,
        f"placed at {local_text(t.not_before, zone)} in {besttime.band_label(t.best_band)}, "
        f"estimated answer probability {t.answer_p:.0%} then; now {model.at(t.best_band).describe()}",
        blocking=False,
    )


def _ahead(t: Any, zone: str) -> Finding:
    """Why the first call came before its planned time (dialer/ahead.py)."""
    return Finding(
        f"work ahead (task {t.id})",
        True,
        f"its first call was planned for {local_text(t.ahead_of, zone)}; "
        "a nurse with no call due made it earlier",
        blocking=False,
    )


def _local_detail(decision: rules.Decision, zone: str) -> str:
    if decision.retry_at is None:
        return decision.detail
    return f"{decision.detail} (the rules allow it again from {local_text(decision.retry_at, zone)})"


def _standing_findings(
    f: list[Finding],
    state: rules.PatientState,
    decision: rules.Decision,
    p: Any,
    day: date,
    policy: Policy,
    history: rules.DialHistory,
) -> None:
    """Status, consent, numbers, calendar, cap, last dial: what holds whatever the task."""
    zone = state.place.timezone
    f.append(
        Finding(
            "status",
            # suspended counts as ok only once the suspension is over on that day
            state.status == EnrolmentStatus.enrolled
            or (state.status == EnrolmentStatus.suspended and decision.reason != rules.Reason.suspended),
            f"{state.status.value}" + (f" until {state.suspended_until}" if state.suspended_until else ""),
        )
    )
    f.append(Finding("consent", state.consent, "recorded" if state.consent else "no consent recorded"))
    f.append(
        Finding(
            "phone numbers",
            state.dialable_numbers > 0,
            f"{state.dialable_numbers} dialable, {len(p.flagged_numbers)} flagged wrong"
            + (
                ""
                if state.dialable_numbers > 0
                else ": on the list of files to fix (carecall patients to-fix)"
            ),
        )
    )
    local = cal.local_windows(day, state.place, policy.calling_hours)
    holiday = cal.holiday_name(day, state.place.departement) if policy.calling_hours.holidays else None
    if holiday:
        f.append(
            Finding(
                "calendar",
                False,
                f"{day} is a holiday where the patient lives "
                f"({holiday}, département {state.place.departement})",
            )
        )
    elif not local:
        f.append(Finding("calendar", False, f"no calling hours on {day:%A}s"))
    else:
        f.append(
            Finding(
                "calling window",
                True,
                f"{', '.join(str(w) for w in local)} local time ({zone})"
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
                f"{local_text(history.last_dial_at, zone)} (minimum gap {policy.retry.min_gap_minutes} min)",
            )
        )


def _explain_task(
    s: Any,
    exp: Explanation,
    t: Any,
    state: rules.PatientState,
    histories: _Histories,
    left: list[tuple[datetime, datetime]],
    from_: datetime,
    day_end: datetime,
    policy: Policy,
) -> datetime | None:
    """One open task's finding; the instant on that day it may be dialed, if any."""
    f, zone = exp.findings, state.place.timezone
    label = f"task {t.id} ({t.kind}{', wave ' + str(t.wave_id) if t.wave_id else ''})"
    if t.wave_status and t.wave_status != WaveStatus.running:
        f.append(Finding(label, False, f"its wave is {t.wave_status}: nothing is dialed until it runs"))
        if t.wave_status in (WaveStatus.planned, WaveStatus.paused):
            action = "launch" if t.wave_status == WaveStatus.planned else "resume"
            exp.changes.append(f"carecall wave {action} {t.wave_id}")
        elif t.wave_status == WaveStatus.scheduled:
            exp.changes.append(
                f"the scheduler plans wave {t.wave_id} from {local_text(t.plan_after, services.PARIS)}"
            )
        return None
    if t.status == TaskStatus.in_progress:
        f.append(Finding(label, False, "a call is under way now"))
        return None
    if t.deadline <= from_:
        f.append(Finding(label, False, "its wave's window is over; it will be closed"))
        return None
    requested = rules.requested_dial(t.kind, t.attempts + 1)
    # the earliest instant of the day the task is due and the rules allow it
    start = max(t.not_before, from_)
    until = min(day_end, t.deadline)
    due_at = None
    if left and start < until:
        due_at, _ = _next_allowed(state, histories, start, until, policy, requested)
    attempt = f"attempt {t.attempts + 1} of at most {policy.max_attempts(state.tier)}"
    if due_at is not None:
        f.append(
            Finding(
                label,
                True,
                f"due from {local_text(due_at, zone)}, {attempt}"
                + (f", planned for {t.planned_day}" if t.planned_day else ""),
            )
        )
        return due_at
    # not on that day: when then, if ever before the wave ends
    nxt, why = _next_allowed(state, histories, max(t.not_before, from_), t.deadline, policy, requested)
    waits = f"waits for {_why_not_before(s, t)} (not before {local_text(t.not_before, zone)})"
    if nxt is None:
        detail = (
            f"no call the rules allow before its wave ends ({local_text(t.deadline, zone)}): "
            f"{why.reason.value} — {why.detail}"
        )
        f.append(Finding(label, False, detail))
        exp.changes.append("nothing before the wave ends: the patient keeps their regular cadence")
        return None
    if t.not_before >= day_end:
        f.append(Finding(label, False, waits))
    else:
        f.append(Finding(label, False, f"{why.reason.value}: {why.detail}"))
    exp.changes.append(f"the next call the rules allow: {local_text(nxt, zone)}")
    return None


def _why_not_before(s: Any, t: Any) -> str:
    tried, result = store.last_attempt_result(s, t.id)
    if not tried:
        if t.kind == TaskKind.callback:
            return "the callback time the patient asked for"
        return f"its planned day {t.planned_day}" if t.planned_day else "its time"
    if result is None:
        return "a retry after an interrupted call"
    return f"a retry after {AttemptResult(result).value}"
