"""Patients' files: who has no number left to call, and their contact given back once an
import brings a new number."""

from __future__ import annotations

from campaign import calendar as cal
from campaign import rules, store
from campaign.services.base import Context


def without_number(ctx: Context) -> set[int]:
    """Ids of the patients on the list now: what an import checks again once it is stored."""
    with ctx.sessions() as s:
        return {r.id for r in store.patients_without_number(s)}


def restore_contacts(ctx: Context, patient_ids: set[int]) -> int:
    """Patients of `patient_ids` who have a dialable number again get a next contact: the first
    day with calling hours from today where they live (they are overdue). Returns how many."""
    if not patient_ids:
        return 0
    now = ctx.clock.now()
    with ctx.sessions() as s:
        still = {r.id for r in store.patients_without_number(s)}
        fixed = sorted(patient_ids - still)
        values = {}
        for r in store.patients_without_future_contact(s, fixed, now.date()):
            state = store.patient_state_from_row(r)
            if state.dialable_numbers > 0:
                values[r.id] = rules.first_calling_day(cal.local_date(now, state.place), state, ctx.policy)
        store.set_next_contact(s, values)
        s.commit()
    return len(values)
