"""Process settings from the environment (CARECALL_*), validated at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaign.errors import ConfigError
from campaign.policy import DEFAULT_CONFIG_DIR

ENV_PREFIX = "CARECALL_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = "sqlite:///carecall.db"
    config_dir: Path = DEFAULT_CONFIG_DIR
    log_format: str = "auto"  # auto (console on a terminal, else json), console, json
    log_level: str = "info"
    actor: str = "supervisor"  # who is using the CLI, for the audit trail

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, url: str) -> str:
        url = url.strip()
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in {"auto", "console", "json"}:
            raise ValueError(f"must be auto, console or json, not {value!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"must be debug, info, warning or error, not {value!r}")
        return value


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the variable at fault (a bad value must stop
    start-up with one clear line, not a validation dump)."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "-"
        problem = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError("environment", f"{ENV_PREFIX}{field.upper()}", problem) from None
