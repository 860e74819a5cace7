"""`carecall serve --telephony simulated|asterisk|twilio`: which backend a dialer process runs.

Settings are read and checked before the process starts dialing: a missing
secret or a bad key stops start-up with one error naming it. The backends'
modules are imported only when chosen, so the simulated default needs none
of their settings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from campaign import services
from dialer.backends.base import TelephonyBackend
from dialer.scheduler_loop import EventLoop

# builds a process's backend once its clock and context exist
BackendFactory = Callable[[EventLoop, services.Context], TelephonyBackend]


class Telephony(StrEnum):
    simulated = "simulated"  # the simulated lines on the process's clock (default)
    asterisk = "asterisk"  # an Asterisk switch through AMI (config/telephony.toml [asterisk])
    twilio = "twilio"  # Twilio's REST API and webhooks (config/telephony.toml [twilio])


def backend_factory(kind: Telephony, config_dir: Path | str) -> BackendFactory | None:
    """A factory `serve` calls once its clock and context exist; None for the simulated lines.

    Raises ConfigError at once when the chosen backend's settings are wrong.
    """
    if kind == Telephony.simulated:
        return None
    if kind == Telephony.asterisk:
        from dialer.backends.asterisk import AsteriskBackend, load_asterisk_settings

        settings = load_asterisk_settings(config_dir)

        def asterisk(loop: EventLoop, ctx: services.Context) -> TelephonyBackend:
            return AsteriskBackend(settings, ctx.clock)

        return asterisk
    raise NotImplementedError(kind)
