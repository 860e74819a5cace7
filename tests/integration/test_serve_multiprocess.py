"""Several `carecall serve` processes on one PostgreSQL run a wave to the end,
surviving a SIGKILL of one dialer midway and of the scheduler leader later.

Everything is checked from the database afterwards: every task terminal, no
double dial, no call outside its window, every answered attempt with its
outcome, every call the kills cut reconciled.

The processes share a two-speed scaled clock (`carecall serve --clock`):
`FACTOR` virtual seconds per real second while the nurses are on shift
(weekdays 08:30-19:00, Saturdays 09:00-12:00, Paris), `IDLE_FACTOR` outside
those hours, on public holidays and once the wave's window has closed (only
callbacks are left then). The busy speed is what the three processes on the
2-core CI machine keep up with: every real millisecond a nurse's next step
waits on the database costs her `FACTOR` milliseconds of work, so a faster
clock shows up as tasks expiring undialed. Measured on the 2-core machine of
December 2026: 6-7 % at 1,800x (the test used to run there, on a faster machine,
at 1-2 %), 2.5 % at 1,200x; one process on a virtual clock leaves 0.3 %. Since the
dialers store their nurses' presence (issue 12): 6.9 % at 1,200x, 3.5 % at 1,000x. On the
simulated population (issue 13) tasks also expire because the nurses run out of hours (see the
last assertion), so the test checks how late the processes ran events too.

Planning fills 75 % of the nurses' shifts here, not the shipped 85 % (all the simulator
leaves them on the phone): the compressed clock costs them hours a real deployment never
loses, and the wave must have room for them. On the population each nurse makes many short
unanswered calls, and the three processes on the 2-core machine take a claim's 20-30 real
ms to hand her the next one: at 1,000x, a median 27-28 virtual seconds between two calls
(one process on a virtual clock: none), about 7 % of her hours; each SIGKILL costs the
restart's 10 real seconds, three virtual hours of 20 nurses. At 85 % that came out as
945 to 3,563 tasks expiring undialed (4.6-17 %, by how loaded the machine was), the low
tier's last first calls; the same wave on one process and a virtual clock leaves 31 (0.16 %).

Size and speed: CARECALL_SERVE_TEST_PATIENTS / _NURSES / _WAVE_DAYS / _FACTOR /
_IDLE_FACTOR; the defaults are the issue's 20,000 patients and 60 nurses over a
20-working-day wave at 1,000x and 200,000x (about 54,000 attempts, 11.5 minutes).
The run's figures (real seconds, attempts, task outcomes, how far the processes
fell behind the clock) are printed as one JSON line, even without -s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from factories import ROOT, add_nurses, dispose, import_synthetic, make_ctx
from sqlalchemy import text

from campaign import calendar as cal
from campaign import services
from campaign.clock import ScaledClock
from campaign.invariants import check_invariants
from campaign.policy import load_policy
from campaign.states import WaveStatus

PATIENTS = int(os.environ.get("CARECALL_SERVE_TEST_PATIENTS", "20000"))
NURSES = int(os.environ.get("CARECALL_SERVE_TEST_NURSES", "60"))
# 20 working days (Mon-Sat, holidays off) let 60 nurses plan 97 % of 20,000 recipients
WAVE_DAYS = int(os.environ.get("CARECALL_SERVE_TEST_WAVE_DAYS", "20"))
FACTOR = float(os.environ.get("CARECALL_SERVE_TEST_FACTOR", "1000"))
OCCUPANCY = float(os.environ.get("CARECALL_SERVE_TEST_OCCUPANCY", "0.75"))
MAX_BEHIND_REAL_SECONDS = 5.0  # how late a process may run an event on the shared clock
IDLE_FACTOR = float(os.environ.get("CARECALL_SERVE_TEST_IDLE_FACTOR", "200000"))
# the synthetic nurses' shifts: no call starts outside them (one still going at 19:00 ends fast)
BUSY = "mon-fri 08:30-19:00, sat 09:00-12:00"
SENT_ON = date(2026, 12, 7)
CARECALL = str(Path(sys.executable).parent / "carecall")

pytestmark = [pytest.mark.slow, pytest.mark.alone]


def _config(tmp: Path) -> Path:
    """The shipped policy, with a wave long enough for these nurses to call everyone."""
    cfg = tmp / "config"
    shutil.copytree(ROOT / "config", cfg)
    prog = cfg / "programme.toml"
    body = prog.read_text()
    for pattern, value in (
        (r"wave_working_days = \d+", f"wave_working_days = {WAVE_DAYS}"),
        (r"target_occupancy = [\d.]+", f"target_occupancy = {OCCUPANCY}"),
    ):
        body, n = re.subn(pattern, value, body)
        assert n == 1, f"{pattern!r} not found once in {prog}"
    prog.write_text(body)
    return cfg


class Proc:
    def __init__(self, worker: str, share: str, url: str, cfg: Path, clock: str, logs: Path) -> None:
        self.worker, self.share, self.url = worker, share, url
        self.cfg, self.clock, self.logs = cfg, clock, logs
        self.p: subprocess.Popen[bytes] | None = None
        self.starts = 0
        with socket.socket() as sock:  # each process serves the web application on a port of its own
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]

    def start(self) -> None:
        env = {
            **os.environ,
            "CARECALL_DATABASE_URL": self.url,
            "CARECALL_CONFIG_DIR": str(self.cfg),
            "CARECALL_LOG_FORMAT": "json",
            "CARECALL_LOG_LEVEL": "info",
        }
        self.starts += 1
        log = (self.logs / f"{self.worker}.{self.starts}.log").open("wb")
        self.p = subprocess.Popen(
            [
                CARECALL,
                "serve",
                "--worker",
                self.worker,
                "--share",
                self.share,
                "--clock",
                self.clock,
                "--lease-seconds",
                "15",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def kill(self) -> None:
        assert self.p is not None
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()

    def is_leader(self) -> bool:
        """From its own log: the last leadership line it wrote."""
        state = False
        for path in sorted(self.logs.glob(f"{self.worker}.{self.starts}.log")):
            for line in path.read_text(errors="replace").splitlines():
                if '"scheduler leadership"' in line:
                    state = '"leader": true' in line
        return state


def _pace(logs: Path) -> dict[str, float]:
    """From the processes' logs: the most real seconds each worker ran an event late."""
    worst: dict[str, float] = {}
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"dialer pace"' in line:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the last line of a process killed as it wrote
                    continue
                w = entry["worker"]
                worst[w] = max(worst.get(w, 0.0), entry["behind_real_seconds"])
    return worst


