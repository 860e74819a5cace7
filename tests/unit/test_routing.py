"""Which task a ready nurse is handed (dialer/routing.py), as nurses and patients see it.

A nurse gets the callbacks she promised first, then the patients she is
référent of, then the highest-priority, oldest due task she is qualified for
(tier by her level, the skills the call needs). A task waits for its référent
(or a callback for its nurse) a bounded time, and only while she is on shift.
Another dialer process's tasks come after this process's own.

With fair routing (`outreach.fair_routing`, on by default), the work only
nurses like her may take (a tier juniors may not take, a call needing a skill)
comes before the rest when it is due: her référent patients' scarce work, then
anyone's, then her other référent patients, then the rest. The examples below
are written for the plain order (fair routing off), and the property checks
both orders.

The property test checks the queue against an oracle written here from those
sentences and the policy's numbers, not from the queue's code.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.calendar import Place
from campaign.policy import CALLBACK_PRIORITY, NurseLevel, Policy, Tier, load_policy
from dialer.routing import NurseProfile, QueuedTask, TaskQueue, dispatch_order

fair_policy = load_policy()
policy = fair_policy.model_copy(
    update={"outreach": fair_policy.outreach.model_copy(update={"fair_routing": False})}
)
NOW = datetime(2027, 1, 12, 9, 30, tzinfo=UTC)  # a Tuesday morning in Paris
PLACE = Place("75", "Europe/Paris")
WAIT = timedelta(minutes=policy.dialer.referent_wait_minutes)
GRACE = timedelta(minutes=policy.dialer.callback_grace_minutes)
SKILLS = ("heart_failure", "copd")

SENIOR = NurseProfile(1, NurseLevel.senior, frozenset(SKILLS))
JUNIOR = NurseProfile(2, NurseLevel.junior, frozenset())
COLLEAGUE = 3  # another nurse of this process, who owns some tasks

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def task(
    task_id: int,
    *,
    tier: Tier = Tier.medium,
    age_minutes: float = 10,
    skills: tuple[str, ...] = (),
    referent: int | None = None,
    callback_of: int | None = None,
    foreign: bool = False,
    priority: int | None = None,
) -> QueuedTask:
    """A queued task due `age_minutes` ago (negative: not yet due), its priority the tier's by default."""
    if priority is None:
        priority = CALLBACK_PRIORITY if callback_of is not None else policy.tiers[tier].priority
    return QueuedTask(
        task_id=task_id,
        patient_id=1000 + task_id,
        tier=tier,
        priority=priority,
        not_before=NOW - timedelta(minutes=age_minutes),
        place=PLACE,
        skills=frozenset(skills),
        referent_id=referent,
        assigned_id=callback_of,
        foreign=foreign,
    )


def queue_of(
    tasks: list[QueuedTask], on_shift: Collection[int] = (), at: datetime = NOW, pol: Policy = policy
) -> TaskQueue:
    q = TaskQueue(pol, on_shift=lambda nurse_id, _until: nurse_id in on_shift)
    for t in tasks:
        q.add(t)
    q.advance(at)
    return q


def pops(q: TaskQueue, nurse: NurseProfile) -> list[int]:
    """Every task the nurse is handed, one call after another, until none is left for her."""
    out = []
    while (t := q.pop_for(nurse)) is not None:
        out.append(t.task_id)
    return out


# ---------------------------------------------------------------- examples


def test_callbacks_she_promised_then_her_referent_patients_then_the_best_task_she_may_take() -> None:
    q = queue_of(
        [
            task(1, tier=Tier.high, age_minutes=300),  # the most urgent of the general tasks
            task(2, tier=Tier.low, age_minutes=5, referent=SENIOR.id),
            task(3, tier=Tier.low, age_minutes=1, callback_of=SENIOR.id),
        ],
        on_shift={SENIOR.id},
    )
    assert pops(q, SENIOR) == [3, 2, 1]


