"""A reply of the inbound line as the one line the Asterisk dialplan reads (CURL() then CUT()).

    ACTION|ARGUMENT|RECORDINGS

ACTION is `member` (Read up to ARGUMENT digits, ending with #), `year` (Read
ARGUMENT digits), `wait` (play, Wait ARGUMENT seconds, ask again),
`conference` (play, then ConfBridge into the room ARGUMENT) or `hangup`
(play, hang up). RECORDINGS is what Playback and Read take: recordings joined
by `&`. Pure; nothing in the line comes from the caller.
"""

from __future__ import annotations

from dialer.inbound.line import Reply, Step
from dialer.inbound.twiml import MEMBER_DIGITS

DEFAULT_ROOM = (
    "nurse-NURSE{nurse_id}"  # the nurse's ConfBridge (README: nurse-${EXTEN} of [nurse-conference])
)


def reply_line(reply: Reply, room: str = DEFAULT_ROOM) -> str:
    recordings = "&".join(s.recording for s in reply.say)
    if reply.step == Step.gather_member:
        return f"member|{MEMBER_DIGITS}|{recordings}"
    if reply.step == Step.gather_birth_year:
        return f"year|4|{recordings}"
    if reply.step == Step.wait:
        return f"wait|{reply.pause_seconds}|{recordings}"
    if reply.step == Step.conference and reply.nurse_id is not None:
        return f"conference|{room.format(nurse_id=reply.nurse_id)}|{recordings}"
    return f"hangup||{recordings}"
