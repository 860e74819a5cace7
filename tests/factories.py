"""Factories: build a real carecall database quickly, for integration tests.

Everything goes through the production code paths (migrations, the CSV import,
the services); nothing here is a mock. Patients made by hand use the ARCEP
fiction ranges only (01 99 00 …, 02 61 91 …), never a real number.

    ctx, clock = make_ctx(db_url, datetime(2026, 12, 7, 7, tzinfo=UTC))
    add_nurses(ctx, 4, seed=1)
    import_synthetic(ctx, 300, seed=1, tmp_dir=tmp_path)
    wave = running_wave(ctx, clock, "diet", date(2026, 12, 7))
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from campaign import calendar as cal
from campaign import migrate, services
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.imports import ImportSummary, import_patients
from campaign.model import PATIENT, Nurse, Patient, pathologies_to_text
from campaign.policy import Policy, load_policy
from campaign.states import EnrolmentStatus, WaveStatus
from campaign.synthetic import generate_nurses, generate_patients_csv

ROOT = Path(__file__).resolve().parents[1]
SENT_ON = date(2026, 12, 7)  # a Monday: the wave runs over Christmas and La Réunion's 20 December

# Weekdays 09:00-17:00 (Paris): a nurse who is on shift for most of the calling day.
WEEKDAY_SHIFTS: list[dict[str, Any]] = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]

_POLICY: Policy | None = None
_ENGINES: dict[int, Engine] = {}
_seq = itertools.count(1)


def policy() -> Policy:
    """The programme's policy from config/ (loaded once per test session), but for the simulated nurses'
    breaks: they never step away unless a test asks (a break at a random moment would decide what a
    test of the dialer sees; tests/integration/test_nurse_breaks.py asks)."""
    global _POLICY
    if _POLICY is None:
        loaded = load_policy()
        sim = loaded.simulation.model_copy(update={"off_phone_share": 0.0})
        _POLICY = loaded.model_copy(update={"simulation": sim})
    return _POLICY


def make_ctx(
    url: str, start: datetime, *, pol: Policy | None = None, **engine_kwargs: Any
) -> tuple[services.Context, VirtualClock]:
    """A migrated database at `url` and a Context on a virtual clock starting at `start`."""
    engine = make_engine(url, **engine_kwargs)
    migrate.upgrade(engine)
    clock = VirtualClock(start)
    ctx = services.Context(session_factory(engine), pol or policy(), clock)
    _ENGINES[id(ctx)] = engine
    return ctx, clock


def engine_of(ctx: services.Context) -> Engine:
    return _ENGINES[id(ctx)]


def dispose(ctx: services.Context) -> None:
    engine = _ENGINES.pop(id(ctx), None)
    if engine is not None:
        engine.dispose()


def with_clock(ctx: services.Context, clock: VirtualClock) -> services.Context:
    """The same database and policy, another clock (e.g. a restarted dialer)."""
    new = services.Context(ctx.sessions, ctx.policy, clock)
    _ENGINES[id(new)] = engine_of(ctx)
    return new


# ---------------------------------------------------------------- nurses


def add_nurses(ctx: services.Context, n: int, seed: int = 0) -> list[int]:
    """`n` synthetic nurses (campaign.synthetic.generate_nurses); returns their ids."""
    rows = generate_nurses(n, seed=seed)
    with ctx.sessions() as s:
        s.add_all(rows)
        s.commit()
        return [int(r.id) for r in rows if r.id is not None]


def add_nurse(
    ctx: services.Context,
    *,
    code: str | None = None,
    level: str = "senior",
    skills: Sequence[str] = (),
    shifts: list[dict[str, Any]] | None = None,
    timezone: str = "Europe/Paris",
) -> int:
    """One hand-made nurse; returns her id."""
    k = next(_seq)
    nurse = Nurse(
        code=code or f"T{k:03d}",
        display_name=f"Infirmière {k}",
        level=level,
        skills=list(skills),
        shifts=WEEKDAY_SHIFTS if shifts is None else shifts,
        timezone=timezone,
        active=True,
    )
    with ctx.sessions() as s:
        s.add(nurse)
        s.commit()
        assert nurse.id is not None
        return nurse.id


PASSWORD = "correct horse battery"  # the factories' accounts' password


def add_account(
    ctx: services.Context,
    username: str,
    role: str,
    *,
    nurse_code: str | None = None,
    password: str = PASSWORD,
) -> int:
    """A console account (dialer.accounts, as `carecall users add` makes it); returns its id."""
    from dialer.accounts import Role, create_account

    return create_account(ctx, username, Role(role), password, nurse_code=nurse_code, actor="tests")


# ---------------------------------------------------------------- patients


def import_synthetic(
    ctx: services.Context,
    n: int,
    seed: int,
    tmp_dir: Path,
    nurse_codes: Sequence[str] | None = None,
    reference_date: date | None = None,
) -> ImportSummary:
    """`n` synthetic patients, written as CSV and imported through the real import.

    `nurse_codes` defaults to every nurse in the database, so about 60 % of the
    patients get a référent, as in the demo.
    """
    if nurse_codes is None:
        with ctx.sessions() as s:
            nurse_codes = [c for (c,) in s.execute(select(Nurse.code).order_by(Nurse.code)).all()]
    ref = reference_date or ctx.clock.now().date()
    path = generate_patients_csv(
        Path(tmp_dir) / f"patients-{seed}-{n}.csv", n, seed=seed, nurse_codes=nurse_codes, reference_date=ref
    )
    summary = import_patients(ctx.sessions, path, ctx.clock, ctx.policy)
    assert not summary.rejected, summary.rejected[:5]
    return summary


def fiction_phone(k: int, prefix: str = "+3319900") -> str:
    """A number from an ARCEP fiction range, E.164 (+33 1 99 00 xx xx)."""
    return f"{prefix}{k % 10_000:04d}"


def add_patient(ctx: services.Context, **overrides: Any) -> Patient:
    """One hand-made patient (metropolitan, diabetic, medium tier, enrolled by default).

    Overrides are Patient fields; `pathologies` may be given as a list, and
    `departement` alone sets the time zone and a plausible postal code.
    """
    k = next(_seq)
    dep = overrides.get("departement", "75")
    values: dict[str, Any] = {
        "member_id": f"T{k:08d}",
        "first_name": "Camille",
        "last_name": f"Fictif{k}",
        "birth_date": date(1950, 1, 1) + timedelta(days=k),
        "sex": "F",
        "phone": fiction_phone(1000 + k),
        "postal_code": f"{dep}000"[:5] if len(dep) == 2 else f"{dep}00",
        "city": "Ville",
        "departement": dep,
        "timezone": cal.zone_for(dep),
        "pathologies": ["diabetes"],
        "tier": "medium",
        "status": EnrolmentStatus.enrolled.value,
        "consent": True,
        "enrolled_on": date(2024, 1, 1),
    }
    values.update(overrides)
    if isinstance(values["pathologies"], list | tuple | set):
        values["pathologies"] = pathologies_to_text(values["pathologies"])
    patient = Patient(**values)
    with ctx.sessions() as s:
        s.add(patient)
        s.commit()
        s.refresh(patient)
    return patient


def patient_ids(ctx: services.Context) -> list[int]:
    with ctx.sessions() as s:
        return [i for (i,) in s.execute(select(PATIENT.c.id).order_by(PATIENT.c.id)).all()]


def bulk_patients(ctx: services.Context, n: int, **common: Any) -> list[int]:
    """`n` similar hand-made patients inserted in one statement; returns their ids."""
    first = next(_seq)
    for _ in range(n):
        next(_seq)
    dep = common.pop("departement", "75")
    rows = []
    for i in range(n):
        k = first + i
        row: dict[str, Any] = {
            "member_id": f"B{k:08d}",
            "first_name": "Dominique",
            "last_name": f"Fictif{k}",
            "birth_date": date(1950, 1, 1),
            "sex": "M",
            "phone": fiction_phone(k, "+3326191"),
            "postal_code": f"{dep}000"[:5],
            "city": "Ville",
            "departement": dep,
            "timezone": cal.zone_for(dep),
            "pathologies": "|diabetes|",
            "tier": "medium",
            "status": "enrolled",
            "consent": True,
            "flagged_numbers": [],
        }
        row.update(common)
        rows.append(row)
    with ctx.sessions() as s:
        s.execute(insert(PATIENT), rows)
        s.commit()
        members = [r["member_id"] for r in rows]
        ids = s.execute(
            select(PATIENT.c.id).where(PATIENT.c.member_id.in_(members)).order_by(PATIENT.c.id)
        ).all()
    return [i for (i,) in ids]


# ---------------------------------------------------------------- waves


@dataclass(frozen=True)
class WaveInfo:
    mailing_id: int
    wave_id: int
    recipients: int
    window_start: date
    window_end: date
    plan_after: datetime


def recorded_wave(
    ctx: services.Context, theme: str = "diet", sent_on: date = date(2026, 12, 7), segment: str | None = None
) -> WaveInfo:
    rec = services.record_mailing(ctx, theme, segment, sent_on)
    return WaveInfo(
        rec.mailing_id, rec.wave_id, rec.recipients, rec.window_start, rec.window_end, rec.plan_after
    )


def planned_wave(
    ctx: services.Context,
    clock: VirtualClock,
    theme: str = "diet",
    sent_on: date = date(2026, 12, 7),
    segment: str | None = None,
) -> WaveInfo:
    """Recorded, then planned by the scheduler's own job when the letters arrive."""
    from campaign import jobs

    info = recorded_wave(ctx, theme, sent_on, segment)
    if clock.now() < info.plan_after:
        clock.advance_to(info.plan_after)
    jobs.plan_due_waves(ctx)
    return info


