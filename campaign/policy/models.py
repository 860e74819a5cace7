"""The programme's policy as validated models: what each key of `config/*.toml` may hold.

A model that rejects a value says which key (`InvalidKey` for a key below the field);
`campaign.policy.files` turns that into the file and the key as written there.
"""

from __future__ import annotations

import itertools
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Tier(StrEnum):
    """Risk tier: sets the programme's intensity for a patient."""

    low = "low"
    medium = "medium"
    high = "high"


def _missing_tiers(keys: Any) -> str | None:
    """What a per-tier table lacks, as the error says it; None when every tier is there."""
    missing = set(Tier) - set(keys)
    return f"missing tiers {sorted(t.value for t in missing)}" if missing else None


# a callback the patient asked for comes before any wave task due at the same time (a tier's
# priority may be configured up to the same value; a nurse's promised callbacks still come first)
CALLBACK_PRIORITY = 100


class NurseLevel(StrEnum):
    junior = "junior"
    senior = "senior"


class InvalidKey(ValueError):
    """A validation problem of a key below the one being validated (a weekday of
    `calling_hours`, a theme's pathologies), so the error can name that key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(problem)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierPolicy(_Strict):
    cadence_days: Annotated[int, Field(ge=1, le=730)]
    call_minutes: Annotated[float, Field(gt=0, le=240)]
    nurse_levels: list[NurseLevel] = Field(min_length=1)
    start_offset_days: Annotated[int, Field(ge=0, le=60)] = 0
    priority: Annotated[int, Field(ge=0, le=100)] = 1
    # attempts a wave task of this tier may make; none: `retry.max_attempts`
    max_attempts: Annotated[int, Field(ge=1, le=20)] | None = None


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
        except ValidationError as exc:
            problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{text!r}: {problem}") from None
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
        unknown = sorted(set(data) - set(WEEKDAYS) - {"holidays"})
        if unknown:
            raise InvalidKey(unknown[0], "unknown key; expected weekday names (monday…) or 'holidays'")
        days = []
        for day in WEEKDAYS:
            texts = data.get(day, [])
            if not isinstance(texts, list) or not all(isinstance(w, str) for w in texts):
                raise InvalidKey(day, 'expected a list of windows like ["09:00-12:30", "13:30-19:00"]')
            try:
                windows = [Window.parse(w) for w in texts]
            except ValueError as exc:
                raise InvalidKey(day, str(exc)) from None
            windows.sort(key=lambda w: w.start)
            for a, b in itertools.pairwise(windows):
                if b.start < a.end:
                    raise InvalidKey(day, f"windows {a} and {b} overlap")
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
    # share of a tier's planned tasks that end with the patient reached: the others cost only their
    # unanswered attempts, so planning charges a task this share of a reached task's minutes
    expected_reach: dict[Tier, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: dict.fromkeys(Tier, 1.0)
    )
    # the share of attempt k's calls that reach the patient (the last one for later attempts): where
    # planning puts a task's minutes among its attempts' days; empty, 1/E for every attempt
    answer_rate_by_attempt: list[Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=list)
    wrap_up_seconds: Annotated[int, Field(ge=0)] = 120
    other_share_delay_minutes: Annotated[float, Field(ge=0)] = 5
    # a nurse with nothing due brings forward a first call planned up to this far ahead (0: never)
    work_ahead_hours: Annotated[float, Field(ge=0, le=168)] = 36


class InboundPolicy(_Strict):
    """The inbound line: how long a caller waits for a nurse, how often she may key her number."""

    wait_seconds: Annotated[int, Field(ge=10, le=1800)] = 90
    identify_tries: Annotated[int, Field(ge=1, le=5)] = 3
    callback_priority: Annotated[int, Field(ge=0, le=1000)] = 200
    callback_within_hours: Annotated[int, Field(ge=1, le=240)] = 24


class WebPolicy(_Strict):
    """The consoles: sessions, log-in lockout, the reasons a nurse may pause for."""

    session_hours: Annotated[float, Field(gt=0, le=24)] = 10
    lock_after_failures: Annotated[int, Field(ge=1, le=20)] = 5
    lock_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    pause_reasons: dict[str, str] = Field(
        default_factory=lambda: {
            "break": "Pause",
            "meal": "Repas",
            "training": "Formation",
            "admin": "Tâches administratives",
        }
    )


class OutreachPolicy(_Strict):
    """How outreach chooses: carecall's own choices, or the plain FIFO dialer it is measured against.

    `fifo` exists for comparison only (scripts/bench_outreach.py): tasks in mailing order, no tier
    priority, no référent preference, one fixed retry spacing, no time-of-day variation, with the
    same calling windows and caps. `best_time` lets the same comparison be made without the
    learned answer probabilities."""

    strategy: Literal["carecall", "fifo"] = "carecall"
    best_time: bool = True
    fifo_retry_hours: Annotated[float, Field(ge=2, le=72)] = 4  # fifo: every retry this long after the last
    # planning charges each expected retry to the day it will happen on (false: all to the first-call day)
    spread_retries: bool = True
    # a nurse takes the due work only her level and skills allow before work others could take
    fair_routing: bool = True
    # a planned first call falls due when its nurses get to it in the day, not all at the first calling hour
    pace_first_calls: bool = False
    # each working morning, today's spare nurse time goes to the patients the wave's plan left out
    fill_spare_capacity: bool = True
    # best time: how many attempts' worth of weight the cohort prior has against a patient's own history
    best_time_prior_weight: Annotated[float, Field(gt=0, le=100)] = 4.0
    # best time: the answer probability assumed where nothing is known yet
    best_time_base_rate: Annotated[float, Field(gt=0, lt=1)] = 0.3
    # best time: among due tasks of equal priority, one of estimate p is taken as if due p × this earlier
    best_time_lead_minutes: Annotated[int, Field(ge=0, le=1440)] = 60


class Theme(_Strict):
    code: str
    label: str
    pathologies: list[str] = []
    script: str


Share = Annotated[float, Field(ge=0, le=1)]


class PopulationPolicy(_Strict):
    """Who the simulated patients are (dialer/population.py): the ground truth of a simulation,
    which carecall itself never reads. config/simulation.toml's [population] explains each key."""

    propensity_by_tier: dict[Tier, Annotated[float, Field(gt=0, lt=1)]]
    propensity_concentration: Annotated[float, Field(gt=0, le=1000)]
    never_answers: Share
    retired_from_age: Annotated[int, Field(ge=18, le=120)]
    irregular: Share
    out_of_service: Share
    handover: Share
    hospital_stays_per_year: dict[Tier, Annotated[float, Field(ge=0, le=12)]]
    hospital_days: tuple[int, int]
    holidays_per_year: Annotated[float, Field(ge=0, le=12)]
    holiday_days: tuple[int, int]
    reachable_min_probability: Annotated[float, Field(gt=0, lt=1)]
    max_probability: Annotated[float, Field(gt=0, le=1)]

    @field_validator("propensity_by_tier", "hospital_stays_per_year")
    @classmethod
    def _all_tiers(cls, by_tier: dict[Tier, float]) -> dict[Tier, float]:
        if problem := _missing_tiers(by_tier):
            raise ValueError(problem)
        return by_tier

    @field_validator("hospital_days", "holiday_days")
    @classmethod
    def _days(cls, days: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= days[0] <= days[1] <= 366:
            raise ValueError(f"expected [shortest, longest] in days, 1 to 366, got {list(days)}")
        return days


class SimulationPolicy(_Strict):
    population: PopulationPolicy
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
    callback_minutes: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (1.0, 3.0)
    off_phone_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    break_minutes: Annotated[float, Field(gt=0)] = 15.0

    @model_validator(mode="after")
    def _sums(self) -> SimulationPolicy:
        if self.busy + self.machine + self.failed > 1:
            raise InvalidKey("results", "busy + machine + failed exceed 1")
        if self.callback_requested + self.opted_out + self.escalation > 1:
            raise InvalidKey("nurse_outcomes", "callback_requested + opted_out + escalation exceed 1")
        if self.callback_minutes[0] > self.callback_minutes[1]:
            raise InvalidKey("nurse_outcomes", "callback_minutes: expected [shortest, longest]")
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
    inbound: InboundPolicy = InboundPolicy()
    web: WebPolicy = WebPolicy()
    outreach: OutreachPolicy = OutreachPolicy()

    @field_validator("tiers")
    @classmethod
    def _all_tiers(cls, tiers: dict[Tier, TierPolicy]) -> dict[Tier, TierPolicy]:
        if problem := _missing_tiers(tiers):
            raise ValueError(problem)
        return tiers

    @model_validator(mode="after")
    def _themes_known_pathologies(self) -> Policy:
        for theme in self.themes.values():
            unknown = set(theme.pathologies) - set(self.pathologies)
            if unknown:
                raise InvalidKey(
                    f"themes.{theme.code}.pathologies",
                    f"unknown pathologies {sorted(unknown)} (known: {', '.join(self.pathologies)})",
                )
        for name in ("expected_attempts_per_reach", "expected_reach"):
            if problem := _missing_tiers(getattr(self.dialer, name)):
                raise InvalidKey(f"dialer.{name}", problem)
        return self

    def max_attempts(self, tier: Tier) -> int:
        """Attempts a task of this tier may make: the tier's own cap, else `retry.max_attempts`."""
        own = self.tiers[tier].max_attempts
        return self.retry.max_attempts if own is None else own

    def skill_for(self, pathology: str) -> str:
        p = self.pathologies.get(pathology)
        return p.skill if p else ""