def test_her_callbacks_come_first_even_when_the_config_gives_a_tier_the_callbacks_priority() -> None:
    """The config allows a tier priority up to 100, what a callback gets: a promise still comes first."""
    q = queue_of(
        [
            task(1, tier=Tier.high, priority=CALLBACK_PRIORITY, age_minutes=60, referent=SENIOR.id),
            task(2, tier=Tier.low, age_minutes=1, callback_of=SENIOR.id),
        ],
        on_shift={SENIOR.id},
    )
    assert pops(q, SENIOR) == [2, 1]


def test_higher_priority_first_then_the_longest_due() -> None:
    q = queue_of(
        [
            task(1, tier=Tier.low, age_minutes=240),
            task(2, tier=Tier.high, age_minutes=5),
            task(3, tier=Tier.medium, age_minutes=30),
            task(4, tier=Tier.high, age_minutes=60),
            task(5, tier=Tier.medium, age_minutes=90),
        ]
    )
    assert pops(q, SENIOR) == [4, 2, 5, 3, 1]


def test_a_junior_is_never_handed_a_high_tier_patient_nor_a_call_needing_a_skill_she_lacks() -> None:
    q = queue_of(
        [
            task(1, tier=Tier.high, age_minutes=60),
            task(2, tier=Tier.medium, skills=("heart_failure",), age_minutes=50),
            task(3, tier=Tier.low, age_minutes=1),
        ]
    )
    assert pops(q, JUNIOR) == [3]
    assert pops(q, SENIOR) == [1, 2], "what she may not take waits for a qualified nurse"


def test_her_referent_patient_beyond_her_level_goes_to_a_qualified_nurse_instead() -> None:
    q = queue_of([task(1, tier=Tier.high, referent=JUNIOR.id, age_minutes=60)], on_shift={JUNIOR.id})
    assert pops(q, JUNIOR) == []
    assert pops(q, SENIOR) == [1]


def test_a_callback_goes_to_the_nurse_who_promised_it_even_beyond_her_qualification() -> None:
    q = queue_of([task(1, tier=Tier.high, callback_of=JUNIOR.id, age_minutes=1)], on_shift={JUNIOR.id})
    assert pops(q, SENIOR) == [], "it waits for her"
    assert pops(q, JUNIOR) == [1]


def test_another_process_tasks_come_after_this_process_own_ones() -> None:
    q = queue_of(
        [
            task(1, tier=Tier.high, age_minutes=300, foreign=True),
            task(2, tier=Tier.low, age_minutes=1),
        ]
    )
    assert pops(q, SENIOR) == [2, 1], "a foreign task only when none of her own process's fits"


def test_a_referent_on_shift_keeps_her_patient_for_the_bounded_wait_then_anyone_qualified() -> None:
    due = task(1, age_minutes=0, referent=COLLEAGUE)
    q = queue_of([due], on_shift={COLLEAGUE}, at=NOW)
    for minutes in (1, WAIT.total_seconds() / 60 - 1):
        q.advance(NOW + timedelta(minutes=minutes))
        assert q.pop_for(SENIOR) is None, f"{minutes} min after it fell due it still waits for her"
    q.advance(NOW + WAIT)
    taken = q.pop_for(SENIOR)
    assert taken is not None and taken.task_id == 1, "never longer than the wait"


def test_a_referent_off_shift_does_not_hold_her_patient() -> None:
    q = queue_of([task(1, age_minutes=0, referent=COLLEAGUE)], on_shift=set())
    assert pops(q, SENIOR) == [1]


def test_a_callback_waits_for_its_nurse_the_grace_period_only_while_she_is_on_shift() -> None:
    on = queue_of([task(1, age_minutes=0, callback_of=COLLEAGUE)], on_shift={COLLEAGUE})
    assert pops(on, SENIOR) == []
    on.advance(NOW + GRACE)
    assert pops(on, SENIOR) == [1]
    off = queue_of([task(1, age_minutes=0, callback_of=COLLEAGUE)], on_shift=set())
    assert pops(off, SENIOR) == [1]


