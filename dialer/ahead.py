"""Work ahead: a nurse with nothing due brings forward a first call planned for the next hours.

Why: retries are booked at the start of their hour band and a day's first
calls are dialed by mid-afternoon, so in a wave's first days nothing falls due
for an hour or more before the evening band, and the nurses wait while the
plan counted those hours as worked (on the 20,000-patient benchmark the 16:00
hour ran at 10 to 30 % occupancy for a week and a half). A nurse left without
a call instead takes one of tomorrow's first calls now: the days run closer
to their plans and the wave's patients get their first call sooner, so more
attempts fit in their window.

Only first calls (never dialed): nothing learnt from a patient's answers, no
retry spacing, is undone. Only what the idle nurse may take herself and will
take at once: a call she may make (level, skills), whose patient may be
called now (calling hours, preferred hours), that waits for no other nurse
(her own référent patient, or one whose référent may not take it), and that
is this process's share. The rules are checked again at claim, as for any
task. Never before the wave's window opens where the patient lives: the
letter must be there first. `dialer.work_ahead_hours` sets how far ahead
(0: never).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from campaign import baseline, services, store
from campaign import calendar as cal
from dialer.feed import TaskFeed
from dialer.routing import NurseProfile, may_take

# how often a process looks ahead for its idle nurses: a query per level, not one per flush
EVERY = timedelta(minutes=5)
# no time zone is further ahead of UTC: a bound for the database's filter, each patient checked after
LATEST_OFFSET = timedelta(hours=14)
# first calls read per idle nurse: enough that each finds one she may take and will take at once
CANDIDATES_PER_NURSE = 25


class WorkAhead:
    """Brings first calls forward for a dialer's idle nurses, at most one each per look."""

    def __init__(
        self,
        ctx: services.Context,
        feed: TaskFeed,
        nurses: dict[int, NurseProfile],
        busy_patients: Callable[[], set[int]],
    ) -> None:
        self.ctx = ctx
        self.policy = ctx.policy
        self.feed = feed
        self.nurses = nurses
        self._busy_patients = busy_patients
        # the plain dialer carecall is measured against dials what is due, nothing else
        hours = 0.0 if baseline.is_fifo(ctx.policy) else ctx.policy.dialer.work_ahead_hours
        self.horizon = timedelta(hours=hours)
        self._last: datetime | None = None

    def due(self, now: datetime) -> bool:
        return bool(self.horizon) and (self._last is None or now - self._last >= EVERY)

    def bring(self, idle: Sequence[int], now: datetime) -> int:
        """For each of these nurses (the dialer's, in this order) one first call due now, queued; how many.

        Call only when `due`: the look is then spent, whether any nurse was idle or not.
        """
        self._last = now
        if not idle:
            return 0
        by_level: dict[str, list[int]] = {}
        for n in idle:
            by_level.setdefault(self.nurses[n].level, []).append(n)
        chosen: list[int] = []
        patients = set(self._busy_patients())
        with self.ctx.sessions() as s:
            for level, nurses in by_level.items():
                tiers = [t.value for t, tp in self.policy.tiers.items() if level in tp.nurse_levels]
                if not tiers:
                    continue
                rows = store.first_calls_ahead(
                    s,
                    tiers,
                    now,
                    now + self.horizon,
                    CANDIDATES_PER_NURSE * len(nurses),
                    # the latest local date anywhere
                    opened_by=(now + LATEST_OFFSET).date(),
                )
                for n in nurses:
                    row = self._pick(n, rows, patients, now)
                    if row is not None:
                        chosen.append(row.task_id)
                        patients.add(row.id)
            moved = store.move_first_calls_to_now(s, chosen, now)
            rows = store.dialable_rows(s, moved) if moved else []
            s.commit()
        self.feed.add_rows(rows)
        return len(rows)

    def _pick(self, nurse_id: int, rows: list[Any], taken: set[int], now: datetime) -> Any | None:
        """The first of `rows` (highest priority first) this nurse takes at once; her own référent
        patient before another of the same priority."""
        nurse = self.nurses[nurse_id]
        best: Any | None = None
        for r in rows:
            if best is not None and r.priority < best.priority:
                break
            if r.id in taken:
                continue
            tier, skills = self.feed.tier_and_skills(r)
            if not may_take(nurse.level, nurse.skills, tier, skills, self.policy):
                continue
            owner = self.feed.referent_of(r, tier, skills)
            if owner not in (None, nurse_id) or not self.feed.ours(r.task_id, owner):
                continue  # it would wait for its référent, or another process dials it
            place = cal.Place(r.departement, r.timezone, r.preferred_start, r.preferred_end)
            if cal.local_date(now, place) < r.window_start:
                continue  # the wave's window has not opened where they live: the letter may not be there
            if not cal.is_callable_at(now, place, self.policy.calling_hours):
                continue
            if owner == nurse_id:
                return r
            if best is None:
                best = r
        return best
