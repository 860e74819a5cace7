"""The consoles' new dispositions and the incoming call, stated as properties (hypothesis).

Hospitalised until a date: no call before the stay is over, the next contact
after it, on a day the patient may be called; the task is tried again once the
stay is over if its window allows. An incoming call (the patient called) is a
contact like any other for the patient, but its own task always closes, and it
settles exactly the pending outbound tasks for the same need.

Oracles (calling windows, holidays) come from test_rules_properties, which
writes them apart from campaign.calendar.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_rules_properties import (
    SETTINGS,
    callable_instants,
    instants_for,
    local,
    places,
    policy,
    utc_windows_on,
    wall_clock_callable,
    windows_on,
)

from campaign.incoming import OpenTask, after_incoming, incoming_contact
from campaign.policy import NurseLevel, Tier
from campaign.qualification import may_take
from campaign.rules import DialHistory, PatientState, may_dial, next_contact
from campaign.states import EnrolmentStatus, OutcomeCode, TaskKind, TaskStatus

HospitalCase = tuple[PatientState, datetime, date, datetime | None]


@st.composite
def hospital_cases(draw: st.DrawFn) -> HospitalCase:
    """A patient, when the nurse records the stay, its last day (today or later), the task's deadline."""
    place = draw(places())
    at = draw(st.one_of(callable_instants(place), instants_for(place)))
    patient = PatientState(
        EnrolmentStatus.enrolled,
        draw(st.sampled_from(Tier)),
        place,
        dialable_numbers=draw(st.integers(1, 2)),
        next_contact_on=draw(st.one_of(st.none(), st.just(date(2029, 1, 15)))),
    )
    today = local(at, place.departement).date()
    until = today + timedelta(days=draw(st.one_of(st.sampled_from([0, 1]), st.integers(0, 40))))
    deadline_days = draw(st.one_of(st.none(), st.integers(0, 45)))
    deadline = None if deadline_days is None else at + timedelta(days=deadline_days, minutes=30)
    return patient, at, until, deadline


@SETTINGS
@given(hospital_cases())
def test_hospitalised_no_call_before_the_stay_is_over_and_the_next_contact_after_it(
    case: HospitalCase,
) -> None:
    """Suspended through `until`; the next contact is the first day after it with calling hours;
    the task is retried at the first callable instant after the stay, only inside its window.

    A rule counting the stay's end in UTC would plan a Réunion patient's retry
    on the last day of their stay; one ignoring holidays would plan it on 20 December.
    """
    patient, at, until, deadline = case
    nc = next_contact(patient, OutcomeCode.hospitalised, at, policy, task_deadline=deadline, until=until)
    assert nc.suspend and nc.suspended_until == until
    assert nc.callback_at is None and not nc.withdraw and not nc.flag_number and not nc.message_physician
    assert nc.next_contact_on is not None and nc.next_contact_on > until
    assert windows_on(nc.next_contact_on, patient.place)
    gap_days = (until + timedelta(days=k) for k in range(1, (nc.next_contact_on - until).days))
    assert not any(windows_on(d, patient.place) for d in gap_days)  # the first such day
    if nc.retry_at is not None:
        assert nc.task_status is None  # the same task goes on after the stay
        assert local(nc.retry_at, patient.place.departement).date() > until
        assert local(nc.retry_at, patient.place.departement).date() == nc.next_contact_on
        assert wall_clock_callable(nc.retry_at, patient.place)
        assert not wall_clock_callable(nc.retry_at - timedelta(minutes=1), patient.place)
        assert deadline is None or nc.retry_at < deadline
        # and the dial rules agree: the suspended patient may be dialed then, not a minute before
        suspended = PatientState(
            EnrolmentStatus.suspended, patient.tier, patient.place, suspended_until=until
        )
        assert may_dial(suspended, DialHistory(), nc.retry_at, policy).allowed
    else:
        assert nc.task_status == TaskStatus.expired  # the task's window ends before the stay does
        assert deadline is not None
        first = next(
            w[0] for d in range(1, 60) for w in [_first_window(until + timedelta(days=d), patient)] if w
        )
        assert first >= deadline


def _first_window(day: date, patient: PatientState) -> tuple[datetime, datetime] | None:
    windows = utc_windows_on(day, patient.place)
    return windows[0] if windows else None


@SETTINGS
@given(hospital_cases())
def test_hospitalised_with_no_end_date_stops_calls_until_the_file_is_updated(case: HospitalCase) -> None:
    patient, at, _, deadline = case
    nc = next_contact(patient, OutcomeCode.hospitalised, at, policy, task_deadline=deadline, until=None)
    assert nc.suspend and nc.suspended_until is None
    assert nc.next_contact_on is None and nc.retry_at is None
    assert nc.task_status == TaskStatus.cancelled