def test_three_dialers_finish_a_wave_through_two_kills(  # type: ignore[no-untyped-def]
    pg_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    url = pg_cluster.create_database()
    cfg = _config(tmp_path)
    policy = load_policy(cfg)
    start = cal.at_local(SENT_ON, datetime.min.time().replace(hour=8), "Europe/Paris")
    ctx, clock = make_ctx(url, start, pol=policy)
    add_nurses(ctx, NURSES, seed=3)
    summary = import_synthetic(ctx, PATIENTS, seed=3, tmp_dir=tmp_path)
    assert not summary.rejected
    rec = services.record_mailing(ctx, "adherence", "all", SENT_ON)
    with ctx.sessions() as s:
        wave = services.get_wave(s, rec.wave_id)
    clock.advance_to(wave.plan_after)
    plan = services.plan_wave(ctx, rec.wave_id)
    assert len(plan.assignments) >= 0.95 * rec.recipients, "the test's nurses must be able to call the wave"
    services.change_wave(ctx, rec.wave_id, "launch")

    # the shared clock starts the day the letters arrive, a few real seconds from now
    virtual0 = cal.at_local(wave.window_start, datetime.min.time().replace(hour=7), "Europe/Paris")
    real0 = datetime.now(UTC) + timedelta(seconds=3)
    spec = (
        f"{FACTOR:g}:{virtual0.isoformat()}@{real0.isoformat()}"
        f";idle={IDLE_FACTOR:g};busy={BUSY};tz=Europe/Paris;holidays=75;until={wave.deadline.isoformat()}"
    )
    shared = ScaledClock.parse(spec)  # what every process reads: the same function of wall time
    setup_seconds = time.monotonic() - t0
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [Proc(f"dialer-{k}", f"{k}/3", url, cfg, spec, logs) for k in (1, 2, 3)]
    for p in procs:
        p.start()

    span = wave.deadline - virtual0
    killed_dialer = killed_leader = False
    cut_calls = 0

    def calling_hours_now() -> bool:
        local = cal.local_time_of(shared.now(), "Europe/Paris")
        return local.weekday() < 5 and 10 <= local.hour < 12

    def kill_and_restart(victim: Proc) -> int:
        """SIGKILL mid-calls, then restart it as a supervisor (systemd) would; returns calls cut."""
        victim.kill()
        with ctx.sessions() as s:
            cut = s.execute(
                text("SELECT count(*) FROM call_attempt WHERE state = 'in_flight' AND worker = :w"),
                {"w": victim.worker},
            ).scalar_one()
        time.sleep(0.5)
        victim.start()
        return int(cut)

    wave_real_seconds = (shared.real_at(wave.deadline) - real0).total_seconds()
    deadline = time.monotonic() + wave_real_seconds + 300
    try:
        while True:
            time.sleep(0.2)
            for p in procs:
                assert p.p is not None
                if p.p.poll() is not None and p.p.returncode != -signal.SIGKILL:
                    pytest.fail(f"{p.worker} exited with {p.p.returncode}; see {logs}")
            elapsed = (shared.now() - virtual0) / span
            if not killed_dialer and elapsed > 0.3 and calling_hours_now():
                cut_calls += kill_and_restart(next(p for p in procs if not p.is_leader()))
                killed_dialer = True
            if killed_dialer and not killed_leader and elapsed > 0.6 and calling_hours_now():
                leader = next((p for p in procs if p.is_leader()), None)
                if leader is not None:
                    cut_calls += kill_and_restart(leader)
                    killed_leader = True
            with ctx.sessions() as s:
                status = s.execute(
                    text("SELECT status FROM wave WHERE id = :w"), {"w": rec.wave_id}
                ).scalar_one()
            if status == WaveStatus.done:
                break
            assert time.monotonic() < deadline, f"wave not finished in time; logs in {logs}"
    finally:
        for p in procs:
            p.stop()
    run_seconds = (datetime.now(UTC) - real0).total_seconds()
    assert killed_dialer and killed_leader

    # ---- everything below is read from the database
    with ctx.sessions() as s:
        q = lambda sql, **kw: s.execute(text(sql), kw).all()  # noqa: E731
        open_tasks = q(
            "SELECT id FROM call_task WHERE wave_id = :w AND status IN ('pending', 'in_progress')",
            w=rec.wave_id,
        )
        assert open_tasks == [], "every task ends in a terminal state"
        in_flight = q("SELECT id FROM call_attempt WHERE state = 'in_flight'")
        assert in_flight == []
        overlapping = q(
            "SELECT a.id, b.id FROM call_attempt a JOIN call_attempt b ON a.patient_id = b.patient_id "
            "AND a.id < b.id AND b.started_at < coalesce(a.ended_at, 'infinity') "
            "AND a.started_at < coalesce(b.ended_at, 'infinity')"
        )
        assert overlapping == [], "a patient is never in two calls at once"
        answered_without = q(
            "SELECT a.id FROM call_attempt a LEFT JOIN outcome o ON o.attempt_id = a.id "
            "WHERE a.result = 'answered' AND o.id IS NULL"
        )
        assert answered_without == [], "every answered attempt has its outcome"
        interrupted = q("SELECT count(*) FROM call_attempt WHERE result = 'interrupted'")[0][0]
        attempts = q("SELECT count(*) FROM call_attempt")[0][0]
        tasks = dict(
            q("SELECT status, count(*) FROM call_task WHERE wave_id = :w GROUP BY status", w=rec.wave_id)
        )
        # expired without a single attempt: what a clock too fast for the processes leaves (a task
        # attempted and expired is a patient who did not pick up in time: the population's doing)
        expired_undialed = q(
            "SELECT count(*) FROM call_task t WHERE t.wave_id = :w AND t.status = 'expired' AND NOT EXISTS "
            "(SELECT 1 FROM call_attempt a WHERE a.task_id = t.id)",
            w=rec.wave_id,
        )[0][0]
        expired_by_day = dict(
            q(
                "SELECT to_char(not_before AT TIME ZONE 'Europe/Paris', 'MM-DD'), count(*) FROM call_task "
                "WHERE wave_id = :w AND status = 'expired' GROUP BY 1 ORDER BY 1",
                w=rec.wave_id,
            )
        )
        # virtual seconds a nurse waits from the end of a call to her next one (answered calls
        # add the wrap-up): on a clock too fast for the processes, work waits on real time
        gaps = {
            ("after_answered" if answered else "after_unanswered"): round(float(median), 1)
            for answered, median in q(
                "SELECT answered, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM ("
                " SELECT result = 'answered' AS answered, extract(epoch FROM lead(started_at) OVER"
                "  (PARTITION BY nurse_id ORDER BY started_at) - ended_at) AS gap FROM call_attempt"
                ") g WHERE gap < 1800 GROUP BY answered"
            )
        }
        report = check_invariants(s, policy, rec.wave_id)
    figures = {
        "patients": PATIENTS,
        "nurses": NURSES,
        "wave_days": WAVE_DAYS,
        "clock": shared.describe(),
        "setup_real_seconds": round(setup_seconds, 1),
        "run_real_seconds": round(run_seconds, 1),
        "wave_real_seconds_on_clock": round(wave_real_seconds, 1),
        "planned": f"{len(plan.assignments)} of {rec.recipients}",
        "attempts": attempts,
        "tasks": tasks,
        "expired_undialed": expired_undialed,
        "expired_by_planned_day": expired_by_day,
        "interrupted": interrupted,
        "cut_calls": cut_calls,
        "worst_behind_real_seconds": _pace(logs),
        "median_gap_to_next_call": gaps,
    }
    with capsys.disabled():  # in the test output even without -s: CI logs keep the figures
        print("\nserve test figures:", json.dumps(figures))
    assert report.calls_outside_window.count == 0
    assert report.double_dials.count == 0
    assert report.calls_to_uncallable.count == 0
    assert report.open_tasks.count == 0
    assert report.ok, report.counts()
    # and the independent check of the README's rules (scripts/check_rules.py) agrees
    from check_rules import check

    independent = check(url, cfg, rec.wave_id)
    assert independent["ok"], {k: v for k, v in independent["rules"].items() if v["count"]}
    assert cut_calls >= 1, "the SIGKILLs did cut calls (the test would prove nothing otherwise)"
    assert interrupted >= cut_calls, "and every call they cut was reconciled"
    assert attempts > PATIENTS
    # the processes kept up with the clock: no event ran more than a few real seconds late (1.0-1.4 s
    # measured at 1,000x)
    assert max(figures["worst_behind_real_seconds"].values()) <= MAX_BEHIND_REAL_SECONDS, (
        "fell behind the clock"
    )
    # Tasks expired undialed: 3.5 % at 1,000x when the simulated patients all answered alike; 11.8 % on
    # the population (issue 13) while planning expected 1.6-2.0 attempts a reach with every task
    # reached and pooled a skill's hours across levels; 0.4 % (85 of 20,451) since it plans on the
    # population's rates with skill pools per level: the processes keep up, planning fits the hours.
    # With eight high-tier attempts (about 52,000 attempts in all), 4.6-17 % planning at 85 % of the
    # shifts, 1.8 % (378) at 75 %, with the same 19,285 recipients planned (see the docstring). With
    # work ahead, 1.4 % (271) alone on the machine, 6.3 % (1,278) beside a benchmark on one core
    assert expired_undialed <= 0.05 * sum(tasks.values()), "tasks expired undialed"
    dispose(ctx)
