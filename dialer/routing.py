"""Which task for which nurse. Pure rules, plus the in-memory queue that applies them fast.

Order of preference for a ready nurse: the callbacks she promised, then the
patients she is référent of, then any task she is qualified for (tier by her
level, the skills the call needs), highest priority first, oldest first. A
task whose référent is on shift waits for her for a bounded time; a callback
waits for its nurse for a grace period; after that any qualified nurse may
take it.

Fair routing (`outreach.fair_routing`): a senior or a trained nurse keeps her
hours for the work only nurses like her may take. When such "scarce" work is
due (a tier only her level may take, a call needing a skill), she takes it,
her référent patients' first, before her other référent patients and any work
a junior without skills could take; référent continuity is kept where it
costs nothing. And when fewer tasks are due than nurses are ready, the least
qualified nurses choose first, the longest free first among equals
(`dispatch_order`), so the ordinary work goes to those who can do nothing else.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campaign import qualification
from campaign.calendar import Place
from campaign.policy import CALLBACK_PRIORITY, NurseLevel, Policy, Tier


@dataclass(frozen=True, slots=True)
class NurseProfile:
    id: int
    level: NurseLevel
    skills: frozenset[str]


@dataclass(eq=False, slots=True)
class QueuedTask:
    task_id: int
    patient_id: int
    tier: Tier
    priority: int
    not_before: datetime
    place: Place
    skills: frozenset[str]
    referent_id: int | None = None
    assigned_id: int | None = None  # callbacks: the nurse who promised it
    taken: bool = False
    generation: int = 0  # bumped on requeue, so stale heap entries are skipped
    # another dialer process's task: taken here only when none of this process's own is
    foreign: bool = False
    # not_before as stored in the database when loaded (a foreign task's not_before is pushed back)
    due: datetime | None = None
    # best time to call: among tasks of equal priority, taken as if due this much earlier (`lead_for`)
    lead: timedelta = timedelta(0)

    def callback(self, task_id: int, at: datetime, nurse_id: int) -> QueuedTask:
        """The callback a nurse promised this task's patient, due `at`, waiting for her first."""
        return QueuedTask(
            task_id,
            self.patient_id,
            self.tier,
            CALLBACK_PRIORITY,
            at,
            self.place,
            self.skills,
            assigned_id=nurse_id,
        )

    def key(self) -> tuple[bool, int, datetime, int]:
        """Among the tasks open to a nurse: her process's own first, then highest priority, longest due
        (the patients likelier to answer now a little before, with best time to call)."""
        return (self.foreign, -self.priority, self.not_before - self.lead, self.task_id)

    def owner_key(self) -> tuple[bool, bool, int, datetime, int]:
        """Among a nurse's own tasks: the callbacks she promised before her référent patients,
        whatever priority the config gives their tiers."""
        return (self.assigned_id is None, *self.key())


def lead_for(answer_p: float | None, policy: Policy) -> timedelta:
    """Best time to call: a task placed where its patient answers with probability p goes before
    the due tasks of its priority that fell due up to p × `best_time_lead_minutes` before it.
    A bounded head start, not a sort by p, so a patient unlikely to answer is never starved."""
    if answer_p is None or not policy.outreach.best_time or policy.outreach.strategy == "fifo":
        return timedelta(0)
    return timedelta(minutes=policy.outreach.best_time_lead_minutes * answer_p)


# one rule for the dialer and the programme (a callback promised for another nurse is checked by it)
may_take = qualification.may_take

_NO_SKILLS: frozenset[str] = frozenset()


def scarce(tier: Tier, skills: frozenset[str], policy: Policy) -> bool:
    """Work a junior nurse without skills may not take: only seniors' or trained nurses' hours can do it."""
    return not may_take(NurseLevel.junior, _NO_SKILLS, tier, skills, policy)


def fair(policy: Policy) -> bool:
    """Fair routing is carecall's: the fifo baseline keeps its mailing order."""
    return policy.outreach.fair_routing and policy.outreach.strategy == "carecall"


def dispatch_order(
    ready: list[int], profiles: dict[int, NurseProfile], free_since: dict[int, float], policy: Policy
) -> list[int]:
    """In which order ready nurses choose their next task: least qualified first (juniors before
    seniors, fewer skills first), then the longest free. Unchanged without fair routing."""
    if not fair(policy):
        return ready

    def rank(nurse_id: int) -> tuple[bool, int, float]:
        p = profiles.get(nurse_id)
        qualified = (p.level == NurseLevel.senior, len(p.skills)) if p is not None else (False, 0)
        return (*qualified, free_since.get(nurse_id, float("inf")))

    return sorted(ready, key=rank)


