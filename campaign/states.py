"""States and codes as enums; the stored value is the enum's value."""

from __future__ import annotations

from enum import StrEnum


class EnrolmentStatus(StrEnum):
    enrolled = "enrolled"  # may be called
    suspended = "suspended"  # e.g. hospitalised: no calls until suspended_until
    withdrawn = "withdrawn"  # left the programme or opted out: never called again
    deceased = "deceased"


class WaveStatus(StrEnum):
    scheduled = "scheduled"  # mailing recorded, waiting for the letter to arrive
    planned = "planned"  # tasks placed on days, waiting for the supervisor
    running = "running"  # tasks are dialed on their days
    paused = "paused"  # nothing dialed until resumed
    done = "done"  # every task terminal
    cancelled = "cancelled"


class TaskKind(StrEnum):
    wave = "wave"  # one per patient of a mailing's wave
    callback = "callback"  # the patient asked to be called back
    inbound = "inbound"  # the patient left a request on the inbound line
    # the patient called the inbound line and a nurse answered: never dialed, it is created in
    # progress with its answered attempt and closes with the nurse's outcome
    incoming = "incoming"


class TaskStatus(StrEnum):
    pending = "pending"  # waiting for its time (not_before) or its wave
    in_progress = "in_progress"  # claimed by a dialer: an attempt is under way
    done = "done"  # the patient was reached
    unreachable = "unreachable"  # attempts exhausted
    expired = "expired"  # the wave's window ended first
    cancelled = "cancelled"  # wave cancelled, patient withdrew or opted out

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATUSES


TERMINAL_TASK_STATUSES = frozenset(
    {TaskStatus.done, TaskStatus.unreachable, TaskStatus.expired, TaskStatus.cancelled}
)


class AttemptResult(StrEnum):
    """What the telephone said, before any nurse spoke."""

    answered = "answered"
    no_answer = "no_answer"
    busy = "busy"
    failed = "failed"  # the network failed the call (congestion, out of order…): try again later
    # the network says no such number (unallocated, changed, invalid): never dialed again
    number_not_in_service = "number_not_in_service"
    machine = "machine"  # answering machine / voicemail
    interrupted = "interrupted"  # dialer stopped mid-call; reconciled on restart
    hung_up = "hung_up"  # a person answered and hung up before reaching the nurse
    no_nurse = "no_nurse"  # a person answered while no nurse was on the line: they heard the apology


class OutcomeCode(StrEnum):
    """What the nurse recorded after speaking."""

    reached = "reached"
    callback_requested = "callback_requested"
    wrong_number = "wrong_number"
    opted_out = "opted_out"
    escalation = "escalation"  # reached, and the physician must be told
    hospitalised = "hospitalised"  # suspended until a date the nurse was told (no call before)


class AttemptState(StrEnum):
    in_flight = "in_flight"
    completed = "completed"