def running_wave(ctx: services.Context, clock: VirtualClock, *args: Any, **kwargs: Any) -> WaveInfo:
    """Planned (see `planned_wave`, same arguments), then launched by the supervisor."""
    info = planned_wave(ctx, clock, *args, **kwargs)
    services.change_wave(ctx, info.wave_id, "launch")
    return info


def wave_status(ctx: services.Context, wave_id: int) -> WaveStatus:
    with ctx.sessions() as s:
        return WaveStatus(services.get_wave(s, wave_id).status)


def paris(day: date, hh: int, mm: int = 0) -> datetime:
    """A Paris wall-clock instant, as aware UTC."""
    return cal.at_local(day, time(hh, mm), "Europe/Paris")


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def fiction_digits(e164: str) -> str:
    """'+33199001234' -> '0199001234' (how a French person writes it)."""
    return "0" + e164.removeprefix("+33")


def promise_callback(
    ctx: services.Context, clock: VirtualClock, nurse: int, task_id: int, after: timedelta
) -> tuple[int, datetime]:
    """The nurse reaches the patient of `task_id`, who asks to be called back `after` the call:
    the real services, in order. Returns the callback task and the time it is due."""
    from campaign.states import OutcomeCode

    claimed = services.claim_and_start(ctx, task_id, nurse, "desk")
    assert isinstance(claimed, services.Claimed), claimed
    clock.advance_to(clock.now() + timedelta(seconds=15))
    services.mark_answered(ctx, claimed.attempt_id)
    clock.advance_to(clock.now() + timedelta(minutes=5))
    applied = services.record_outcome(
        ctx, claimed.attempt_id, OutcomeCode.callback_requested, nurse, callback_at=clock.now() + after
    )
    assert applied.callback_task_id is not None and applied.next_contact.callback_at is not None
    return applied.callback_task_id, applied.next_contact.callback_at


