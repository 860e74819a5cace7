"""How a patient's line behaves on one call, named once for every backend.

The simulated lines, the AMI peer and the Twilio peer each know how to play
these; the conformance suite runs each on every backend and expects the same
attempt records. `EVENTS` is what a faithful backend reports for each, and
the result the dialer then stores (dialer.causes).
"""

from __future__ import annotations

from enum import StrEnum

from campaign.states import AttemptResult
from dialer.events import CallEventKind as K


class Scenario(StrEnum):
    human = "human"  # answers, a person: bridged to the nurse, they talk
    busy = "busy"  # Q.850 17
    no_answer = "no_answer"  # rings until the ring timeout (19)
    congestion = "congestion"  # the network is full (34)
    unallocated = "unallocated"  # no such number (1)
    machine_message = "machine_message"  # answering machine: the neutral message is left
    machine_silent = "machine_silent"  # answering machine, the policy leaves nothing
    hangs_up_at_once = "hangs_up_at_once"  # a person answers and hangs up during detection
    nurse_gone = "nurse_gone"  # a person answers, the nurse's leg is gone: apology


# the line's events for each scenario (after `ringing` where the phone rang), and the cause at the end
EVENTS: dict[Scenario, tuple[tuple[K, ...], int]] = {
    Scenario.human: ((K.ringing, K.answered, K.human, K.connected, K.ended), 16),
    Scenario.busy: ((K.ended,), 17),
    Scenario.no_answer: ((K.ringing, K.ended), 19),
    Scenario.congestion: ((K.ended,), 34),
    Scenario.unallocated: ((K.ended,), 1),
    Scenario.machine_message: ((K.ringing, K.answered, K.machine, K.ended), 16),
    Scenario.machine_silent: ((K.ringing, K.answered, K.machine, K.ended), 16),
    Scenario.hangs_up_at_once: ((K.ringing, K.answered, K.ended), 16),
    Scenario.nurse_gone: ((K.ringing, K.answered, K.human, K.nurse_gone, K.ended), 16),
}

RESULT: dict[Scenario, AttemptResult] = {
    Scenario.human: AttemptResult.answered,
    Scenario.busy: AttemptResult.busy,
    Scenario.no_answer: AttemptResult.no_answer,
    Scenario.congestion: AttemptResult.failed,
    Scenario.unallocated: AttemptResult.number_not_in_service,
    Scenario.machine_message: AttemptResult.machine,
    Scenario.machine_silent: AttemptResult.machine,
    Scenario.hangs_up_at_once: AttemptResult.hung_up,
    Scenario.nurse_gone: AttemptResult.no_nurse,
}
