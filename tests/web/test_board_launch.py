"""A wave launched on the board is dialed at once: the board says so on the bus (`WAVES`) and the
dialer sweeps its due tasks then, instead of at its next periodic sweep (ten minutes on)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from factories import add_nurse, add_patient, make_ctx, paris

from campaign import services
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime
from dialer.staff.bus import WAVES, LocalBus


def _world(tmp_path: Any) -> tuple[services.Context, Any, int]:
    ctx, clock = make_ctx(f"sqlite:///{tmp_path / 'launch.db'}", paris(date(2026, 12, 7), 10))
    for _ in range(2):
        add_nurse(ctx, level="senior")
    for _ in range(5):
        add_patient(ctx, tier="high")
    # letters posted a week ago: the wave calls from today; planned, not launched yet
    wave = services.record_mailing(ctx, "diet", None, date(2026, 12, 1), late=True)
    services.plan_wave(ctx, wave.wave_id)
    return ctx, clock, wave.wave_id


def _dials_after_launch(tmp_path: Any, announce: bool) -> int:
    ctx, clock, wave_id = _world(tmp_path)
    bus = LocalBus()
    loop = EventLoop(clock)
    runtime = Runtime(ctx, loop, seed=1, auto_launch=False, bus=bus)
    runtime.start()
    loop.run_until(clock.now() + timedelta(minutes=2))
    assert runtime.dialer.stats["dials"] == 0, "a planned wave is not dialed"
    services.change_wave(ctx, wave_id, "launch")
    if announce:
        bus.publish(WAVES, str(wave_id))  # what the board does after every change of a wave
    loop.run_until(clock.now() + timedelta(minutes=2))
    return int(runtime.dialer.stats["dials"])


def test_a_launched_wave_is_dialed_within_a_step_of_its_announcement(tmp_path: Any) -> None:
    assert _dials_after_launch(tmp_path, announce=True) >= 2


def test_unannounced_it_waits_for_the_next_periodic_sweep(tmp_path: Any) -> None:
    assert _dials_after_launch(tmp_path, announce=False) == 0
