"""The wave report: what a wave did, per tier and per nurse, and whether the invariants held.

Computed from the database only (never from a dialer's memory), so the same
figures come out whoever asks and whenever. Built to stay fast on a national
wave (100,000 tasks, a few hundred thousand attempts): counts are aggregated
in SQL where that is easy, and the rest is one streamed pass over the few
columns it needs; no ORM object is loaded per row.

`wave_report` returns plain JSON-serialisable data; `render_text` draws it for
the supervisor's terminal (English, as the CLI), `render_html` as a
self-contained French page for the programme's staff (no external script,
style or font: it must open from a mail attachment on a locked-down PC).
The report carries no personal data: ids, counts, nurse codes.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlmodel import Session, col

from campaign import calendar as cal
from campaign import templates
from campaign.errors import NotFound
from campaign.invariants import check_invariants
from campaign.model import (
    CallAttempt,
    CallTask,
    Mailing,
    MailingRecipient,
    Nurse,
    Outcome,
    Patient,
    ThemeRow,
    Wave,
)
from campaign.policy import Policy
from campaign.states import AttemptResult, OutcomeCode, TaskStatus

HTML_TEMPLATE = "reports/wave_report.fr.html.j2"
# outcomes after which the patient has spoken with a nurse
_SPOKE = frozenset(
    {
        OutcomeCode.reached.value,
        OutcomeCode.escalation.value,
        OutcomeCode.callback_requested.value,
        OutcomeCode.opted_out.value,
    }
)
_OPEN = (TaskStatus.pending.value, TaskStatus.in_progress.value)
_ZONE_DEPARTEMENT = {zone: dep for dep, (zone, _, _) in cal.OVERSEAS.items()}
_MAX_FILLED_DAYS = 400


# ------------------------------------------------------------------ computing


@dataclass(slots=True)
class _Task:
    tier: str
    status: str
    referent: int | None
    closed_at: datetime | None
    # the attempt that reached the patient: (rank, started_at, local day, nurse id)
    reach: tuple[tuple[bool, bool, bool, datetime], datetime, date, int | None] | None = None


@dataclass(slots=True)
class _NurseLoad:
    attempts: int = 0
    handled: int = 0
    talk_seconds: float = 0.0
    busy_seconds: float = 0.0


def wave_report(session: Session, policy: Policy, wave_id: int) -> dict[str, Any]:
    """Every figure of one wave, as JSON-ready data (dates as ISO strings).

    Definitions, so the figures can be checked by hand:
    - tasks: every task of the wave, callbacks it spawned included;
      reached = tasks done (the patient spoke with a nurse);
    - the reaching attempt of a done task is its latest attempt with an
      outcome where the patient spoke (else with any outcome, else answered);
      days to reach run from `wave.window_start` to that attempt's local date;
      "in window" means it started no later than `wave.deadline`;
    - referent_share: among reached tasks whose patient has a référent, the
      share whose reaching call was taken by that nurse (the référent as it
      is now: if the programme moves it to the last caller, this flatters);
    - nurse occupancy: minutes of this wave's attempts (ringing and talking)
      plus `dialer.wrap_up_seconds` per answered call, over the nurse's shift
      minutes on the wave's working days. A share of her shift spent on this
      wave: overlapping waves add up;
    - daily and days to reach use the patient's local date.
    """
    wave = session.get(Wave, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    mailing = session.get(Mailing, wave.mailing_id)
    invariants = check_invariants(session, policy, wave_id)

    tasks = _load_tasks(session, wave_id)
    results: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    attempts_by_tier: Counter[str] = Counter()
    attempts_by_day: Counter[date] = Counter()
    nurses: dict[int, _NurseLoad] = {}
    wrap_up = float(policy.dialer.wrap_up_seconds)
    zones: dict[str, ZoneInfo] = {}
    total_attempts = 0

    answered_value, done_value = AttemptResult.answered.value, TaskStatus.done.value
    for (
        task_id, nurse_id, result, started, answered_at, ended, timezone, code, outcome_nurse,
    ) in _attempt_rows(session, wave_id):  # fmt: skip
        total_attempts += 1
        task = tasks.get(task_id)
        attempts_by_tier[task.tier if task else "?"] += 1
        results[result or "none"] += 1
        if code:
            outcomes[code] += 1
        zone = zones.get(timezone) or zones.setdefault(timezone, ZoneInfo(timezone))
        day = started.astimezone(zone).date()
        attempts_by_day[day] += 1
        answered = result == answered_value
        if nurse_id is not None:
            load = nurses.get(nurse_id) or nurses.setdefault(nurse_id, _NurseLoad())
            load.attempts += 1
            if ended is not None:
                load.busy_seconds += (ended - started).total_seconds()
            if answered:
                load.handled += 1
                load.busy_seconds += wrap_up
                if answered_at is not None and ended is not None:
                    load.talk_seconds += (ended - answered_at).total_seconds()
        if task is not None and task.status == done_value:
            rank = (code in _SPOKE, code is not None, answered, started)
            if task.reach is None or rank > task.reach[0]:
                nurse = outcome_nurse if outcome_nurse is not None else nurse_id
                task.reach = (rank, started, day, nurse)

    by_tier = _by_tier(tasks.values(), attempts_by_tier, wave, policy)
    reached_days = Counter(t.reach[2] for t in tasks.values() if t.reach is not None)
    status_counts = Counter(t.status for t in tasks.values())
    reached = status_counts[TaskStatus.done.value]
    all_days = [(t.reach[2] - wave.window_start).days for t in tasks.values() if t.reach is not None]
    inv = invariants.counts()
    return {
        "wave": _wave_info(session, policy, wave, mailing),
        "patients": _recipients(session, wave.mailing_id),
        "tasks": len(tasks),
        "tasks_by_kind": dict(sorted(_kinds(session, wave_id).items())),
        "attempts": total_attempts,
        "reached": reached,
        "unreachable": status_counts[TaskStatus.unreachable.value],
        "expired": status_counts[TaskStatus.expired.value],
        "cancelled": status_counts[TaskStatus.cancelled.value],
        "open": sum(status_counts[s] for s in _OPEN),
        "reached_share": _ratio(reached, len(tasks)),
        "attempts_per_reach": _ratio(total_attempts, reached),
        "median_days_to_reach": _median(all_days),
        "calls_outside_window": inv["calls_outside_window"],
        "calls_to_uncallable": inv["calls_to_uncallable"],
        "double_dials": inv["double_dials"],
        "over_daily_cap": inv["over_daily_cap"],
        "open_tasks": inv["open_tasks"],
        "by_tier": by_tier,
        "nurse_occupancy": _occupancy(session, nurses, wave, policy),
        "next_contact": _next_contact(session, wave.mailing_id),
        "outcomes": dict(sorted(outcomes.items())),
        "attempt_results": dict(sorted(results.items())),
        "daily": _daily(attempts_by_day, reached_days, wave),
        "invariants": invariants.as_dict(),
        "policy": {
            "min_gap_minutes": policy.retry.min_gap_minutes,
            "max_attempts_per_day": policy.caps.max_attempts_per_day,
            "wrap_up_seconds": policy.dialer.wrap_up_seconds,
            "target_occupancy": policy.dialer.target_occupancy,
        },
    }


def _load_tasks(session: Session, wave_id: int) -> dict[int, _Task]:
    # Core rows (no ORM bookkeeping): this runs over every task of the wave
    rows: Iterable[Any] = session.connection().execute(
        select(
            col(CallTask.id),
            col(CallTask.tier),
            col(CallTask.status),
            col(Patient.referent_nurse_id),
            col(CallTask.closed_at),
        )
        .join(Patient, col(Patient.id) == col(CallTask.patient_id))
        .where(col(CallTask.wave_id) == wave_id)
        .execution_options(yield_per=10000)
    )
    return {tid: _Task(tier, status, referent, closed) for tid, tier, status, referent, closed in rows}


def _attempt_rows(session: Session, wave_id: int) -> Iterable[Any]:
    return session.connection().execute(
        select(
            col(CallAttempt.task_id),
            col(CallAttempt.nurse_id),
            col(CallAttempt.result),
            col(CallAttempt.started_at),
            col(CallAttempt.answered_at),
            col(CallAttempt.ended_at),
            col(Patient.timezone),
            col(Outcome.code).label("outcome_code"),
            col(Outcome.nurse_id).label("outcome_nurse_id"),
        )
        .join(CallTask, col(CallTask.id) == col(CallAttempt.task_id))
        .join(Patient, col(Patient.id) == col(CallAttempt.patient_id))
        .outerjoin(Outcome, col(Outcome.attempt_id) == col(CallAttempt.id))
        .where(col(CallTask.wave_id) == wave_id)
        .execution_options(yield_per=10000)
    )


def _by_tier(
    tasks: Iterable[_Task], attempts: Counter[str], wave: Wave, policy: Policy
) -> dict[str, dict[str, Any]]:
    order = sorted(policy.tiers, key=lambda t: -policy.tiers[t].priority)
    groups: dict[str, list[_Task]] = {t.value: [] for t in order}
    for t in tasks:
        groups.setdefault(t.tier, []).append(t)
    out: dict[str, dict[str, Any]] = {}
    for tier, items in groups.items():
        status = Counter(t.status for t in items)
        done = [t for t in items if t.status == TaskStatus.done.value]
        days = [(t.reach[2] - wave.window_start).days for t in done if t.reach is not None]
        in_window = sum(
            1
            for t in done
            if (t.reach[1] if t.reach is not None else t.closed_at or wave.deadline) <= wave.deadline
        )
        with_referent = [t for t in done if t.referent is not None]
        by_referent = sum(1 for t in with_referent if t.reach is not None and t.reach[3] == t.referent)
        reached = len(done)
        out[tier] = {
            "tasks": len(items),
            "reached": reached,
            "unreachable": status[TaskStatus.unreachable.value],
            "expired": status[TaskStatus.expired.value],
            "cancelled": status[TaskStatus.cancelled.value],
            "open": sum(status[s] for s in _OPEN),
            "attempts": attempts[tier],
            "attempts_per_reach": _ratio(attempts[tier], reached),
            "median_days_to_reach": _median(days),
            "p90_days_to_reach": _p90(days),
            "reached_in_window_share": _ratio(in_window, len(items)),
            "reached_with_referent": len(with_referent),
            "referent_share": _ratio(by_referent, len(with_referent)),
        }
    return out


def _occupancy(
    session: Session, loads: Mapping[int, _NurseLoad], wave: Wave, policy: Policy
) -> dict[str, dict[str, Any]]:
    if not loads:
        return {}
    rows = session.execute(
        select(col(Nurse.id), col(Nurse.code), col(Nurse.shifts), col(Nurse.timezone)).where(
            col(Nurse.id).in_(list(loads))
        )
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r.code):
        load = loads[r.id]
        days = cal.working_days(
            wave.window_start,
            wave.window_end,
            policy.calling_hours,
            _ZONE_DEPARTEMENT.get(r.timezone, "75"),
        )
        shift = sum(_shift_minutes(r.shifts, d) for d in days)
        busy = load.busy_seconds / 60
        out[r.code] = {
            "attempts": load.attempts,
            "handled_calls": load.handled,
            "talk_minutes": round(load.talk_seconds / 60, 1),
            "busy_minutes": round(busy, 1),
            "shift_minutes": round(shift, 1),
            "occupancy": _ratio(busy, shift),
        }
    return out


def _shift_minutes(shifts: Sequence[Mapping[str, Any]], day: date) -> float:
    """Minutes of the nurse's shifts on `day`; a shift past midnight counts whole."""
    total = 0.0
    for s in shifts or ():
        try:
            if int(s["weekday"]) != day.weekday():
                continue
            start, end = time.fromisoformat(s["start"]), time.fromisoformat(s["end"])
        except (KeyError, TypeError, ValueError):
            continue  # a malformed shift is the import's error to report, not the report's
        minutes = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
        total += minutes if minutes > 0 else minutes + 24 * 60
    return total


