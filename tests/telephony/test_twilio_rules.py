"""The Twilio backend's pure parts: its settings, its pacing, its TwiML, and callbacks read forward only."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.errors import ConfigError
from dialer.backends.twilio import callbacks, twiml
from dialer.backends.twilio.callbacks import Seen, forward
from dialer.backends.twilio.pacing import CallPacer
from dialer.backends.twilio.settings import ENV_ACCOUNT_SID, ENV_AUTH_TOKEN, load_twilio_settings
from dialer.events import CallEvent, CallEventKind, LineState

ROOT = Path(__file__).resolve().parents[2]
ENV = {ENV_ACCOUNT_SID: "AC" + "ab" * 16, ENV_AUTH_TOKEN: "secret-token"}
AT = datetime(2026, 12, 7, 9, tzinfo=UTC)


def write_config(tmp_path: Path, table: str) -> Path:
    (tmp_path / "telephony.toml").write_text(table, encoding="utf-8")
    return tmp_path


GOOD = '[twilio]\npublic_base_url = "https://calls.example.org/hooks/"\ncaller_number = "+33199000000"\n'


# ---------------------------------------------------------------- settings


def test_the_shipped_config_loads_with_credentials_from_the_environment() -> None:
    conf = load_twilio_settings(ROOT / "config", ENV)
    assert conf.calls_per_second == 1
    assert conf.language == "fr-FR"
    assert conf.auth_token.get_secret_value() == "secret-token"
    assert "secret-token" not in repr(conf), "the token must not show in a repr or a log"


def test_webhook_urls_are_built_on_the_public_base_url(tmp_path: Path) -> None:
    conf = load_twilio_settings(write_config(tmp_path, GOOD), ENV)
    assert (
        conf.webhook_url("/twilio/status", attempt=7)
        == "https://calls.example.org/hooks/twilio/status?attempt=7"
    )


@pytest.mark.parametrize("missing", [ENV_ACCOUNT_SID, ENV_AUTH_TOKEN])
def test_missing_credentials_name_the_variable(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(ConfigError) as err:
        load_twilio_settings(write_config(tmp_path, GOOD), env)
    assert err.value.file == "environment" and err.value.key == missing


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("calls_per_second = 0\n", "twilio.calls_per_second", "greater than 0"),
        ('colour = "blue"\n', "twilio.colour", "unknown key"),
        ('auth_token = "in the file"\n', "twilio.auth_token", "environment"),
        ('language = "en-US"\n', "twilio.language", "fr-FR"),
    ],
)
def test_a_bad_key_names_file_key_and_problem(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_twilio_settings(write_config(tmp_path, GOOD + extra), ENV)
    assert err.value.file.endswith("telephony.toml") and err.value.key == key
    assert problem in err.value.problem


def test_a_public_url_with_a_query_is_refused(tmp_path: Path) -> None:
    table = GOOD.replace("/hooks/", "/hooks?x=1")
    with pytest.raises(ConfigError) as err:
        load_twilio_settings(write_config(tmp_path, table), ENV)
    assert err.value.key == "twilio.public_base_url"


def test_a_missing_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_twilio_settings(write_config(tmp_path, "[asterisk]\nhost = 'pbx'\n"), ENV)
    assert err.value.key == "twilio"


# ---------------------------------------------------------------- pacing


def test_calls_take_slots_one_interval_apart_and_none_past_the_longest_wait() -> None:
    pacer = CallPacer(calls_per_second=2, max_wait=1.0)
    assert [pacer.reserve(10.0) for _ in range(4)] == [0.0, 0.5, 1.0, None]
    assert pacer.reserve(10.0, force=True) == 1.5, "a nurse's leg is placed anyway, in its turn"
    assert pacer.reserve(12.0) == 0.0, "once the slots have passed, a call goes at once"


@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=40))
def test_placed_calls_never_exceed_the_rate(gaps: list[float]) -> None:
    """Whatever the dialer's rhythm, two placed calls are at least 1/rate apart, none waits too long."""
    pacer, now, slots = CallPacer(calls_per_second=4, max_wait=0.6), 0.0, []
    for gap in gaps:
        now += gap
        wait = pacer.reserve(now)
        if wait is not None:
            assert 0 <= wait <= 0.6
            slots.append(now + wait)
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(slots))


# ---------------------------------------------------------------- TwiML


def parsed(text: str) -> list[ET.Element]:
    return list(ET.fromstring(text))


def test_a_person_is_bridged_into_the_nurse_conference_without_ending_it() -> None:
    (dial,) = parsed(twiml.bridge(12, 345, "https://x/twilio/conference?attempt=345"))
    (conference,) = list(dial)
    assert (dial.tag, conference.tag, conference.text) == ("Dial", "Conference", "nurse-12")
    assert conference.get("startConferenceOnEnter") == "false"
    assert conference.get("endConferenceOnExit") == "false"
    assert conference.get("participantLabel") == "attempt-345"


