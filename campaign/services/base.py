"""What every use case needs: the context (storage, policy, the one clock), and the
helpers several of them share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from campaign import calendar as cal
from campaign import qualification, rules, store
from campaign.clock import Clock
from campaign.db import SessionFactory
from campaign.policy import Policy


@dataclass(frozen=True)
class Context:
    """What every use case needs: storage, policy and the one clock."""

    sessions: SessionFactory
    policy: Policy
    clock: Clock
    # how long a claim holds its task without a heartbeat (in the clock's time)
    lease: timedelta = timedelta(minutes=90)


# more writes of the caller's own in a use case's transaction (the dialer's line records), so
# they cost no round trip of their own
Also = Callable[[Session], None]


required_skills = qualification.required_skills  # the pure rule, where the services have always offered it


def keep_cadence(s: Session, patient_ids: Iterable[int], now: datetime, policy: Policy) -> None:
    """A patient the wave could not reach keeps their regular cadence from today."""
    rows = store.patients_without_future_contact(s, patient_ids, now.date())
    values = {}
    for r in rows:
        state = store.patient_state_from_row(r)
        values[r.id] = rules.next_regular_contact(cal.local_date(now, state.place), state, policy)
    store.set_next_contact(s, values)
