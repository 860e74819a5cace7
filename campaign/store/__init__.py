"""Every query of the programme's tables lives in this package.

Functions take an open Session and never commit: `services` opens and closes
the transaction. Hot paths use Core statements and select only the columns they
need, so a 100,000-patient wave does not load 100,000 ORM objects.

    base       the column lists and status sets every part uses; id batches; rule rows
    patients   patient rows as the rules read them, dial histories, nurses, next contacts
    plans      segments, recipients, the plan's task writes, waves
    dialing    the dialer's hot path: dialable pages, claims, the attempts they start
    calls      after the dial: attempt results, releases, leases, reconciliation
    outcomes   what a nurse's outcome writes
    incoming   a call the patient placed: its task and attempt, the callback requests left
    files      what a person reads of a patient's file, the audit trail, who may call back
    upkeep     expiry and the audit trail
    lookups    what explanations and listings read
    reporting  what the invariant check and the wave report read
    directory  what the command line lists and adds (nurses, waves), the simulated lines
    registry, registry_pg   the patient registry's batched upserts (imported by name, not re-exported)

Callers use the package: `from campaign import store; store.claim_tasks(...)`.
"""

from __future__ import annotations

from campaign.store.base import (
    OPEN_TASK_STATUSES,
    PATIENT_RULE_COLUMNS,
    TERMINAL,
    dialable_numbers,
    one_of,
    patient_state_from_row,
    place_of,
)
from campaign.store.calls import (
    Release,
    attempt_starts,
    complete_attempts,
    free_undialed_claims,
    in_flight_attempts,
    mark_attempts_answered,
    postpone_pending,
    release_task,
    release_tasks,
    renew_task_leases,
    renew_worker_leases,
    task_statuses,
    tasks_with_patients,
)
from campaign.store.dialing import (
    CLAIM_COLUMNS,
    DIALABLE_COLUMNS,
    DIALABLE_WAVE,
    AttemptStart,
    claim_tasks,
    dialable_page,
    dialable_rows,
    insert_attempts,
)
from campaign.store.directory import add_new_nurses, patient_lines, set_nurse_phone, waves_with_mailings
from campaign.store.files import (
    AuditRow,
    Contact,
    Message,
    NurseChoice,
    OpenTaskView,
    PatientSummary,
    audit_trail,
    patient_summary,
    qualified_nurses,
    why_not_qualified,
)
from campaign.store.incoming import (
    bring_forward,
    insert_incoming,
    insert_request_callback,
    lock_patient,
    patient_open_tasks,
    pending_request,
    pending_wave_task,
)
from campaign.store.lookups import (
    last_attempt_result,
    nurse_code,
    patient_by_member_id,
    patients_without_number,
    recent_tasks,
    recipient_note,
    wave_backlog,
    wrong_number_since,
)
from campaign.store.outcomes import (
    add_physician_message,
    complete_answered_attempts,
    escalation_context,
    insert_callback_task,
    insert_outcomes,
    outcome_rows,
    update_patients_after_outcome,
)
from campaign.store.patients import (
    HISTORY_LOOKBACK,
    NurseInfo,
    dial_histories,
    dial_history,
    histories_by_patient,
    history_from_attempts,
    last_dial,
    nurses,
    patient_attempts_since,
    patient_rule_row,
    patients_without_future_contact,
    set_next_contact,
)
from campaign.store.plans import (
    add_mailing,
    add_recipients,
    add_wave,
    cancel_open_tasks,
    delete_pending_wave_tasks,
    insert_tasks,
    mailing_row,
    open_task_count,
    open_task_patients,
    recipients_rows,
    segment_query,
    set_plan_notes,
    sync_themes,
    task_status_counts,
    wave_row,
    wave_task_counts_since,
    waves_with_status,
)
from campaign.store.reporting import (
    invariant_attempt_rows,
    next_contact_counts,
    nurse_shift_rows,
    open_tasks,
    opt_out_times,
    recipient_count,
    report_attempts,
    report_tasks,
    theme_label,
    wave_patients,
)
from campaign.store.upkeep import audit, expire_due_tasks

__all__ = [
    "CLAIM_COLUMNS",
    "DIALABLE_COLUMNS",
    "DIALABLE_WAVE",
    "HISTORY_LOOKBACK",
    "OPEN_TASK_STATUSES",
    "PATIENT_RULE_COLUMNS",
    "TERMINAL",
    "AttemptStart",
    "AuditRow",
    "Contact",
    "Message",
    "NurseChoice",
    "NurseInfo",
    "OpenTaskView",
    "PatientSummary",
    "Release",
    "add_mailing",
    "add_new_nurses",
    "add_physician_message",
    "add_recipients",
    "add_wave",
    "attempt_starts",
    "audit",
    "audit_trail",
    "bring_forward",
    "cancel_open_tasks",
    "claim_tasks",
    "complete_answered_attempts",
    "complete_attempts",
    "delete_pending_wave_tasks",
    "dial_histories",
    "dial_history",
    "dialable_numbers",
    "dialable_page",
    "dialable_rows",
    "escalation_context",
    "expire_due_tasks",
    "free_undialed_claims",
    "histories_by_patient",
    "history_from_attempts",
    "in_flight_attempts",
    "insert_attempts",
    "insert_callback_task",
    "insert_incoming",
    "insert_outcomes",
    "insert_request_callback",
    "insert_tasks",
    "invariant_attempt_rows",
    "last_attempt_result",
    "last_dial",
    "lock_patient",
    "mailing_row",
    "mark_attempts_answered",
    "next_contact_counts",
    "nurse_code",
    "nurse_shift_rows",
    "nurses",
    "one_of",
    "open_task_count",
    "open_task_patients",
    "open_tasks",
    "opt_out_times",
    "outcome_rows",
    "patient_attempts_since",
    "patient_by_member_id",
    "patient_lines",
    "patient_open_tasks",
    "patient_rule_row",
    "patient_state_from_row",
    "patient_summary",
    "patients_without_future_contact",
    "patients_without_number",
    "pending_request",
    "pending_wave_task",
    "place_of",
    "postpone_pending",
    "qualified_nurses",
    "recent_tasks",
    "recipient_count",
    "recipient_note",
    "recipients_rows",
    "release_task",
    "release_tasks",
    "renew_task_leases",
    "renew_worker_leases",
    "report_attempts",
    "report_tasks",
    "segment_query",
    "set_next_contact",
    "set_nurse_phone",
    "set_plan_notes",
    "sync_themes",
    "task_status_counts",
    "task_statuses",
    "tasks_with_patients",
    "theme_label",
    "update_patients_after_outcome",
    "wave_backlog",
    "wave_patients",
    "wave_row",
    "wave_task_counts_since",
    "waves_with_mailings",
    "waves_with_status",
    "why_not_qualified",
    "wrong_number_since",
]
