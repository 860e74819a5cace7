"""carecall's web side: the telephony webhooks (and, later, the consoles). Built by `create_app`."""

from dialer.web.app import create_app

__all__ = ["create_app"]
