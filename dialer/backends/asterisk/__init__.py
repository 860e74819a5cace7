"""The Asterisk backend: calls placed and followed through the Asterisk Manager Interface (AMI).

    settings.py   the [asterisk] table of config/telephony.toml, user and secret from the environment
    packets.py    AMI packets read and written (pure)
    correlate.py  from AMI events to carecall's line events, call by call (pure)
    client.py     one AMI session on the asterisk-ami client, its known flaws guarded
    backend.py    AsteriskBackend: dial, hang up, nurse legs; the watchdog and reconciliation

    backend = AsteriskBackend(load_asterisk_settings(config_dir), SystemClock())

The dialplan and manager.conf a site installs: README, "Asterisk: what a site installs".
"""

from dialer.backends.asterisk.backend import AsteriskBackend
from dialer.backends.asterisk.settings import AsteriskSettings, load_asterisk_settings

__all__ = ["AsteriskBackend", "AsteriskSettings", "load_asterisk_settings"]
