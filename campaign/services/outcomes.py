"""What a nurse says of an answered call, and everything it implies, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from campaign import calendar as cal
from campaign import rules, store
from campaign.errors import NotFound
from campaign.policy import Policy
from campaign.services.base import Also, Context
from campaign.states import OutcomeCode
from campaign.templates import render


@dataclass(frozen=True)
class OutcomeApplied:
    next_contact: rules.NextContact
    callback_task_id: int | None
    cancelled_tasks: int


@dataclass(frozen=True)
class OutcomeEntry:
    """What a nurse says of an answered call."""

    attempt_id: int
    code: OutcomeCode
    nurse_id: int | None
    callback_at: datetime | None = None
    note: str = ""
    message_body: str | None = None


def record_outcome(
    ctx: Context,
    attempt_id: int,
    code: OutcomeCode,
    nurse_id: int | None,
    *,
    callback_at: datetime | None = None,
    note: str = "",
    message_body: str | None = None,
) -> OutcomeApplied:
    entry = OutcomeEntry(attempt_id, code, nurse_id, callback_at, note, message_body)
    return record_outcomes(ctx, [entry])[0]


def record_outcomes(
    ctx: Context, entries: Sequence[OutcomeEntry], also: Also | None = None
) -> list[OutcomeApplied]:
    """Nurses' outcomes and everything they imply, stored in one transaction.

    Applied in rounds of one entry per patient, so that two outcomes for one
    patient (rare) each see what the other wrote.
    """
    policy, now = ctx.policy, ctx.clock.now()
    applied: dict[int, OutcomeApplied] = {}
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
                    seen.add(row.id)
                    this_round.append((e, row))
            applied.update(_apply_outcomes(s, this_round, now, policy))
            pending = later
        if also is not None:
            also(s)
        s.commit()
    return [applied[e.attempt_id] for e in entries]


_CONTACT_CODES = (OutcomeCode.reached, OutcomeCode.escalation, OutcomeCode.callback_requested)


def _apply_outcomes(
    s: Session, entries: Sequence[tuple[OutcomeEntry, Any]], now: datetime, policy: Policy
) -> dict[int, OutcomeApplied]:
    """The common writes in a few statements for all entries; the rarer consequences one by one."""
    outcomes: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    releases: list[store.Release] = []
    decisions: list[rules.NextContact] = []
    for e, row in entries:
        state = store.patient_state_from_row(row)
        d = rules.next_contact(
            state,
            e.code,
            now,
            policy,
            nurse_id=e.nurse_id,
            callback_at=e.callback_at,
            task_deadline=row.deadline,
            task_attempts=row.task_attempts,
        )
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
                "p_status": "withdrawn" if d.withdraw else row.status,
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
        callback_id = None
        if d.callback_at is not None:
            callback_id = _insert_callback(s, row, d.callback_at, e.nurse_id, now)
        if d.message_physician:
            _message_physician(s, row, e, now, policy)
        out[e.attempt_id] = OutcomeApplied(d, callback_id, cancelled)
    return out


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
