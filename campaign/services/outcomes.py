"""What a nurse says of an answered call, and everything it implies, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from campaign import baseline, besttime, incoming, rules, store
from campaign import calendar as cal
from campaign.errors import InvalidArgument, NotFound
from campaign.policy import Policy
from campaign.services.base import Also, Context
from campaign.states import AttemptResult, EnrolmentStatus, OutcomeCode, TaskKind, TaskStatus
from campaign.store import answers
from campaign.templates import render


@dataclass(frozen=True)
class OutcomeApplied:
    next_contact: rules.NextContact
    callback_task_id: int | None
    cancelled_tasks: int


@dataclass(frozen=True)
class OutcomeEntry:
    """What a nurse says of an answered call.

    `callback_nurse_id`: the nurse a callback is promised for (default: the one
    recording it); any other must be qualified for the patient. `until`:
    hospitalised, the last day of the stay (the patient's local date; None: no
    end date known). Each is ignored with the other codes.
    """

    attempt_id: int
    code: OutcomeCode
    nurse_id: int | None
    callback_at: datetime | None = None
    note: str = ""
    message_body: str | None = None
    callback_nurse_id: int | None = None
    until: date | None = None

    @property
    def promised_to(self) -> int | None:
        """Who the callback waits for."""
        return self.callback_nurse_id if self.callback_nurse_id is not None else self.nurse_id


def record_outcome(
    ctx: Context,
    attempt_id: int,
    code: OutcomeCode,
    nurse_id: int | None,
    *,
    callback_at: datetime | None = None,
    note: str = "",
    message_body: str | None = None,
    callback_nurse_id: int | None = None,
    until: date | None = None,
) -> OutcomeApplied:
    entry = OutcomeEntry(
        attempt_id, code, nurse_id, callback_at, note, message_body, callback_nurse_id, until
    )
    return record_outcomes(ctx, [entry])[0]


def record_outcomes(
    ctx: Context, entries: Sequence[OutcomeEntry], also: Also | None = None
) -> list[OutcomeApplied]:
    """Nurses' outcomes and everything they imply, stored in one transaction.

    Applied in rounds of one entry per patient, so that two outcomes for one
    patient (rare) each see what the other wrote. An entry that cannot apply
    (a callback promised for a nurse not qualified for the patient, a stay that
    ended before today) raises InvalidArgument and nothing is stored.
    """
    policy, now = ctx.policy, ctx.clock.now()
    applied: dict[int, OutcomeApplied] = {}
    answered: list[besttime.AnswerEvent] = []
    with ctx.sessions() as s:
        pending = list(entries)
        while pending:
            rows = store.outcome_rows(s, [e.attempt_id for e in pending])
            seen: set[int] = set()
            this_round: list[tuple[OutcomeEntry, Any]] = []
            later: list[OutcomeEntry] = []
            for e in pending:
                row = rows.get(e.attempt_id)
                if row is None:
                    raise NotFound(f"attempt {e.attempt_id} does not exist")
                if row.id in seen:
                    later.append(e)
                else:
                    _check(s, e, row, now, policy)
                    seen.add(row.id)
                    this_round.append((e, row))
            applied.update(_apply_outcomes(s, this_round, now, policy))
            answered.extend(_answered(this_round, policy))
            pending = later
        if also is not None:
            also(s)
        answers.add_answers(s, answered)  # last: cohort rows are shared by every dialer process
        s.commit()
    return [applied[e.attempt_id] for e in entries]


def _answered(entries: Sequence[tuple[OutcomeEntry, Any]], policy: Policy) -> list[besttime.AnswerEvent]:
    """Best time to call: the patient picked up at that hour (not on a wrong number, not calling us)."""
    if not policy.outreach.best_time or baseline.is_fifo(policy):
        return []
    events = [
        besttime.event_for(
            row.id, row.started_at, AttemptResult.answered, row.birth_date, store.place_of(row), row.tier
        )
        for e, row in entries
        if row.task_kind != TaskKind.incoming and e.code != OutcomeCode.wrong_number
    ]
    return [e for e in events if e is not None]


_CONTACT_CODES = (OutcomeCode.reached, OutcomeCode.escalation, OutcomeCode.callback_requested)


def _check(s: Session, e: OutcomeEntry, row: Any, now: datetime, policy: Policy) -> None:
    """What the rules cannot decide alone: who may be promised the callback, when the stay ends."""
    if e.code == OutcomeCode.callback_requested and e.promised_to not in (None, e.nurse_id):
        assert e.callback_nurse_id is not None
        why = store.why_not_qualified(s, e.callback_nurse_id, row.id, policy, row.theme_code)
        if why is not None:
            raise InvalidArgument(f"attempt {e.attempt_id}: callback_nurse_id: {why}")
    if e.code == OutcomeCode.hospitalised and e.until is not None:
        today = cal.local_date(now, store.place_of(row))
        if e.until < today:
            raise InvalidArgument(
                f"attempt {e.attempt_id}: until: {e.until.isoformat()} is before today "
                f"({today.isoformat()} where the patient lives)"
            )


def _decide(
    e: OutcomeEntry, row: Any, state: rules.PatientState, now: datetime, policy: Policy
) -> rules.NextContact:
    if row.task_kind == TaskKind.incoming:
        return incoming.incoming_contact(
            state,
            e.code,
            now,
            policy,
            number_on_file=row.number in (row.phone, row.phone_alt),
            nurse_id=e.promised_to,
            callback_at=e.callback_at,
            until=e.until,
        )
    return rules.next_contact(
        state,
        e.code,
        now,
        policy,
        nurse_id=e.promised_to,
        callback_at=e.callback_at,
        task_deadline=row.deadline,
        task_attempts=row.task_attempts,
        until=e.until,
    )


def _apply_outcomes(
    s: Session, entries: Sequence[tuple[OutcomeEntry, Any]], now: datetime, policy: Policy
) -> dict[int, OutcomeApplied]:
    """The common writes in a few statements for all entries; the rarer consequences one by one."""
    outcomes: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    releases: list[store.Release] = []
    decisions: list[rules.NextContact] = []
    for e, row in entries:
        d = _decide(e, row, store.patient_state_from_row(row), now, policy)
        decisions.append(d)
        outcomes.append(
            {
                "attempt_id": e.attempt_id,
                "task_id": row.task_id,
                "patient_id": row.id,
                "nurse_id": e.nurse_id,
                "code": e.code.value,
                "callback_at": d.callback_at,
                "note": e.note,
                "next_contact_on": d.next_contact_on,
                "recorded_at": now,
            }
        )
        flagged = list(row.flagged_numbers or [])
        patients.append(
            {
                "p_id": row.id,
                "p_updated_at": now,
                "p_last_contact_at": now if e.code in _CONTACT_CODES else row.last_contact_at,
                "p_next_contact_on": d.next_contact_on,
                "p_flagged_numbers": sorted({*flagged, row.number}) if d.flag_number else flagged,
                "p_status": _status_after(d, row.status),
                "p_suspended_until": d.suspended_until if d.suspend else row.suspended_until,
            }
        )
        if d.task_status is not None:
            releases.append(store.Release(row.task_id, d.task_status, reason=e.code.value))
        elif d.retry_at is not None:
            releases.append(store.Release(row.task_id, not_before=d.retry_at))
    store.complete_answered_attempts(s, [e.attempt_id for e, _ in entries], now)
    store.insert_outcomes(s, outcomes)
    store.update_patients_after_outcome(s, patients)
    store.release_tasks(s, releases, now)
    out: dict[int, OutcomeApplied] = {}
    for (e, row), d in zip(entries, decisions, strict=True):
        cancelled = 0
        if d.withdraw:
            cancelled = store.cancel_open_tasks(s, patient_id=row.id, now=now, reason="opted out")
        elif row.task_kind == TaskKind.incoming:
            cancelled = _settle_for_incoming(s, e.code, row, now)
        callback_id = None
        if d.callback_at is not None:
            callback_id = _insert_callback(s, row, d.callback_at, d.callback_nurse_id, now)
        if d.message_physician:
            _message_physician(s, row, e, now, policy)
        out[e.attempt_id] = OutcomeApplied(d, callback_id, cancelled)
    return out


def _status_after(d: rules.NextContact, status: str) -> str:
    if d.withdraw:
        return EnrolmentStatus.withdrawn.value
    if d.suspend:
        return EnrolmentStatus.suspended.value
    return status


def _settle_for_incoming(s: Session, code: OutcomeCode, row: Any, now: datetime) -> int:
    """The patient's pending outbound tasks the incoming call stood in for are closed (before the
    new callback, if any, is stored); returns how many were cancelled."""
    tasks = [
        incoming.OpenTask(t.id, TaskKind(t.kind), TaskStatus(t.status), t.theme_code)
        for t in store.patient_open_tasks(s, row.id)
    ]
    closes = incoming.after_incoming(code, row.theme_code, tasks)
    store.release_tasks(s, [store.Release(t, status, reason=why) for t, status, why in closes], now)
    return sum(1 for _, status, _ in closes if status == TaskStatus.cancelled)


def _insert_callback(s: Session, row: Any, at: datetime, nurse_id: int | None, now: datetime) -> int:
    """The callback a patient asked for, promised by this nurse; it may outlive the wave by a week."""
    return store.insert_callback_task(s, row, at, max(at + timedelta(days=7), row.deadline), nurse_id, now)


def _message_physician(s: Session, row: Any, e: OutcomeEntry, now: datetime, policy: Policy) -> None:
    patient, nurse_code = store.escalation_context(s, row.id, e.nurse_id)
    theme = policy.themes.get(row.theme_code or "")
    body = e.message_body or render(
        "physician/escalation.fr.j2",
        member_id=patient.member_id,
        theme_label=theme.label if theme else "accompagnement",
        date=cal.local_time_of(now, patient.timezone).date(),
        nurse_code=nurse_code or "-",
        note=e.note,
    )
    store.add_physician_message(s, patient.physician_id, row.id, "escalation", body, now)
