"""The Asterisk backend's settings: the `[asterisk]` table of `config/telephony.toml`, and the
AMI user and secret from the environment (`CARECALL_AMI_USER`, `CARECALL_AMI_SECRET`).

Bad settings stop start-up with one `ConfigError` naming the file (or the environment), the key
and the problem; the secret never appears in an error, a log or a repr.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from campaign.errors import ConfigError
from campaign.policy import DEFAULT_CONFIG_DIR, read_toml

USER_VARIABLE = "CARECALL_AMI_USER"
SECRET_VARIABLE = "CARECALL_AMI_SECRET"
TELEPHONY_FILE = "telephony.toml"

_Seconds = Annotated[float, Field(gt=0, le=3600)]


class AsteriskSettings(BaseModel):
    """Where the AMI is, how carecall's calls are built, and how the connection is watched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 5038
    username: str = Field(min_length=1)
    secret: SecretStr
    events: str = "call,user"
    patient_context: str = Field(default="patient-amd", min_length=1)
    nurse_context: str = Field(default="nurse-conference", min_length=1)
    nurse_exten: str = "NURSE{nurse_id}"
    nurse_channel: str = "PJSIP/{endpoint}"
    patient_channel: str = "PJSIP/{number}@trunk"
    caller_id: str = Field(min_length=1)
    nurse_ring_timeout_seconds: Annotated[int, Field(ge=5, le=300)] = 30
    ping_interval_seconds: _Seconds = 5
    response_timeout_seconds: _Seconds = 5
    send_timeout_seconds: _Seconds = 2
    reconnect_backoff_initial_seconds: _Seconds = 0.5
    reconnect_backoff_max_seconds: _Seconds = 30
    audit_interval_seconds: _Seconds = 60

    @field_validator("events")
    @classmethod
    def _keeps_verdict(cls, value: str) -> str:
        # `Events: call` hides the VarSet and UserEvent that carry AMD's verdict: no call would
        # ever be known as a person or a machine (recorded: conf-filter-events-call)
        classes = {c.strip().lower() for c in value.split(",") if c.strip()}
        if not classes:
            raise ValueError("expected an event mask such as 'call,user' or 'on'")
        if "on" in classes or "all" in classes:
            return value
        if "call" not in classes:
            raise ValueError(f"{value!r} hides the calls' events; use 'call,user'")
        if not classes & {"user", "dialplan"}:
            raise ValueError(f"{value!r} hides the answering-machine verdict; use 'call,user'")
        return value

    @field_validator("nurse_exten")
    @classmethod
    def _exten(cls, value: str) -> str:
        return _pattern(value, {"nurse_id"}, "nurse_id")

    @field_validator("nurse_channel")
    @classmethod
    def _nurse_channel(cls, value: str) -> str:
        return _pattern(value, {"endpoint"}, "endpoint")

    @field_validator("patient_channel")
    @classmethod
    def _patient_channel(cls, value: str) -> str:
        return _pattern(value, {"number", "national", "digits"}, "number")

    @field_validator("reconnect_backoff_max_seconds")
    @classmethod
    def _backoff(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("reconnect_backoff_initial_seconds")
        if initial is not None and value < initial:
            raise ValueError(f"{value:g} is below reconnect_backoff_initial_seconds ({initial:g})")
        return value


def _pattern(value: str, allowed: set[str], needed: str) -> str:
    """A channel or exten pattern: only known placeholders, and at least one that names the target."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a pattern: {exc}") from None
    unknown = names - allowed
    if unknown:
        known = ", ".join("{" + a + "}" for a in sorted(allowed))
        raise ValueError(f"{value!r}: unknown placeholder {{{sorted(unknown)[0]}}}; expected {known}")
    if not names:
        raise ValueError(f"{value!r} names no {{{needed}}}")
    return value


def load_asterisk_settings(
    config_dir: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> AsteriskSettings:
    """The `[asterisk]` settings, or a ConfigError naming the file or variable and the key at fault."""
    env = os.environ if environ is None else environ
    path = Path(config_dir or DEFAULT_CONFIG_DIR) / TELEPHONY_FILE
    table = _read_table(path)
    missing = [name for name in (USER_VARIABLE, SECRET_VARIABLE) if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(
            "environment",
            missing[0],
            "not set: the AMI user and secret of manager.conf (see README, Asterisk)",
        )
    for key in ("username", "secret"):
        if key in table:
            raise ConfigError(
                str(path), f"asterisk.{key}", f"secrets live in the environment ({USER_VARIABLE}, …)"
            )
    try:
        return AsteriskSettings.model_validate(
            {**table, "username": env[USER_VARIABLE].strip(), "secret": env[SECRET_VARIABLE]}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "-"
        problem = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        raise ConfigError(str(path), f"asterisk.{key}", problem) from None


def _read_table(path: Path) -> dict[str, Any]:
    table = read_toml(path).get("asterisk")
    if not isinstance(table, dict):
        raise ConfigError(str(path), "asterisk", "missing: expected an [asterisk] table")
    return table
