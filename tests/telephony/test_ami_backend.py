"""The Asterisk backend on the protocol-faithful AMI peer: each recorded flow gives the attempt its result.

The real `asterisk-ami` client talks over a real socket to `dialer.testing.ami_peer`,
which plays what a real Asterisk 22 sent for the same dialplan, 20 times faster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ami_lines import (
    BUSY,
    CONGESTION,
    MACHINE,
    NO_ANSWER,
    NOT_SURE,
    NURSE,
    PERSON,
    QUICK_HANGUP,
    SPEED,
    UNALLOCATED,
    Collector,
    K,
    asterisk,
    national,
    nurse_in_conference,
    poll,
    request,
    result_of,
)

from campaign.states import AttemptResult
from dialer.backends.base import NurseLine
from dialer.testing.ami_peer import AmiPeer


@pytest.fixture
def peer() -> Iterator[AmiPeer]:
    with AmiPeer(speed=SPEED) as p:
        yield p


@pytest.mark.parametrize(
    ("number", "result", "cause", "kinds"),
    [
        (PERSON, AttemptResult.answered, 16, [K.ringing, K.answered, K.human, K.connected, K.ended]),
        (NOT_SURE, AttemptResult.answered, 16, [K.ringing, K.answered, K.human, K.connected, K.ended]),
        (MACHINE, AttemptResult.machine, 16, [K.ringing, K.answered, K.machine, K.ended]),
        (QUICK_HANGUP, AttemptResult.hung_up, 16, [K.ringing, K.answered, K.ended]),
        (BUSY, AttemptResult.busy, 17, [K.ended]),
        (NO_ANSWER, AttemptResult.no_answer, 19, [K.ringing, K.ended]),
        (CONGESTION, AttemptResult.failed, 34, [K.ended]),
        (UNALLOCATED, AttemptResult.number_not_in_service, 1, [K.ended]),
    ],
    ids=[
        "person",
        "not-sure",
        "machine",
        "hangs-up-at-once",
        "busy",
        "no-answer",
        "congestion",
        "unallocated",
    ],
)
def test_each_line_gives_the_attempt_its_result(
    peer: AmiPeer, number: str, result: AttemptResult, cause: int, kinds: list[K]
) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(7, number))
        sink.ended(7)
        assert [e.kind for e in sink.calls(7)] == kinds
        assert result_of(sink.calls(7)) == (result, cause)
        assert {e.call_id for e in sink.calls(7)} == {"att-7-1"}


def test_the_originate_is_asynchronous_and_names_the_call_for_carecall(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(8, MACHINE, voicemail=False))
        backend.dial(request(9, BUSY, voicemail=True))
        sink.ended(9)
    login = next(a for a in peer.actions if dict(a).get("Action") == "Login")
    assert dict(login)["Events"] == "call,user"  # `call` alone would hide the detector's verdict
    originates = {dict(a)["ActionID"]: a for a in peer.actions if dict(a).get("Action") == "Originate"}
    call = dict(originates["orig-att-8"])
    assert call["Channel"] == "Local/0261910601@patients"  # MACHINE, dialed nationally
    assert (call["Context"], call["Exten"], call["Priority"]) == ("patient-amd", "NURSE1001", "1")
    assert (call["ChannelId"], call["OtherChannelId"]) == ("att-8-1", "att-8-2")
    assert call["Async"] == "true" and call["Timeout"] == "15000"
    assert call["CallerID"] == '"Accompagnement" <0199000000>'
    variables = [v for k, v in originates["orig-att-8"] if k == "Variable"]
    assert variables == [
        "CARECALL_ATTEMPT=8",
        "CARECALL_TASK=5008",
        "CARECALL_NURSE=NURSE1001",
        "CARECALL_VOICEMAIL=0",
    ]
    assert "CARECALL_VOICEMAIL=1" in [v for k, v in originates["orig-att-9"] if k == "Variable"]
    leg = dict(next(a for k, a in originates.items() if k.startswith(f"orig-nurse-{NURSE}-")))
    assert (leg["Channel"], leg["Context"], leg["Exten"]) == (
        "Local/NURSE1001@nurse-phones",
        "nurse-conference",
        "NURSE1001",
    )
    assert leg["ChannelId"].startswith(f"nurse-{NURSE}-") and leg["ChannelId"].endswith("-1")


def test_a_machine_answered_with_every_event_says_the_message_was_left(peer: AmiPeer) -> None:
    """With `Events: on` the neutral message's PLAYBACKSTATUS arrives; with `call,user` only the
    dialplan's CarecallVoicemail UserEvent (README, "Asterisk: what a site installs") can say it,
    which the recorded dialplan did not send."""
    for events, left in (("on", True), ("call,user", False)):
        sink = Collector()
        with asterisk(peer, sink, events=events) as backend:
            nurse_in_conference(backend, sink)
            backend.dial(request(10, MACHINE))
            end = sink.ended(10)
        machine = next(e for e in sink.calls(10) if e.kind == K.machine)
        assert machine.detail == "MAXWORDS-3-2"
        assert end.voicemail_left is left


def test_nurse_gone_before_the_answer_the_patient_hears_the_apology(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(11, PERSON))
        assert sink.wait(lambda: any(e.kind == K.ringing for e in sink.calls(11)))
        backend.nurse_away(NURSE)
        sink.leg_is(False)
        sink.ended(11)
    assert [e.kind for e in sink.calls(11)] == [K.ringing, K.answered, K.human, K.nurse_gone, K.ended]
    assert result_of(sink.calls(11)) == (AttemptResult.no_nurse, 16)


def test_nurse_leaving_mid_call_kicks_the_patient_to_the_apology(peer: AmiPeer) -> None:
    sink = Collector()
    peer.script(national(PERSON), "conf-human", talk_seconds=60)  # talks until hung up
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(12, PERSON))
        assert sink.wait(lambda: any(e.kind == K.connected for e in sink.calls(12)))
        backend.nurse_away(NURSE)
        sink.leg_is(False)
        sink.ended(12)
    assert [e.kind for e in sink.calls(12)] == [
        K.ringing,
        K.answered,
        K.human,
        K.connected,
        K.nurse_gone,
        K.ended,
    ]
    assert result_of(sink.calls(12)) == (AttemptResult.answered, 16)


def test_the_dialer_hangs_up_a_call_in_progress(peer: AmiPeer) -> None:
    sink = Collector()
    peer.script(national(PERSON), "conf-human", talk_seconds=60)  # talks until hung up
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.dial(request(13, PERSON))
        assert sink.wait(lambda: any(e.kind == K.connected for e in sink.calls(13)))
        backend.hangup(13)
        sink.ended(13)
        backend.hangup(13)  # over: nothing is sent, nothing follows
    assert result_of(sink.calls(13)) == (AttemptResult.answered, 16)
    hangups = [dict(a) for a in peer.actions if dict(a).get("Action") == "Hangup"]
    assert [(h["Channel"], h["Cause"]) for h in hangups] == [("att-13-1", "16")]


def test_an_orphan_left_by_a_crashed_process_is_hung_up_by_its_call_id(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        backend.hangup_orphan("att-77-1")
        assert poll(lambda: any(dict(a).get("Channel") == "att-77-1" for a in peer.actions))
    assert sink.got == []


def test_a_nurse_ready_twice_gets_one_leg(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        backend.nurse_ready(NurseLine(NURSE, f"NURSE{NURSE}"))
        assert sink.wait(lambda: sink.legs() == [True, True], 2)
    legs = [a for a in peer.actions if dict(a).get("Context") == "nurse-conference"]
    assert len(legs) == 1


def test_a_nurse_without_a_phone_endpoint_has_no_leg(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        backend.nurse_ready(NurseLine(2002, None))
        sink.leg_is(False, 2002)
    assert not [a for a in peer.actions if dict(a).get("Action") == "Originate"]


def test_a_person_is_bridged_to_the_nurse_within_two_seconds_of_the_verdict(peer: AmiPeer) -> None:
    """Measured on the wall clock in the backend's own events: `human` to `connected`."""
    sink = Collector()
    with asterisk(peer, sink) as backend:
        nurse_in_conference(backend, sink)
        for attempt_id, number in ((14, PERSON), (15, NOT_SURE)):
            backend.dial(request(attempt_id, number))
        for attempt_id in (14, 15):
            sink.ended(attempt_id)
            assert sink.at(attempt_id, K.connected) - sink.at(attempt_id, K.human) < 2.0
            assert sink.calls(attempt_id)[2].at <= sink.calls(attempt_id)[3].at


def test_dialing_while_the_switch_is_unreachable_fails_the_attempt_at_once(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        peer.close()  # no server any more: the watchdog keeps trying in vain
        assert poll(lambda: not backend.wait_connected(0))
        backend.dial(request(16, PERSON))
        end = sink.ended(16, timeout=1)
    assert result_of(sink.calls(16)) == (AttemptResult.failed, 41)
    assert end.kind == K.ended


def test_a_number_that_would_smuggle_a_header_is_not_sent(peer: AmiPeer) -> None:
    sink = Collector()
    with asterisk(peer, sink) as backend:
        backend.dial(request(17, f"{PERSON}\r\nAction: Originate"))
        sink.ended(17, timeout=1)
        backend.dial(request(18, BUSY))  # the link is unharmed
        sink.ended(18)
    assert result_of(sink.calls(17)) == (AttemptResult.failed, 41)
    assert [dict(a)["ActionID"] for a in peer.actions if dict(a).get("Action") == "Originate"] == [
        "orig-att-18"
    ]
