"""A dialer that crashed mid-call: on restart it hangs up, on the switch, the call it left there.

Its attempt is closed as interrupted (retried after the minimum gap, as after any crash),
and the patient is not left talking to nobody: carecall finds the call through its own
line record (`call_line`: the backend's call id, keyed to the attempt) and hangs it up
by that id. The real asterisk-ami client against the AMI peer.
"""

from __future__ import annotations

import time
from pathlib import Path

from ami_lines import SPEED
from ami_lines import settings_for as ami_settings
from conformance import WORKER, Line, start
from factories import add_patient, add_task, fiction_phone
from sqlalchemy import select

from campaign.clock import SystemClock
from campaign.model import ATTEMPT
from dialer.backends.asterisk import AsteriskBackend
from dialer.lines.model import CallLine
from dialer.testing.ami_peer import AmiPeer


def test_a_restarted_dialer_hangs_up_the_call_its_crash_left_on_the_switch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    number = fiction_phone(7001, "+3326191")
    with AmiPeer(speed=SPEED) as peer:
        peer.script("0" + number[3:], "conf-human", talk_seconds=120)  # talks until hung up
        first = AsteriskBackend(ami_settings(peer), SystemClock())
        run = start(url, Line("asterisk", first, lambda _s, _k: number, nurse_endpoint="NURSE1001"))
        patient = add_patient(run.ctx, phone=number, tier="high")
        add_task(run.ctx, patient.id, tier="high")
        run.dialer.refresh()
        run.dialer.nurse_ready(run.nurse_id)
        deadline = time.monotonic() + 20
        while not run.connected and time.monotonic() < deadline:
            run.pump()
        assert run.connected, "the patient talks with the nurse"
        (call,) = run.connected
        first.close()  # the crash: the process is gone, its call goes on on the switch

        second = AsteriskBackend(ami_settings(peer), SystemClock())
        restarted = start(url, Line("asterisk", second, lambda _s, _k: number, nurse_endpoint="NURSE1001"))
        try:
            channel = f"att-{call.attempt_id}-1"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _hung_up(peer, channel):
                time.sleep(0.05)
            assert _hung_up(peer, channel), "the restarted dialer hung the orphan up by its call id"
            with restarted.ctx.sessions() as s:
                attempt = s.execute(select(ATTEMPT).where(ATTEMPT.c.id == call.attempt_id)).one()
                line = s.get(CallLine, call.attempt_id)
            assert (attempt.state, attempt.result) == ("completed", "interrupted")
            assert attempt.answered_at is not None, "what was said can still be recorded"
            assert line is not None and line.worker == WORKER and line.rank == 5
        finally:
            second.close()


def _hung_up(peer: AmiPeer, channel: str) -> bool:
    return any(dict(a).get("Action") == "Hangup" and dict(a).get("Channel") == channel for a in peer.actions)