def qualified(nurse: NurseProfile, task: QueuedTask, policy: Policy) -> bool:
    return may_take(nurse.level, nurse.skills, task.tier, task.skills, policy)


def open_to_all_at(task: QueuedTask, policy: Policy, owner_on_shift: bool) -> datetime:
    """When a task reserved for its référent or callback nurse opens to every qualified nurse."""
    if task.assigned_id is not None:
        return (
            task.not_before + timedelta(minutes=policy.dialer.callback_grace_minutes)
            if owner_on_shift
            else task.not_before
        )
    if task.referent_id is not None and owner_on_shift:
        return task.not_before + timedelta(minutes=policy.dialer.referent_wait_minutes)
    return task.not_before


# (sort key, sequence, task, its generation when pushed)
_Entry = tuple[tuple[bool | int | datetime, ...], int, QueuedTask, int]


def owner_of(task: QueuedTask) -> int | None:
    """The nurse a task waits for first: the callback's nurse, else the référent."""
    return task.assigned_id if task.assigned_id is not None else task.referent_id


@dataclass
class TaskQueue:
    """The dialer's hopper: due tasks indexed by who may take them.

    Items sit in a time-ordered `waiting` heap until due, then in heaps per
    owner nurse and per (tier, skills) bucket. Whether a due task first waits
    for its owner (référent, callback nurse) is decided when it falls due, from
    `on_shift` (she is on shift, or her shift starts within the wait), not when
    it was loaded. Removal is lazy: a taken or requeued
    item is skipped when it reaches the top.

    A process's own items due beyond the lookahead (a retry hours away, say)
    are `parked`: held, and dialed at their time, but not counted in
    `own_due`, so a queue of parked retries never looks full to the top-ups
    that bring the tasks due now. They are counted as they come and go, and
    settled as time moves (`settle`), never by a scan of the queue.
    """

    policy: Policy
    # will this nurse be on shift at some moment from now until the given instant?
    on_shift: Callable[[int, datetime], bool] = lambda _nurse_id, _until: False
    lookahead: timedelta = timedelta(minutes=30)
    waiting: list[tuple[datetime, int, QueuedTask, int, str]] = field(default_factory=list)
    by_owner: dict[int, list[_Entry]] = field(default_factory=dict)
    # fair routing: an owner's scarce tasks (not callbacks), apart, so she finds them before the others
    scarce_by_owner: dict[int, list[_Entry]] = field(default_factory=dict)
    buckets: dict[tuple[Tier, frozenset[str]], list[_Entry]] = field(default_factory=dict)
    items: dict[int, QueuedTask] = field(default_factory=dict)
    version: int = 0
    foreign: int = 0  # how many of `items` are another process's share
    # own items due beyond `horizon`, and a heap of them by due time (lazy: stale entries skipped)
    parked: dict[int, QueuedTask] = field(default_factory=dict)
    _parked_heap: list[tuple[datetime, int, QueuedTask]] = field(default_factory=list)
    horizon: datetime | None = None  # now + lookahead at the last `settle`; None: nothing parks yet
    _seq: itertools.count = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, task_id: int) -> bool:
        return task_id in self.items

    def add(self, task: QueuedTask) -> None:
        old = self.items.get(task.task_id)
        if old is not None:
            old.taken = True
            self.foreign -= old.foreign
            self.parked.pop(task.task_id, None)
        self.items[task.task_id] = task
        self.foreign += task.foreign
        if not task.foreign and self.horizon is not None and task.not_before > self.horizon:
            self.parked[task.task_id] = task
            heapq.heappush(self._parked_heap, (task.not_before, next(self._seq), task))
        if owner_of(task) is not None:
            heapq.heappush(self.waiting, (task.not_before, next(self._seq), task, task.generation, "owner"))
        heapq.heappush(self.waiting, (task.not_before, next(self._seq), task, task.generation, "due"))

    def requeue(self, task: QueuedTask, not_before: datetime) -> None:
        """Back in the queue for later (window closed, retry scheduled)."""
        fresh = QueuedTask(
            task.task_id,
            task.patient_id,
            task.tier,
            task.priority,
            not_before,
            task.place,
            task.skills,
            task.referent_id,
            task.assigned_id,
            generation=task.generation + 1,
            foreign=task.foreign,
            due=not_before,
            lead=task.lead,
        )
        task.taken = True
        self.add(fresh)

    def discard(self, task_id: int) -> None:
        item = self.items.pop(task_id, None)
        if item is not None:
            item.taken = True
            self.foreign -= item.foreign
            self.parked.pop(task_id, None)

    def settle(self, now: datetime) -> None:
        """Move the horizon to `now + lookahead`: parked items it now covers count as due."""
        self.horizon = horizon = now + self.lookahead
        heap = self._parked_heap
        while heap and heap[0][0] <= horizon:
            _, _, task = heapq.heappop(heap)
            if self.parked.get(task.task_id) is task:
                del self.parked[task.task_id]

    def advance(self, now: datetime) -> None:
        """Move items whose time has come into the heaps nurses pick from."""
        self.settle(now)
        moved = False
        while self.waiting and self.waiting[0][0] <= now:
            _, seq, task, gen, stage = heapq.heappop(self.waiting)
            if task.taken or gen != task.generation:
                continue
            owner = owner_of(task)
            if stage == "owner":
                assert owner is not None
                heaps = self.scarce_by_owner if self._scarce_owned(task) else self.by_owner
                heapq.heappush(heaps.setdefault(owner, []), (task.owner_key(), seq, task, gen))
            elif stage == "due" and owner is not None:
                # due now: open to all at once, or after a bounded wait if the owner is on shift
                longest = open_to_all_at(task, self.policy, True)
                opens = longest if self.on_shift(owner, longest) else task.not_before
                heapq.heappush(self.waiting, (opens, next(self._seq), task, gen, "all"))
                continue
            else:
                entry: _Entry = (task.key(), seq, task, gen)
                heapq.heappush(self.buckets.setdefault((task.tier, task.skills), []), entry)
            moved = True
        if moved:
            self.version += 1

    @staticmethod
    def _top(heap: list[_Entry]) -> QueuedTask | None:
        while heap and (heap[0][2].taken or heap[0][3] != heap[0][2].generation):
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def has_due(self) -> bool:
        """A task is due for someone (call `advance` first); False: `pop_for` gives every nurse None."""
        return (
            any(self._top(heap) is not None for heap in self.buckets.values())
            or any(self._top(heap) is not None for heap in self.by_owner.values())
            or any(self._top(heap) is not None for heap in self.scarce_by_owner.values())
        )

    def _scarce_owned(self, task: QueuedTask) -> bool:
        return fair(self.policy) and task.assigned_id is None and scarce(task.tier, task.skills, self.policy)

    def pop_for(self, nurse: NurseProfile) -> QueuedTask | None:
        """Best task for this nurse now (call `advance` first), removed from the queue."""
        own = self.by_owner.get(nurse.id)
        top = self._top(own) if own else None
        if top is not None and top.assigned_id == nurse.id:
            assert own is not None
            heapq.heappop(own)  # a callback she promised comes before anything
            return self._take(top)
        if fair(self.policy):
            task = self._pop_own(self.scarce_by_owner.get(nurse.id), nurse) or self._pop_bucket(
                nurse, scarce_only=True
            )
            if task is not None:
                return task
        return self._pop_own(own, nurse) or self._pop_bucket(nurse, scarce_only=False)

    def _pop_own(self, own: list[_Entry] | None, nurse: NurseProfile) -> QueuedTask | None:
        while own:
            t = self._top(own)
            if t is None:
                break
            if qualified(nurse, t, self.policy) or t.assigned_id == nurse.id:
                heapq.heappop(own)
                return self._take(t)
            heapq.heappop(own)  # not hers to take after all: it will reach the general heaps
        return None

    def _pop_bucket(self, nurse: NurseProfile, scarce_only: bool) -> QueuedTask | None:
        best: QueuedTask | None = None
        best_heap: list[_Entry] | None = None
        for (tier, skills), heap in self.buckets.items():
            if nurse.level not in self.policy.tiers[tier].nurse_levels or not skills <= nurse.skills:
                continue
            if scarce_only and not scarce(tier, skills, self.policy):
                continue
            t = self._top(heap)
            if t is not None and (best is None or t.key() < best.key()):
                best, best_heap = t, heap
        if best is None or best_heap is None:
            return None
        heapq.heappop(best_heap)
        return self._take(best)

    def _take(self, task: QueuedTask) -> QueuedTask:
        task.taken = True
        if self.items.pop(task.task_id, None) is not None:
            self.foreign -= task.foreign
            self.parked.pop(task.task_id, None)
        return task

    @property
    def own(self) -> int:
        """Items this process dials first (not another process's share)."""
        return len(self.items) - self.foreign

    @property
    def own_due(self) -> int:
        """Own items due within the lookahead (as of the last `settle`): what fills the queue."""
        return len(self.items) - self.foreign - len(self.parked)
