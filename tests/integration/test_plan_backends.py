"""Planning stores the same tasks and notes on SQLite and on PostgreSQL.

On PostgreSQL a mailing's recipients are one INSERT … SELECT and the wave's tasks
one binary COPY (store.add_recipients, store.insert_tasks); SQLite takes the
INSERT path. The same patients, nurses and clock, planned on each backend, must
store the same rows: every task column, every recipient's note, the plan the
supervisor reviews.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from factories import add_nurses, dispose, import_synthetic, make_ctx, paris, planned_wave, policy
from sqlalchemy import select

from campaign import services
from campaign.model import PATIENT, RECIPIENT, TASK, Mailing, Patient, Wave
from campaign.policy import Policy

SENT_ON = date(2026, 12, 7)  # letters arrive Thursday 10 December; wave 10 → 28 December
TASK_COLUMNS = [c for c in TASK.columns if c.name not in ("id", "wave_id", "patient_id")]


def _long_calls() -> Policy:
    """Calls five times as long: 2 nurses cannot call every patient, some are left unplaced."""
    base = policy()
    tiers = {t: p.model_copy(update={"call_minutes": p.call_minutes * 5}) for t, p in base.tiers.items()}
    return base.model_copy(update={"tiers": tiers})


def _plan_waves(url: str, tmp_path: Path) -> dict[str, Any]:
    """Two overlapping waves over 500 synthetic patients and 2 nurses; what they stored."""
    ctx, clock = make_ctx(url, paris(SENT_ON, 8), pol=_long_calls())
    try:
        add_nurses(ctx, 2, seed=11)
        import_synthetic(ctx, 500, seed=11, tmp_dir=tmp_path)
        with ctx.sessions() as s:
            # numbers that proved wrong: some keep their other number, some have none left
            for p in s.execute(select(Patient).order_by(Patient.member_id).limit(12)).scalars():
                p.flagged_numbers = [p.phone]
            s.commit()
        first = planned_wave(ctx, clock, "foot_care", SENT_ON)  # the diabetic patients
        services.change_wave(ctx, first.wave_id, "launch")
        second = planned_wave(ctx, clock, "diet", SENT_ON, segment="all")
        services.plan_wave(ctx, second.wave_id, replan=True)
        with ctx.sessions() as s:
            member = dict(s.execute(select(PATIENT.c.id, PATIENT.c.member_id)).all())
            waves = list(s.execute(select(Wave).order_by(Wave.id)).scalars())
            mailings = list(s.execute(select(Mailing).order_by(Mailing.id)).scalars())
            wave_no = {w.id: n for n, w in enumerate(waves)}
            mailing_no = {m.id: n for n, m in enumerate(mailings)}
            tasks = sorted(
                (wave_no[r.wave_id], member[r.patient_id], *(r._mapping[c] for c in TASK_COLUMNS))
                for r in s.execute(select(TASK))
            )
            notes = sorted(
                (mailing_no[r.mailing_id], member[r.patient_id], r.plan_note)
                for r in s.execute(select(RECIPIENT))
            )
            plans = [w.plan for w in waves]
            recipients = [m.recipients for m in mailings]
        return {"tasks": tasks, "notes": notes, "plans": plans, "recipients": recipients}
    finally:
        dispose(ctx)


def test_sqlite_and_postgresql_store_the_same_plan(pg_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    on_sqlite = _plan_waves(f"sqlite:///{tmp_path / 'carecall.db'}", tmp_path)
    url = pg_cluster.create_database()
    try:
        on_postgresql = _plan_waves(url, tmp_path)
    finally:
        pg_cluster.drop_database(url.rsplit("/", 1)[1])

    assert on_postgresql["recipients"] == on_sqlite["recipients"]
    assert on_postgresql["plans"] == on_sqlite["plans"]
    assert on_postgresql["notes"] == on_sqlite["notes"]
    assert on_postgresql["tasks"] == on_sqlite["tasks"]
    # not trivially equal: both waves planned tasks, and patients were left out for several reasons
    assert {wave for wave, *_ in on_sqlite["tasks"]} == {0, 1}
    reasons = {note for *_, note in on_sqlite["notes"] if note}
    assert {
        "already has an open call in another wave (overlapping waves)",
        "no valid phone number",
        "no nurse capacity left in the wave's window",
    } <= reasons, reasons
