"""Answer counts per hour band (campaign.besttime): each patient's own and their cohorts'.

Counted in the transaction that stores an attempt's result or outcome. Each
transaction adds its counts once, at its end, in key order: two dialer processes
adding to the same cohort rows wait for each other, never in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from campaign.besttime import AnswerEvent, AnswerModel, BandCounts, cohort_keys
from campaign.model import ANSWER_BAND, ANSWER_COHORT, PATIENT, RECIPIENT
from campaign.rules import PatientState
from campaign.store.base import one_of


def _upsert(session: Session, table: Any, keys: tuple[str, str]) -> Any:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            "attempts": table.c.attempts + stmt.excluded.attempts,
            "answers": table.c.answers + stmt.excluded.answers,
        },
    )


def add_answers(session: Session, events: Iterable[AnswerEvent]) -> None:
    """Count these attempts for their patients and cohorts: two statements, whatever their number."""
    own: dict[tuple[int, int], list[int]] = {}
    cohorts: dict[tuple[str, int], list[int]] = {}
    for e in events:
        for counts in [own.setdefault((e.patient_id, e.band), [0, 0])] + [
            cohorts.setdefault((c, e.band), [0, 0]) for c in e.cohorts
        ]:
            counts[0] += 1
            counts[1] += int(e.answered)
    if own:
        session.execute(
            _upsert(session, ANSWER_BAND, ("patient_id", "band")),
            [
                {"patient_id": p, "band": b, "attempts": a, "answers": n}
                for (p, b), (a, n) in sorted(own.items())
            ],
        )
    if cohorts:
        session.execute(
            _upsert(session, ANSWER_COHORT, ("cohort", "band")),
            [
                {"cohort": c, "band": b, "attempts": a, "answers": n}
                for (c, b), (a, n) in sorted(cohorts.items())
            ],
        )


def answer_counts(session: Session, patient_ids: Sequence[int]) -> dict[int, dict[int, BandCounts]]:
    """Each patient's counts per band (patients with none are left out)."""
    out: dict[int, dict[int, BandCounts]] = {}
    if not patient_ids:
        return out
    rows = session.execute(
        select(
            ANSWER_BAND.c.patient_id, ANSWER_BAND.c.band, ANSWER_BAND.c.attempts, ANSWER_BAND.c.answers
        ).where(one_of(session, ANSWER_BAND.c.patient_id, patient_ids))
    )
    for patient_id, band, attempts, answers in rows:
        out.setdefault(int(patient_id), {})[int(band)] = BandCounts(attempts, answers)
    return out


def cohort_counts(session: Session, cohorts: Iterable[str] | None = None) -> dict[str, dict[int, BandCounts]]:
    """Each cohort's counts per band: of these cohorts, or of all (planning reads them all once)."""
    q = select(
        ANSWER_COHORT.c.cohort, ANSWER_COHORT.c.band, ANSWER_COHORT.c.attempts, ANSWER_COHORT.c.answers
    )
    if cohorts is not None:
        keys = sorted(set(cohorts))
        if not keys:
            return {}
        if session.get_bind().dialect.name == "postgresql":  # one statement text whatever the count
            q = q.where(ANSWER_COHORT.c.cohort == any_(bindparam(None, keys, type_=ARRAY(String))))
        else:
            q = q.where(ANSWER_COHORT.c.cohort.in_(keys))
    out: dict[str, dict[int, BandCounts]] = {}
    for cohort, band, attempts, answers in session.execute(q):
        out.setdefault(cohort, {})[int(band)] = BandCounts(attempts, answers)
    return out


def models_for(
    session: Session, cohorts_of: Mapping[int, tuple[str, ...]], base: float, weight: float
) -> dict[int, AnswerModel]:
    """The answer model of each patient (id -> their cohort keys, narrow to broad), in two queries."""
    own = answer_counts(session, list(cohorts_of))
    by_cohort = cohort_counts(session, {c for keys in cohorts_of.values() for c in keys})
    return {
        pid: AnswerModel(own.get(pid, {}), tuple(by_cohort.get(c, {}) for c in keys), base, weight)
        for pid, keys in cohorts_of.items()
    }


def has_answer_counts(session: Session) -> bool:
    """False while nothing has been counted: every estimate is the base rate."""
    return session.execute(select(ANSWER_BAND.c.band).limit(1)).first() is not None


def recipient_birth_dates(session: Session, mailing_id: int) -> dict[int, date]:
    """What the cohorts of a mailing's recipients are made of, besides their rule data."""
    rows = session.execute(
        select(PATIENT.c.id, PATIENT.c.birth_date)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
    )
    return {int(pid): born for pid, born in rows}


def recipient_answer_counts(session: Session, mailing_id: int) -> dict[int, dict[int, BandCounts]]:
    """The counts of a mailing's recipients who have any."""
    out: dict[int, dict[int, BandCounts]] = {}
    rows = session.execute(
        select(ANSWER_BAND.c.patient_id, ANSWER_BAND.c.band, ANSWER_BAND.c.attempts, ANSWER_BAND.c.answers)
        .join(RECIPIENT, RECIPIENT.c.patient_id == ANSWER_BAND.c.patient_id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
    )
    for patient_id, band, attempts, answers in rows:
        out.setdefault(int(patient_id), {})[int(band)] = BandCounts(attempts, answers)
    return out


def recipient_models(
    session: Session,
    mailing_id: int,
    states: Mapping[int, PatientState],
    on: date,
    base: float,
    weight: float,
) -> dict[int, AnswerModel]:
    """The answer models of a mailing's recipients (their rule data `states`), cohorts as of `on`."""
    born = recipient_birth_dates(session, mailing_id)
    own = recipient_answer_counts(session, mailing_id)
    by_cohort = cohort_counts(session)
    out: dict[int, AnswerModel] = {}
    for pid, state in states.items():
        birth = born.get(pid)
        if birth is None:
            continue
        keys = cohort_keys(birth, on, state.place.departement, state.tier.value)
        out[pid] = AnswerModel(own.get(pid, {}), tuple(by_cohort.get(c, {}) for c in keys), base, weight)
    return out
