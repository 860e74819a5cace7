"""The AMI correlator against the traffic a real Asterisk 22 sent for each flow (fixtures/ami).

Each recording is fed as it came, then shuffled within the millisecond in
which the real server showed its order to vary: the attempt's result is the
same, every kind of event comes at most once, and the end comes last.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest
from ami_recordings import NURSE_ID, Recorded, received, recording
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.states import AttemptResult
from dialer.backends.asterisk.correlate import Correlator, uninteresting
from dialer.backends.asterisk.packets import Packet, encode, parse
from dialer.causes import attempt_result
from dialer.events import CallEvent, CallEventKind, Event, LineState, NurseLegEvent

K = CallEventKind
NOW = datetime(2026, 12, 1, 16, 31, tzinfo=UTC)
# scenario -> its attempt (as recorded, or given to an old capture), nurse leg, result, cause
SCENARIOS = {
    "conf-human": (101, "s101", AttemptResult.answered, 16),
    "conf-machine": (102, "s102", AttemptResult.machine, 16),
    "conf-notsure": (103, "s103", AttemptResult.answered, 16),
    "conf-hangup-quick": (104, "s104", AttemptResult.hung_up, 16),
    "conf-busy": (105, "s105", AttemptResult.busy, 17),
    "conf-noanswer": (106, "s106", AttemptResult.no_answer, 19),
    "conf-nurse-gone": (107, "s107", AttemptResult.no_nurse, 16),
    "conf-nurse-leaves": (108, "s108", AttemptResult.answered, 16),
    "conf-hangup-action": (114, "s114", AttemptResult.answered, 16),
    "conf-redirect": (115, "s115", AttemptResult.answered, 16),
    "conf-filter-events-call-user": (112, "s112", AttemptResult.answered, 16),
    "conf-filter-events-call": (111, "s111", AttemptResult.answered, 16),
    "conf-filter-managerconf": (113, "s113", AttemptResult.answered, 16),
    "congestion": (7, None, AttemptResult.failed, 34),
    "unallocated": (8, None, AttemptResult.number_not_in_service, 1),
    "busy": (9, None, AttemptResult.busy, 17),
    "noanswer": (10, None, AttemptResult.no_answer, 19),
}
OLD = {"congestion", "unallocated", "busy", "noanswer", "nosuchexten"}


def run(packets: list[Recorded], attempt_id: int, leg: str | None) -> tuple[list[Event], Correlator]:
    corr = Correlator()
    corr.dialed(attempt_id, 0.0)
    if leg is not None:
        corr.leg_dialed(NURSE_ID, leg, 0.0)
    events: list[Event] = []
    for r in packets:
        heard = corr.feed(r.packet, NOW, r.t)
        assert heard.unknown is None, "a recorded event of this very call was taken for an unknown one"
        events.extend(heard.events)
    return events, corr


def of_call(r: Recorded) -> bool:
    return (r.packet.get("Uniqueid") or "").startswith("att-")


def call_events(events: list[Event]) -> list[CallEvent]:
    return [e for e in events if isinstance(e, CallEvent)]


def result_of(events: list[CallEvent]) -> tuple[AttemptResult, int | None]:
    """What the dialer records, read as `dialer.lines.advance` reads a line: the furthest state first."""
    assert events and events[-1].kind == K.ended, f"no end last: {[e.kind for e in events]}"
    kinds = [e.kind for e in events]
    assert len(kinds) == len(set(kinds)), f"a kind came twice: {kinds}"
    furthest = max((LineState(k.value) for k in kinds[:-1]), key=lambda s: s.rank, default=LineState.dialing)
    return attempt_result(furthest, events[-1].cause), events[-1].cause


def attempt_of(scenario: str) -> tuple[list[Recorded], int, str | None]:
    attempt_id, leg, _, _ = SCENARIOS[scenario]
    return received(scenario, attempt_id if scenario in OLD else None), attempt_id, leg


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_recorded_flow_gives_its_result(scenario: str) -> None:
    packets, attempt_id, leg = attempt_of(scenario)
    events, corr = run(packets, attempt_id, leg)
    calls = call_events(events)
    assert {e.attempt_id for e in calls} == {attempt_id}
    assert result_of(calls) == SCENARIOS[scenario][2:]
    assert not corr.calls, "the call is still open after its last event"


def test_human_is_answered_heard_as_a_person_then_bridged() -> None:
    packets, attempt_id, leg = attempt_of("conf-human")
    calls = call_events(run(packets, attempt_id, leg)[0])
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.connected, K.ended]
    human = calls[2]
    assert human.detail == "HUMAN-816-800"
    assert {e.call_id for e in calls} == {"att-101-1"}


def test_machine_gives_the_detectors_cause_and_the_message_left() -> None:
    packets, attempt_id, leg = attempt_of("conf-machine")
    calls = call_events(run(packets, attempt_id, leg)[0])
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.machine, K.ended]
    assert calls[2].detail == "MAXWORDS-3-2"
    assert calls[-1].voicemail_left


def test_a_machine_hung_up_before_the_message_left_none() -> None:
    packets, attempt_id, leg = attempt_of("conf-machine")
    # the machine hangs up during the greeting: no PLAYBACKSTATUS of the neutral message
    cut = [
        r
        for r in packets
        if not (r.packet.get("Variable") == "PLAYBACKSTATUS" and r.packet.get("Uniqueid") == "att-102-1")
    ]
    calls = call_events(run(cut, attempt_id, leg)[0])
    assert calls[-1].kind == K.ended and not calls[-1].voicemail_left


def test_a_dialplan_user_event_says_whether_the_message_was_left() -> None:
    """With `Events: call,user` no VarSet arrives: the dialplan's CarecallVoicemail says it."""
    packets, attempt_id, leg = attempt_of("conf-machine")
    users_only = [r for r in packets if r.packet.event != "VarSet"]
    for status, left in (("SUCCESS", True), ("FAILED", False)):
        voicemail = Packet(
            (
                ("Event", "UserEvent"),
                ("Uniqueid", "att-102-1"),
                ("Linkedid", "att-102-1"),
                ("UserEvent", "CarecallVoicemail"),
                ("Attempt", "102"),
                ("Status", status),
            )
        )
        at = next(i for i, r in enumerate(users_only) if r.packet.get("UserEvent") == "CarecallEnd")
        stream = [*users_only[:at], Recorded(17.9, False, voicemail), *users_only[at:]]
        calls = call_events(run(stream, attempt_id, leg)[0])
        assert calls[-1].voicemail_left is left
        assert any(e.kind == K.machine and e.detail == "MAXWORDS-3-2" for e in calls)


