"""From what a line did to an attempt's result: one table for every backend.

A backend reports the furthest state a call reached (`LineState`) and, when
it ends, the network's Q.850 cause. Twilio gives a call status and a SIP
code instead of a cause; `TWILIO_STATUS_CAUSE` and `SIP_CAUSE` translate them
first, so both backends go through `attempt_result` and give the same record
for the same call.

By the furthest state the line reached:
- connected: answered (the nurse records the outcome);
- nurse_gone: no_nurse (the patient heard the apology);
- machine: machine (the neutral message left or not, per policy);
- human or answered: hung_up (a person hung up before the bridge).

Still ringing or dialing, by the Q.850 cause:
- 17 user busy, 21 call rejected: busy;
- 16 normal clearing, 18 no user responding, 19 no answer, 20 subscriber
  absent, 31 normal unspecified, or no cause: no_answer;
- 1 unallocated number, 22 number changed, 28 invalid number format:
  number_not_in_service (the number is flagged and never dialed again);
- 3 no route, 27 destination out of order, 34 no circuit (congestion), 38
  network out of order, 41 temporary failure, 42 switching equipment
  congestion, 47 resource unavailable, 58, 88, 102, 127, and any other cause:
  failed. No route is a trunk's answer as often as a number's, so it never
  flags a patient's number.

A call that ends while still ringing without a cause (a ring timeout carecall
enforced itself) is no answer.
"""

from __future__ import annotations

from campaign.states import AttemptResult
from dialer.events import LineState

BUSY = frozenset({17, 21})
NO_ANSWER = frozenset({16, 18, 19, 20, 31})
NOT_IN_SERVICE = frozenset({1, 22, 28})
NETWORK = frozenset({27, 34, 38, 41, 42, 47, 58, 88, 102, 127})

# Twilio's final call statuses (status callbacks), as the Q.850 cause they stand for
TWILIO_STATUS_CAUSE: dict[str, int] = {
    "busy": 17,
    "no-answer": 19,
    "failed": 41,  # refined by its SIP code when Twilio gives one (SIP_CAUSE)
    "canceled": 16,  # carecall cancelled it before it was answered
    "completed": 16,
}

# SIP response codes (Twilio's SipResponseCode) as Q.850 causes, after RFC 3398
SIP_CAUSE: dict[int, int] = {
    404: 1,
    410: 22,
    484: 28,
    486: 17,
    600: 17,
    603: 21,
    480: 18,
    408: 18,
    487: 16,
    503: 34,
    500: 41,
    502: 38,
}


def attempt_result(furthest: LineState, cause: int | None) -> AttemptResult:
    """The attempt's result from the furthest state its line reached and its end's cause."""
    if furthest == LineState.connected:
        return AttemptResult.answered
    if furthest == LineState.nurse_gone:
        return AttemptResult.no_nurse
    if furthest == LineState.machine:
        return AttemptResult.machine
    if furthest in (LineState.human, LineState.answered):
        return AttemptResult.hung_up
    if cause is None or cause in NO_ANSWER:
        return AttemptResult.no_answer
    if cause in BUSY:
        return AttemptResult.busy
    if cause in NOT_IN_SERVICE:
        return AttemptResult.number_not_in_service
    return AttemptResult.failed


def twilio_cause(status: str, sip_code: int | None) -> int | None:
    """The Q.850 cause a Twilio final status stands for (its SIP code first, when it says more)."""
    if sip_code is not None and sip_code in SIP_CAUSE and status in ("failed", "busy", "no-answer"):
        return SIP_CAUSE[sip_code]
    return TWILIO_STATUS_CAUSE.get(status)
