"""Use cases of the programme. Each opens one transaction, commits it, and
returns plain data. The CLI, the scheduler's jobs and the dialer call these.

    base       the Context (storage, policy, the one clock) and shared helpers
    waves      themes, segments, mailings, wave planning and transitions, scheduler jobs
    dialing    claims, attempts and their results, leases, reconciliation
    outcomes   what a nurse's outcome implies
    incoming   a call the patient placed, answered by a nurse; the callback requests the line leaves
    patients   files with no number left, contacts given back by an import

Callers use the package: `from campaign import services; services.plan_wave(ctx, ...)`.
"""

from __future__ import annotations

from campaign.services.base import Context, keep_cadence, required_skills
from campaign.services.dialing import (
    Claimed,
    ClaimResult,
    NotDialable,
    claim_and_start,
    claim_and_start_many,
    finish_unanswered,
    finish_unanswered_many,
    mark_answered,
    mark_answered_many,
    reconcile_in_flight,
    renew_leases,
)
from campaign.services.incoming import create_request_callback, start_incoming
from campaign.services.outcomes import OutcomeApplied, OutcomeEntry, record_outcome, record_outcomes
from campaign.services.patients import restore_contacts, without_number
from campaign.services.top_up import TopUp, top_up_wave, top_up_waves
from campaign.services.waves import (
    LATEST_ZONE,
    MAX_DAYS_AHEAD,
    MAX_DAYS_LATE,
    PARIS,
    SEGMENT_KEYS,
    MailingRecorded,
    change_wave,
    expire_and_close,
    get_wave,
    parse_segment,
    plan_due_waves,
    plan_wave,
    record_mailing,
    sync_themes,
)

__all__ = [
    "LATEST_ZONE",
    "MAX_DAYS_AHEAD",
    "MAX_DAYS_LATE",
    "PARIS",
    "SEGMENT_KEYS",
    "ClaimResult",
    "Claimed",
    "Context",
    "MailingRecorded",
    "NotDialable",
    "OutcomeApplied",
    "OutcomeEntry",
    "TopUp",
    "change_wave",
    "claim_and_start",
    "claim_and_start_many",
    "create_request_callback",
    "expire_and_close",
    "finish_unanswered",
    "finish_unanswered_many",
    "get_wave",
    "keep_cadence",
    "mark_answered",
    "mark_answered_many",
    "parse_segment",
    "plan_due_waves",
    "plan_wave",
    "reconcile_in_flight",
    "record_mailing",
    "record_outcome",
    "record_outcomes",
    "renew_leases",
    "required_skills",
    "restore_contacts",
    "start_incoming",
    "sync_themes",
    "top_up_wave",
    "top_up_waves",
    "without_number",
]