def add_task(ctx: services.Context, patient_id: int, **overrides: Any) -> int:
    """A task outside any wave (an inbound request by default), pending, due five minutes ago,
    open for two days; overrides are call_task columns. Returns its id."""
    from campaign.model import TASK
    from campaign.states import TaskKind, TaskStatus

    now = ctx.clock.now()
    values: dict[str, Any] = {
        "wave_id": None,
        "patient_id": patient_id,
        "kind": TaskKind.inbound,
        "status": TaskStatus.pending,
        "tier": "medium",
        "priority": 50,
        "not_before": now - timedelta(minutes=5),
        "deadline": now + timedelta(days=2),
        "created_at": now,
        "attempts": 0,
    }
    values.update(overrides)
    with ctx.sessions() as s:
        task_id = s.execute(insert(TASK).values(**values).returning(TASK.c.id)).scalar_one()
        s.commit()
    return int(task_id)


def registry_record(**overrides: Any) -> Any:
    """One validated patient as the import hands it to the registry (a fiction number), line 7."""
    from campaign.store.registry import PatientRecord

    values: dict[str, Any] = {
        "member_id": "AB12",
        "last_name": "Dupont",
        "first_name": "Jean",
        "birth_date": date(1950, 1, 1),
        "phone": "+33199001234",
        "postal_code": "75011",
        "departement": "75",
        "timezone": "Europe/Paris",
        "pathologies": "|diabetes|",
        "tier": "low",
        "line": 7,
    }
    values.update(overrides)
    return PatientRecord(**values)


def sessions_with_nurses(url: str, nurses: int) -> tuple[Any, Engine]:
    """A migrated database at `url` with `nurses` synthetic nurses: (session factory, engine)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        s.add_all(generate_nurses(nurses, seed=1))
        s.commit()
    return factory, engine
