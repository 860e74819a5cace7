"""Two transactions flag numbers on one patient's file at once: both flags are kept.

A dead number is flagged at its first attempt (`store.flag_numbers`); with several dialer
processes on PostgreSQL, two of a patient's numbers may be found dead by two transactions
together. Read, then write, would let the later one overwrite the other's flag, and the
dead number would be dialed again.
"""

from __future__ import annotations

import threading

from factories import add_patient, engine_of
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign import services, store
from campaign.model import PATIENT

WAIT = 30.0  # seconds a step may take on a loaded 2-core machine before the test gives up
MAIN, ALT = "+33199001234", "+33261915678"


def _flagged(ctx: services.Context, patient_id: int) -> list[str]:
    with ctx.sessions() as s:
        flagged = s.execute(select(PATIENT.c.flagged_numbers).where(PATIENT.c.id == patient_id))
        return list(flagged.scalar_one())


def test_two_transactions_flagging_one_patient_keep_both_flags(pg_env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = pg_env
    patient = add_patient(ctx, phone=MAIN, phone_alt=ALT).id
    done = threading.Event()

    def second() -> None:
        with Session(engine_of(ctx)) as s:
            store.flag_numbers(s, [(patient, ALT)], clock.now())
            s.commit()
        done.set()

    with Session(engine_of(ctx)) as first:
        store.flag_numbers(first, [(patient, MAIN)], clock.now())
        other = threading.Thread(target=second)
        other.start()
        # the second waits for the first's lock (it must not have read the list before it)
        assert not done.wait(timeout=1.0), "the second flagger wrote while the first held the row"
        first.commit()
    other.join(timeout=WAIT)
    assert not other.is_alive()

    assert _flagged(ctx, patient) == sorted([MAIN, ALT]), "a concurrent flag was overwritten"


def test_flagging_keeps_what_was_flagged_before(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    patient = add_patient(ctx, phone=MAIN, phone_alt=ALT).id
    with ctx.sessions() as s:
        store.flag_numbers(s, [(patient, MAIN)], clock.now())
        s.commit()
    with ctx.sessions() as s:
        store.flag_numbers(s, [(patient, ALT), (patient, MAIN)], clock.now())
        s.commit()
    assert _flagged(ctx, patient) == sorted([MAIN, ALT])
