"""Why a wave is not dialing: its state, its backlog, and what the rules say of the tasks due now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from campaign import rules, services, store
from campaign.explain.patient import local_text
from campaign.states import TaskStatus, WaveStatus


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
    paris = services.PARIS
    with ctx.sessions() as s:
        wave = services.get_wave(s, wave_id)
        mailing = store.mailing_row(s, wave.mailing_id)
        assert mailing is not None
        counts = store.task_status_counts(s, wave_id)
        reasons: list[str] = []
        if wave.status == WaveStatus.scheduled:
            reasons.append(
                f"not planned yet: the scheduler plans it from {local_text(wave.plan_after, paris)} "
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
            due_now, nxt, sample = store.wave_backlog(s, wave_id, now)
            later = pending - due_now
            if later and nxt is not None:
                reasons.append(
                    f"{later} pending tasks wait for their planned day or retry time "
                    f"(next from {local_text(nxt, paris)})"
                )
            if due_now:
                why: dict[str, int] = {}
                for pid in sample:
                    st = store.patient_state_from_row(store.patient_rule_row(s, pid))
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