def test_not_sure_counts_as_a_person_even_when_the_join_comes_first() -> None:
    packets, attempt_id, leg = attempt_of("conf-notsure")
    calls = call_events(run(packets, attempt_id, leg)[0])
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.connected, K.ended]


def test_not_sure_is_a_person_before_any_join() -> None:
    """The verdict alone says a person: what a patient who hangs up before the bridge gets."""
    packets, attempt_id, leg = attempt_of("conf-notsure")
    no_join = [r for r in packets if r.packet.event not in ("ConfbridgeJoin", "BridgeEnter")]
    calls = call_events(run(no_join, attempt_id, leg)[0])
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.ended]
    assert calls[2].detail == "TOOLONG-4900"


def test_nurse_leg_is_up_in_her_conference_and_down_when_hung_up() -> None:
    packets, attempt_id, leg = attempt_of("conf-nurse-gone")
    events = run(packets, attempt_id, leg)[0]
    legs = [e for e in events if isinstance(e, NurseLegEvent)]
    assert [(e.nurse_id, e.up) for e in legs] == [(NURSE_ID, True), (NURSE_ID, False)]
    calls = call_events(events)
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.nurse_gone, K.ended]
    # her leg went down before the patient answered
    assert events.index(legs[1]) < events.index(calls[1])


def test_nurse_leaving_mid_call_kicks_the_patient_to_the_apology() -> None:
    packets, attempt_id, leg = attempt_of("conf-nurse-leaves")
    events = run(packets, attempt_id, leg)[0]
    calls = call_events(events)
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.connected, K.nurse_gone, K.ended]
    assert [e.up for e in events if isinstance(e, NurseLegEvent)] == [True, False]


def test_events_call_alone_hides_the_verdict_but_the_join_still_says_a_person() -> None:
    packets, attempt_id, leg = attempt_of("conf-filter-events-call")
    assert not any(r.packet.event in ("VarSet", "UserEvent") for r in packets)
    calls = call_events(run(packets, attempt_id, leg)[0])
    assert [e.kind for e in calls] == [K.ringing, K.answered, K.human, K.connected, K.ended]


