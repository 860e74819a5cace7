"""The few REST requests carecall makes to Twilio, each a small function, and what their errors mean.

Twilio's error messages may quote the number dialed ("The 'To' number … is
not valid"): carecall keeps only the HTTP status and Twilio's error code
(`error_detail`), never the message, so nothing personal reaches a log or the
database.
"""

from __future__ import annotations

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from dialer.backends.twilio.settings import TwilioSettings
from dialer.backends.twilio.twiml import conference_name, nurse_label

# Twilio error codes that say the number itself is wrong (Q.850 28, invalid number format)
WRONG_NUMBER_CODES = frozenset({21211, 21214, 21217, 13224})
# the call is already over: updating it changes nothing (and is no failure)
CALL_OVER_CODES = frozenset({21220})
REST_TIMEOUT_SECONDS = 10  # the SDK waits forever by default: a stuck request would hold a thread
TEMPORARY_FAILURE = 41  # Q.850: what an unreachable or failing API means for a call not placed
INVALID_NUMBER = 28


def make_client(settings: TwilioSettings, http_client: HttpClient | None = None) -> Client:
    """The SDK's client; `http_client` is the seam tests use to point it at a local peer."""
    return Client(
        settings.account_sid,
        settings.auth_token.get_secret_value(),
        account_sid=settings.account_sid,
        http_client=http_client or TwilioHttpClient(timeout=REST_TIMEOUT_SECONDS),
    )


def error_detail(exc: Exception) -> str:
    """What failed, without Twilio's message (which may quote the number)."""
    if isinstance(exc, TwilioRestException):
        return f"rest {exc.status} {exc.code or '-'}"
    return f"rest unreachable ({type(exc).__name__})"


def error_cause(exc: Exception) -> int:
    """The Q.850 cause of a call Twilio refused to place."""
    if isinstance(exc, TwilioRestException) and exc.code in WRONG_NUMBER_CODES:
        return INVALID_NUMBER
    return TEMPORARY_FAILURE


def call_is_over(exc: Exception) -> bool:
    return isinstance(exc, TwilioRestException) and (exc.code in CALL_OVER_CODES or exc.status == 404)


REST_ERRORS: tuple[type[Exception], ...] = (TwilioException, OSError)


def nurse_present(client: Client, nurse_id: int) -> bool:
    """Whether her phone is in her conference now (asked of Twilio, which alone knows for sure)."""
    conferences = client.conferences.list(
        friendly_name=conference_name(nurse_id), status="in-progress", limit=1
    )
    if not conferences:
        return False
    participants = client.conferences(conferences[0].sid).participants.list(limit=50)
    label = nurse_label(nurse_id)
    return any(p.label == label and p.status in (None, "connected") for p in participants)


def redirect(client: Client, call_sid: str, twiml: str) -> None:
    """Give a live call new TwiML: it stops what it is doing and does that at once."""
    client.calls(call_sid).update(twiml=twiml)


def end(client: Client, call_sid: str) -> None:
    """Hang a call up, whether it rings or talks (Twilio's `completed` ends both)."""
    client.calls(call_sid).update(status="completed")


def status(client: Client, call_sid: str) -> str | None:
    return client.calls(call_sid).fetch().status


def cancel(client: Client, call_sid: str) -> None:
    """Cancel a call that has not been answered (queued or ringing)."""
    client.calls(call_sid).update(status="canceled")