def test_a_task_not_yet_due_is_handed_to_nobody_until_its_time() -> None:
    q = queue_of([task(1, age_minutes=-10)])
    assert pops(q, SENIOR) == []
    q.advance(NOW + timedelta(minutes=10))
    assert pops(q, SENIOR) == [1]


def test_a_requeued_task_waits_for_its_new_time_and_is_handed_out_once() -> None:
    q = queue_of([task(1), task(2, age_minutes=5)])
    first = q.pop_for(SENIOR)
    assert first is not None and first.task_id == 1
    q.requeue(first, NOW + timedelta(hours=2))  # nobody answered: a retry later
    assert pops(q, SENIOR) == [2]
    q.advance(NOW + timedelta(hours=2))
    assert pops(q, SENIOR) == [1]
    assert len(q) == 0


# ---------------------------------------------------------------- fair routing


def test_fair_a_senior_takes_the_high_tier_call_before_her_referent_low_tier_patient() -> None:
    """The demo's complaint: seniors spent their hours on their référent patients' medium and low
    calls, which juniors could take, while high-tier calls waited for them."""

    def tasks() -> list[QueuedTask]:
        return [task(1, tier=Tier.high, age_minutes=5), task(2, tier=Tier.low, age_minutes=60, referent=1)]

    assert pops(queue_of(tasks(), on_shift={SENIOR.id}, pol=fair_policy), SENIOR) == [1, 2]
    assert pops(queue_of(tasks(), on_shift={SENIOR.id}), SENIOR) == [2, 1]  # the plain order


def test_fair_her_referent_patient_comes_first_when_that_costs_nothing() -> None:
    """No scarce work due: her référent patient before an older task of the same tier; and among scarce
    work, her référent high-tier patient before another high-tier patient waiting longer."""
    plain = [
        task(1, tier=Tier.low, age_minutes=90),
        task(2, tier=Tier.low, age_minutes=5, referent=SENIOR.id),
    ]
    assert pops(queue_of(plain, on_shift={SENIOR.id}, pol=fair_policy), SENIOR) == [2, 1]
    high = [
        task(1, tier=Tier.high, age_minutes=90),
        task(2, tier=Tier.high, age_minutes=5, referent=SENIOR.id),
    ]
    assert pops(queue_of(high, on_shift={SENIOR.id}, pol=fair_policy), SENIOR) == [2, 1]


def test_fair_a_trained_junior_takes_the_call_needing_her_skill_first() -> None:
    trained = NurseProfile(4, NurseLevel.junior, frozenset({"copd"}))

    def tasks() -> list[QueuedTask]:
        return [task(1, tier=Tier.medium, age_minutes=90), task(2, tier=Tier.low, skills=("copd",))]

    assert pops(queue_of(tasks(), pol=fair_policy), trained) == [2, 1]
    assert pops(queue_of(tasks()), trained) == [1, 2]


def test_fair_a_callback_she_promised_still_comes_before_everything() -> None:
    tasks = [task(1, tier=Tier.high, age_minutes=90), task(2, tier=Tier.low, callback_of=SENIOR.id)]
    assert pops(queue_of(tasks, on_shift={SENIOR.id}, pol=fair_policy), SENIOR) == [2, 1]


def test_fair_the_least_qualified_ready_nurse_chooses_first_then_the_longest_free() -> None:
    """When fewer tasks are due than nurses are ready, the ordinary work goes to juniors: a senior
    who chose first would take it and leave the junior idle."""
    profiles = {
        1: NurseProfile(1, NurseLevel.senior, frozenset()),
        2: NurseProfile(2, NurseLevel.junior, frozenset({"copd"})),
        3: NurseProfile(3, NurseLevel.junior, frozenset()),
        4: NurseProfile(4, NurseLevel.junior, frozenset()),
        5: NurseProfile(5, NurseLevel.senior, frozenset(SKILLS)),
    }
    free_since = {1: 1.0, 2: 2.0, 3: 30.0, 4: 20.0, 5: 0.0}
    assert dispatch_order([1, 2, 3, 4, 5], profiles, free_since, fair_policy) == [4, 3, 2, 1, 5]
    assert dispatch_order([1, 2, 3, 4, 5], profiles, free_since, policy) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- the property


