"""What the console shows of a nurse's state and call, and what a change of state must refresh.

The pure half (`Phase`, `Snapshot`) decides from her presence alone; `load_call` reads the patient's
file for the call and writes, in the same transaction, the audit entry of what it shows (invariant
5): the identity card while she checks who is on the line, the file once she has confirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import NoResultFound
from sqlmodel import Session

from campaign import calendar as cal
from campaign import store
from campaign.policy import Policy
from campaign.store.files import (
    NurseChoice,
    PatientSummary,
    RosterNurse,
    audit,
    latest_audit_action,
    patient_summary,
    qualified_nurses,
    theme_of_attempt,
)
from dialer.presence import NurseStatus
from dialer.staff.store import PresenceView
from dialer.web.console.script import CallScript, call_script

# the audit trail's actions written by the console
SHOWN_IDENTITY = "console.identity"  # the identity card, while she checks who answered
CONFIRMED = "console.identity_confirmed"
NOT_CONFIRMED = "console.identity_not_confirmed"
READ = "patient.read"  # the file (the command line's `patient show` writes the same action)
DENIED = "patient.read_denied"  # a file that is not her call's patient: refused (403)

_DIALING_STATES = (None, "dialing", "ringing")


class Phase(StrEnum):
    idle = "idle"  # no call
    dialing = "dialing"  # a call is placed for her: nothing of the patient yet
    connected = "connected"  # the patient answered (talking, or the line ended: wrap-up)


class Check(StrEnum):
    pending = "pending"  # she has not said whether the identity is confirmed
    confirmed = "confirmed"
    not_confirmed = "not_confirmed"  # not the patient (or not sure): nothing of the file is shown


def phase_of(p: PresenceView) -> Phase:
    if p.attempt_id is None or p.patient_id is None:
        return Phase.idle
    if p.status == NurseStatus.reserved and p.call_state in _DIALING_STATES:
        return Phase.dialing
    return Phase.connected


@dataclass(frozen=True)
class Snapshot:
    """What the console's live parts show; comparing two says which parts a change must refresh."""

    status: str
    reason: str | None
    since: datetime | None
    attempt_id: int | None
    call_state: str | None
    phase: Phase

    @classmethod
    def of(cls, p: PresenceView) -> Snapshot:
        return cls(p.status, p.reason, p.since, p.attempt_id, p.call_state, phase_of(p))

    @property
    def call_key(self) -> str:
        """The call panel's identity: it is rebuilt only when this changes (never under her typing)."""
        return f"{self.attempt_id or 0}-{self.phase.value}"

    def parts_changed(self, before: Snapshot | None, before_call_key: str | None = None) -> list[str]:
        """The console's parts (events of its stream) to send to go from `before` to this."""
        if before is None:
            parts = ["state", "line", "alert"]
            return parts + ([] if before_call_key == self.call_key else ["call"])
        parts = []
        if (self.status, self.reason, self.since) != (before.status, before.reason, before.since):
            parts.append("state")
        if (self.status, self.since, self.attempt_id, self.call_state) != (
            before.status,
            before.since,
            before.attempt_id,
            before.call_state,
        ):
            parts += ["line", "alert"]
        if self.call_key != before.call_key:
            parts.append("call")
        return parts


@dataclass(frozen=True)
class CallPanel:
    attempt_id: int
    patient_id: int
    phase: Phase
    check: Check = Check.pending
    file: PatientSummary | None = None  # connected: its identity always, the rest once confirmed
    script: CallScript | None = None
    qualified: tuple[NurseChoice, ...] = ()  # other nurses a callback may be promised for
    theme_code: str | None = None


def actor_of(p: PresenceView) -> str:
    return f"nurse:{p.code}"


def identity_check(s: Session, actor: str, patient_id: int, attempt_id: int) -> Check:
    """What she answered for this call, from the audit trail (so a reload or another tab agrees)."""
    action = latest_audit_action(
        s,
        patient_id=patient_id,
        actor=actor,
        detail=f"attempt={attempt_id}",
        actions=(CONFIRMED, NOT_CONFIRMED),
    )
    if action is None:
        return Check.pending
    return Check.confirmed if action == CONFIRMED else Check.not_confirmed


def _theme_of_call(summary: PatientSummary, attempt_id: int) -> str | None:
    task_id = next((c.task_id for c in summary.contacts if c.attempt_id == attempt_id), None)
    return next((t.theme_code for t in summary.tasks if t.id == task_id), None)


def panel_without_file(p: PresenceView) -> CallPanel | None:
    """No call, or a call still ringing: nothing of the patient to read."""
    if phase_of(p) == Phase.idle:
        return None
    assert p.attempt_id is not None and p.patient_id is not None
    return CallPanel(p.attempt_id, p.patient_id, phase_of(p))


def load_call(
    s: Session, policy: Policy, p: PresenceView, now: datetime, roster: Sequence[RosterNurse] | None = None
) -> CallPanel | None:
    """Her call as the console shows it; once connected, its showing is audited (the caller commits)."""
    if phase_of(p) != Phase.connected:
        return panel_without_file(p)
    assert p.attempt_id is not None and p.patient_id is not None
    actor = actor_of(p)
    check = identity_check(s, actor, p.patient_id, p.attempt_id)
    summary = patient_summary(s, p.patient_id, policy)
    theme = _theme_of_call(summary, p.attempt_id)
    script = call_script(
        policy,
        theme,
        nurse_name=p.display_name,
        first_name=summary.first_name,
        last_name=summary.last_name,
        tier=summary.tier,
        pathologies=[label for _, label in summary.pathologies],
    )
    qualified = _others_qualified(s, policy, p, theme, roster) if check != Check.pending else ()
    audit(
        s,
        actor,
        READ if check == Check.confirmed else SHOWN_IDENTITY,
        p.patient_id,
        f"attempt={p.attempt_id}",
        now,
    )
    return CallPanel(p.attempt_id, p.patient_id, Phase.connected, check, summary, script, qualified, theme)


def _others_qualified(
    s: Session, policy: Policy, p: PresenceView, theme: str | None, roster: Sequence[RosterNurse] | None
) -> tuple[NurseChoice, ...]:
    assert p.patient_id is not None
    return tuple(n for n in qualified_nurses(s, p.patient_id, policy, theme, roster) if n.id != p.nurse_id)


@dataclass(frozen=True)
class CallFacts:
    """What the outcome form is checked against (nothing of it is shown: no audit)."""

    place: cal.Place
    qualified: tuple[NurseChoice, ...]


def call_facts(
    s: Session, policy: Policy, p: PresenceView, roster: Sequence[RosterNurse] | None = None
) -> CallFacts:
    assert p.attempt_id is not None and p.patient_id is not None
    theme = theme_of_attempt(s, p.attempt_id)
    place = store.place_of(store.patient_rule_row(s, p.patient_id))
    return CallFacts(place, _others_qualified(s, policy, p, theme, roster))


def patient_exists(s: Session, patient_id: int) -> bool:
    """Without reading the file (a refused look must not read what it is refused)."""
    try:
        store.patient_rule_row(s, patient_id)
    except NoResultFound:
        return False
    return True
