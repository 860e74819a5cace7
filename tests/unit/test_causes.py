"""The network's word on a call that never rang through: only a number that is no one's flags it."""

from __future__ import annotations

import pytest

from campaign.states import AttemptResult
from dialer.causes import attempt_result, twilio_cause
from dialer.events import LineState


@pytest.mark.parametrize("cause", [1, 22, 28])
def test_a_number_no_one_has_is_not_in_service(cause: int) -> None:
    assert attempt_result(LineState.dialing, cause) == AttemptResult.number_not_in_service


@pytest.mark.parametrize("cause", [3, 27, 34, 38, 41, 42, 47, 58, 88, 102, 127, 99])
def test_a_network_or_trunk_failure_is_retried_and_flags_nothing(cause: int) -> None:
    """No route (3) is what a misconfigured trunk says for every number: never a patient's fault."""
    assert attempt_result(LineState.dialing, cause) == AttemptResult.failed


def test_twilio_says_it_with_sip_codes() -> None:
    assert (
        attempt_result(LineState.dialing, twilio_cause("failed", 404)) == AttemptResult.number_not_in_service
    )
    assert attempt_result(LineState.dialing, twilio_cause("failed", 503)) == AttemptResult.failed
    assert attempt_result(LineState.dialing, twilio_cause("failed", None)) == AttemptResult.failed
