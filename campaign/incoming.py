"""The rules for a call the patient placed to the inbound line (TaskKind.incoming).

Pure, as `campaign.rules`: an incoming call is a contact like any other (the
same consequences for the patient), but it is never dialed, and it stands in
for the patient's pending outbound tasks for the same need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from campaign.policy import Policy
from campaign.rules import NextContact, PatientState, next_contact
from campaign.states import OutcomeCode, TaskKind, TaskStatus


def incoming_contact(
    patient: PatientState,
    outcome: OutcomeCode,
    at: datetime,
    policy: Policy,
    *,
    number_on_file: bool,
    nurse_id: int | None = None,
    callback_at: datetime | None = None,
    until: date | None = None,
) -> NextContact:
    """`next_contact` for a call the patient placed (TaskKind.incoming).

    The same consequences for the patient (next contact, callback, opt-out,
    suspension, message), but the incoming task itself always closes: it is
    never dialed, so it is never retried or re-planned. A wrong number means the
    caller was not the patient: their number is flagged only if it is one on
    the patient's file (`number_on_file`), and the task is cancelled.
    """
    if outcome == OutcomeCode.wrong_number and not number_on_file:
        return NextContact(
            TaskStatus.cancelled, patient.next_contact_on, notes=["the caller was not the patient"]
        )
    d = next_contact(
        patient, outcome, at, policy, nurse_id=nurse_id, callback_at=callback_at, task_attempts=1, until=until
    )
    status = TaskStatus.cancelled if outcome == OutcomeCode.wrong_number else TaskStatus.done
    return replace(d, task_status=status, retry_at=None)


@dataclass(frozen=True, slots=True)
class OpenTask:
    """One of the patient's open tasks, as `after_incoming` reads it."""

    id: int
    kind: TaskKind
    status: TaskStatus
    theme_code: str | None = None


# what an incoming call's outcome does to the patient's pending outbound tasks for the same need
_REACHED_ON_INCOMING = "reached on an incoming call"
_REPLACED = "replaced by a callback asked for on an incoming call"
_CALLBACK_ON_INCOMING = "callback asked for on an incoming call"


def same_need(task: OpenTask, call_theme: str | None) -> bool:
    """A pending outbound task an incoming call stands in for: a request left on the inbound line
    (whatever the call was about), a wave or callback task of the call's theme, any when the call
    has no theme."""
    if task.status != TaskStatus.pending or task.kind == TaskKind.incoming:
        return False
    if task.kind == TaskKind.inbound:
        return True
    return call_theme is None or task.theme_code == call_theme


def after_incoming(
    outcome: OutcomeCode, call_theme: str | None, tasks: list[OpenTask]
) -> list[tuple[int, TaskStatus, str]]:
    """(task, new status, reason) for the patient's pending outbound tasks an incoming call settles.

    Reached or escalated: the conversation they were waiting for took place,
    each is done. A callback asked for: wave tasks are done (as an outbound
    callback outcome closes its wave task: the callback carries the need on),
    earlier callbacks and inbound requests are cancelled, the new callback
    replaces them. Hospitalised, wrong number, opt-out: nothing here (the
    suspension rules, nothing, and the opt-out's cancel-all handle them).
    In-progress tasks are never touched: they are on a line now.
    """
    matching = [t for t in tasks if same_need(t, call_theme)]
    if outcome in (OutcomeCode.reached, OutcomeCode.escalation):
        return [(t.id, TaskStatus.done, _REACHED_ON_INCOMING) for t in matching]
    if outcome == OutcomeCode.callback_requested:
        return [
            (t.id, TaskStatus.done, _CALLBACK_ON_INCOMING)
            if t.kind == TaskKind.wave
            else (t.id, TaskStatus.cancelled, _REPLACED)
            for t in matching
        ]
    return []
