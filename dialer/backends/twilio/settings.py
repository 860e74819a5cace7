"""The Twilio backend's settings: `[twilio]` in `config/telephony.toml`, secrets from the environment.

The webhooks are reached at a public base URL that may be a TLS proxy's, not
the URL the app sees: every callback URL carecall gives Twilio is built from
it, and every signature is checked against it (`webhook_url`), so both sides
agree whatever sits in between.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from campaign.errors import ConfigError
from campaign.policy import DEFAULT_CONFIG_DIR, read_toml

FILE_NAME = "telephony.toml"
ENV_ACCOUNT_SID = "CARECALL_TWILIO_ACCOUNT_SID"
ENV_AUTH_TOKEN = "CARECALL_TWILIO_AUTH_TOKEN"
_SECRETS = {"account_sid": ENV_ACCOUNT_SID, "auth_token": ENV_AUTH_TOKEN}
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


class Route:
    """The webhook paths, below the public base URL."""

    status = "/twilio/status"  # call progress: initiated, ringing, answered, completed (patient or nurse)
    amd = "/twilio/amd"  # the detector's verdict (AnsweredBy)
    twiml = "/twilio/twiml"  # what a call does once answered, and its next steps
    conference = "/twilio/conference"  # a participant joined or left a nurse's conference


class TwilioSettings(BaseModel):
    """`[twilio]` in config/telephony.toml, plus the account's credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # where Twilio reaches carecall's webhooks, as Twilio sees it (behind the TLS proxy, if any)
    public_base_url: str
    caller_number: str  # the programme's number, E.164: what patients and nurses see calling
    # the account's calls per second (Twilio's default is 1): carecall paces its calls to it
    calls_per_second: Annotated[float, Field(gt=0, le=100)] = 1.0
    # the longest a call may wait for its turn before it is not placed (and queued ones are cancelled)
    max_queue_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = 10.0
    voice: str = "Polly.Lea"  # <Say> voice; the language is always fr-FR
    language: str = "fr-FR"
    # Twilio's MachineDetectionTimeout: the detector gives up ("unknown", a person) after this long
    amd_timeout_seconds: Annotated[int, Field(ge=3, le=59)] = 30
    rest_threads: Annotated[int, Field(ge=1, le=64)] = 4  # REST calls in flight at once
    account_sid: str
    auth_token: SecretStr

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.strip().rstrip("/")

    @field_validator("caller_number")
    @classmethod
    def _caller(cls, value: str) -> str:
        if not _E164.match(value):
            raise ValueError("must be an E.164 number such as +33199000000")
        return value

    @field_validator("language")
    @classmethod
    def _french(cls, value: str) -> str:
        if value != "fr-FR":
            raise ValueError("patients hear French: must be fr-FR")
        return value

    @field_validator("account_sid")
    @classmethod
    def _sid(cls, value: str) -> str:
        if not _ACCOUNT_SID.match(value):
            raise ValueError("must be AC followed by 32 hexadecimal digits")
        return value

    def webhook_url(self, route: str, **query: object) -> str:
        """The public URL of a webhook: what Twilio calls, and what its signature covers."""
        url = self.public_base_url + route
        return f"{url}?{urlencode(query)}" if query else url


def load_twilio_settings(
    config_dir: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> TwilioSettings:
    """The settings, or one ConfigError naming the file (or variable), the key and the problem."""
    env = os.environ if environ is None else environ
    file = Path(config_dir or DEFAULT_CONFIG_DIR) / FILE_NAME
    table = _twilio_table(file)
    secrets: dict[str, Any] = {}
    for field, name in _SECRETS.items():
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError("environment", name, "not set: the Twilio account's credentials come from it")
        secrets[field] = value
    for key in secrets:
        if key in table:
            raise ConfigError(
                str(file), f"twilio.{key}", f"secrets come from the environment, not {FILE_NAME}"
            )
    try:
        return TwilioSettings.model_validate({**table, **secrets})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "-"
        problem = str(err["msg"]).removeprefix("Value error, ")
        if key in secrets:
            raise ConfigError("environment", _SECRETS[key], problem) from None
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        raise ConfigError(str(file), f"twilio.{key}", problem) from None


def _twilio_table(file: Path) -> dict[str, Any]:
    table = read_toml(file).get("twilio")
    if table is None:
        raise ConfigError(str(file), "twilio", "missing table: the Twilio backend needs [twilio]")
    if not isinstance(table, dict):
        raise ConfigError(str(file), "twilio", "expected a table of keys")
    return dict(table)
