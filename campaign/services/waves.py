"""Themes, segments, mailings and their waves: record, plan, launch, pause, resume,
cancel; the scheduler's planning and closing jobs."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import structlog
from sqlmodel import Session

from campaign import baseline, planning, store
from campaign import calendar as cal
from campaign.errors import InvalidArgument, InvalidTransition, NotFound
from campaign.model import Wave, pathologies_to_text
from campaign.policy import Policy, Theme, Tier
from campaign.services import wave_tasks
from campaign.services.base import Context, keep_cadence
from campaign.services.dialing import reconcile_in_flight
from campaign.states import WaveStatus

log = structlog.get_logger("carecall.campaign")


SEGMENT_KEYS = ("pathology", "tier", "departement")
PARIS = "Europe/Paris"
LATEST_ZONE = "America/Martinique"  # the westernmost zone served: a wave's last calls end there


# ------------------------------------------------------------------ themes and segments


def sync_themes(ctx: Context) -> None:
    """The themes of config/themes.toml, mirrored so mailings can reference them."""
    with ctx.sessions() as s:
        store.sync_themes(
            s, [(th.code, th.label, pathologies_to_text(th.pathologies)) for th in ctx.policy.themes.values()]
        )
        s.commit()


def parse_segment(text: str | None, theme: Theme, policy: Policy) -> dict[str, list[str]]:
    """'pathology=diabetes,copd; tier=high' -> clauses; None: the theme's patients; 'all': everyone.

    A letter about one theme goes to the patients it is about: a segment that
    names no pathology keeps the theme's, and one that names a pathology the
    theme is not about is refused. A segment given but empty or made of empty
    clauses (";;;") is refused rather than read as everyone.
    """
    theme_pathologies = {"pathology": list(theme.pathologies)} if theme.pathologies else {}
    if text is None:
        return theme_pathologies
    if text.strip().lower() == "all":
        return {}
    clauses: dict[str, list[str]] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise InvalidArgument(
                f"--segment: clause {part!r}: expected key=value[,value] (keys: {', '.join(SEGMENT_KEYS)})"
            )
        key, _, values = part.partition("=")
        key = key.strip().lower()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if key not in SEGMENT_KEYS:
            raise InvalidArgument(f"--segment: key {key!r} is unknown (keys: {', '.join(SEGMENT_KEYS)})")
        if not vals:
            raise InvalidArgument(f"--segment: clause {part!r} has no value")
        if key in clauses:
            raise InvalidArgument(f"--segment: {key} is given twice (list its values in one clause)")
        if key == "pathology":
            bad = [v for v in vals if v not in policy.pathologies]
            if bad:
                raise InvalidArgument(
                    f"--segment: unknown pathology {bad[0]!r} (known: {', '.join(policy.pathologies)})"
                )
            outside = [v for v in vals if theme.pathologies and v not in theme.pathologies]
            if outside:
                raise InvalidArgument(
                    f"--segment: the theme {theme.code} is not about {outside[0]!r} "
                    f"(only {', '.join(theme.pathologies)})"
                )
        if key == "tier":
            bad = [v for v in vals if v not in {t.value for t in Tier}]
            if bad:
                raise InvalidArgument(f"--segment: unknown tier {bad[0]!r} (low, medium, high)")
        if key == "departement":
            bad = [v for v in vals if not cal.is_departement(v)]
            if bad:
                raise InvalidArgument(f"--segment: {bad[0]!r} is not a département served by the programme")
        clauses[key] = vals
    if not clauses:
        raise InvalidArgument(f"--segment {text!r} selects nobody: give clauses like 'tier=high', or 'all'")
    if "pathology" not in clauses:
        clauses.update(theme_pathologies)
    return clauses


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


# how far from today a mailing's sending date may be: further is a typing mistake
MAX_DAYS_AHEAD = 366
MAX_DAYS_LATE = 90


def record_mailing(
    ctx: Context,
    theme_code: str,
    segment: str | None,
    sent_on: date,
    *,
    late: bool = False,
    actor: str = "supervisor",
) -> MailingRecorded:
    """The mailing and its wave: the letters arrive after the delivery time, the wave calls from then.

    A mailing recorded after its wave would have started (`late`, which the
    supervisor must ask for) calls for the wave's whole length from today:
    never on days already gone.
    """
    policy = ctx.policy
    theme = policy.themes.get(theme_code)
    if theme is None:
        raise NotFound(
            f"theme {theme_code!r} is not in config/themes.toml (known: {', '.join(policy.themes)})"
        )
    clauses = parse_segment(segment, theme, policy)
    now = ctx.clock.now()
    today = cal.local_time_of(now, PARIS).date()
    if sent_on > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidArgument(
            f"--sent-on {sent_on.isoformat()} is more than {MAX_DAYS_AHEAD} days ahead of today ({today})"
        )
    if sent_on < today - timedelta(days=MAX_DAYS_LATE):
        raise InvalidArgument(
            f"--sent-on {sent_on.isoformat()} is more than {MAX_DAYS_LATE} days before today ({today}): "
            "its wave would call about letters long forgotten"
        )
    hours = policy.calling_hours
    arrives = cal.add_working_days(sent_on, policy.mailing.delivery_working_days, hours)
    start = cal.add_working_days(arrives, 0, hours)
    plan_after = cal.at_local(start - timedelta(days=1), time(policy.mailing.plan_hour), PARIS)
    if start < today:
        if not late:
            raise InvalidArgument(
                f"the wave of letters sent on {sent_on.isoformat()} would have started on {start} "
                f"(before today, {today}); record it with --late to call from today"
            )
        start = cal.add_working_days(today, 0, hours)
        plan_after = now
    end = cal.add_working_days(start, policy.mailing.wave_working_days - 1, hours)
    deadline = cal.at_local(end + timedelta(days=1), time(0), LATEST_ZONE)
    sync_themes(ctx)
    with ctx.sessions() as s:
        mailing = store.add_mailing(s, theme_code, segment or "", sent_on, arrives, now)
        assert mailing.id is not None
        recipients = mailing.recipients = store.add_recipients(s, mailing.id, clauses)
        wave = store.add_wave(s, mailing.id, plan_after, start, end, deadline)
        assert wave.id is not None
        store.audit(s, now, actor, "mailing.record", detail=f"mailing={mailing.id} recipients={recipients}")
        s.commit()
        log.info(
            "mailing recorded", mailing=mailing.id, wave=wave.id, theme=theme_code, recipients=recipients
        )
        return MailingRecorded(mailing.id, wave.id, recipients, arrives, start, end, plan_after)


def get_wave(s: Session, wave_id: int) -> Wave:
    wave = store.wave_row(s, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    return wave


def plan_wave(
    ctx: Context, wave_id: int, *, replan: bool = False, actor: str = "scheduler"
) -> planning.WavePlan:
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
        mailing = store.mailing_row(s, wave.mailing_id)
        assert mailing is not None and mailing.id is not None
        theme_code = mailing.theme_code
        store.delete_pending_wave_tasks(s, wave_id)
        cands = wave_tasks.candidates(s, mailing.id, wave_id, theme_code, policy, now)
        nurses = wave_tasks.nurse_shifts(s)
        days = cal.working_days(wave.window_start, wave.window_end, policy.calling_hours)
        plan = baseline.plan_wave(cands, nurses, days, policy)  # carecall's planner, or the fifo list
        state_of = {c.patient_id: c.state for c in cands}
        del cands
        rows = wave_tasks.task_rows(s, wave, theme_code, plan, state_of, policy, now)
        inserted = store.insert_tasks(s, rows)
        notes = {
            pid: SKIP_NOTES.get(reason, reason) for reason, ids in plan.skipped_ids.items() for pid in ids
        }
        notes.update({pid: UNPLACED_NOTE for pid in plan.unplaced})
        store.set_plan_notes(s, mailing.id, notes)
        summary = plan.as_dict()
        summary["nurses"] = len(nurses)
        wave.plan = summary
        wave.status = WaveStatus.planned
        wave.planned_at = now
        store.audit(s, now, actor, "wave.plan", detail=f"wave={wave_id} tasks={inserted}")
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


# why planning left a recipient out (MailingRecipient.plan_note), per reason of the plan's "skipped"
SKIP_NOTES = {
    "withdrawn": "withdrawn from the programme",
    "deceased": "deceased",
    "suspended": "suspended for the whole wave",
    "no_consent": "no consent to be called",
    "no_number": "no valid phone number",
    "open_task_in_other_wave": "already has an open call in another wave (overlapping waves)",
    "contact_cap": "contact cap reached for the period",
    planning.NO_NURSE_IN_WINDOW: "no nurse allowed to take the call works in the patient's calling window",
}
# the note of a recipient who fitted nowhere in the nurses' capacity (the plan's "unplaced")
UNPLACED_NOTE = "no nurse capacity left in the wave's window"


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
