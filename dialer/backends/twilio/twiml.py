"""What a call does, as TwiML built by the `twilio` library (never string templates, so nothing a
prompt holds can break the XML).

The patient's call, once answered, hears a short "un instant" while the
detector listens (`hold`), then, on its verdict: a person is sent into the
nurse's own conference (`bridge`), a machine gets the neutral message or
nothing (`voicemail`), and a person whose nurse's leg is gone hears the
apology (`apology`). The nurse's leg waits in her conference for the whole
time she is ready (`nurse_leg`). Pure: URLs and texts come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from twilio.twiml.voice_response import Dial, VoiceResponse

from campaign.templates import render

# what a conference reports to carecall: participants joining and leaving, and its start and end
NURSE_CONFERENCE_EVENTS = "start end join leave"
PATIENT_CONFERENCE_EVENTS = "join leave"


def conference_name(nurse_id: int) -> str:
    """Her own conference, for the whole time she is ready. No name, no number: only her id."""
    return f"nurse-{nurse_id}"


def nurse_label(nurse_id: int) -> str:
    return f"nurse-{nurse_id}"


def attempt_label(attempt_id: int) -> str:
    return f"attempt-{attempt_id}"


@dataclass(frozen=True, slots=True)
class Prompts:
    """The French texts a patient may hear on a Twilio call, rendered once from prompts/ivr/."""

    hold: str
    apology: str
    voicemail: str | None  # None: the policy leaves no message on machines

    @classmethod
    def render(cls, voicemail: str | None) -> Prompts:
        return cls(render("ivr/hold.fr.j2").strip(), render("ivr/apology.fr.j2").strip(), voicemail)


@dataclass(frozen=True, slots=True)
class Voice:
    voice: str
    language: str = "fr-FR"


def _say(response: VoiceResponse, text: str, voice: Voice) -> None:
    response.say(text, voice=voice.voice, language=voice.language)


def hold(text: str, voice: Voice, pause_seconds: int, verdict_url: str) -> str:
    """The call's first TwiML: a word, then a pause the verdict cuts short (the call is updated).

    If no verdict came by the end of the pause, the redirect asks carecall what to do, which
    treats the call as answered by a person ("unknown"), never leaving it in silence.
    """
    response = VoiceResponse()
    _say(response, text, voice)
    response.pause(length=pause_seconds)
    response.redirect(verdict_url)
    return str(response)


def bridge(nurse_id: int, attempt_id: int, conference_callback_url: str) -> str:
    """A person answered: into the nurse's conference at once, where she waits.

    The patient neither starts nor ends her conference: when the call ends, she stays there
    for the next one; if she leaves, her conference ends and so does the patient's call.
    """
    response = VoiceResponse()
    dial = Dial()
    dial.conference(
        conference_name(nurse_id),
        start_conference_on_enter=False,
        end_conference_on_exit=False,
        beep=False,
        participant_label=attempt_label(attempt_id),
        status_callback=conference_callback_url,
        status_callback_event=PATIENT_CONFERENCE_EVENTS,
    )
    response.append(dial)
    return str(response)


def voicemail(text: str | None, voice: Voice, left_url: str) -> str:
    """A machine at the end of its greeting: the neutral message, then the redirect that proves
    it was played to the end (carecall records it as left and hangs up); or just hang up."""
    response = VoiceResponse()
    if text is None:
        response.hangup()
        return str(response)
    _say(response, text, voice)
    response.redirect(left_url)
    return str(response)


def apology(text: str, voice: Voice) -> str:
    """A person answered and no nurse could take the call: the apology, never silence."""
    response = VoiceResponse()
    _say(response, text, voice)
    response.hangup()
    return str(response)


def hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def nurse_leg(nurse_id: int, conference_callback_url: str) -> str:
    """Her phone, once she picks up: into her own conference, which she starts and ends."""
    response = VoiceResponse()
    dial = Dial()
    dial.conference(
        conference_name(nurse_id),
        start_conference_on_enter=True,
        end_conference_on_exit=True,
        beep=False,
        wait_url="",
        participant_label=nurse_label(nurse_id),
        status_callback=conference_callback_url,
        status_callback_event=NURSE_CONFERENCE_EVENTS,
    )
    response.append(dial)
    return str(response)
