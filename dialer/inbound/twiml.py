"""A reply of the inbound line as TwiML, built by the `twilio` library (never string templates).

Pure: the URLs of the next steps come in as arguments, already public
(signed by Twilio for exactly those URLs).
"""

from __future__ import annotations

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from dialer.backends.twilio.twiml import Voice, conference_name
from dialer.inbound.line import Reply, Step
from dialer.inbound.prompts import Said

GATHER_TIMEOUT_SECONDS = 10  # silence after the prompt before the keypad step ends
MEMBER_DIGITS = 32  # the longest member number


def _say(node: VoiceResponse | Gather, texts: tuple[Said, ...], voice: Voice) -> None:
    for said in texts:
        node.say(said.words, voice=voice.voice, language=voice.language)


def reply_twiml(reply: Reply, voice: Voice, next_url: str) -> str:
    """The reply's TwiML; `next_url`: where Twilio posts the digits, or asks again after a wait."""
    response = VoiceResponse()
    if reply.step in (Step.gather_member, Step.gather_birth_year):
        member = reply.step == Step.gather_member
        gather = Gather(
            input="dtmf",
            action=next_url,
            method="POST",
            timeout=GATHER_TIMEOUT_SECONDS,
            finish_on_key="#",
            num_digits=MEMBER_DIGITS if member else 4,
            action_on_empty_result=True,
        )
        _say(gather, reply.say, voice)
        response.append(gather)
    elif reply.step == Step.wait:
        _say(response, reply.say, voice)
        response.pause(length=reply.pause_seconds)
        response.redirect(next_url, method="POST")
    elif reply.step == Step.conference and reply.nurse_id is not None:
        _say(response, reply.say, voice)
        dial = Dial()
        # the nurse started her conference and keeps it: the caller neither starts nor ends it
        dial.conference(
            conference_name(reply.nurse_id),
            start_conference_on_enter=False,
            end_conference_on_exit=False,
            beep=False,
            participant_label=f"inbound-{reply.attempt_id}",
        )
        response.append(dial)
        response.hangup()
    else:
        _say(response, reply.say, voice)
        response.hangup()
    return str(response)
