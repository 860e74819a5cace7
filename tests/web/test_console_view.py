"""Which parts of the console a change of her presence refreshes: the call panel, where she types the
outcome, is rebuilt only when her call changes, never under her typing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dialer.presence import NurseStatus
from dialer.staff.store import PresenceView
from dialer.web.console.view import Phase, Snapshot, phase_of

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
READY = PresenceView(
    nurse_id=3,
    code="IDE03",
    display_name="Camille Martin",
    level="senior",
    skills=(),
    status=NurseStatus.ready,
    reason=None,
    since=T0,
    attempt_id=None,
    patient_id=None,
    call_state=None,
    worker="dialer-1",
    version=1,
)


def moved(p: PresenceView, **changes: object) -> PresenceView:
    return replace(p, version=p.version + 1, **changes)  # type: ignore[arg-type]


def parts(before: PresenceView, after: PresenceView) -> list[str]:
    return Snapshot.of(after).parts_changed(Snapshot.of(before))


DIALING = moved(
    READY,
    status=NurseStatus.reserved,
    since=T0 + timedelta(minutes=1),
    attempt_id=40,
    patient_id=7,
    call_state="dialing",
)
RINGING = moved(DIALING, call_state="ringing")
CONNECTED = moved(
    RINGING, status=NurseStatus.on_call, since=T0 + timedelta(minutes=2), call_state="connected"
)
HUNG_UP = moved(
    CONNECTED, status=NurseStatus.wrap_up, since=T0 + timedelta(minutes=5), call_state="patient_hung_up"
)


def test_phases() -> None:
    assert [phase_of(p) for p in (READY, DIALING, RINGING, CONNECTED, HUNG_UP)] == [
        Phase.idle,
        Phase.dialing,
        Phase.dialing,
        Phase.connected,
        Phase.connected,
    ]


def test_a_call_assigned_refreshes_every_part() -> None:
    assert parts(READY, DIALING) == ["state", "line", "alert", "call"]


def test_ringing_refreshes_the_line_only() -> None:
    assert parts(DIALING, RINGING) == ["line", "alert"]


def test_connected_pops_the_call_panel() -> None:
    assert "call" in parts(RINGING, CONNECTED)


def test_the_patient_hanging_up_keeps_the_form_she_is_typing() -> None:
    changed = parts(CONNECTED, HUNG_UP)
    assert "alert" in changed and "line" in changed
    assert "call" not in changed


def test_back_to_ready_clears_the_call() -> None:
    back = moved(
        HUNG_UP,
        status=NurseStatus.ready,
        since=T0 + timedelta(minutes=6),
        attempt_id=None,
        patient_id=None,
        call_state=None,
    )
    assert parts(HUNG_UP, back) == ["state", "line", "alert", "call"]


def test_a_stream_opened_after_the_page_sends_the_call_only_if_it_changed() -> None:
    snap = Snapshot.of(CONNECTED)
    assert "call" not in snap.parts_changed(None, snap.call_key)
    assert "call" in snap.parts_changed(None, Snapshot.of(RINGING).call_key)
