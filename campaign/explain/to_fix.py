"""Patients carecall cannot call until someone fixes their file: every number flagged wrong.

Without a number no contact can be planned, so these patients would otherwise
drop out of every wave unnoticed. A supervisor works from this list; importing
a new number gives them a next contact again (`services.restore_contacts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from campaign import calendar as cal
from campaign import services, store


@dataclass(frozen=True)
class ToFix:
    member_id: str
    tier: str
    status: str
    flagged: int  # numbers flagged wrong
    since: date | None  # local day of the latest wrong-number outcome, if a nurse recorded one
    next_contact_on: date | None


def patients_to_fix(ctx: services.Context, actor: str) -> list[ToFix]:
    """The list, by member id; reading it is audited (it names patients)."""
    now = ctx.clock.now()
    with ctx.sessions() as s:
        rows = store.patients_without_number(s)
        since = store.wrong_number_since(s, [r.id for r in rows])
        store.audit(s, now, actor, "patients.to_fix", detail=f"patients={len(rows)}")
        s.commit()
    return [_item(r, since.get(r.id)) for r in rows]


def _item(r: Any, since: datetime | None) -> ToFix:
    return ToFix(
        member_id=r.member_id,
        tier=r.tier,
        status=r.status,
        flagged=len(r.flagged_numbers or ()),
        since=cal.local_time_of(since, r.timezone).date() if since else None,
        next_contact_on=r.next_contact_on,
    )
