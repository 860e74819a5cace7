"""The AMI peer speaks as the recorded Asterisk 22 does, to the real `asterisk-ami` client over TCP.

The oracle is the recorded traffic itself (`dialer/testing/ami_recordings`,
copies of `../shared/fixtures/ami/`), read here with a few lines of JSON, not
through the peer's own flow-cutting code.
"""

from __future__ import annotations

import calendar
import collections
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asterisk.ami import Action, AMIClient, Event

from dialer.testing.ami_peer import AmiPeer

RECORDINGS = Path(__file__).resolve().parents[2] / "dialer" / "testing" / "ami_recordings"
SPEED = 20
WAIT = 5.0  # seconds: every flow here ends well before, at SPEED


def recorded(scenario: str) -> list[dict[str, Any]]:
    lines = (RECORDINGS / f"ami-transcript-{scenario}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"headers"' in line]


def first(headers: list[list[str]], name: str) -> str | None:
    return next((value for key, value in headers if key == name), None)


def recorded_call(scenario: str) -> tuple[list[list[str]], list[str]]:
    """The patient's Originate as recorded and the kinds of the events that followed it, in order."""
    packets = recorded(scenario)
    start = next(
        i
        for i, p in enumerate(packets)
        if p["dir"] == "out"
        and first(p["headers"], "Action") == "Originate"
        and first(p["headers"], "Context") != "nurse-conference"
    )
    kinds = []
    for packet in packets[start + 1 :]:
        if packet["dir"] == "out":
            break
        if first(packet["headers"], "Privilege") and first(packet["headers"], "Event"):
            kinds.append(first(packet["headers"], "Event"))
    return packets[start]["headers"], kinds


def recorded_counts(scenario: str, keep: Callable[[str], bool] = lambda _p: True) -> collections.Counter[str]:
    """Events received over the whole recorded session (Login to Logoff) whose Privilege passes `keep`."""
    return collections.Counter(
        first(p["headers"], "Event")
        for p in recorded(scenario)
        if p["dir"] == "in" and first(p["headers"], "Event") and keep(first(p["headers"], "Privilege") or "")
    )


class Client:
    """The real asterisk-ami client, logged in to the peer, keeping every event it receives."""

    def __init__(self, peer: AmiPeer, events: str = "on", username: str = "dialer") -> None:
        self.ami = AMIClient(*peer.address, timeout=WAIT)
        self.events: list[Event] = []
        self.unknown: list[str] = []
        self.disconnected = threading.Event()
        self._changed = threading.Condition()
        self.ami.add_event_listener(self._on_event)
        self.ami.add_listener(
            on_unknown=self._on_unknown, on_disconnect=lambda source, error: self.disconnected.set()
        )
        self.ami.connect()
        login = {"Username": username, "Secret": "dialer-secret", "Events": events}
        self.login = self.ami.send_action(Action("Login", login)).response
        if events == "on" and self.login.status == "Success":
            self.wait_for(lambda es: [e.name for e in es[:2]] == ["FullyBooted", "SuccessfulAuth"])

    def _on_event(self, event: Event, source: AMIClient) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def _on_unknown(self, source: AMIClient, pack: str) -> None:
        with self._changed:
            self.unknown.append(pack)
            self._changed.notify_all()

    def send(self, name: str, variables: dict[str, str] | None = None, **keys: str) -> Any:
        action = Action(name, dict(keys))
        action.variables = variables or {}
        return self.ami.send_action(action).response

    def wait_for(self, done: Callable[[list[Event]], bool], timeout: float = WAIT) -> list[Event]:
        with self._changed:
            assert self._changed.wait_for(lambda: done(self.events), timeout), [e.name for e in self.events]
            return list(self.events)

    def kinds(self, since: int = 0) -> list[str]:
        with self._changed:
            return [e.name for e in self.events[since:]]

    def kinds_after(self, since: int, count: int) -> list[str]:
        """The kinds of the events after the first `since`, once `count` came and nothing more for a while."""
        self.wait_for(lambda es: len(es) - since >= count)
        time.sleep(0.1)
        return self.kinds(since)

    def mark(self) -> int:
        with self._changed:
            return len(self.events)

    def nurse_leg(self, exten: str = "NURSE2002") -> None:
        """Her phone into her conference; returns once she waits there (the recorded leg's last event)."""
        self.send(
            "Originate",
            {"NURSE_TALK": "300"},
            ActionID=f"orig-nurse-{exten}",
            Channel=f"Local/{exten}@nurse-phones",
            Context="nurse-conference",
            Exten=exten,
            Priority="1",
            Timeout="30000",
            CallerID='"Dialer" <0199000002>',
            ChannelId=f"nurse-{exten}-1",
            OtherChannelId=f"nurse-{exten}-2",
            Async="true",
        )
        self.wait_for(
            lambda es: any(_is(e, "Newexten", AppData="300", Uniqueid=f"nurse-{exten}-2") for e in es)
        )

    def patient(self, number: str, attempt: int, exten: str = "NURSE2002", **variables: str) -> Any:
        return self.send(
            "Originate",
            {"CARECALL_ATTEMPT": str(attempt), **variables},
            ActionID=f"orig-att-{attempt}",
            Channel=f"Local/{number}@patients",
            Context="patient-amd",
            Exten=exten,
            Priority="1",
            Timeout="30000",
            CallerID='"Carecall" <0199000001>',
            ChannelId=f"att-{attempt}-1",
            OtherChannelId=f"att-{attempt}-2",
            Async="true",
        )

    def close(self) -> None:
        """Log off first: the library's reader thread only ends when the server closes."""
        if not self.disconnected.is_set():
            self.ami.send_action(Action("Logoff", {})).response  # noqa: B018
        self.ami.disconnect()


def _is(event: Event, name: str, **keys: str) -> bool:
    return event.name == name and all(event.keys.get(k) == v for k, v in keys.items())


def ended(uid: str) -> Callable[[list[Event]], bool]:
    return lambda events: any(_is(e, "Hangup", Uniqueid=uid) for e in events)


@pytest.fixture
def peer() -> Iterator[AmiPeer]:
    with AmiPeer(speed=SPEED) as running:
        yield running


@pytest.fixture
def client(peer: AmiPeer) -> Iterator[Client]:
    logged_in = Client(peer)
    yield logged_in
    logged_in.close()


# -- the protocol -------------------------------------------------------------------------------


def test_login_ping_and_logoff_answer_as_asterisk_with_the_clients_action_id(peer: AmiPeer) -> None:
    client = Client(peer)
    assert client.login.status == "Success"
    assert client.login.keys == {"ActionID": "0", "Message": "Authentication accepted"}
    assert client.wait_for(lambda es: len(es) >= 2)[:2][0].name == "FullyBooted"
    pong = client.send("Ping", ActionID="keepalive-7")
    assert pong.status == "Success"
    assert pong.keys["ActionID"] == "keepalive-7"
    assert pong.keys["Ping"] == "Pong"
    assert float(pong.keys["Timestamp"]) > 0
    unknown = client.send("Dance", ActionID="what")
    assert (unknown.status, unknown.keys) == (
        "Error",
        {"ActionID": "what", "Message": "Invalid/unknown command"},
    )
    goodbye = client.send("Logoff", ActionID="bye")
    assert (goodbye.status, goodbye.keys["ActionID"]) == ("Goodbye", "bye")
    assert client.disconnected.wait(WAIT)


def test_a_wrong_secret_is_refused_and_the_connection_closed(peer: AmiPeer) -> None:
    ami = AMIClient(*peer.address, timeout=WAIT)
    closed = threading.Event()
    ami.add_listener(on_disconnect=lambda source, error: closed.set())
    refused = ami.login("dialer", "not-the-secret").response
    assert refused.status == "Error"
    assert refused.keys["Message"] == "Authentication failed"
    assert closed.wait(WAIT)
    assert [a[0] for a in peer.actions] == [("Action", "Login")]


def test_the_banner_comes_first_and_an_action_before_login_is_denied(peer: AmiPeer) -> None:
    with socket.create_connection(peer.address, timeout=WAIT) as raw:
        assert raw.recv(100) == b"Asterisk Call Manager/11.0.0\r\n"
        raw.sendall(b"Action: CoreShowChannels\r\nActionID: early\r\n\r\n")
        assert read_packets(raw, 1) == [
            [("Response", "Error"), ("ActionID", "early"), ("Message", "Permission denied")]
        ]


# -- the recorded flows -------------------------------------------------------------------------

NUMBERS = [
    # number dialed, the flow it plays (the peer's table: 02 61 91 0D xx, D picks the flow)
    ("0261910001", "conf-human"),
    ("0261910701", "conf-notsure"),
    ("0261910601", "conf-machine"),
    ("0261910401", "conf-hangup-quick"),
    ("0261910101", "conf-busy"),
    ("0261910201", "conf-noanswer"),
    ("0261910301", "congestion"),
    ("0261910501", "unallocated"),
    ("1234", "nosuchexten"),
    # outside the table: 06 39 98 is no number for phonenumbers, any other national number is a person
    ("0639980001", "unallocated"),
    ("0261910899", "conf-human"),
    ("0261911101", "conf-human"),
    ("0199001234", "conf-human"),
]


@pytest.mark.parametrize(("number", "scenario"), NUMBERS)
def test_each_dialed_number_plays_its_recorded_flow_event_by_event(
    client: Client, number: str, scenario: str
) -> None:
    """Same kinds in the same order as the real switch, odd orders included (Cdr first, OriginateResponse
    between the Hangups...), with as many VarSet as variables sent (here as many as recorded)."""
    action, expected = recorded_call(scenario)
    if scenario.startswith("conf-"):
        client.nurse_leg("NURSE1001")
    since = client.mark()
    keys = {k: v for k, v in action if k not in ("Action", "Variable", "Channel")}
    variables = dict(v.split("=", 1) for k, v in action if k == "Variable")
    client.send("Originate", variables, **keys, Channel=f"Local/{number}@patients")
    assert client.kinds_after(since, len(expected)) == expected


def test_a_call_is_rewritten_with_its_own_ids_and_nothing_of_the_recorded_call(client: Client) -> None:
    client.nurse_leg("NURSE2002")
    since = client.mark()
    client.patient("0261910001", 42, CARECALL_TASK="7")
    events = client.wait_for(ended("att-42-1"))[since:]
    response = next(e for e in events if e.name == "OriginateResponse")
    assert (response["ActionID"], response["Uniqueid"], response["Response"]) == (
        "orig-att-42",
        "att-42-1",
        "Success",
    )
    assert response["Channel"].startswith("Local/0261910001@patients-") and response["Channel"].endswith(";1")
    linked = {e.keys.get("Linkedid") for e in events if e.keys.get("Uniqueid", "").startswith("att-")}
    assert linked == {"att-42-1", None}  # OriginateResponse has no Linkedid
    assert {e["Uniqueid"] for e in events if "Uniqueid" in e.keys} == {
        "att-42-1",
        "att-42-2",
        "nurse-NURSE2002-1",
    }
    amd = next(e for e in events if _is(e, "UserEvent", UserEvent="CarecallAMD"))
    assert (amd["Attempt"], amd["Nurse"], amd["AMDStatus"]) == ("42", "NURSE2002", "HUMAN")
    joined = next(e for e in events if _is(e, "ConfbridgeJoin", Uniqueid="att-42-1"))
    assert joined["Conference"] == "nurse-NURSE2002"
    assert joined["CallerIDNum"] == "0199000001"
    cdr = next(e for e in events if e.name == "Cdr")
    ended_at = calendar.timegm(time.strptime(cdr["EndTime"], "%Y-%m-%d %H:%M:%S"))
    assert abs(ended_at - time.time()) < 5  # today's call, not the recording's date
    text = "".join(str(e.keys) for e in events)
    action, _ = recorded_call("conf-human")
    number = str(first(action, "Channel")).removeprefix("Local/").partition("@")[0]  # the capture's own
    caller = str(first(action, "CallerID")).partition("<")[2].removesuffix(">")
    assert number and caller
    for recorded_value in ("att-101", number, "NURSE1001", "orig-att", caller, "nurse-nurse1001"):
        assert recorded_value not in text.replace("orig-att-42", "")


def test_the_originate_variables_are_set_on_both_halves_as_recorded(client: Client) -> None:
    since = client.mark()
    client.patient("0261910101", 5, CARECALL_TASK="9", CARECALL_NURSE="3")
    events = client.wait_for(ended("att-5-2"))[since:]
    varsets = [(e["Uniqueid"], e["Variable"], e["Value"]) for e in events if e.name == "VarSet"]
    assert varsets == [
        ("att-5-1", "CARECALL_NURSE", "3"),  # ;1 in reverse order, as Asterisk did
        ("att-5-1", "CARECALL_TASK", "9"),
        ("att-5-1", "CARECALL_ATTEMPT", "5"),
        ("att-5-2", "CARECALL_ATTEMPT", "5"),
        ("att-5-2", "CARECALL_TASK", "9"),
        ("att-5-2", "CARECALL_NURSE", "3"),
    ]


def test_a_failed_originate_names_the_dial_string_and_unknown_uniqueid_without_channel_id(
    client: Client,
) -> None:
    client.send("Originate", ActionID="no-id", Channel="Local/0261910301@patients", Context="patient-amd",
                Exten="NURSE2002", Async="true")  # fmt: skip
    client.patient("0261910301", 8)
    events = client.wait_for(lambda es: sum(e.name == "OriginateResponse" for e in es) == 2)
    failures = {e["ActionID"]: e for e in events if e.name == "OriginateResponse"}
    assert failures["no-id"]["Uniqueid"] == "<unknown>"
    assert failures["orig-att-8"]["Uniqueid"] == "att-8-1"
    assert {f["Channel"] for f in failures.values()} == {"Local/0261910301@patients"}
    assert {(f["Response"], f["Reason"]) for f in failures.values()} == {("Failure", "8")}


def test_no_answer_ends_at_the_originate_timeout_not_before(client: Client) -> None:
    start = time.monotonic()
    client.send("Originate", ActionID="short", Channel="Local/0261910201@patients", Context="patient-amd",
                Exten="NURSE2002", Timeout="4000", ChannelId="na-1", Async="true")  # fmt: skip
    events = client.wait_for(ended("na-1"))
    assert time.monotonic() - start >= 4.0 / SPEED
    response = next(e for e in events if e.name == "OriginateResponse")
    assert (response["Response"], response["Reason"]) == ("Failure", "3")
    assert {e["Cause"] for e in events if e.name == "Hangup"} == {"19"}


def test_the_nurse_leg_joins_her_own_conference_and_stays(client: Client, peer: AmiPeer) -> None:
    client.nurse_leg("NURSE3003")
    events = client.wait_for(lambda es: any(e.name == "ConfbridgeJoin" for e in es))
    joined = next(e for e in events if e.name == "ConfbridgeJoin")
    assert (joined["Conference"], joined["Uniqueid"]) == ("nurse-NURSE3003", "nurse-NURSE3003-1")
    time.sleep(10 / SPEED)
    assert not any(e.name == "Hangup" for e in client.events)
    rooms = raw_action(peer, "Action: ConfbridgeListRooms\r\nActionID: r\r\n")
    assert ("Parties", "1") in rooms[1] and ("Marked", "1") in rooms[1]


def test_ring_and_talk_time_follow_the_calls_variables_as_the_dialplan_does(client: Client) -> None:
    client.nurse_leg()
    start = time.monotonic()
    client.patient("0261910001", 9, RING_SECS="10", TALK_SECS="1")
    client.wait_for(lambda es: any(_is(e, "OriginateResponse", ActionID="orig-att-9") for e in es))
    assert time.monotonic() - start >= 10 / SPEED
    events = client.wait_for(ended("att-9-1"))
    assert next(e for e in events if _is(e, "VarSet", Variable="TALK"))["Value"] == "1"


# -- what the flows depend on -------------------------------------------------------------------


def test_a_person_answering_when_the_nurse_leg_is_gone_hears_the_apology(client: Client) -> None:
    since = client.mark()
    client.patient("0261910001", 11)  # no nurse leg up for NURSE2002
    client.wait_for(ended("att-11-2"))
    time.sleep(0.2)
    events = client.events[since:]
    verdict = next(i for i, e in enumerate(events) if _is(e, "VarSet", Variable="AMDSTATUS"))
    assert [e.name for e in events[verdict:]] == recorded_after_verdict("conf-nurse-gone")
    assert not any(e.name == "ConfbridgeJoin" for e in events)
    assert any(_is(e, "UserEvent", UserEvent="CarecallNurseGone", Attempt="11") for e in events)
    assert any(_is(e, "Newexten", Application="Playback", AppData="carecall-excuse") for e in events)
    assert {e["Cause"] for e in events if e.name == "Hangup"} == {"16"}


def test_a_hangup_action_by_channel_id_ends_the_conversation_as_recorded(client: Client) -> None:
    client.nurse_leg()
    client.patient("0261910001", 14, TALK_SECS="600")
    client.wait_for(lambda es: any(_is(e, "ConfbridgeJoin", Uniqueid="att-14-1") for e in es))
    since = client.mark()
    hungup = client.send("Hangup", ActionID="h", Channel="att-14-1", Cause="16")
    assert (hungup.status, hungup.keys["Message"]) == ("Success", "Channel Hungup")
    expected = recorded_tail("conf-hangup-action", "Hangup")
    assert client.kinds_after(since, len(expected)) == expected
    events = client.events[since:]
    assert not any(e.keys.get("Uniqueid", "").startswith("nurse-") for e in events if e.name == "Hangup")


def test_a_nurse_hung_up_mid_call_kicks_the_patient_into_the_apology(client: Client) -> None:
    client.nurse_leg()
    client.patient("0261910001", 15, TALK_SECS="600")
    events = client.wait_for(lambda es: any(_is(e, "ConfbridgeJoin", Uniqueid="att-15-1") for e in es))
    nurse_channel = next(e for e in events if _is(e, "Newchannel", Uniqueid="nurse-NURSE2002-1"))["Channel"]
    since = client.mark()
    assert client.send("Hangup", Channel=nurse_channel, Cause="16").status == "Success"
    expected = recorded_tail("conf-nurse-leaves", "Hangup")
    assert client.kinds_after(since, len(expected)) == expected
    events = client.events[since:]
    assert any(
        _is(e, "VarSet", Uniqueid="att-15-1", Variable="CONFBRIDGE_RESULT", Value="ENDMARKED") for e in events
    )
    assert any(_is(e, "UserEvent", UserEvent="CarecallNurseGone", Attempt="15") for e in events)


def test_a_redirect_to_the_apology_leaves_the_conference_as_recorded(client: Client) -> None:
    client.nurse_leg()
    client.patient("0261910001", 16, TALK_SECS="600")
    client.wait_for(lambda es: any(_is(e, "ConfbridgeJoin", Uniqueid="att-16-1") for e in es))
    since = client.mark()
    moved = client.send(
        "Redirect", Channel="att-16-1", Context="patient-redirect", Exten="apology", Priority="1"
    )
    assert (moved.status, moved.keys["Message"]) == ("Success", "Redirect successful")
    expected = recorded_tail("conf-redirect", "Redirect")
    assert client.kinds_after(since, len(expected)) == expected


def test_hangup_and_status_of_an_unknown_channel_are_errors(client: Client) -> None:
    assert client.send("Hangup", Channel="att-999-1").keys["Message"] == "No such channel"
    assert client.send("Status", Channel="att-999-1").keys["Message"] == "No such channel"


def recorded_after_verdict(scenario: str) -> list[str]:
    packets = recorded(scenario)
    at = next(i for i, p in enumerate(packets) if first(p["headers"], "Variable") == "AMDSTATUS")
    return [
        first(p["headers"], "Event") or ""
        for p in packets[at:]
        if p["dir"] == "in" and first(p["headers"], "Privilege") and first(p["headers"], "Event")
    ]


def recorded_tail(scenario: str, action: str) -> list[str]:
    packets = recorded(scenario)
    at = next(
        i for i, p in enumerate(packets) if p["dir"] == "out" and first(p["headers"], "Action") == action
    )
    kinds = []
    for packet in packets[at + 1 :]:
        if packet["dir"] == "out":
            break
        if first(packet["headers"], "Privilege") and first(packet["headers"], "Event"):
            kinds.append(first(packet["headers"], "Event"))
    return kinds


# -- raw socket helpers: the library keeps one value per header name, Status has several -------


def read_packets(raw: socket.socket, count: int) -> list[list[tuple[str, str]]]:
    data = b""
    while data.count(b"\r\n\r\n") < count:
        chunk = raw.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    packets = [p for p in data.split(b"\r\n\r\n") if p][:count]
    return [[tuple(line.split(": ", 1)) if ": " in line else (line.rstrip(":"), "")  # type: ignore[misc]
             for line in p.decode().split("\r\n")] for p in packets]  # fmt: skip


def raw_action(peer: AmiPeer, action: str) -> list[list[tuple[str, str]]]:
    """Log in on a raw socket with `Events: off`, send one listing action, return its packets."""
    with socket.create_connection(peer.address, timeout=WAIT) as raw:
        raw.recv(100)
        raw.sendall(b"Action: Login\r\nUsername: dialer\r\nSecret: dialer-secret\r\nEvents: off\r\n\r\n")
        read_packets(raw, 1)
        raw.sendall(action.encode() + b"\r\n")
        packets: list[list[tuple[str, str]]] = []
        data = b""
        while True:
            chunk = raw.recv(65536)
            assert chunk
            data += chunk
            packets = [
                [tuple(line.split(": ", 1)) if ": " in line else (line.rstrip(":"), "")  # type: ignore[misc]
                 for line in p.decode().split("\r\n")] for p in data.split(b"\r\n\r\n") if p]  # fmt: skip
            last = packets[-1] if data.endswith(b"\r\n\r\n") else []
            if packets[0][0] == ("Response", "Error") or ("EventList", "Complete") in last:
                return packets


def test_a_nurse_hung_up_alone_leaves_her_conference_as_recorded(client: Client) -> None:
    client.nurse_leg()
    since = client.mark()
    assert client.send("Hangup", Channel="nurse-NURSE2002-1", Cause="16").status == "Success"
    packets = recorded("conf-nurse-gone")
    at = next(
        i for i, p in enumerate(packets) if p["dir"] == "out" and first(p["headers"], "Action") == "Hangup"
    )
    expected = [
        first(p["headers"], "Event")
        for p in packets[at + 1 :]
        if p["dir"] == "in" and first(p["headers"], "Privilege") and "patients" not in json.dumps(p)
    ]
    assert client.kinds_after(since, len(expected)) == expected
    assert any(_is(e, "ConfbridgeEnd", Conference="nurse-NURSE2002") for e in client.events)


def test_hanging_up_a_ringing_call_fails_its_originate(client: Client) -> None:
    """Not recorded: both halves end with the cause given and the Originate fails (Reason 1, hung up)."""
    client.patient("0261910001", 17, RING_SECS="60")
    client.wait_for(lambda es: any(_is(e, "DialState", DialStatus="RINGING") for e in es))
    assert client.send("Hangup", Channel="att-17-1", Cause="21").status == "Success"
    events = client.wait_for(lambda es: ended("att-17-1")(es) and ended("att-17-2")(es))
    response = next(e for e in events if e.name == "OriginateResponse")
    assert (response["Response"], response["Reason"], response["Uniqueid"]) == ("Failure", "1", "att-17-1")
    assert {e["Cause"] for e in events if e.name == "Hangup"} == {"21"}
    assert not any(e.name == "UserEvent" for e in events)


# -- filters: the recorded table of events per login --------------------------------------------


def _recorded_human_session(driver: Client) -> None:
    """The conf-human capture as sent: her leg, then the patient with the recorded variables."""
    driver.nurse_leg("NURSE1001")
    action, _ = recorded_call("conf-human")
    keys = {k: v for k, v in action if k not in ("Action", "Variable")}
    driver.send("Originate", dict(v.split("=", 1) for k, v in action if k == "Variable"), **keys)
    driver.wait_for(ended("att-101-1"))


def _classes(privilege: str) -> set[str]:
    return set(privilege.split(","))


@pytest.mark.parametrize(
    ("username", "events", "expected"),
    [
        ("dialer", "on", recorded_counts("conf-human")),  # 107 events
        ("dialer", "call", recorded_counts("conf-human", lambda p: "call" in _classes(p))),
        (
            "dialer",
            "call,user",
            recorded_counts("conf-human", lambda p: bool({"call", "user"} & _classes(p))),
        ),
        ("dialer-filtered", "on", recorded_counts("conf-filter-managerconf")),  # 42 events, a capture
    ],
    ids=["events-on", "events-call", "events-call-user", "manager-conf-eventfilter"],
)
def test_the_login_cuts_the_stream_as_the_recorded_server_did(
    peer: AmiPeer, client: Client, username: str, events: str, expected: collections.Counter[str]
) -> None:
    watched = Client(peer, events=events, username=username)
    _recorded_human_session(client)
    time.sleep(0.2)
    got = collections.Counter(e.name for e in watched.events)
    assert got == expected
    verdicts = [e for e in watched.events if _is(e, "VarSet", Variable="AMDSTATUS")]
    amd = [e for e in watched.events if _is(e, "UserEvent", UserEvent="CarecallAMD")]
    assert (bool(verdicts), bool(amd)) == {
        "on": (True, True),
        "call": (False, False),  # Events: call hides the detector's verdict entirely
        "call,user": (False, True),
    }[events if username == "dialer" else "on"]
    watched.close()


def test_a_session_filter_added_by_action_cuts_its_own_stream_only(peer: AmiPeer, client: Client) -> None:
    watched = Client(peer)
    added = watched.send("Filter", Operation="Add", MatchCriteria="action(exclude),name(Newexten)", Filter="")
    assert added.status == "Success"
    legacy = watched.send(
        "Filter", Operation="Add", Filter="!Variable: CARECALL_ATTEMPT"
    )  # a regex, excluding
    assert legacy.status == "Success"
    since = watched.mark()
    client.patient("0261910101", 34)
    client.wait_for(ended("att-34-2"))
    _, recorded_kinds = recorded_call("conf-busy")  # its only VarSets are CARECALL_ATTEMPT's
    expected = [k for k in recorded_kinds if k not in ("Newexten", "VarSet")]
    assert watched.kinds_after(since, len(expected)) == expected
    assert "Newexten" in client.kinds()
    watched.close()


def test_events_call_loses_what_the_recorded_login_lost(peer: AmiPeer, client: Client) -> None:
    watched = Client(peer, events="call")
    _recorded_human_session(client)
    time.sleep(0.2)
    assert {e.name for e in watched.events} == set(recorded_counts("conf-filter-events-call"))
    watched.close()


# -- reconciliation -----------------------------------------------------------------------------


def _in_conversation(client: Client, attempt: int) -> None:
    client.nurse_leg()
    client.patient("0261910001", attempt, TALK_SECS="600")
    client.wait_for(lambda es: any(_is(e, "ConfbridgeJoin", Uniqueid=f"att-{attempt}-1") for e in es))


def _recorded_reply(scenario: str, action: str) -> list[list[str]]:
    """Header names of each packet answering `action` in a capture."""
    packets = recorded(scenario)
    at = next(
        i for i, p in enumerate(packets) if p["dir"] == "out" and first(p["headers"], "Action") == action
    )
    reply = []
    for packet in packets[at + 1 :]:
        if packet["dir"] == "out" or first(packet["headers"], "Privilege") not in (None, "Call"):
            break
        reply.append([k for k, _ in packet["headers"]])
    return reply


def test_core_show_channels_lists_both_halves_of_the_live_call_and_the_nurse(
    peer: AmiPeer, client: Client
) -> None:
    _in_conversation(client, 20)
    reply = raw_action(peer, "Action: CoreShowChannels\r\nActionID: recon-channels\r\n")
    assert [[k for k, _ in p] for p in reply] == _recorded_reply("conf-reconcile", "CoreShowChannels")
    items = [dict(p) for p in reply[1:-1]]
    assert [i["Uniqueid"] for i in items] == [
        "att-20-2",
        "att-20-1",
        "nurse-NURSE2002-2",
        "nurse-NURSE2002-1",
    ]
    assert {i["ActionID"] for i in items} == {"recon-channels"}
    assert (items[1]["Application"], items[1]["Context"]) == ("ConfBridge", "patient-amd")
    assert items[1]["BridgeId"] == items[3]["BridgeId"] != ""
    assert dict(reply[-1])["ListItems"] == "4"


def test_status_by_channel_id_or_name_gives_the_attempts_variables(peer: AmiPeer, client: Client) -> None:
    _in_conversation(client, 21)
    wanted = "Variables: CARECALL_ATTEMPT,CARECALL_NURSE,AMDSTATUS,AMDCAUSE\r\n"
    by_id = raw_action(peer, f"Action: Status\r\nActionID: recon-status\r\nChannel: att-21-1\r\n{wanted}")
    assert [[k for k, _ in p] for p in by_id] == _recorded_reply("conf-reconcile", "Status")
    variables = [v for k, v in by_id[1] if k == "Variable"]
    assert variables == [
        "CARECALL_ATTEMPT=21",
        "CARECALL_NURSE=NURSE2002",
        "AMDSTATUS=HUMAN",
        "AMDCAUSE=HUMAN-816-800",
    ]
    name = dict(by_id[1])["Channel"]
    by_name = raw_action(peer, f"Action: Status\r\nChannel: {name}\r\n{wanted}")
    assert dict(by_name[1])["Uniqueid"] == "att-21-1"


def test_the_conference_lists_show_the_nurse_marked_and_the_patient(peer: AmiPeer, client: Client) -> None:
    _in_conversation(client, 22)
    users = raw_action(peer, "Action: ConfbridgeList\r\nActionID: c\r\nConference: nurse-NURSE2002\r\n")
    assert [[k for k, _ in p] for p in users] == _recorded_reply("conf-reconcile", "ConfbridgeList")
    assert [(dict(u)["Uniqueid"], dict(u)["MarkedUser"], dict(u)["EndMarked"]) for u in users[1:-1]] == [
        ("nurse-NURSE2002-1", "Yes", "No"),
        ("att-22-1", "No", "Yes"),
    ]
    rooms = raw_action(peer, "Action: ConfbridgeListRooms\r\nActionID: r\r\n")
    assert [[k for k, _ in p] for p in rooms] == _recorded_reply("conf-reconcile", "ConfbridgeListRooms")
    assert (dict(rooms[1])["Parties"], dict(rooms[1])["Marked"]) == ("2", "1")
    bridges = raw_action(peer, "Action: BridgeList\r\nActionID: b\r\n")
    assert [[k for k, _ in p] for p in bridges] == _recorded_reply("conf-reconcile", "BridgeList")
    assert (dict(bridges[1])["BridgeName"], dict(bridges[1])["BridgeNumChannels"]) == ("nurse-NURSE2002", "3")
    missing = raw_action(peer, "Action: ConfbridgeList\r\nConference: nurse-NOBODY\r\n")
    assert dict(missing[0])["Message"] == "No Conference by that name found."


# -- faults ---------------------------------------------------------------------------------------


def test_dropped_connections_leave_the_calls_going_and_a_new_one_sees_only_what_follows(
    peer: AmiPeer,
) -> None:
    first_client = Client(peer)
    first_client.nurse_leg()
    first_client.patient("0261910001", 30, RING_SECS="10", TALK_SECS="40")
    first_client.wait_for(lambda es: any(_is(e, "DialState", DestUniqueid="att-30-1") for e in es))
    peer.drop_connections()
    assert first_client.disconnected.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while len(raw_action(peer, "Action: ConfbridgeList\r\nConference: nurse-NURSE2002\r\n")) < 4:
        assert time.monotonic() < deadline, "the patient never joined while nobody was connected"
        time.sleep(0.05)
    second = Client(peer)
    channels = raw_action(peer, "Action: CoreShowChannels\r\n")
    assert {dict(p)["Uniqueid"] for p in channels[1:-1]} >= {"att-30-1", "att-30-2"}
    events = second.wait_for(ended("att-30-1"))
    assert [e.name for e in events[:2]] == ["FullyBooted", "SuccessfulAuth"]
    assert not any(e.name in ("Newchannel", "OriginateResponse", "ConfbridgeJoin", "DialEnd") for e in events)
    assert any(_is(e, "ConfbridgeLeave", Uniqueid="att-30-1") for e in events)
    second.close()


def test_a_silent_peer_sends_nothing_then_everything_it_held_in_order(peer: AmiPeer, client: Client) -> None:
    since = client.mark()
    quiet = 0.5
    start = time.monotonic()
    peer.fall_silent(quiet)
    response = client.patient("0261910101", 31)  # the answer itself is held
    assert response.status == "Success"
    assert time.monotonic() - start >= quiet
    _, expected = recorded_call("conf-busy")
    assert client.kinds_after(since, len(expected)) == expected


def test_raw_bytes_reach_the_client_as_they_are(peer: AmiPeer) -> None:
    blob = b"a line without a colon\r\n\r\n\x00\xff\xfe\x80binary\r\n\r\nEvent: Hangup\r\nChannel: Loc"
    with socket.create_connection(peer.address, timeout=WAIT) as raw:
        raw.recv(100)
        raw.sendall(b"Action: Login\r\nUsername: dialer\r\nSecret: dialer-secret\r\nEvents: off\r\n\r\n")
        read_packets(raw, 1)
        peer.send_raw(blob)
        received = b""
        while len(received) < len(blob):
            received += raw.recv(65536)
        assert received == blob


def test_the_library_sees_malformed_packets_as_unknown_and_goes_on(peer: AmiPeer, client: Client) -> None:
    peer.send_raw(b"a line without a colon\r\n\r\n\x00\xff\xfebinary\r\n\r\n")
    assert client.send("Ping").keys["Ping"] == "Pong"
    assert client.unknown == ["a line without a colon", "\x00\ufffd\ufffdbinary"]


def test_repeated_events_arrive_that_many_times(peer: AmiPeer, client: Client) -> None:
    peer.repeat_events(2)
    since = client.mark()
    client.patient("0261910101", 32)
    _, expected = recorded_call("conf-busy")
    assert client.kinds_after(since, 2 * len(expected)) == [kind for kind in expected for _ in range(2)]


def test_an_unknown_call_plays_a_flow_carecall_never_originated(peer: AmiPeer, client: Client) -> None:
    since = client.mark()
    channel_id = peer.unknown_call_event()
    _, recorded_kinds = recorded_call("conf-busy")
    expected = [k for k in recorded_kinds if k != "VarSet"]  # its own one variable instead of the recorded
    # the flow goes on after both halves hang up (DeviceStateChange, Cdr): wait for all of it
    events = client.wait_for(lambda es: len([e for e in es[since:] if e.name != "VarSet"]) >= len(expected))[
        since:
    ]
    assert ended(channel_id)(events) and ended(f"{channel_id[:-2]}-2")(events)
    assert [e.name for e in events if e.name != "VarSet"] == expected
    response = next(e for e in events if e.name == "OriginateResponse")
    assert (response["Uniqueid"], response["Response"]) == (channel_id, "Failure")
    assert response["ActionID"] not in {dict(a).get("ActionID") for a in peer.actions}


def test_the_peer_records_every_action_with_its_headers_in_order(peer: AmiPeer, client: Client) -> None:
    client.patient("0261910101", 33, CARECALL_TASK="4")
    originate = next(a for a in peer.actions if ("Action", "Originate") in a)
    assert ("ChannelId", "att-33-1") in originate
    assert [v for k, v in originate if k == "Variable"] == ["CARECALL_ATTEMPT=33", "CARECALL_TASK=4"]
    assert peer.actions[0][0] == ("Action", "Login")
