"""A patient calls the programme: the contact a nurse answers, and the callback request the
inbound line leaves when nobody can answer.

An answered incoming call is a task of kind `incoming`, in progress, with one
answered attempt, so the nurse's outcome goes through `record_outcomes` like any
other (next contact, callback, opt-out, suspension, message to the physician)
and the rest of the system sees a contact:

- the caps count it: its attempt is in the patient's dial history (daily cap,
  minimum gap before the next dial, "in a call" while it lasts: the unique
  in-flight index refuses a dial meanwhile), and an incoming call that stands
  in for no wave task counts in the contacts per period;
- `campaign.invariants` never blames it as a dial (it is not one): see there;
- it stands in for the patient's pending outbound task for the same need: it
  takes the wave and theme of their pending wave task (the report counts it in
  that wave, the console shows that theme's script), and its outcome closes or
  re-plans the tasks `campaign.incoming.after_incoming` names.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from campaign import store
from campaign.errors import InvalidArgument, NotFound, PatientInCall
from campaign.services.base import Context

# how long a callback request stays open before it expires untried (as a promised callback)
REQUEST_OPEN_FOR = timedelta(days=7)


def start_incoming(
    ctx: Context,
    patient_id: int,
    nurse_id: int,
    worker: str,
    *,
    number: str = "",
    theme_code: str | None = None,
) -> tuple[int, int]:
    """The nurse answered the patient's call: (task id, attempt id), stored in one transaction.

    `number`: the caller's number as the line gave it (E.164; "" when withheld).
    `theme_code`: what the call is about, if known; by default that of the
    patient's pending wave task. Raises NotFound for an unknown patient,
    PatientInCall when the patient is on another call (an outbound dial to
    them is in flight: the line should offer a callback).
    """
    now = ctx.clock.now()
    try:
        with ctx.sessions() as s:
            patient = store.lock_patient(s, patient_id)
            if patient is None:
                raise NotFound(f"patient {patient_id} does not exist")
            stand_in = store.pending_wave_task(s, patient_id, theme_code)
            ids = store.insert_incoming(
                s,
                patient_id=patient_id,
                nurse_id=nurse_id,
                tier=patient.tier,
                number=number,
                wave_id=stand_in.wave_id if stand_in else None,
                theme_code=stand_in.theme_code if stand_in else theme_code,
                deadline=stand_in.deadline if stand_in else now,
                worker=worker,
                lease_until=now + ctx.lease,
                now=now,
            )
            s.commit()
            return ids
    except IntegrityError as exc:
        raise PatientInCall(f"patient {patient_id} is already on a call") from exc


def create_request_callback(ctx: Context, patient_id: int, at: datetime, priority: int, note: str) -> int:
    """The callback the inbound line promises a caller nobody could answer: a pending task of kind
    `inbound`, due `at`, for any nurse qualified for the patient. Returns its id.

    A patient who calls again before being called back keeps one request: the
    pending one is brought forward (earlier time, higher priority), not doubled.
    `note` (why: nobody ready, closed…) goes to the audit trail; no personal data.
    """
    if at.tzinfo is None:
        raise InvalidArgument("at: a callback time must be timezone-aware")
    now = ctx.clock.now()
    with ctx.sessions() as s:
        patient = store.lock_patient(s, patient_id)
        if patient is None:
            raise NotFound(f"patient {patient_id} does not exist")
        pending = store.pending_request(s, patient_id)
        if pending is not None:
            task_id = int(pending.id)
            store.bring_forward(s, task_id, min(pending.not_before, at), max(pending.priority, priority))
        else:
            task_id = store.insert_request_callback(
                s, patient_id, patient.tier, at, at + REQUEST_OPEN_FOR, priority, now
            )
        store.audit(s, now, "inbound", "callback.request", patient_id, f"task={task_id} {note}".strip())
        s.commit()
    return task_id
