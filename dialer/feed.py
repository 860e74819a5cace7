"""The dialer's task feed: which due tasks a process holds in its queue, and how they get there.

A process holds the earliest due tasks (up to `queue_horizon`) in its
`TaskQueue`, for routing. A sweep reads the due task ids a page at a time,
loads in full only those it does not hold, and at its end drops those no
longer pending (claimed by another process, closed). Under a backlog a
top-up refills the queue beyond its last task as the process's own share
empties, without re-reading what it holds. Several processes share the
database: each dials its own share of the tasks first (`ours`).

What happens to a task once it is in the queue (claims, calls, outcomes) is
dialer/loop.py's business; this module only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaign import baseline, services, store
from campaign import calendar as cal
from campaign.model import pathologies_from_text
from campaign.policy import Tier
from campaign.states import TaskKind
from dialer.routing import QueuedTask, TaskQueue, lead_for


@dataclass(slots=True)
class _Sweep:
    """A pass over the due tasks in (not_before, id) order, a page at a time."""

    until: datetime
    after: tuple[datetime, int] | None = None
    read: int = 0
    seen: set[int] = field(default_factory=set)


# pages a top-up may read at once: a busy process takes more than one page of its own tasks
# between two top-ups (about half of a page is another share's)
TOP_UP_PAGES = 3


class TaskFeed:
    """Loads due tasks into a dialer's queue: whole sweeps, a sweep page by page, top-ups."""

    def __init__(
        self,
        ctx: services.Context,
        queue: TaskQueue,
        *,
        share: tuple[int, int],
        lookahead: timedelta,
        refresh_page: int,
        queue_horizon: int,
        has_nurse: Callable[[int], bool],
        may_take: Callable[[int, Tier, frozenset[str]], bool],
        live_tasks: Callable[[], set[int]],
        stats: dict[str, int],
    ) -> None:
        self.ctx = ctx
        self.policy = ctx.policy
        self.queue = queue
        # (k, n): this process is the k-th (0-based) of n sharing the database
        self.share = share
        self.lookahead = lookahead
        self.refresh_page = refresh_page
        self.queue_horizon = queue_horizon
        self.other_share_delay = timedelta(minutes=ctx.policy.dialer.other_share_delay_minutes)
        self._has_nurse = has_nurse  # is this nurse one of this process's?
        self._may_take = may_take  # may this nurse take a call of this tier needing these skills?
        self._live_tasks = live_tasks  # tasks of the calls under way: not to be queued again
        self.stats = stats
        self._sweep: _Sweep | None = None
        self._tail: tuple[datetime, int] | None = None  # (not_before, id) of the last due task held
        self._skills_cache: dict[tuple[str, str | None], frozenset[str]] = {}

    def refresh(self) -> int:
        """A whole sweep of the due tasks in one go (start-up, tools, tests); how many were added."""
        added = 0
        while True:
            done, n = self._sweep_page()
            added += n
            if done:
                return added

    def refresh_step(self) -> bool:
        """One page of a sweep of the due tasks; True once the sweep is over.

        A sweep reads the ids of the first `queue_horizon` due tasks, loads those
        it does not hold and drops those no longer pending. A busy process runs
        it a page between two flushes, so it never stalls its nurses for long.
        """
        return self._sweep_page()[0]

    def top_up(self) -> int:
        """Load a page of the due tasks beyond the last one held, while its own share has room.

        Only while the last sweep or top-up stopped for lack of room: under a
        backlog the queue is refilled at the pace it empties, without re-reading
        what it holds, even while a sweep is under way; otherwise newly due
        tasks wait for the next sweep.
        """
        added = 0
        now = self.ctx.clock.now()
        self.queue.settle(now)
        for _ in range(TOP_UP_PAGES):
            # this process's own share of a sweep's horizon (the other shares' tasks are taken
            # late), filled by what is due within the lookahead: a retry parked for hours takes
            # no room from the tasks due now
            room = self.queue_horizon // self.share[1] - self.queue.own_due
            if self._tail is None or room <= 0:
                break
            want = self.refresh_page
            page, n = self._load_page(now + self.lookahead, self._tail, want)
            self._tail = page[-1] if len(page) == want else None
            added += n
        return added

    def _sweep_page(self) -> tuple[bool, int]:
        if self._sweep is None:
            now = self.ctx.clock.now()
            self.queue.settle(now)  # what is parked now is due beyond the sweep: never pruned by it
            self._sweep = _Sweep(until=now + self.lookahead)
        sweep = self._sweep
        want = min(self.refresh_page, self.queue_horizon - sweep.read)
        page, added = self._load_page(sweep.until, sweep.after, want)
        sweep.seen.update(i for _, i in page)
        sweep.read += len(page)
        if page:
            sweep.after = page[-1]
        complete = len(page) < want
        done = complete or sweep.read >= self.queue_horizon
        if done:
            self._prune(sweep, complete)
            self._sweep = None
            # a top-up during the sweep may have read further already
            if complete:
                self._tail = None
            elif sweep.after is not None and (self._tail is None or sweep.after > self._tail):
                self._tail = sweep.after
        return done, added

    def _load_page(
        self, until: datetime, after: tuple[datetime, int] | None, want: int
    ) -> tuple[list[tuple[datetime, int]], int]:
        """A page of due task ids after `after`; those not held yet are read in full and queued."""
        live_tasks = self._live_tasks()
        with self.ctx.sessions() as s:
            page = store.dialable_page(s, until, after, want, now=self.ctx.clock.now())
            new = [i for _, i in page if i not in self.queue.items and i not in live_tasks]
            rows = store.dialable_rows(s, new) if new else []
        self.add_rows(rows)
        return page, len(rows)

    def add_rows(self, rows: list[Any]) -> None:
        """Tasks read with `store.DIALABLE_COLUMNS`, queued for routing."""
        now = self.ctx.clock.now()
        for r in rows:
            tier, skills = self.tier_and_skills(r)
            referent = self.referent_of(r, tier, skills)
            assigned = r.assigned_nurse_id if r.kind == TaskKind.callback else None
            # fifo (the comparison baseline): no tier priority, no référent preference
            priority, referent = baseline.queue_choices(
                r.kind == TaskKind.callback, r.priority, referent, self.policy
            )
            ours = self.ours(r.task_id, assigned or referent)
            task = QueuedTask(
                task_id=r.task_id,
                patient_id=r.id,
                tier=tier,
                priority=priority,
                # another process's task: not before it has waited here a while, and after ours
                not_before=r.not_before if ours else max(r.not_before, now) + self.other_share_delay,
                place=cal.Place(r.departement, r.timezone, r.preferred_start, r.preferred_end),
                skills=skills,
                referent_id=referent,
                assigned_id=assigned,
                foreign=not ours,
                due=r.not_before,
                lead=lead_for(r.answer_p, self.policy),
            )
            self.queue.add(task)

    def tier_and_skills(self, row: Any) -> tuple[Tier, frozenset[str]]:
        """A dialable row's tier and the skills its call needs."""
        return Tier(row.task_tier), self._skills(row.pathologies, row.theme_code)

    def referent_of(self, row: Any, tier: Tier, skills: frozenset[str]) -> int | None:
        """The référent a dialable row waits for first, if she may take its call."""
        referent: int | None = row.referent_nurse_id if row.kind != TaskKind.callback else None
        if referent is not None and not self._may_take(referent, tier, skills):
            # a référent who may not take this call (a junior for a high-tier patient, a
            # heart-failure call without the skill) neither holds it nor draws it to her process
            return None
        return referent

    def _skills(self, pathologies: str, theme_code: str | None) -> frozenset[str]:
        """The skills a call needs, computed once per (pathologies, theme): few distinct pairs."""
        key = (pathologies, theme_code)
        skills = self._skills_cache.get(key)
        if skills is None:
            skills = services.required_skills(pathologies_from_text(pathologies), theme_code, self.policy)
            self._skills_cache[key] = skills
        return skills

    def _prune(self, sweep: _Sweep, complete: bool) -> None:
        """Drop what the sweep showed is no longer pending (claimed by another process, closed).

        Only items the sweep covered: due before its horizon, and before its
        last row when it stopped at the horizon's size.
        """
        # the sweep's pages run in (due, id) order: what it stopped at is a row, not an instant (many
        # first calls fall due at the same one)
        last = None if complete or sweep.after is None else sweep.after
        items = self.queue.items
        # parked items are due beyond the sweep's horizon: left out by set arithmetic, not a loop
        unseen = items.keys() - sweep.seen - self.queue.parked.keys()
        gone = [
            task_id
            for task_id in unseen
            if (due := items[task_id].due or items[task_id].not_before) <= sweep.until
            and (last is None or (due, task_id) < last)
        ]
        for task_id in gone:
            self.queue.discard(task_id)
        self.stats["pruned"] += len(gone)

    def ours(self, task_id: int, owner: int | None) -> bool:
        """Dialed first by the process of its nurse (référent, callback), else by its share of tasks.

        Each active nurse belongs to exactly one process, so no two processes
        put one task first. The others take it only once it has waited in their
        queue a while and they have none of their own for the nurse: that is
        how the tasks of a process that died still get dialed.
        """
        k, n = self.share
        if n == 1:
            return True
        if owner is not None:
            return self._has_nurse(owner)
        return task_id % n == k
