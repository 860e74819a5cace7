"""`carecall serve` on real telephony: the process's loop, its backend and its webhooks together.

The dialer process runs `serve()` itself (its loop, its inbox, its heartbeat,
its shutdown), with simulated nurses on their shifts and the Twilio backend
talking to the local Twilio peer, whose signed callbacks reach the webhooks'
app that `serve` runs beside the dialer. Checked from the database: calls
placed and answered through the provider, their lines recorded with the
provider's call ids, nothing left in flight once the process stops, and
every invariant holds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from factories import add_nurse, add_patient, add_task, dispose, fiction_phone, make_ctx
from sqlalchemy import select
from twilio_world import ACCOUNT_SID, AUTH_TOKEN, bound_socket
from twilio_world import settings as twilio_settings
from typer.testing import CliRunner

from campaign.clock import ScaledClock, SystemClock
from campaign.invariants import check_invariants
from campaign.model import ATTEMPT, Outcome
from campaign.states import AttemptState
from dialer.backends.factory import TelephonySetup
from dialer.backends.twilio import TwilioBackend
from dialer.cli import app as cli_app
from dialer.lines.model import CallLine
from dialer.serve import Share, serve
from dialer.testing.twilio_calls import Script
from dialer.testing.twilio_peer import TwilioPeer
from dialer.web import create_app

MONDAY_10 = datetime(2026, 12, 7, 9, tzinfo=UTC)  # 10:00 in Paris
FACTOR = 300.0  # a simulated nurse's 15-minute call lasts 3 real seconds


def test_serve_dials_through_twilio_and_leaves_nothing_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    ctx, _ = make_ctx(url, MONDAY_10)
    nurses = [add_nurse(ctx, level="senior", skills=["heart_failure", "copd"]) for _ in range(2)]
    with ctx.sessions() as s:
        from campaign.model import Nurse

        for n in nurses:
            nurse = s.get(Nurse, n)
            assert nurse is not None
            nurse.phone_endpoint = f"client:nurse-{n}"
        s.commit()
    numbers = {}
    for k, script in enumerate([Script.human, Script.busy, Script.machine_message_end, Script.human]):
        number = fiction_phone(4000 + k, "+3326191")
        patient = add_patient(ctx, phone=number, tier="high")
        add_task(ctx, patient.id, tier="high")
        numbers[number] = script
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # serve binds it again through uvicorn
    conf = twilio_settings(f"http://127.0.0.1:{port}")
    stop = threading.Event()
    with TwilioPeer(ACCOUNT_SID, AUTH_TOKEN, seconds=0.01) as peer:
        peer.client = peer.http_client()  # type: ignore[attr-defined]
        for number, script in numbers.items():
            peer.script(number, script)
        setup = TelephonySetup(
            backend=lambda _loop, c, worker: TwilioBackend(conf, c.clock, worker, peer.http_client()),
            webhooks=lambda c, worker, deliver, vm: create_app(
                conf,
                c.sessions,
                worker,
                deliver,
                clock=c.clock,
                voicemail_text=vm,
                http_client=peer.http_client(),
            ),
        )
        clock = ScaledClock(MONDAY_10, SystemClock().now(), FACTOR)
        thread = threading.Thread(
            target=serve,
            args=(url, ctx.policy),
            kwargs={
                "config_dir": "config",
                "worker": "live-1",
                "share": Share(1, 1),
                "clock": clock,
                "stop": stop,
                "telephony": setup,
                "port": port,
            },
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _outcomes(ctx) < 2:
            time.sleep(0.2)
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "serve stopped"
    with ctx.sessions() as s:
        attempts = s.execute(select(ATTEMPT)).all()
        line_rows = s.execute(select(CallLine)).scalars().all()
        report = check_invariants(s, ctx.policy)
    dispose(ctx)
    assert len(attempts) >= len(numbers), "every patient was dialed through Twilio"
    assert all(a.state == AttemptState.completed for a in attempts), "nothing left in flight"
    results = Counter(a.result for a in attempts)
    assert results["answered"] == 2 and results["busy"] >= 1 and results["machine"] >= 1, results
    assert {line.attempt_id for line in line_rows} == {a.id for a in attempts}
    assert all(line.backend == "twilio" and (line.call_id or "").startswith("CA") for line in line_rows)
    assert report.ok, report


def test_serve_refuses_to_start_without_twilio_credentials(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARECALL_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("CARECALL_TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("CARECALL_TWILIO_AUTH_TOKEN", raising=False)
    r = CliRunner().invoke(cli_app, ["serve", "--telephony", "twilio"])
    assert r.exit_code == 2, r.output
    assert "CARECALL_TWILIO_ACCOUNT_SID" in r.output and "Traceback" not in r.output


def _outcomes(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return len(s.execute(select(Outcome.id)).all())  # type: ignore[call-overload]


def test_serve_refuses_to_start_without_the_ami_user(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARECALL_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("CARECALL_AMI_USER", raising=False)
    monkeypatch.delenv("CARECALL_AMI_SECRET", raising=False)
    r = CliRunner().invoke(cli_app, ["serve", "--telephony", "asterisk"])
    assert r.exit_code == 2, r.output
    assert "CARECALL_AMI_USER" in r.output and "Traceback" not in r.output


def test_each_telephony_builds_its_backend_from_the_shipped_settings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What `serve --telephony X` runs: the simulated lines need nothing, the others their settings."""
    from campaign.settings import load_settings
    from dialer.backends.asterisk import AsteriskBackend
    from dialer.backends.factory import Telephony, telephony_setup

    for name, value in {
        "CARECALL_AMI_USER": "carecall",
        "CARECALL_AMI_SECRET": "s3cret",
        "CARECALL_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "CARECALL_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    config = load_settings().config_dir
    assert telephony_setup(Telephony.simulated, config) == TelephonySetup()
    asterisk = telephony_setup(Telephony.asterisk, config)
    assert asterisk.backend is not None and asterisk.webhooks is None
    ctx, _ = make_ctx("sqlite://", MONDAY_10)
    backend = asterisk.backend(None, ctx, "dialer-1")  # type: ignore[arg-type]
    assert isinstance(backend, AsteriskBackend) and backend.remote and backend.needs_nurse_leg
    twilio = telephony_setup(Telephony.twilio, config)
    assert twilio.backend is not None and twilio.webhooks is not None
    backend = twilio.backend(None, ctx, "dialer-1")  # type: ignore[arg-type]
    try:
        assert isinstance(backend, TwilioBackend) and backend.worker == "dialer-1"
    finally:
        backend.close()
    dispose(ctx)