def time_groups(packets: list[Recorded]) -> list[list[Recorded]]:
    return [list(g) for _, g in itertools.groupby(packets, key=lambda r: r.t)]


@settings(max_examples=25, deadline=None)
@given(scenario=st.sampled_from(sorted(SCENARIOS)), rnd=st.randoms(use_true_random=False))
def test_any_order_within_a_millisecond_gives_the_same_result(scenario: str, rnd: random.Random) -> None:
    packets, attempt_id, leg = attempt_of(scenario)
    shuffled: list[Recorded] = []
    for group in time_groups(packets):
        rnd.shuffle(group)
        shuffled.extend(group)
    events, corr = run(shuffled, attempt_id, leg)
    assert result_of(call_events(events)) == SCENARIOS[scenario][2:]
    assert not corr.calls


@pytest.mark.parametrize("scenario", ["conf-busy", "conf-noanswer"])
def test_failed_originate_response_before_or_after_both_hangups(scenario: str) -> None:
    """The real server put the failed OriginateResponse between the Hangups; before or after them
    it must give the same cause."""
    packets, attempt_id, leg = attempt_of(scenario)
    response = next(r for r in packets if r.packet.event == "OriginateResponse" and of_call(r))
    rest = [r for r in packets if r is not response]
    last_hangup = max(i for i, r in enumerate(rest) if r.packet.event == "Hangup" and of_call(r))
    first = next(i for i, r in enumerate(rest) if r.packet.event == "Hangup" and of_call(r))
    for at in (first, last_hangup + 1):
        stream = [*rest[:at], response, *rest[at:]]
        assert result_of(call_events(run(stream, attempt_id, leg)[0])) == SCENARIOS[scenario][2:]


def test_every_event_repeated_changes_nothing() -> None:
    for scenario in ("conf-human", "conf-machine", "conf-busy", "conf-nurse-gone"):
        packets, attempt_id, leg = attempt_of(scenario)
        twice = [r for r in packets for _ in range(2)]
        events = run(twice, attempt_id, leg)[0]
        assert result_of(call_events(events)) == SCENARIOS[scenario][2:]
        ups = [e.up for e in events if isinstance(e, NurseLegEvent)]
        assert len(ups) == len(set(ups))


def test_an_unknown_call_is_named_and_changes_no_call() -> None:
    packets, _, _ = attempt_of("conf-human")
    corr = Correlator()
    corr.dialed(999, 0.0)  # another call is in flight; attempt 101 is nobody's here
    unknown = {corr.feed(r.packet, NOW, r.t).unknown for r in packets} - {None}
    assert unknown <= {"att-101-1", "att-101-2", "orig-att-101"} and unknown
    assert list(corr.calls) == [999]
    assert all(not corr.feed(r.packet, NOW, r.t).events for r in packets)


def test_an_event_after_the_end_is_neither_an_event_nor_unknown() -> None:
    packets, attempt_id, leg = attempt_of("conf-human")
    _, corr = run(packets, attempt_id, leg)
    for r in packets:
        heard = corr.feed(r.packet, NOW, r.t)
        assert heard.events == [] and heard.unknown is None


def test_a_refused_originate_ends_the_attempt_as_failed() -> None:
    corr = Correlator()
    corr.dialed(5, 0.0)
    refused = Packet((("Response", "Error"), ("ActionID", "orig-att-5"), ("Message", "Originate failed")))
    events = call_events(corr.feed(refused, NOW, 0.1).events)
    assert result_of(events) == (AttemptResult.failed, 41)


def reconnect_listing(scenario: str) -> tuple[dict[str, str], Packet]:
    """What the new connection's CoreShowChannels and Status said (conf-reconnect-2)."""
    packets = received(scenario)
    listed = {
        r.packet.get("Uniqueid") or "": r.packet.get("Application") or ""
        for r in packets
        if r.packet.event == "CoreShowChannel"
    }
    status = next(r.packet for r in packets if r.packet.event == "Status")
    return listed, status


def test_reconnect_a_call_still_up_goes_on_and_ends_once_on_the_new_connection() -> None:
    first = received("conf-reconnect-1")
    events, corr = run(first, 110, "s110")
    assert [e.kind for e in call_events(events)] == [K.ringing, K.answered, K.human, K.connected]
    listed, status = reconnect_listing("conf-reconnect-2")
    assert not corr.reconcile([110], corr.legs_in_flight(1e9), listed, {110: status}, NOW, since=100.0)
    later = [r for r in received("conf-reconnect-2") if r.packet.get("ActionID") is None]
    for r in later:
        events.extend(corr.feed(r.packet, NOW, 100 + r.t).events)
    assert result_of(call_events(events)) == (AttemptResult.answered, 16)
    assert [e.up for e in events if isinstance(e, NurseLegEvent)] == [True]


