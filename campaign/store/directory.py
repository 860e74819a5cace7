"""What the supervisor's command line lists and adds by hand (nurses by code, waves with
their mailings), and what the simulated population may see of the patients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from campaign.model import MAILING, NURSE, PATIENT, WAVE, Nurse


def add_new_nurses(session: Session, nurses: Iterable[Nurse]) -> list[Nurse]:
    """Add the nurses whose code is not taken yet; returns those added (codes are unique,
    so generating the same nurses twice adds nothing the second time)."""
    existing = set(session.execute(select(NURSE.c.code)).scalars())
    added = [n for n in nurses if n.code not in existing]
    session.add_all(added)
    session.flush()
    return added


def set_nurse_phone(session: Session, code: str, endpoint: str | None) -> bool:
    """Her phone on the line (PJSIP endpoint, Twilio Client identity or number); False: no such nurse."""
    result = session.execute(update(NURSE).where(NURSE.c.code == code).values(phone_endpoint=endpoint))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def waves_with_mailings(session: Session) -> list[Any]:
    """Every wave with its mailing's theme and recipient count, oldest first."""
    return list(
        session.execute(
            select(
                WAVE.c.id,
                MAILING.c.theme_code,
                WAVE.c.status,
                WAVE.c.window_start,
                WAVE.c.window_end,
                MAILING.c.recipients,
            )
            .join(MAILING, MAILING.c.id == WAVE.c.mailing_id)
            .order_by(WAVE.c.id)
        ).all()
    )


def patient_lines(session: Session) -> list[Any]:
    """What the simulated population may see of every patient (dialer/population.py): id, member id,
    birth date, tier, département, zone, numbers, stated window; never the programme's state."""
    return list(
        session.execute(
            select(
                PATIENT.c.id,
                PATIENT.c.member_id,
                PATIENT.c.birth_date,
                PATIENT.c.tier,
                PATIENT.c.departement,
                PATIENT.c.timezone,
                PATIENT.c.phone,
                PATIENT.c.phone_alt,
                PATIENT.c.preferred_start,
                PATIENT.c.preferred_end,
            ).order_by(PATIENT.c.id)
        ).all()
    )
