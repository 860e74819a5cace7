"""Every way a call goes on Twilio gives the dialer the events, and the record, it expects.

The real SDK places the calls on the local Twilio peer, which plays each
scenario in Twilio's order and posts signed callbacks to carecall's webhooks,
served by uvicorn on a real port; the lines live in a real database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio_world import VOICEMAIL, World, twilio_world

from campaign.states import AttemptResult
from dialer.backends.twilio.twiml import Prompts
from dialer.testing.twilio_calls import Behaviour, Script

PROMPTS = Prompts.render(VOICEMAIL)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for the calls that leave the nurse ready: each call has its own attempt and number."""
    with twilio_world(f"sqlite:///{tmp_path_factory.mktemp('twilio') / 'carecall.db'}") as w:
        w.nurse_ready()
        yield w


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world of its own, for a test that changes the nurse's leg."""
    with twilio_world(f"sqlite:///{tmp_path / 'carecall.db'}") as w:
        w.nurse_ready()
        yield w


@pytest.mark.parametrize(
    ("script", "kinds", "cause", "result"),
    [
        (Script.human, ["ringing", "answered", "human", "connected", "ended"], 16, AttemptResult.answered),
        (Script.unknown, ["ringing", "answered", "human", "connected", "ended"], 16, AttemptResult.answered),
        (
            Script.machine_no_message_end,
            ["ringing", "answered", "machine", "ended"],
            16,
            AttemptResult.machine,
        ),
        (Script.fax, ["ringing", "answered", "machine", "ended"], 16, AttemptResult.machine),
        (Script.busy, ["ended"], 17, AttemptResult.busy),
        (Script.no_answer, ["ringing", "ended"], 16, AttemptResult.no_answer),
        (Script.unallocated, ["ended"], 1, AttemptResult.number_not_in_service),
        (Script.congestion, ["ended"], 34, AttemptResult.failed),
        (Script.hangs_up_at_once, ["ringing", "answered", "ended"], 16, AttemptResult.hung_up),
        (Script.invalid_number, ["ended"], 28, AttemptResult.number_not_in_service),
    ],
)
def test_each_scenario_gives_its_events_and_record(
    shared: World, script: Script, kinds: list[str], cause: int, result: AttemptResult
) -> None:
    attempt = shared.dial(script, ring=5)
    ended = shared.wait_ended(attempt)
    shared.peer.wait_idle()
    assert shared.kinds(attempt) == kinds
    assert ended.cause == cause
    assert shared.record(attempt) == (result, False)


def test_a_person_is_bridged_within_the_verdict_own_request(shared: World) -> None:
    """The bridge is no round trip through the dialer: Twilio is told to send the patient into the
    nurse's conference before carecall even answers the verdict's callback."""
    attempt = shared.dial(Script.human)
    shared.wait_ended(attempt)
    shared.peer.wait_idle()
    (call,) = shared.peer.calls_to(shared.numbers[attempt])
    timeline = shared.peer.timeline
    verdict = next(
        i
        for i, (kind, _, p) in enumerate(timeline)
        if kind == "callback" and p.get("CallSid") == call.sid and "AnsweredBy" in p
    )
    bridge = next(
        i
        for i, (kind, path, form) in enumerate(timeline)
        if kind == "rest" and path.endswith(f"/{call.sid}.json") and "Conference" in str(form.get("Twiml"))
    )
    assert bridge < verdict
    assert call.conferences == [f"nurse-{shared.nurse_id}"]
    assert call.said == [PROMPTS.hold], "the patient heard the short hold, then the nurse"


def test_a_machine_gets_the_neutral_message_after_its_greeting(shared: World) -> None:
    attempt = shared.dial(Script.machine_message_end)
    ended = shared.wait_ended(attempt)
    shared.peer.wait_idle()
    assert shared.kinds(attempt) == ["ringing", "answered", "machine", "ended"]
    assert ended.voicemail_left and ended.detail == "voicemail"
    (call,) = shared.peer.calls_to(shared.numbers[attempt])
    assert call.said[-1] == VOICEMAIL.strip()
    assert shared.record(attempt) == (AttemptResult.machine, True)


def test_no_message_when_the_policy_leaves_none(shared: World) -> None:
    attempt = shared.dial(Script.machine_message_end, voicemail=None)
    ended = shared.wait_ended(attempt)
    shared.peer.wait_idle()
    (call,) = shared.peer.calls_to(shared.numbers[attempt])
    assert VOICEMAIL.strip() not in call.said
    assert not ended.voicemail_left
    assert shared.record(attempt) == (AttemptResult.machine, False)


def test_a_person_whose_nurse_leg_is_gone_hears_the_apology(world: World) -> None:
    nurse = world.nurse_id
    world.peer.drop_nurse(nurse)
    world.inbox.wait_for(lambda: [e.up for e in world.inbox.legs(nurse)] == [True, False])
    attempt = world.dial(Script.human)
    world.wait_ended(attempt)
    world.peer.wait_idle()
    assert world.kinds(attempt) == ["ringing", "answered", "human", "nurse_gone", "ended"]
    (call,) = world.peer.calls_to(world.numbers[attempt])
    assert call.said == [PROMPTS.hold, PROMPTS.apology], "never silence: the hold, then the apology"
    assert call.conferences == []
    assert world.record(attempt) == (AttemptResult.no_nurse, False)


def test_a_detector_that_never_answers_leaves_no_one_in_silence(shared: World) -> None:
    """No verdict by the end of the hold's pause: carecall takes the call for a person's."""
    slow = Behaviour(Script.human, amd_seconds=10_000)
    attempt = shared.dial(slow)
    shared.wait_ended(attempt)
    shared.peer.wait_idle()
    assert shared.kinds(attempt) == ["ringing", "answered", "human", "connected", "ended"]
    assert shared.record(attempt) == (AttemptResult.answered, False)


def test_the_nurse_leg_comes_and_goes_with_her(world: World) -> None:
    nurse = world.nurse_id
    world.backend.nurse_away(nurse)
    world.inbox.wait_for(lambda: [e.up for e in world.inbox.legs(nurse)] == [True, False])
    leg = world.peer.call_of_nurse(nurse)
    assert leg is not None and leg.to == "client:nurse-coach"
    assert leg.done.wait(5)


def test_hanging_up_ends_the_call_through_the_rest_api(shared: World) -> None:
    attempt = shared.dial(Behaviour(Script.human, talk_seconds=10_000))
    shared.inbox.wait_for(lambda: "connected" in shared.kinds(attempt))
    shared.backend.hangup(attempt)
    ended = shared.wait_ended(attempt)
    assert ended.cause == 16
    assert shared.record(attempt) == (AttemptResult.answered, False)
    orphan = shared.dial(Behaviour(Script.no_answer))
    shared.inbox.wait_for(lambda: "ringing" in shared.kinds(orphan))
    (call,) = shared.peer.calls_to(shared.numbers[orphan])
    shared.backend.hangup_orphan(call.sid)
    assert shared.wait_ended(orphan).detail == "canceled"
