"""The programme's policy, loaded from `config/*.toml` and validated at start-up.

A supervisor changes policy by editing config, so every mistake there must be
reported with the file, the key and the problem, and stop start-up.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaign.errors import ConfigError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Tier(StrEnum):
    """Risk tier: sets the programme's intensity for a patient."""

    low = "low"
    medium = "medium"
    high = "high"


# a callback the patient asked for comes before any wave task due at the same time (a tier's
# priority may be configured up to the same value; a nurse's promised callbacks still come first)
CALLBACK_PRIORITY = 100


class NurseLevel(StrEnum):
    junior = "junior"
    senior = "senior"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierPolicy(_Strict):
    cadence_days: Annotated[int, Field(ge=1, le=730)]
    call_minutes: Annotated[float, Field(gt=0, le=240)]
    nurse_levels: list[NurseLevel] = Field(min_length=1)
    start_offset_days: Annotated[int, Field(ge=0, le=60)] = 0
    priority: Annotated[int, Field(ge=0, le=100)] = 1


class PathologyPolicy(_Strict):
    label: str
    skill: str = ""


class Window(_Strict):
    """A local-time interval [start, end) inside one day."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window ends ({self.end:%H:%M}) before it starts ({self.start:%H:%M})")
        return self

    @classmethod
    def parse(cls, text: str) -> Window:
        try:
            a, b = text.split("-")
            return cls(start=time.fromisoformat(a.strip()), end=time.fromisoformat(b.strip()))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a window like '09:00-12:30' ({exc})") from None

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class CallingHours(_Strict):
    by_weekday: tuple[tuple[Window, ...], ...]  # index 0 = Monday
    holidays: bool = True

    @model_validator(mode="before")
    @classmethod
    def _from_toml(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "by_weekday" in data:
            return data
        unknown = set(data) - set(WEEKDAYS) - {"holidays"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected weekday names or 'holidays'")
        days = []
        for day in WEEKDAYS:
            windows = [Window.parse(w) for w in data.get(day, [])]
            windows.sort(key=lambda w: w.start)
            for a, b in itertools.pairwise(windows):
                if b.start < a.end:
                    raise ValueError(f"{day}: windows {a} and {b} overlap")
            days.append(tuple(windows))
        return {"by_weekday": tuple(days), "holidays": data.get("holidays", True)}


class RetryPolicy(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=20)]
    min_gap_minutes: Annotated[int, Field(ge=0, le=1440)]  # the dialer looks back one day
    vary_time_of_day: bool = True
    unanswered_minutes: Annotated[int, Field(ge=1)]
    busy_minutes: Annotated[int, Field(ge=1)]
    failed_minutes: Annotated[int, Field(ge=1)]
    machine_minutes: Annotated[int, Field(ge=1)]
    leave_voicemail: bool = True
    ring_timeout_seconds: Annotated[int, Field(ge=5, le=120)] = 30


class CapsPolicy(_Strict):
    period_days: Annotated[int, Field(ge=1, le=365)]
    max_tasks_per_period: Annotated[int, Field(ge=1)]
    max_attempts_per_day: Annotated[int, Field(ge=1)]


class MailingPolicy(_Strict):
    delivery_working_days: Annotated[int, Field(ge=0, le=30)]
    wave_working_days: Annotated[int, Field(ge=1, le=120)]
    plan_hour: Annotated[int, Field(ge=0, le=23)] = 6


class DialerPolicy(_Strict):
    referent_wait_minutes: Annotated[int, Field(ge=0)]
    callback_grace_minutes: Annotated[int, Field(ge=0)]
    target_occupancy: Annotated[float, Field(gt=0, le=1)]
    noanswer_handle_minutes: Annotated[float, Field(ge=0)]
    expected_attempts_per_reach: dict[Tier, Annotated[float, Field(ge=1)]]
    wrap_up_seconds: Annotated[int, Field(ge=0)] = 120
    other_share_delay_minutes: Annotated[float, Field(ge=0)] = 5


class Theme(_Strict):
    code: str
    label: str
    pathologies: list[str] = []
    script: str


class SimulationPolicy(_Strict):
    answer_by_tier: dict[Tier, Annotated[float, Field(ge=0, le=1)]]
    answer_by_hour: dict[int, Annotated[float, Field(ge=0, le=3)]]
    busy: Annotated[float, Field(ge=0, le=1)]
    machine: Annotated[float, Field(ge=0, le=1)]
    failed: Annotated[float, Field(ge=0, le=1)]
    wrong_number: Annotated[float, Field(ge=0, le=1)]
    ring_seconds_mean: Annotated[float, Field(gt=0)]
    ring_seconds_sd: Annotated[float, Field(ge=0)]
    call_minutes_sd_ratio: Annotated[float, Field(ge=0, le=2)]
    callback_requested: Annotated[float, Field(ge=0, le=1)]
    opted_out: Annotated[float, Field(ge=0, le=1)]
    escalation: Annotated[float, Field(ge=0, le=1)]
    callback_delay_hours: list[Annotated[int, Field(ge=1)]]

    @model_validator(mode="after")
    def _sums(self) -> SimulationPolicy:
        if self.busy + self.machine + self.failed > 1:
            raise ValueError("results.busy + results.machine + results.failed exceed 1")
        if self.callback_requested + self.opted_out + self.escalation > 1:
            raise ValueError("nurse_outcomes probabilities exceed 1")
        return self


class Policy(_Strict):
    """Everything the rules need to decide when a patient is called."""

    tiers: dict[Tier, TierPolicy]
    pathologies: dict[str, PathologyPolicy]
    calling_hours: CallingHours
    retry: RetryPolicy
    caps: CapsPolicy
    mailing: MailingPolicy
    dialer: DialerPolicy
    themes: dict[str, Theme]
    simulation: SimulationPolicy

    @field_validator("tiers")
    @classmethod
    def _all_tiers(cls, tiers: dict[Tier, TierPolicy]) -> dict[Tier, TierPolicy]:
        missing = set(Tier) - set(tiers)
        if missing:
            raise ValueError(f"missing tiers {sorted(missing)}")
        return tiers

    @model_validator(mode="after")
    def _themes_known_pathologies(self) -> Policy:
        for theme in self.themes.values():
            unknown = set(theme.pathologies) - set(self.pathologies)
            if unknown:
                raise ValueError(f"themes.{theme.code}.pathologies: unknown pathologies {sorted(unknown)}")
        missing = set(Tier) - set(self.dialer.expected_attempts_per_reach)
        if missing:
            raise ValueError(f"dialer.expected_attempts_per_reach: missing tiers {sorted(missing)}")
        return self

    def skill_for(self, pathology: str) -> str:
        p = self.pathologies.get(pathology)
        return p.skill if p else ""


DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(path), "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None


def _loc(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "-"


def load_policy(config_dir: Path | str | None = None) -> Policy:
    """Read and validate `programme.toml`, `themes.toml` and `simulation.toml`."""
    directory = Path(config_dir) if config_dir else DEFAULT_CONFIG_DIR
    files = {
        "programme": directory / "programme.toml",
        "themes": directory / "themes.toml",
        "simulation": directory / "simulation.toml",
    }
    prog = _read_toml(files["programme"])
    themes = _read_toml(files["themes"])
    sim = _read_toml(files["simulation"])

    def flat_sim(data: dict[str, Any]) -> dict[str, Any]:
        return {
            "answer_by_tier": data.get("answer", {}).get("by_tier"),
            "answer_by_hour": data.get("answer", {}).get("by_hour", {}),
            **data.get("results", {}),
            **data.get("timing", {}),
            **data.get("nurse_outcomes", {}),
        }

    raw = {
        **prog,
        "themes": {code: {"code": code, **body} for code, body in themes.get("themes", {}).items()},
        "simulation": flat_sim(sim),
    }
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(err)
        head = loc.split(".")[0]
        file = {"themes": files["themes"], "simulation": files["simulation"]}.get(head, files["programme"])
        if head == "simulation":
            loc = loc.removeprefix("simulation.")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(str(file), loc, err["msg"] + more) from None