def test_the_nurse_leg_starts_and_ends_her_own_conference() -> None:
    (dial,) = parsed(twiml.nurse_leg(12, "https://x/twilio/conference?nurse=12"))
    conference = dial[0]
    assert conference.text == "nurse-12"
    assert (
        conference.get("startConferenceOnEnter") == "true" and conference.get("endConferenceOnExit") == "true"
    )
    assert set(conference.get("statusCallbackEvent", "").split()) >= {"join", "leave"}


def test_a_machine_gets_the_message_in_french_then_a_proof_it_was_played_or_nothing() -> None:
    voice = twiml.Voice("Polly.Lea")
    say, redirect = parsed(
        twiml.voicemail("Bonjour <&> merci", voice, "https://x/t?attempt=1&step=voicemail-left")
    )
    assert (say.tag, say.text, say.get("language")) == ("Say", "Bonjour <&> merci", "fr-FR")
    assert redirect.tag == "Redirect" and redirect.text == "https://x/t?attempt=1&step=voicemail-left"
    assert [e.tag for e in parsed(twiml.voicemail(None, voice, "https://x"))] == ["Hangup"]


def test_prompts_a_patient_may_hear_are_french_and_carry_no_medical_word() -> None:
    prompts = twiml.Prompts.render(None)
    for text in (prompts.hold, prompts.apology):
        assert text and "Bonjour" in text
        lowered = text.lower()
        for word in ("diab", "cardi", "rein", "rénal", "bpco", "asthme", "infirm", "santé", "traitement"):
            assert word not in lowered


# ---------------------------------------------------------------- callbacks, forward only

# a call's callbacks as Twilio may send them (one true history of an answered, bridged call)
HISTORY = ["ringing", "in-progress", "human", "join", "completed"]


def proposed(name: str) -> list[CallEvent]:
    sid = "CA1"
    if name == "human":
        return callbacks.verdict_events(1, sid, "human", AT)
    if name == "machine":
        return callbacks.verdict_events(1, sid, "machine_end_beep", AT)
    if name == "join":
        return callbacks.connected_events(1, sid, AT)
    return callbacks.status_events(1, sid, name, None, AT)


def run(names: list[str], seen: Seen | None = None) -> tuple[list[CallEvent], Seen]:
    seen, out = seen or Seen(), []
    for name in names:
        kept, seen = forward(seen, proposed(name))
        out += kept
    return out, seen


def test_in_order_every_step_is_handed_on_once() -> None:
    events, _ = run(HISTORY)
    assert [e.kind.value for e in events] == ["ringing", "answered", "human", "connected", "ended"]


def test_completed_before_anything_else_still_says_the_call_was_answered() -> None:
    events, _ = run(["completed", "in-progress", "ringing", "human"])
    assert [e.kind.value for e in events] == ["answered", "ended"]
    assert events[-1].cause == 16


def test_a_machine_is_never_bridged_and_a_second_verdict_changes_nothing() -> None:
    events, _ = run(["in-progress", "machine", "human", "join"])
    assert [e.kind.value for e in events] == ["answered", "machine"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from([*HISTORY, "machine", "busy", "no-answer"]), max_size=12))
def test_any_order_and_repetition_hands_on_a_forward_only_story(names: list[str]) -> None:
    """Whatever order and repetitions, what is handed on only moves forward, ends at most once, never
    bridges a machine; and handing the same callbacks again hands on nothing more."""
    events, seen = run(names)
    ranks = [LineState(e.kind.value).rank for e in events if e.kind != CallEventKind.ended]
    assert ranks == sorted(set(ranks)), "a state twice, or backwards"
    ends = [i for i, e in enumerate(events) if e.kind == CallEventKind.ended]
    assert len(ends) <= 1 and (not ends or ends[0] == len(events) - 1)
    kinds = [e.kind for e in events]
    if CallEventKind.machine in kinds:
        assert CallEventKind.connected not in kinds and CallEventKind.nurse_gone not in kinds
    first_final = next((n for n in names if n in ("completed", "busy", "no-answer")), None)
    if first_final == "completed":
        assert max(ranks) >= LineState.answered.rank, "a completed call was answered"
    again, _ = run(names, seen)
    assert again == []


@pytest.mark.parametrize(
    ("answered_by", "person", "message"),
    [
        ("human", True, False),
        ("unknown", True, False),
        (None, True, False),
        ("machine_start", False, False),
        ("machine_end_beep", False, True),
        ("machine_end_silence", False, True),
        ("machine_end_other", False, True),
        ("fax", False, False),
    ],
)
def test_answered_by(answered_by: str | None, person: bool, message: bool) -> None:
    assert callbacks.is_person(answered_by) is person
    assert callbacks.leaves_message(answered_by) is message