@dataclass(frozen=True)
class Spec:
    tier: Tier
    age_minutes: int
    skills: tuple[str, ...]
    owner: str  # "none", "referent", "callback"
    owner_is_her: bool
    foreign: bool
    priority: int


def _expected(specs: list[Spec], nurse: NurseProfile, colleague_on_shift: bool, fair: bool) -> list[int]:
    """The oracle: the order in which `nurse` is handed the tasks, from the rules in words."""

    def scarce(s: Spec) -> bool:
        """Only seniors may take the tier, or the call needs a skill."""
        return NurseLevel.junior not in policy.tiers[s.tier].nurse_levels or bool(s.skills)

    def may_take(s: Spec) -> bool:
        return nurse.level in policy.tiers[s.tier].nurse_levels and set(s.skills) <= nurse.skills

    def due(s: Spec) -> bool:
        return s.age_minutes >= 0

    def open_to_her(s: Spec) -> bool:
        """A colleague's task once its wait is over (only while she is on shift), any other when due."""
        held = timedelta(0)
        if colleague_on_shift and s.owner == "referent":
            held = WAIT
        if colleague_on_shift and s.owner == "callback":
            held = GRACE
        return timedelta(minutes=s.age_minutes) >= held

    def order(s: Spec, i: int) -> tuple[bool, int, int, int]:
        return (s.foreign, -s.priority, -s.age_minutes, i)

    indexed = list(enumerate(specs))
    callbacks = [(s, i) for i, s in indexed if s.owner == "callback" and s.owner_is_her and due(s)]
    referent = [
        (s, i) for i, s in indexed if s.owner == "referent" and s.owner_is_her and due(s) and may_take(s)
    ]
    others = [(s, i) for i, s in indexed if not s.owner_is_her and due(s) and open_to_her(s) and may_take(s)]
    groups = [callbacks, referent, others]
    if fair:
        groups = [
            callbacks,
            [si for si in referent if scarce(si[0])],
            [si for si in others if scarce(si[0])],
            [si for si in referent if not scarce(si[0])],
            [si for si in others if not scarce(si[0])],
        ]
    out: list[int] = []
    for group in groups:
        out += [i for s, i in sorted(group, key=lambda si: order(*si))]
    return out


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    tier = draw(st.sampled_from(list(Tier)))
    owner = draw(st.sampled_from(["none", "referent", "callback"]))
    owner_is_her = owner != "none" and draw(st.booleans())
    # her own patients and callbacks are always her process's
    foreign = not owner_is_her and draw(st.booleans())
    default = CALLBACK_PRIORITY if owner == "callback" else policy.tiers[tier].priority
    return Spec(
        tier=tier,
        age_minutes=draw(st.integers(-60, 120)),
        skills=tuple(draw(st.sets(st.sampled_from(SKILLS), max_size=2))),
        owner=owner,
        owner_is_her=owner_is_her,
        foreign=foreign,
        # the one the programme gives, or any the config allows (ties with a callback's included)
        priority=draw(st.one_of(st.just(default), st.sampled_from([0, 1, 2, 3, 100]), st.integers(0, 100))),
    )