def _next_contact(session: Session, mailing_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(col(Patient.next_contact_on), func.count())
        .join(MailingRecipient, col(MailingRecipient.patient_id) == col(Patient.id))
        .where(col(MailingRecipient.mailing_id) == mailing_id)
        .group_by(col(Patient.next_contact_on))
    ).all()
    weeks: Counter[str] = Counter()
    unscheduled = 0
    for day, n in rows:
        if day is None:
            unscheduled += n
        else:
            iso = day.isocalendar()
            weeks[f"{iso.year}-W{iso.week:02d}"] += n
    return {"unit": "iso_week", "counts": dict(sorted(weeks.items())), "unscheduled": unscheduled}


def _daily(attempts: Counter[date], reached: Counter[date], wave: Wave) -> dict[str, dict[str, int]]:
    """Per local day, the wave's days without calls shown as zeros (weekends are visible)."""
    days = set(attempts) | set(reached)
    first = min(days | {wave.window_start})
    last = max(days | {wave.window_end})
    if (last - first).days <= _MAX_FILLED_DAYS:
        days |= {first + timedelta(days=i) for i in range((last - first).days + 1)}
    return {d.isoformat(): {"attempts": attempts[d], "reached": reached[d]} for d in sorted(days)}


def _recipients(session: Session, mailing_id: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(MailingRecipient)
            .where(col(MailingRecipient.mailing_id) == mailing_id)
        ).scalar_one()
    )


