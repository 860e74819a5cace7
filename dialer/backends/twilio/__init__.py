"""The Twilio backend: calls placed through its REST API, followed through its webhooks (`dialer.web`)."""

from dialer.backends.twilio.backend import TwilioBackend, nurse_address
from dialer.backends.twilio.settings import Route, TwilioSettings, load_twilio_settings

__all__ = ["Route", "TwilioBackend", "TwilioSettings", "load_twilio_settings", "nurse_address"]
