"""`carecall serve --telephony simulated|asterisk|twilio`: which backend a dialer process runs.

Settings are read and checked before the process starts dialing: a missing
secret or a bad key stops start-up with one error naming it. The backends'
modules are imported only when chosen, so the simulated default needs none
of their settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fastapi import FastAPI

from campaign import services
from dialer.backends.base import TelephonyBackend
from dialer.events import Event
from dialer.scheduler_loop import EventLoop

# builds a process's backend once its clock and context exist: (its loop, its context, its worker name)
BackendFactory = Callable[[EventLoop, services.Context, str], TelephonyBackend]
# builds the webhooks' app once the dialer exists: (context, worker, the dialer's inbox, voicemail text)
WebhooksFactory = Callable[[services.Context, str, Callable[[Event], None], str | None], FastAPI]


@dataclass(frozen=True)
class TelephonySetup:
    """What `serve` runs for the chosen telephony: its backend (None: the simulated lines) and the
    web application its provider calls back (None: no webhooks)."""

    backend: BackendFactory | None = None
    webhooks: WebhooksFactory | None = None


class Telephony(StrEnum):
    simulated = "simulated"  # the simulated lines on the process's clock (default)
    asterisk = "asterisk"  # an Asterisk switch through AMI (config/telephony.toml [asterisk])
    twilio = "twilio"  # Twilio's REST API and webhooks (config/telephony.toml [twilio])


def telephony_setup(kind: Telephony, config_dir: Path | str) -> TelephonySetup:
    """What `serve` needs for `kind`; raises ConfigError at once when its settings are wrong."""
    if kind == Telephony.simulated:
        return TelephonySetup()
    if kind == Telephony.asterisk:
        from dialer.backends.asterisk import AsteriskBackend, load_asterisk_settings

        settings = load_asterisk_settings(config_dir)

        def asterisk(loop: EventLoop, ctx: services.Context, worker: str) -> TelephonyBackend:
            return AsteriskBackend(settings, ctx.clock)

        return TelephonySetup(asterisk)
    from dialer.backends.twilio import TwilioBackend, load_twilio_settings
    from dialer.web import create_app

    twilio = load_twilio_settings(config_dir)

    def twilio_backend(loop: EventLoop, ctx: services.Context, worker: str) -> TelephonyBackend:
        return TwilioBackend(twilio, ctx.clock, worker)

    def webhooks(
        ctx: services.Context, worker: str, deliver: Callable[[Event], None], voicemail: str | None
    ) -> FastAPI:
        return create_app(twilio, ctx.sessions, worker, deliver, clock=ctx.clock, voicemail_text=voicemail)

    return TelephonySetup(twilio_backend, webhooks)