def _kinds(session: Session, wave_id: int) -> dict[str, int]:
    rows = session.execute(
        select(col(CallTask.kind), func.count())
        .where(col(CallTask.wave_id) == wave_id)
        .group_by(col(CallTask.kind))
    ).all()
    return {kind: int(n) for kind, n in rows}


def _wave_info(session: Session, policy: Policy, wave: Wave, mailing: Mailing | None) -> dict[str, Any]:
    theme = mailing.theme_code if mailing else None
    label = policy.themes[theme].label if theme in policy.themes else None
    if label is None and theme is not None:
        row = session.get(ThemeRow, theme)
        label = row.label if row else theme
    return {
        "id": wave.id,
        "theme": theme,
        "theme_label": label,
        "status": wave.status,
        "window_start": wave.window_start.isoformat(),
        "window_end": wave.window_end.isoformat(),
        "deadline": wave.deadline.isoformat(),
        "mailing_id": wave.mailing_id,
        "sent_on": mailing.sent_on.isoformat() if mailing else None,
        "arrives_on": mailing.arrives_on.isoformat() if mailing else None,
    }


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return round(statistics.quantiles(values, n=10, method="inclusive")[-1], 2)


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file, then rename): a reader never sees half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ------------------------------------------------------------------ terminal


def _fmt(value: Any, pct: bool = False, digits: int = 2) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{value * 100:.0f}%"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return str(value)


