"""Process settings from the environment (CARECALL_*), validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaign.policy import DEFAULT_CONFIG_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARECALL_", extra="ignore")

    database_url: str = "sqlite:///carecall.db"
    config_dir: Path = DEFAULT_CONFIG_DIR
    log_format: str = "auto"  # auto (console on a terminal, else json), console, json
    log_level: str = "info"
    actor: str = "supervisor"  # who is using the CLI, for the audit trail

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, url: str) -> str:
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in {"auto", "console", "json"}:
            raise ValueError("CARECALL_LOG_FORMAT must be auto, console or json")
        return value
