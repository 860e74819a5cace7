"""When may a patient be dialed, and what happens after an attempt or an outcome.

Pure functions: same inputs, same answer; no clock, no database, no I/O. The
dialer, the planner and `carecall patient why` all ask these same functions,
so what the explanation says is what the dialer does.

- `dial`: before a dial (`may_dial`: status, consent, numbers, gap, daily cap, hours);
- `retry`: after an unanswered attempt (`after_attempt`: when again, or why it closes);
- `contact`: after an outcome (`next_contact`: the task, the patient's next contact).
"""

from campaign.rules.contact import (
    NextContact,
    first_calling_day,
    next_contact,
    next_regular_contact,
    resume_after,
)
from campaign.rules.dial import NOON, Decision, DialHistory, PatientState, Reason, may_dial, requested_dial
from campaign.rules.retry import NO_NUMBER_LEFT, RetryDecision, TaskState, after_attempt

__all__ = [
    "NOON",
    "NO_NUMBER_LEFT",
    "Decision",
    "DialHistory",
    "NextContact",
    "PatientState",
    "Reason",
    "RetryDecision",
    "TaskState",
    "after_attempt",
    "first_calling_day",
    "may_dial",
    "next_contact",
    "next_regular_contact",
    "requested_dial",
    "resume_after",
]
