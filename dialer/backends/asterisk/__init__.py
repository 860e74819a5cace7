"""The Asterisk backend: calls placed and followed through the Asterisk Manager Interface (AMI).

    settings.py   the [asterisk] table of config/telephony.toml, user and secret from the environment
    packets.py    AMI packets parsed and written (pure)
    correlate.py  from AMI events to carecall's line events, call by call (pure)

The dialplan and manager.conf a site installs: docs/asterisk.md.
"""

from dialer.backends.asterisk.settings import AsteriskSettings, load_asterisk_settings

__all__ = ["AsteriskSettings", "load_asterisk_settings"]
