"""AMI packets read as the real server wrote them, and damaged ones recognised without losing what follows."""

from __future__ import annotations

import json

import pytest
from ami_recordings import PLACES

from dialer.backends.asterisk.packets import MalformedPacket, encode, parse

SCENARIOS = [
    "conf-human",
    "conf-machine",
    "conf-busy",
    "conf-nurse-leaves",
    "conf-reconnect-2",
    "unallocated",
]


def wire(headers: list[tuple[str, str]]) -> str:
    return encode(headers).decode("utf-8").removesuffix("\r\n\r\n")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_recorded_packet_reads_back_whole(scenario: str) -> None:
    path = next(
        p / f"ami-transcript-{scenario}.jsonl"
        for p in PLACES
        if (p / f"ami-transcript-{scenario}.jsonl").exists()
    )
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("dir") != "in" or "headers" not in item:
            continue
        headers = [(k, v) for k, v in item["headers"]]
        packet = parse(wire(headers))
        assert packet.headers == tuple(headers) and packet.damaged == 0


def test_repeated_headers_are_all_kept() -> None:
    status = parse(
        "Event: Status\r\nUniqueid: att-9-1\r\nVariable: CARECALL_ATTEMPT=9\r\n"
        "Variable: AMDSTATUS=HUMAN\r\nVariable: AMDCAUSE=HUMAN-816-800\r\nActionID: a1\r\nActionID: a2"
    )
    assert status.variables() == {"CARECALL_ATTEMPT": "9", "AMDSTATUS": "HUMAN", "AMDCAUSE": "HUMAN-816-800"}
    assert status.get("ActionID") == "a1"


def test_a_line_without_a_colon_is_dropped_and_the_rest_kept() -> None:
    packet = parse("Event: Hangup\r\nUniqueid: att-3-1\r\n\x00\x01garbage\r\nCause: 17")
    assert packet.event == "Hangup" and packet.get("Cause") == "17" and packet.damaged == 1


def test_a_truncated_packet_run_into_the_next_keeps_the_next_whole() -> None:
    packet = parse("Event: Hangup\r\nUniqEvent: Newstate\r\nUniqueid: att-3-1\r\nChannelStateDesc: Up")
    assert packet.headers == (("Event", "Newstate"), ("Uniqueid", "att-3-1"), ("ChannelStateDesc", "Up"))
    assert packet.damaged == 2
    glued = parse("Event: Hangup\r\nUniqueid: att-3-1\r\nEvent: Newstate\r\nUniqueid: att-4-1")
    assert glued.headers == (("Event", "Newstate"), ("Uniqueid", "att-4-1"))


def test_an_originate_response_keeps_its_own_response_header() -> None:
    packet = parse("Event: OriginateResponse\r\nActionID: orig-att-5\r\nResponse: Failure\r\nReason: 5")
    assert packet.event == "OriginateResponse" and packet.response == "Failure" and packet.damaged == 0


@pytest.mark.parametrize("text", ["", "garbage without colon", "Foo: bar\r\nBaz: 1", "\x00\x01\x02"])
def test_what_is_neither_an_event_nor_a_response_is_refused_without_its_content(text: str) -> None:
    with pytest.raises(MalformedPacket) as err:
        parse(text)
    assert "bar" not in str(err.value) and "garbage" not in str(err.value)


def test_an_action_value_cannot_smuggle_a_header() -> None:
    with pytest.raises(ValueError):
        encode([("Action", "Hangup"), ("Channel", "att-1-1\r\nAction: Originate")])


def test_a_packet_truncated_within_a_value_keeps_the_next_whole() -> None:
    packet = parse(
        "Event: Newstate\r\nChannel: Local/0261910001@patEvent: Hangup\r\nUniqueid: att-3-1\r\nCause: 16"
    )
    assert packet.headers == (("Event", "Hangup"), ("Uniqueid", "att-3-1"), ("Cause", "16"))
    blob = parse("\x00\x01\x02Event: Hangup\r\nUniqueid: att-3-1")
    assert blob.event == "Hangup" and blob.damaged == 1


def test_a_user_event_keeps_its_own_user_event_header() -> None:
    packet = parse("Event: UserEvent\r\nUniqueid: att-3-1\r\nUserEvent: CarecallAMD\r\nAMDStatus: HUMAN")
    assert packet.get("UserEvent") == "CarecallAMD" and packet.damaged == 0
