#!/usr/bin/env python3
"""Benchmark: planning a national wave (1,000,000 patients, 250 nurses, 20 working days) on PostgreSQL.

Patients are bulk-loaded with one binary COPY (the import is benchmarked on its
own, scripts/bench_import.py); 250 nurses come from campaign.synthetic; a mailing
to everyone is recorded through campaign.services.record_mailing (segment "all"),
then campaign.services.plan_wave is timed. The floor is PostgreSQL COPY of as many
rows into call_task as planning inserted (the planned rows themselves: COPY TO a
file, TRUNCATE, COPY FROM, timed, text and binary; the faster one counts).

plan_wave is one service call; its time is split, without touching the service,
by wrapping the store and planning functions it calls (timestamps at entry and
exit; the gaps between them are the Python work in services.plan_wave itself):

    load_candidates  delete old tasks, read the recipients with their rule data,
                     open tasks and contact caps, build the planning candidates,
                     read the nurses
    pure_planning    campaign.planning.plan_wave
    build_task_rows  a row per placed patient (its first calling window, deadline)
    insert_tasks     campaign.store.insert_tasks
    plan_notes       why each left-out recipient was left out (store.set_plan_notes)
    commit_and_rest  the wave's summary, audit, commit

Capacity: 250 nurses x 20 working days cannot hold a first call for 1,000,000
patients at the shipped handle times (about 110,000 fit). So by default every
tier's call_minutes and noanswer_handle_minutes are scaled by --minutes-scale
(0.06) so that everyone fits and the whole 1,000,000-row plan is exercised; the
JSON says so and reports the unplaced count whatever it is. --shipped-minutes
plans with the policy as shipped (most patients then stay unplaced, honestly
reported).

After the floor, the wave is planned again twice, to measure the changes proposed
for files this benchmark does not own: (1) the service as it is, with a COPY-based
store.insert_tasks (insert_tasks_copy below); (2) plan_wave_proposed below, the
service with the proposed changes (P1-P4), with that insert_tasks and a
store.set_plan_notes that clears only the notes that are set. A replan also
deletes the first plan's tasks: that phase is reported apart and left out of
the comparison. Peak RSS is a high-water mark: the replans can only show their
own peak if it is higher than the first plan's, so run with --proposed-only to
see the proposal's memory on its own.

    .venv/bin/python scripts/bench_plan.py [--patients 1000000] [--nurses 250] [--database-url URL]

Prints JSON. Target (issue "National scale"): planning within 3x of the floor,
peak RSS under 1 GiB (ru_maxrss of this process).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import operator
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from _benchdata import bulk_load_patients, copy_floor, load_average, peak_rss_mib
from _pgcluster import add_database_arguments, bench_database
from sqlalchemy import bindparam, case, func, null, select, text, update
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from campaign import calendar as cal
from campaign import migrate, planning, services, store
from campaign.clock import VirtualClock
from campaign.db import make_engine, session_factory
from campaign.errors import InvalidTransition
from campaign.logs import configure_logging
from campaign.model import PATIENT, RECIPIENT, TASK, Mailing, pathologies_from_text
from campaign.policy import Policy, Tier, load_policy
from campaign.rules import PatientState
from campaign.states import EnrolmentStatus, TaskKind, TaskStatus, WaveStatus
from campaign.synthetic import generate_nurses

SENT_ON = date(2027, 1, 11)        # a Monday; the 20 working days avoid the year-end holidays
TARGET_RATIO = 3.0
TARGET_RSS_MIB = 1024
_TASK_COLUMNS = tuple(c.name for c in TASK.columns if c.name != "id")


def insert_tasks_copy(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Prototype of store.insert_tasks on PostgreSQL: one binary COPY instead of executemany.

    The change proposed for campaign/store.py (see the report): same signature,
    same rows, same transaction (the session's connection); rows are streamed
    (a generator is never materialised); SQLite keeps the executemany path.
    The columns are the first row's keys; every row must have the same keys.
    """
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return 0
    columns = tuple(first)
    get = operator.itemgetter(*columns)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    n = 0
    with raw.cursor() as cur, cur.copy(
        f"COPY call_task ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types([TASK_COPY_TYPES[c] for c in columns])
        for r in itertools.chain((first,), it):
            if len(r) != len(columns):
                raise ValueError(f"insert_tasks: every row needs the keys {columns}")
            copy.write_row(get(r))
            n += 1
    return n


TASK_COPY_TYPES = {
    "wave_id": "int4", "patient_id": "int4", "kind": "text", "status": "text", "tier": "text",
    "priority": "int4", "planned_day": "date", "not_before": "timestamptz",
    "deadline": "timestamptz", "assigned_nurse_id": "int4", "theme_code": "text",
    "attempts": "int4", "claimed_by": "text", "lease_until": "timestamptz",
    "created_at": "timestamptz", "closed_at": "timestamptz", "close_reason": "text",
}


def set_plan_notes_changed_only(session: Session, mailing_id: int, notes: dict[int, str]) -> None:
    """Prototype of store.set_plan_notes: clear only the notes that are set (not every recipient)."""
    table = RECIPIENT
    session.execute(
        update(table)
        .where(table.c.mailing_id == mailing_id, table.c.plan_note.is_not(None))
        .values(plan_note=None)
    )
    if notes:
        session.execute(
            update(table)
            .where(table.c.mailing_id == mailing_id, table.c.patient_id == bindparam("pid"))
            .values(plan_note=bindparam("note")),
            [{"pid": pid, "note": note} for pid, note in notes.items()],
        )


def recipient_rows_streamed(session: Session, mailing_id: int) -> Iterator[Any]:
    """(S3) store.recipients_rows, streamed, an empty flagged_numbers read as NULL (no JSON decode)."""
    flagged = case(
        (func.json_array_length(PATIENT.c.flagged_numbers) == 0, null()),
        else_=PATIENT.c.flagged_numbers,
    ).label("flagged_numbers")
    columns = [flagged if c.name == "flagged_numbers" else c for c in store.PATIENT_RULE_COLUMNS]
    query = (
        select(*columns)
        .join(RECIPIENT, RECIPIENT.c.patient_id == PATIENT.c.id)
        .where(RECIPIENT.c.mailing_id == mailing_id)
    )
    yield from session.execute(query, execution_options={"yield_per": 20_000})


_STATUSES = {s.value: s for s in EnrolmentStatus}
_TIERS = {t.value: t for t in Tier}


def patient_state_lean(row: Any) -> PatientState:
    """(S4) store.patient_state_from_row, same result, cheaper for the common row."""
    flagged = row.flagged_numbers
    phone, alt = row.phone, row.phone_alt
    numbers = (
        len(store.dialable_numbers(phone, alt, flagged)) if flagged
        else (1 if phone else 0) + (1 if alt else 0)
    )
    return PatientState(
        status=_STATUSES[row.status],
        tier=_TIERS[row.tier],
        place=cal.Place(row.departement, row.timezone, row.preferred_start, row.preferred_end),
        consent=bool(row.consent),
        suspended_until=row.suspended_until,
        dialable_numbers=numbers,
        next_contact_on=row.next_contact_on,
    )


def plan_wave_proposed(ctx: services.Context, wave_id: int, *, replan: bool = False) -> planning.WavePlan:
    """services.plan_wave with the changes proposed for campaign/services.py (measured here).

    Same checks, same plan, same task rows, same notes. Differences, marked (P1)…(P4)
    for services.py and (S3), (S4) for store.py:
    (P1) the skills a call needs are computed once per pathology combination, not per patient;
    (P2) the recipient rows are streamed into the candidates and never all held (a
         candidate's state has the place and tier the task rows need);
    (S3) store.recipients_rows streams (server-side cursor) and leaves an empty
         flagged_numbers undecoded (recipient_rows_streamed below);
    (S4) store.patient_state_from_row with plain dict lookups for the enums and no
         set/list when no number is flagged (patient_state_lean below);
    (P3) the first calling window and the deadline are computed once per (day, place) and per
         time zone, not per task;
    (P4) the task rows are a generator streamed into store.insert_tasks (with the COPY
         version, no list of 1,000,000 dicts is ever built).
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions() as s:
        wave = services.get_wave(s, wave_id)
        if wave.status not in (WaveStatus.scheduled, WaveStatus.planned):
            raise InvalidTransition(f"wave {wave_id} is {wave.status}")
        if wave.status == WaveStatus.planned and not replan:
            raise InvalidTransition(f"wave {wave_id} is already planned")
        mailing = s.get(Mailing, wave.mailing_id)
        assert mailing is not None and mailing.id is not None
        theme_code = mailing.theme_code
        store.delete_pending_wave_tasks(s, wave_id)
        busy = store.open_task_patients(s, exclude_wave_id=wave_id)
        counts = store.wave_task_counts_since(s, now - timedelta(days=policy.caps.period_days), wave_id)

        @functools.cache
        def skills_of(pathologies: str) -> frozenset[str]:                      # (P1)
            return services.required_skills(pathologies_from_text(pathologies), theme_code, policy)

        cands = [
            planning.Candidate(
                patient_id=r.id,
                state=patient_state_lean(r),                                     # (S4)
                skills=skills_of(r.pathologies),
                open_task_elsewhere=r.id in busy,
                tasks_in_period=counts.get(r.id, 0),
            )
            for r in recipient_rows_streamed(s, mailing.id)                      # (P2, S3)
        ]
        nurses = [
            planning.NurseShifts(n.id, n.level, n.skills, n.shifts, n.timezone) for n in store.nurses(s)
        ]
        days = cal.working_days(wave.window_start, wave.window_end, policy.calling_hours)
        plan = planning.plan_wave(cands, nurses, days, policy)
        state_of = {c.patient_id: c.state for c in cands}
        del cands

        @functools.cache
        def first_call(day: date, place: cal.Place) -> datetime:              # (P3)
            return cal.utc_intervals(day, place, policy.calling_hours)[0][0]

        @functools.cache
        def deadline_in(zone: str) -> datetime:
            return cal.at_local(wave.window_end + timedelta(days=1), dtime(0), zone)

        priority = {t: policy.tiers[t].priority for t in Tier}
        kind, pending = TaskKind.wave.value, TaskStatus.pending.value

        def task_rows() -> Iterator[dict[str, Any]]:                           # (P4)
            for pid, day in plan.assignments.items():
                state = state_of[pid]
                yield {
                    "wave_id": wave_id,
                    "patient_id": pid,
                    "kind": kind,
                    "status": pending,
                    "tier": state.tier.value,
                    "priority": priority[state.tier],
                    "planned_day": day,
                    "not_before": first_call(day, state.place),
                    "deadline": deadline_in(state.place.timezone),
                    "theme_code": theme_code,
                    "attempts": 0,
                    "created_at": now,
                }

        inserted = store.insert_tasks(s, task_rows())
        notes = {
            pid: services._SKIP_NOTES.get(reason, reason)
            for reason, ids in plan.skipped_ids.items() for pid in ids
        }
        notes.update({pid: "no nurse capacity left in the wave's window" for pid in plan.unplaced})
        store.set_plan_notes(s, mailing.id, notes)
        summary = plan.as_dict()
        summary["nurses"] = len(nurses)
        wave.plan = summary
        wave.status = WaveStatus.planned
        wave.planned_at = now
        store.audit(s, now, "scheduler", "wave.plan", detail=f"wave={wave_id} tasks={inserted}")
        s.commit()
    return plan


class PhaseProbe:
    """Wraps module functions to timestamp their entry and exit; restores them after."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, float]] = []
        self._undo: list[Callable[[], None]] = []

    def wrap(self, module: Any, name: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.events.append((name, started, time.perf_counter()))

        setattr(module, name, timed)
        self._undo.append(lambda: setattr(module, name, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def span(self, name: str) -> Any:
        """(entry, exit) of the first call of `name`, None if it was not called."""
        return next(((a, b) for n, a, b in self.events if n == name), None)


def timed_plan(
    ctx: services.Context, wave_id: int, *, replan: bool,
    plan_wave: Callable[..., planning.WavePlan] = services.plan_wave,
) -> tuple[Any, dict[str, Any]]:
    """plan_wave (the service's), with its time split into phases (see the module docstring)."""
    probe = PhaseProbe()
    for name in ("delete_pending_wave_tasks", "recipients_rows", "open_task_patients",
                 "wave_task_counts_since", "nurses", "insert_tasks", "set_plan_notes"):
        probe.wrap(store, name)
    probe.wrap(planning, "plan_wave")
    started = time.perf_counter()
    try:
        plan = plan_wave(ctx, wave_id, replan=replan)
    finally:
        ended = time.perf_counter()
        probe.restore()
    phases = _phases(probe, started, ended)
    return plan, phases


def _phases(probe: PhaseProbe, started: float, ended: float) -> dict[str, float | None]:
    delete = probe.span("delete_pending_wave_tasks")
    nurses = probe.span("nurses")
    pure = probe.span("plan_wave")
    insert = probe.span("insert_tasks")
    notes = probe.span("set_plan_notes")
    counts = probe.span("wave_task_counts_since")
    recipients = probe.span("recipients_rows")       # None when streamed (plan_wave_proposed)
    phases: dict[str, float | None] = {
        "delete_old_tasks": delete[1] - delete[0],
        "load_candidates": nurses[1] - started - (delete[1] - delete[0]),
        "of_which_read_recipients": None if recipients is None else recipients[1] - recipients[0],
        # streamed: reading the recipients is inside this one
        "of_which_build_candidates": nurses[0] - counts[1],
        "pure_planning": pure[1] - pure[0],
        "build_task_rows": insert[0] - pure[1],
        "insert_tasks": insert[1] - insert[0],
        "plan_notes": notes[1] - insert[1],
        "commit_and_rest": ended - notes[1],
        "total": ended - started,
    }
    return {k: None if v is None else round(v, 3) for k, v in phases.items()}


def tasks_checksum(ctx: services.Context, wave_id: int) -> str:
    """What a plan wrote, independent of ids: every task's patient, day, window start, deadline, tier."""
    with ctx.sessions() as s:
        return str(s.execute(text(
            "SELECT md5(string_agg(concat_ws('|', patient_id, planned_day, not_before, deadline, "
            "tier, priority, status, kind, theme_code), ',' ORDER BY patient_id)) "
            "FROM call_task WHERE wave_id = :w"
        ), {"w": wave_id}).scalar_one())


def replan_figures(
    ctx: services.Context, wave_id: int, plan_wave: Callable[..., planning.WavePlan],
    first: dict[str, Any], floor_s: float, planned: int, first_checksum: str, first_notes: str,
) -> dict[str, Any]:
    """Plan the wave again with `plan_wave` (and whatever store functions are patched in).

    A replan first deletes the tasks of the first plan, which a first plan does not
    do: the comparison with the first plan and the floor leaves that phase out.
    """
    plan, phases = timed_plan(ctx, wave_id, replan=True, plan_wave=plan_wave)
    with ctx.sessions() as s:
        tasks = s.execute(select(func.count()).select_from(TASK)).scalar_one()
        notes = s.execute(text(
            "SELECT md5(string_agg(concat_ws('|', patient_id, plan_note), ',' ORDER BY patient_id)) "
            "FROM mailing_recipient"
        )).scalar_one()
    comparable = phases["total"] - phases["delete_old_tasks"]
    return {
        "seconds_without_deleting_old_tasks": round(comparable, 3),
        "phases": phases,
        "same_plan": len(plan.assignments) == planned == tasks,
        "same_tasks_as_first_plan": tasks_checksum(ctx, wave_id) == first_checksum,
        "same_plan_notes_as_first_plan": notes == first_notes,
        "speedup_vs_first_plan": {
            k: round(first[k] / v, 1) for k, v in phases.items()
            if k not in ("delete_old_tasks", "total") and v is not None and v > 0.01
            and first.get(k) is not None
        },
        "ratio_to_floor": round(comparable / floor_s, 2),
        "peak_rss_mib_so_far": peak_rss_mib(),
    }


def scaled_policy(base: Policy, wave_days: int, scale: float | None) -> Policy:
    mailing = base.mailing.model_copy(update={"wave_working_days": wave_days})
    if scale is None:
        return base.model_copy(update={"mailing": mailing})
    tiers = {t: p.model_copy(update={"call_minutes": p.call_minutes * scale}) for t, p in base.tiers.items()}
    dialer = base.dialer.model_copy(
        update={"noanswer_handle_minutes": base.dialer.noanswer_handle_minutes * scale}
    )
    return base.model_copy(update={"mailing": mailing, "tiers": tiers, "dialer": dialer})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--nurses", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wave-days", type=int, default=20)
    ap.add_argument("--theme", default="adherence", help="a theme for every pathology")
    ap.add_argument("--minutes-scale", type=float, default=0.06)
    ap.add_argument("--shipped-minutes", action="store_true", help="plan with the shipped handle times")
    ap.add_argument("--no-replan", action="store_true", help="skip the replans with the proposed changes")
    ap.add_argument(
        "--proposed-only", action="store_true",
        help="plan once, with the proposed changes (for their peak memory); no replans",
    )
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    add_database_arguments(ap)
    args = ap.parse_args()
    configure_logging("json", "warning", stream=sys.stderr)

    scale = None if args.shipped_minutes else args.minutes_scale
    policy = scaled_policy(load_policy(), args.wave_days, scale)
    clock = VirtualClock(cal.at_local(SENT_ON, dtime(8, 0), "Europe/Paris"))
    out: dict[str, Any] = {
        "benchmark": "plan",
        "patients": args.patients,
        "nurses": args.nurses,
        "wave_working_days": args.wave_days,
        "policy": (
            "shipped handle times" if scale is None else
            f"call_minutes and noanswer_handle_minutes x {scale} so that 250 nurses x "
            f"{args.wave_days} days can hold every first call; everything else as shipped"
        ),
    }
    with bench_database(args) as db, tempfile.TemporaryDirectory(prefix="carecall-bench-") as work:
        out["database"] = db.settings
        engine = make_engine(db.url, poolclass=NullPool)
        migrate.upgrade(engine)
        ctx = services.Context(session_factory(engine), policy, clock)
        with ctx.sessions() as s:
            staff = generate_nurses(args.nurses, seed=args.seed)
            s.add_all(staff)
            s.commit()
            ids = [n.id for n in staff if n.id is not None]
            seniors = [n.id for n in staff if n.id is not None and n.level == "senior"]
        out["bulk_load"] = bulk_load_patients(
            db.url, args.patients, nurse_ids=ids, senior_ids=seniors, today=SENT_ON,
            now=clock.now(), seed=args.seed,
        )
        with ctx.sessions() as s:
            s.execute(text("ANALYZE"))
            s.commit()

        started = time.perf_counter()
        rec = services.record_mailing(ctx, args.theme, "all", SENT_ON)
        out["record_mailing"] = {"seconds": round(time.perf_counter() - started, 2),
                                 "recipients": rec.recipients}
        with ctx.sessions() as s:
            s.execute(text("ANALYZE"))
            s.commit()
            wave = services.get_wave(s, rec.wave_id)
        clock.advance_to(wave.plan_after)

        load_before = load_average()
        cpu = time.process_time()
        if args.proposed_only:
            original = (store.insert_tasks, store.set_plan_notes)
            store.insert_tasks, store.set_plan_notes = insert_tasks_copy, set_plan_notes_changed_only
            try:
                plan, phases = timed_plan(ctx, rec.wave_id, replan=False, plan_wave=plan_wave_proposed)
            finally:
                store.insert_tasks, store.set_plan_notes = original
        else:
            plan, phases = timed_plan(ctx, rec.wave_id, replan=False)
        cpu = time.process_time() - cpu
        rss_plan = peak_rss_mib()
        with ctx.sessions() as s:
            tasks = s.execute(select(func.count()).select_from(TASK)).scalar_one()
            notes_checksum = str(s.execute(text(
                "SELECT md5(string_agg(concat_ws('|', patient_id, plan_note), ',' ORDER BY patient_id)) "
                "FROM mailing_recipient"
            )).scalar_one())
        checksum = tasks_checksum(ctx, rec.wave_id)
        out["plan"] = {
            "variant": "plan_wave_proposed" if args.proposed_only else "services.plan_wave",
            "seconds": phases["total"],
            "phases": phases,
            "python_cpu_s": round(cpu, 2),
            "planned": len(plan.assignments),
            "unplaced": len(plan.unplaced),
            "skipped": dict(plan.skipped),
            "tasks_in_db": tasks,
            "days": len(plan.days),
            "peak_rss_mib": rss_plan,
            "load_average_before_after": [load_before, load_average()],
        }

        floor = copy_floor(db.url, "call_task", _TASK_COLUMNS, Path(work))
        floor["load_average_after"] = load_average()
        out["floor_copy"] = floor

        if not (args.no_replan or args.proposed_only):
            original = (store.insert_tasks, store.set_plan_notes)
            store.insert_tasks = insert_tasks_copy
            try:
                same = (phases, floor["floor_s"], len(plan.assignments), checksum, notes_checksum)
                out["replan_copy_insert_tasks"] = replan_figures(
                    ctx, rec.wave_id, services.plan_wave, *same
                )
                store.set_plan_notes = set_plan_notes_changed_only
                out["replan_all_proposed_changes"] = replan_figures(
                    ctx, rec.wave_id, plan_wave_proposed, *same
                )
            finally:
                store.insert_tasks, store.set_plan_notes = original
        engine.dispose()

    ratio = phases["total"] / floor["floor_s"]
    rss = peak_rss_mib()
    out["ratio_plan_to_floor"] = round(ratio, 2)
    out["peak_rss_mib"] = rss
    out["targets"] = {
        "plan_within_3x_floor": ratio <= TARGET_RATIO,
        "peak_rss_under_1_gib": rss < TARGET_RSS_MIB,
        "tasks_stored_equal_planned": tasks == len(plan.assignments) == floor["rows"],
    }
    text_out = json.dumps(out, indent=2, default=str)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n")
    return 0 if all(out["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