def _count_cell(n: int) -> Text:
    return Text("0", style="bold green") if n == 0 else Text(str(n), style="bold red")


def render_text(report: Mapping[str, Any], console: Console) -> None:
    """The supervisor's view in the terminal: tiers, nurses, invariants, next contacts."""
    w = report["wave"]
    console.print(
        f"[bold]Wave {w['id']}[/bold] · {w['theme_label'] or w['theme']} · {w['status']} · "
        f"{w['window_start']} → {w['window_end']}"
    )
    console.print(
        f"{report['patients']} patients · {report['tasks']} tasks · "
        f"{report['attempts']} attempts · reached {report['reached']} "
        f"({_fmt(report['reached_share'], pct=True)}) · unreachable {report['unreachable']} · "
        f"expired {report['expired']} · cancelled {report['cancelled']} · open {report['open']}"
    )

    tiers = Table(title="Per tier", title_justify="left")
    for head in ("tier", "tasks", "reached", "unreachable", "expired", "attempts",
                 "att./reach", "median days", "in window", "référent"):  # fmt: skip
        tiers.add_column(head, justify="left" if head == "tier" else "right")
    for tier, t in report["by_tier"].items():
        tiers.add_row(
            tier,
            str(t["tasks"]),
            str(t["reached"]),
            str(t["unreachable"]),
            str(t["expired"]),
            str(t["attempts"]),
            _fmt(t["attempts_per_reach"]),
            _fmt(t["median_days_to_reach"], digits=1),
            _fmt(t["reached_in_window_share"], pct=True),
            _fmt(t["referent_share"], pct=True),
        )
    console.print(tiers)

    target = report["policy"]["target_occupancy"]
    nurses = Table(title=f"Per nurse (target occupancy {target * 100:.0f}%)", title_justify="left")
    for head in ("nurse", "attempts", "handled", "talk min", "shift min", "occupancy"):
        nurses.add_column(head, justify="left" if head == "nurse" else "right")
    for code, n in report["nurse_occupancy"].items():
        occ = n["occupancy"]
        style = "red" if occ is not None and occ > target else ""
        nurses.add_row(
            code,
            str(n["attempts"]),
            str(n["handled_calls"]),
            _fmt(n["talk_minutes"], digits=0),
            _fmt(n["shift_minutes"], digits=0),
            Text(_fmt(occ, pct=True), style=style),
        )
    console.print(nurses)

    checks = Table(title="Invariants", title_justify="left")
    checks.add_column("check")
    checks.add_column("count", justify="right")
    checks.add_column("examples")
    for name, v in report["invariants"]["checks"].items():
        more = "…" if v["count"] > len(v["examples"]) else ""
        examples = ", ".join(str(i) for i in v["examples"]) + more
        if examples:
            examples = f"{v['unit']} {examples}"
        checks.add_row(name.replace("_", " "), _count_cell(v["count"]), examples)
    console.print(checks)

    nc = report["next_contact"]
    spread = Table(title="Next contact (patients per ISO week)", title_justify="left")
    spread.add_column("week")
    spread.add_column("patients", justify="right")
    spread.add_column("")
    peak = max(nc["counts"].values(), default=0)
    for week, n in nc["counts"].items():
        spread.add_row(week, str(n), "█" * max(1, round(30 * n / peak)) if peak else "")
    spread.add_row("none", str(nc["unscheduled"]), "")
    console.print(spread)