def test_reconnect_missed_verdict_and_bridge_are_said_from_the_status() -> None:
    first = received("conf-reconnect-1")
    answered = next(i for i, r in enumerate(first) if r.packet.event == "OriginateResponse" and of_call(r))
    _, corr = run(first[: answered + 1], 110, "s110")  # the drop came right after the answer
    listed, status = reconnect_listing("conf-reconnect-2")
    caught_up = corr.reconcile([110], corr.legs_in_flight(1e9), listed, {110: status}, NOW, since=100.0)
    assert [e.kind for e in call_events(caught_up)] == [K.human, K.connected]
    assert call_events(caught_up)[0].detail == "HUMAN-816-800"


def test_reconnect_a_call_gone_meanwhile_ends_once_from_its_furthest_state() -> None:
    first = received("conf-reconnect-1")
    events, corr = run(first, 110, "s110")
    gone = corr.reconcile([110], corr.legs_in_flight(1e9), {}, {}, NOW, since=100.0)
    ended = call_events(gone)
    assert [e.kind for e in ended] == [K.ended] and ended[0].cause is None
    assert result_of(call_events(events) + ended) == (AttemptResult.answered, None)
    assert [e.up for e in gone if isinstance(e, NurseLegEvent)] == [False]
    # its Hangups, late: nothing more, and nothing to hang up
    for r in received("conf-reconnect-2"):
        if r.packet.event in ("Hangup", "HangupRequest", "SoftHangupRequest", "Cdr"):
            assert corr.feed(r.packet, NOW, 200 + r.t).events == []
    assert corr.revived == []
    assert corr.reconcile([110], [], {}, {}, NOW, since=300.0) == []


def test_a_call_ended_by_reconciliation_but_still_alive_is_hung_up() -> None:
    corr = Correlator()
    corr.dialed(42, 0.0)
    corr.reconcile([42], [], {}, {}, NOW, since=10.0)
    ringing = Packet((("Event", "Newstate"), ("ChannelStateDesc", "Ringing"), ("Uniqueid", "att-42-1")))
    assert corr.feed(ringing, NOW, 11.0).events == []
    assert corr.revived == ["att-42-1"]
    corr.feed(ringing, NOW, 12.0)
    assert corr.revived == ["att-42-1"], "asked to hang it up twice"


def test_a_call_heard_since_the_listing_is_not_ended() -> None:
    corr = Correlator()
    corr.dialed(43, 0.0)
    heard = Packet((("Event", "Newstate"), ("ChannelStateDesc", "Ringing"), ("Uniqueid", "att-43-1")))
    corr.feed(heard, NOW, 5.0)
    assert corr.reconcile([43], [], {}, {}, NOW, since=4.0) == []
    assert 43 in corr.calls


def test_the_recorded_reconcile_listing_names_the_call_and_the_nurse() -> None:
    listed = {
        r.packet.get("Uniqueid"): r.packet.get("Application")
        for r in recording("conf-reconcile")
        if r.packet.event == "CoreShowChannel"
    }
    assert listed["att-109-1"] == "ConfBridge"
    assert listed[f"nurse-{NURSE_ID}-s109-1"] == "ConfBridge"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_packets_skipped_unread_change_nothing(scenario: str) -> None:
    """The backend skips Newexten, VarSet and other noise before parsing: the same events follow."""
    packets, attempt_id, leg = attempt_of(scenario)
    texts = [encode(r.packet.headers).decode().removesuffix("\r\n\r\n") for r in packets]
    kept = [r for r, text in zip(packets, texts, strict=True) if not uninteresting(text)]
    assert len(kept) < len(packets)
    assert call_events(run(kept, attempt_id, leg)[0]) == call_events(run(packets, attempt_id, leg)[0])


def test_a_packet_hidden_behind_a_truncated_one_is_never_skipped() -> None:
    glued = "Event: Newexten\r\nChannel: Local/02619@patEvent: Hangup\r\nUniqueid: att-5-1\r\nCause: 16"
    assert not uninteresting(glued)
    assert parse(glued).event == "Hangup"
