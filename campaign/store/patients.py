"""Patient rows as the rules read them, their dial histories, the nurses, and the
next-contact writes that keep a patient's cadence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlmodel import Session

from campaign import calendar as cal
from campaign.model import ATTEMPT, NURSE, PATIENT, Nurse
from campaign.policy import NurseLevel
from campaign.rules import DialHistory
from campaign.states import AttemptState, EnrolmentStatus
from campaign.store.base import PATIENT_RULE_COLUMNS, one_of


def patient_rule_row(session: Session, patient_id: int) -> Any:
    return session.execute(select(*PATIENT_RULE_COLUMNS).where(PATIENT.c.id == patient_id)).one()


HISTORY_LOOKBACK = timedelta(days=2)  # covers the local day of `at` and the day before it


def dial_history(session: Session, patient_id: int, at: datetime, place: cal.Place) -> DialHistory:
    """From the stored attempts, so every dialer process sees the same history.

    Looks back far enough for the minimum gap and the daily cap of `at`'s local day.
    """
    return history_from_attempts(
        patient_attempts_since(session, patient_id, at - HISTORY_LOOKBACK), at, place
    )


def patient_attempts_since(session: Session, patient_id: int, since: datetime) -> list[tuple[datetime, str]]:
    """(started_at, state) of the patient's attempts since `since`: what dial histories are made of."""
    return [
        (r.started_at, r.state)
        for r in session.execute(
            select(ATTEMPT.c.started_at, ATTEMPT.c.state).where(
                ATTEMPT.c.patient_id == patient_id, ATTEMPT.c.started_at >= since
            )
        ).all()
    ]


def last_dial(session: Session, patient_id: int) -> datetime | None:
    return session.execute(
        select(func.max(ATTEMPT.c.started_at)).where(ATTEMPT.c.patient_id == patient_id)
    ).scalar_one_or_none()


def dial_histories(session: Session, places: dict[int, cal.Place], at: datetime) -> dict[int, DialHistory]:
    """`dial_history` of many patients in one query (a dialer's batch of claims)."""
    if not places:
        return {}
    attempts = session.execute(
        select(ATTEMPT.c.patient_id, ATTEMPT.c.started_at, ATTEMPT.c.state).where(
            one_of(session, ATTEMPT.c.patient_id, places), ATTEMPT.c.started_at >= at - HISTORY_LOOKBACK
        )
    ).all()
    return histories_by_patient(attempts, places, at)


def histories_by_patient(
    attempts: Iterable[tuple[int, datetime, str]], places: dict[int, cal.Place], at: datetime
) -> dict[int, DialHistory]:
    """Per patient of `places`, the history its (patient, started_at, state) attempts give."""
    by_patient: dict[int, list[tuple[datetime, str]]] = {pid: [] for pid in places}
    for pid, started_at, state in attempts:
        if pid in by_patient:
            by_patient[pid].append((started_at, state))
    return {pid: history_from_attempts(rows, at, places[pid]) for pid, rows in by_patient.items()}


def history_from_attempts(
    rows: Sequence[tuple[datetime, str]], at: datetime, place: cal.Place
) -> DialHistory:
    """Minimum gap and daily cap look back one day and over the patient's local day."""
    day = cal.local_date(at, place)
    day_start = cal.at_local(day, time(0), place.timezone)
    day_end = cal.at_local(day + timedelta(days=1), time(0), place.timezone)
    since = min(day_start, at - timedelta(days=1))
    recent = [(started, state) for started, state in rows if started >= since]
    return DialHistory(
        in_call=any(state == AttemptState.in_flight for _, state in recent),
        last_dial_at=max((started for started, _ in recent), default=None),
        dials_on_day=sum(1 for started, _ in recent if day_start <= started < day_end),
    )


# ------------------------------------------------------------------ nurses


@dataclass(frozen=True, slots=True)
class NurseInfo:
    id: int
    code: str
    level: NurseLevel
    skills: frozenset[str]
    shifts: tuple[tuple[int, time, time], ...]
    timezone: str
    phone_endpoint: str | None = None  # her phone on the line (PJSIP endpoint, Twilio identity, number)


def nurses(session: Session, active_only: bool = True) -> list[NurseInfo]:
    q = select(Nurse)
    if active_only:
        q = q.where(NURSE.c.active.is_(True))
    out = []
    for n in session.execute(q).scalars().all():
        shifts = tuple(
            (int(s["weekday"]), time.fromisoformat(s["start"]), time.fromisoformat(s["end"]))
            for s in n.shifts
        )
        out.append(
            NurseInfo(
                id=n.id,
                code=n.code,
                level=NurseLevel(n.level),
                skills=frozenset(n.skills),
                shifts=shifts,
                timezone=n.timezone,
                phone_endpoint=n.phone_endpoint,
            )
        )
    return out


def patients_without_future_contact(session: Session, ids: Iterable[int], day: date) -> list[Any]:
    """Of these patients, those with no next contact date from `day` on."""
    out: list[Any] = []
    ids = list(ids)
    for i in range(0, len(ids), 900):
        out.extend(
            session.execute(
                select(*PATIENT_RULE_COLUMNS).where(
                    PATIENT.c.id.in_(ids[i : i + 900]),
                    or_(PATIENT.c.next_contact_on.is_(None), PATIENT.c.next_contact_on < day),
                    PATIENT.c.status.in_([EnrolmentStatus.enrolled, EnrolmentStatus.suspended]),
                )
            ).all()
        )
    return out


def set_next_contact(session: Session, values: Mapping[int, date | None]) -> None:
    if values:
        session.execute(
            update(PATIENT).where(PATIENT.c.id == bindparam("pid")).values(next_contact_on=bindparam("day")),
            [{"pid": pid, "day": day} for pid, day in values.items()],
        )
