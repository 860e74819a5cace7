"""Several `carecall serve` processes on one PostgreSQL run a wave to the end,
surviving a SIGKILL of one dialer midway and of the scheduler leader later.

Everything is checked from the database afterwards. The processes share a
scaled clock (one real second is `FACTOR` virtual seconds) so weeks of calling
take minutes; the size is set by CARECALL_SERVE_TEST_PATIENTS / _NURSES /
_FACTOR (defaults: 2,000 patients, 10 nurses, 14,400x, about 4 minutes on the
2-core CI machine). At 20,000 patients and 60 nurses the invariants hold too,
but at 14,400x three processes on two cores fall behind the clock and most
tasks expire undialed (measured: 6,595 attempts), so that size needs a slower
clock and a longer run than CI allows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
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
from campaign.invariants import check_invariants
from campaign.policy import load_policy
from campaign.states import WaveStatus

PATIENTS = int(os.environ.get("CARECALL_SERVE_TEST_PATIENTS", "2000"))
NURSES = int(os.environ.get("CARECALL_SERVE_TEST_NURSES", "10"))
FACTOR = float(os.environ.get("CARECALL_SERVE_TEST_FACTOR", "14400"))
SENT_ON = date(2026, 12, 7)
CARECALL = str(Path(sys.executable).parent / "carecall")

pytestmark = pytest.mark.slow


def _config(tmp: Path) -> Path:
    """The shipped policy, with a wave long enough for these nurses to call everyone."""
    cfg = tmp / "config"
    shutil.copytree(ROOT / "config", cfg)
    prog = cfg / "programme.toml"
    body = re.sub(r"wave_working_days = \d+", "wave_working_days = 25", prog.read_text())
    prog.write_text(body)
    return cfg


class Proc:
    def __init__(self, worker: str, share: str, url: str, cfg: Path, clock: str, logs: Path) -> None:
        self.worker, self.share, self.url = worker, share, url
        self.cfg, self.clock, self.logs = cfg, clock, logs
        self.p: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "CARECALL_DATABASE_URL": self.url, "CARECALL_CONFIG_DIR": str(self.cfg),
               "CARECALL_LOG_FORMAT": "json", "CARECALL_LOG_LEVEL": "info"}
        self.starts += 1
        log = (self.logs / f"{self.worker}.{self.starts}.log").open("wb")
        self.p = subprocess.Popen(
            [CARECALL, "serve", "--worker", self.worker, "--share", self.share, "--clock", self.clock,
             "--lease-seconds", "15"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
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


def test_three_dialers_finish_a_wave_through_two_kills(pg_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    spec = f"{FACTOR}:{virtual0.isoformat()}@{real0.isoformat()}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [Proc(f"dialer-{k}", f"{k}/3", url, cfg, spec, logs) for k in (1, 2, 3)]
    for p in procs:
        p.start()

    def virtual_now() -> datetime:
        return virtual0 + (datetime.now(UTC) - real0) * FACTOR

    span = wave.deadline - virtual0
    killed_dialer = killed_leader = False
    cut_calls = 0

    def calling_hours_now() -> bool:
        local = cal.local_time_of(virtual_now(), "Europe/Paris")
        return local.weekday() < 5 and 10 <= local.hour < 12

    def kill_and_restart(victim: Proc) -> int:
        """SIGKILL mid-calls, then restart it as a supervisor (systemd) would; returns calls cut."""
        victim.kill()
        with ctx.sessions() as s:
            cut = s.execute(
                text("SELECT count(*) FROM call_attempt WHERE state = 'in_flight' AND worker = :w"),
                {"w": victim.worker},
            ).scalar_one()
        time.sleep(2)
        victim.start()
        return int(cut)

    deadline = time.monotonic() + span.total_seconds() / FACTOR + 600
    try:
        while True:
            time.sleep(0.2)
            for p in procs:
                assert p.p is not None
                if p.p.poll() is not None and p.p.returncode != -signal.SIGKILL:
                    pytest.fail(f"{p.worker} exited with {p.p.returncode}; see {logs}")
            elapsed = (virtual_now() - virtual0) / span
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
    assert killed_dialer and killed_leader

    # ---- everything below is read from the database
    with ctx.sessions() as s:
        q = lambda sql, **kw: s.execute(text(sql), kw).all()  # noqa: E731
        open_tasks = q("SELECT id FROM call_task WHERE wave_id = :w AND status IN ('pending', 'in_progress')",
                       w=rec.wave_id)
        assert open_tasks == [], "every task ends in a terminal state"
        in_flight = q("SELECT id FROM call_attempt WHERE state = 'in_flight'")
        assert in_flight == []
        overlapping = q(
            "SELECT a.id, b.id FROM call_attempt a JOIN call_attempt b ON a.patient_id = b.patient_id "
            "AND a.id < b.id AND b.started_at < coalesce(a.ended_at, 'infinity') "
            "AND a.started_at < coalesce(b.ended_at, 'infinity')")
        assert overlapping == [], "a patient is never in two calls at once"
        answered_without = q(
            "SELECT a.id FROM call_attempt a LEFT JOIN outcome o ON o.attempt_id = a.id "
            "WHERE a.result = 'answered' AND o.id IS NULL")
        assert answered_without == [], "every answered attempt has its outcome"
        interrupted = q("SELECT count(*) FROM call_attempt WHERE result = 'interrupted'")[0][0]
        attempts = q("SELECT count(*) FROM call_attempt")[0][0]
        report = check_invariants(s, policy, rec.wave_id)
    assert report.calls_outside_window.count == 0
    assert report.double_dials.count == 0
    assert report.calls_to_uncallable.count == 0
    assert report.open_tasks.count == 0
    assert cut_calls >= 1, "the SIGKILLs did cut calls (the test would prove nothing otherwise)"
    assert interrupted >= cut_calls, "and every call they cut was reconciled"
    assert attempts > PATIENTS
    dispose(ctx)