# ------------------------------------------------------------------ HTML and SVG

_C_ATTEMPTS = "#94a3b8"
_C_REACHED = "#15803d"
_C_UNREACHABLE = "#d97706"
_C_EXPIRED = "#b91c1c"
_C_CANCELLED = "#6b7280"
_C_OPEN = "#2563eb"
_C_BAR = "#1d4ed8"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _ticks(peak: float, n: int = 4) -> list[float]:
    """Round axis ticks from 0 to just above `peak`, steps of 1, 2 or 5 × 10^k (whole for counts)."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = peak / n
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 5, 10) if raw <= m * exp)
    if float(peak).is_integer():
        step = max(1.0, math.ceil(step))
    top = math.ceil(peak / step) * step
    return [i * step for i in range(round(top / step) + 1)]


def svg_columns(
    categories: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    title: str,
    height: int = 240,
) -> Markup:
    """Vertical grouped bars: one group per category, one bar per (label, colour, values)."""
    width = max(720, min(1100, 60 + len(categories) * (10 + 9 * len(series))))
    left, right, top, bottom = 40, 10, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = _ticks(max((v for _, _, vals in series for v in vals), default=0))
    peak = ticks[-1]
    slot = plot_w / max(1, len(categories))
    bar = max(1.0, min(22.0, (slot - 4) / max(1, len(series))))
    parts = [_svg_open(width, height, title)]
    for value in ticks:
        y = top + plot_h - plot_h * value / peak
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">'
            f"{_axis(value)}</text>"
        )
    every = max(1, math.ceil(len(categories) / 24))
    for ci, cat in enumerate(categories):
        x0 = left + ci * slot + (slot - bar * len(series)) / 2
        for si, (label, colour, values) in enumerate(series):
            v = values[ci]
            h = plot_h * v / peak
            parts.append(
                f'<rect x="{x0 + si * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(cat)} · {escape(label)} : '
                f"{_axis(v)}</title></rect>"
            )
        if ci % every == 0:
            x = left + ci * slot + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                f'fill="#374151">{escape(cat)}</text>'
            )
    parts.append(_legend([(label, colour) for label, colour, _ in series], left, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_rows(
    rows: Sequence[tuple[str, Sequence[float]]],
    segments: Sequence[tuple[str, str]],
    *,
    title: str,
    scale: float | None = None,
    marker: tuple[str, float] | None = None,
    percent: bool = False,
) -> Markup:
    """Horizontal stacked bars, one row per (label, values per segment).

    `scale` fixes the value at full width (default: the largest row); `marker`
    draws a labelled vertical line (a target); `percent` formats values as %.
    """
    width, label_w, right, row_h, top = 720, 110, 60, 24, 28
    height = top + len(rows) * row_h + (34 if len(segments) > 1 or marker else 10)
    full = scale or max((sum(v) for _, v in rows), default=0) or 1.0
    plot_w = width - label_w - right
    parts = [_svg_open(width, height, title)]
    for ri, (label, values) in enumerate(rows):
        y = top + ri * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" fill="#111827">{escape(label)}</text>'
        )
        x = float(label_w)
        for (seg, colour), v in zip(segments, values, strict=True):
            w = plot_w * min(v, full) / full if full else 0
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{colour}"><title>{escape(label)} · {escape(seg)} : '
                    f"{_value(v, percent)}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 15}" fill="#374151">{_value(sum(values), percent)}</text>'
        )
    if marker is not None:
        mlabel, mvalue = marker
        mx = label_w + plot_w * min(mvalue, full) / full
        bottom = top + len(rows) * row_h
        parts.append(
            f'<line x1="{mx:.1f}" y1="{top - 4}" x2="{mx:.1f}" y2="{bottom}" stroke="#dc2626" '
            f'stroke-dasharray="4 3"/><text x="{mx:.1f}" y="{bottom + 14}" text-anchor="middle" '
            f'fill="#dc2626">{escape(mlabel)} {_value(mvalue, percent)}</text>'
        )
    elif len(segments) > 1:
        parts.append(_legend(segments, label_w, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'role="img" aria-label="{escape(title)}" {_FONT}><title>{escape(title)}</title>'
        f'<text x="4" y="16" font-size="13" font-weight="600" fill="#111827">'
        f"{escape(title)}</text>"
    )


def _legend(items: Sequence[tuple[str, str]], x0: float, y: float) -> str:
    out, x = [], x0
    for label, colour in items:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14:.1f}" y="{y}" fill="#374151">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return "".join(out)


def _axis(value: float) -> str:
    return templates.fr_number(value, 0 if float(value).is_integer() else 1)


def _value(value: float, percent: bool) -> str:
    return templates.fr_percent(value) if percent else _axis(value)


class _Charts:
    """What the HTML template draws; it passes the (French) labels, we draw the shapes."""

    @staticmethod
    def daily(daily: Mapping[str, Mapping[str, int]], *, title: str, attempts: str,
              reached: str) -> Markup:  # fmt: skip
        days = list(daily)
        labels = [f"{d[8:10]}/{d[5:7]}" for d in days]
        return svg_columns(
            labels,
            [
                (attempts, _C_ATTEMPTS, [daily[d]["attempts"] for d in days]),
                (reached, _C_REACHED, [daily[d]["reached"] for d in days]),
            ],
            title=title,
        )

    @staticmethod
    def tiers(by_tier: Mapping[str, Mapping[str, Any]], *, title: str,
              tier_labels: Mapping[str, str], segment_labels: Mapping[str, str]) -> Markup:  # fmt: skip
        keys = ("reached", "unreachable", "expired", "cancelled", "open")
        colours = (_C_REACHED, _C_UNREACHABLE, _C_EXPIRED, _C_CANCELLED, _C_OPEN)
        rows = [(tier_labels.get(tier, tier), [float(t[k]) for k in keys]) for tier, t in by_tier.items()]
        segments = [(segment_labels.get(k, k), c) for k, c in zip(keys, colours, strict=True)]
        return svg_rows(rows, segments, title=title)

    @staticmethod
    def occupancy(nurses: Mapping[str, Mapping[str, Any]], *, title: str, label: str,
                  target: float, target_label: str) -> Markup:  # fmt: skip
        rows = [(code, [float(n["occupancy"] or 0.0)]) for code, n in nurses.items()]
        peak = max([target, *(v[0] for _, v in rows)])
        return svg_rows(
            rows,
            [(label, _C_BAR)],
            title=title,
            scale=max(1.0, peak),
            marker=(target_label, target),
            percent=True,
        )

    @staticmethod
    def histogram(counts: Mapping[str, int], *, title: str, label: str) -> Markup:
        cats = list(counts)
        return svg_columns(
            [c.replace("-W", " S") for c in cats],
            [(label, _C_BAR, [counts[c] for c in cats])],
            title=title,
        )


def render_html(report: Mapping[str, Any]) -> str:
    """The French page for the programme's staff: one file, inline CSS and SVG only."""
    return templates.render(HTML_TEMPLATE, r=report, charts=_Charts())