@SETTINGS
@given(
    st.lists(specs(), max_size=25),
    st.sampled_from(list(NurseLevel)),
    st.sets(st.sampled_from(SKILLS)),
    st.booleans(),
    st.booleans(),
)
def test_a_nurse_is_handed_tasks_in_the_order_the_rules_say(
    items: list[Spec], level: NurseLevel, skills: set[str], colleague_on_shift: bool, fair: bool
) -> None:
    nurse = NurseProfile(1, level, frozenset(skills))
    tasks = [
        task(
            i,
            tier=s.tier,
            age_minutes=s.age_minutes,
            skills=s.skills,
            referent=(nurse.id if s.owner_is_her else COLLEAGUE) if s.owner == "referent" else None,
            callback_of=(nurse.id if s.owner_is_her else COLLEAGUE) if s.owner == "callback" else None,
            foreign=s.foreign,
            priority=s.priority,
        )
        for i, s in enumerate(items)
    ]
    on_shift = {nurse.id} | ({COLLEAGUE} if colleague_on_shift else set())
    q = queue_of(tasks, on_shift=on_shift, pol=fair_policy if fair else policy)
    assert pops(q, nurse) == _expected(items, nurse, colleague_on_shift, fair)


# ---------------------------------------------------------------- what fills the queue

LOOKAHEAD = timedelta(minutes=30)


def test_a_retry_hours_away_takes_no_room_until_it_comes_within_the_lookahead() -> None:
    """The top-ups fill the queue by what is due soon: retries parked for later must not look like it."""
    q = TaskQueue(policy, lookahead=LOOKAHEAD)
    q.settle(NOW)
    q.add(task(1, age_minutes=20))
    q.add(task(2, foreign=True))  # another process's: never counted here
    q.add(task(3, age_minutes=10))
    q.advance(NOW)
    taken = q.pop_for(SENIOR)
    assert taken is not None and taken.task_id == 1
    q.requeue(taken, NOW + timedelta(hours=4))  # nobody answered
    assert q.own_due == 1, "the retry is held, but only the task due now fills the queue"
    assert taken.task_id in q
    q.advance(NOW + timedelta(hours=4) - LOOKAHEAD)
    assert q.own_due == 2, "once within the lookahead it counts again"


@st.composite
def queue_moves(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    """(move, task id, minutes): add, requeue, discard, pop, or let time pass."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "add_foreign", "requeue", "discard", "pop", "time"]),
                st.integers(0, 12),
                st.integers(-30, 300),
            ),
            max_size=60,
        )
    )


@SETTINGS
@given(queue_moves())
def test_own_items_due_within_the_lookahead_are_counted_right_whatever_happens(
    moves: list[tuple[str, int, int]],
) -> None:
    """The queue's count, kept as items come and go, against a count of them made here."""
    q = TaskQueue(policy, lookahead=LOOKAHEAD)
    now = NOW
    q.settle(now)
    for move, task_id, minutes in moves:
        at = now + timedelta(minutes=minutes)
        if move in ("add", "add_foreign"):
            q.add(task(task_id, foreign=move == "add_foreign", age_minutes=-minutes))
        elif move == "requeue" and task_id in q:
            q.requeue(q.items[task_id], at)
        elif move == "discard":
            q.discard(task_id)
        elif move == "pop":
            q.advance(now)
            q.pop_for(SENIOR)
        elif move == "time":
            now += timedelta(minutes=abs(minutes))
            q.settle(now)
        horizon = now + LOOKAHEAD
        expected = sum(1 for t in q.items.values() if not t.foreign and t.not_before <= horizon)
        assert q.own_due == expected


def test_fair_routing_is_carecall_s_the_fifo_baseline_keeps_its_order() -> None:
    fifo = fair_policy.model_copy(
        update={"outreach": fair_policy.outreach.model_copy(update={"strategy": "fifo"})}
    )
    tasks = [
        task(1, tier=Tier.high, age_minutes=5),
        task(2, tier=Tier.low, age_minutes=60, referent=SENIOR.id),
    ]
    assert pops(queue_of(tasks, on_shift={SENIOR.id}, pol=fifo), SENIOR) == [2, 1]
    profiles = {1: SENIOR, 2: JUNIOR}
    assert dispatch_order([1, 2], profiles, {}, fifo) == [1, 2]