@SETTINGS
@given(hospital_cases(), st.integers(1, 30))
def test_a_stay_that_ended_before_today_is_refused(case: HospitalCase, days_ago: int) -> None:
    patient, at, _, deadline = case
    today = local(at, patient.place.departement).date()
    with pytest.raises(ValueError, match="before today"):
        next_contact(
            patient,
            OutcomeCode.hospitalised,
            at,
            policy,
            task_deadline=deadline,
            until=today - timedelta(days=days_ago),
        )


# -------------------------------------------------------------- a call the patient placed

codes = st.sampled_from(list(OutcomeCode))


@SETTINGS
@given(hospital_cases(), codes, st.booleans(), st.one_of(st.none(), st.integers(0, 20 * 24 * 60)))
def test_an_incoming_task_always_closes_and_the_patient_gets_the_same_consequences(
    case: HospitalCase, code: OutcomeCode, on_file: bool, asked_min: int | None
) -> None:
    """An incoming task is never dialed: no outcome leaves it open or retries it. For the patient,
    everything is as if the call had been dialed, except a wrong number that is not theirs: the
    caller was someone else, nothing of the patient's changes."""
    patient, at, until, _ = case
    asked = None if asked_min is None else at + timedelta(minutes=asked_min)
    nc = incoming_contact(
        patient, code, at, policy, number_on_file=on_file, nurse_id=7, callback_at=asked, until=until
    )
    assert nc.task_status is not None and nc.task_status.terminal
    assert nc.retry_at is None
    if code == OutcomeCode.wrong_number:
        assert nc.task_status == TaskStatus.cancelled
        assert nc.flag_number == on_file
        if not on_file:
            assert nc.next_contact_on == patient.next_contact_on
            assert not nc.suspend and not nc.withdraw and nc.callback_at is None
            return
    else:
        assert nc.task_status == TaskStatus.done  # someone spoke to the nurse
    dialed = next_contact(
        patient, code, at, policy, nurse_id=7, callback_at=asked, task_attempts=1, until=until
    )
    assert nc.next_contact_on == dialed.next_contact_on
    assert (nc.callback_at, nc.callback_nurse_id) == (dialed.callback_at, dialed.callback_nurse_id)
    assert (nc.withdraw, nc.message_physician, nc.flag_number) == (
        dialed.withdraw,
        dialed.message_physician,
        dialed.flag_number,
    )
    assert (nc.suspend, nc.suspended_until) == (dialed.suspend, dialed.suspended_until)


THEMES = ["diet", "foot_care", "activity"]
open_tasks = st.lists(
    st.builds(
        OpenTask,
        id=st.integers(1, 10_000),
        kind=st.sampled_from(list(TaskKind)),
        status=st.sampled_from([TaskStatus.pending, TaskStatus.pending, TaskStatus.in_progress]),
        theme_code=st.one_of(st.none(), st.sampled_from(THEMES)),
    ),
    max_size=8,
    unique_by=lambda t: t.id,
)


@SETTINGS
@given(codes, st.one_of(st.none(), st.sampled_from(THEMES)), open_tasks)
def test_an_incoming_outcome_settles_exactly_the_pending_outbound_tasks_for_the_same_need(
    code: OutcomeCode, theme: str | None, tasks: list[OpenTask]
) -> None:
    """Reached or escalated: every pending task for the same need is done. A callback asked for:
    wave tasks done (the callback carries the need on), earlier callbacks and requests cancelled
    (replaced). Any other code: nothing. The same need: a request left on the inbound line
    always; a wave or callback task of the call's theme, or of any theme when the call has none.
    Never a task on a line now (in progress), nor another incoming call."""
    closes = {t: (status, why) for t, status, why in after_incoming(code, theme, tasks)}
    for t in tasks:
        same_need = (
            t.status == TaskStatus.pending
            and t.kind != TaskKind.incoming
            and (t.kind == TaskKind.inbound or theme is None or t.theme_code == theme)
        )
        if not same_need or code not in (
            OutcomeCode.reached,
            OutcomeCode.escalation,
            OutcomeCode.callback_requested,
        ):
            assert t.id not in closes
            continue
        status, why = closes[t.id]
        assert why
        if code == OutcomeCode.callback_requested and t.kind != TaskKind.wave:
            assert status == TaskStatus.cancelled
        else:
            assert status == TaskStatus.done
    assert set(closes) <= {t.id for t in tasks}


# -------------------------------------------------------------- who may take the call


@SETTINGS
@given(
    st.sampled_from(list(NurseLevel)),
    st.frozensets(st.sampled_from(["heart_failure", "copd", "x"])),
    st.sampled_from(list(Tier)),
    st.frozensets(st.sampled_from(["heart_failure", "copd"])),
)
def test_a_nurse_may_take_a_call_of_her_levels_tiers_with_every_skill_it_needs(
    level: NurseLevel, has: frozenset[str], tier: Tier, needs: frozenset[str]
) -> None:
    allowed = level in policy.tiers[tier].nurse_levels and all(s in has for s in needs)
    assert may_take(level, has, tier, needs, policy) == allowed
