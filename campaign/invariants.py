"""The invariants of DESIGN.md, checked against what the database recorded.

The dialer enforces the rules before each dial (`rules.may_dial`); this module
checks afterwards, from the stored attempts, outcomes and tasks alone, that
they held. It never trusts the dialer's memory, so a crash, a second dialer
process or a bug in the claim shows up here.

Violations are counted per offending row and illustrated by at most
`MAX_EXAMPLES` ids (attempt ids, or task ids for `open_tasks`): never a name,
a number or any other personal data, so a report can be mailed or logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from campaign import calendar as cal
from campaign import store
from campaign.policy import CallingHours, Policy
from campaign.rules import requested_dial
from campaign.states import TERMINAL_TASK_STATUSES, AttemptResult, AttemptState, EnrolmentStatus, TaskKind

MAX_EXAMPLES = 20
_FOREVER = datetime.max.replace(tzinfo=UTC)
_GONE = (EnrolmentStatus.withdrawn.value, EnrolmentStatus.deceased.value)
_TERMINAL = tuple(s.value for s in TERMINAL_TASK_STATUSES)


@dataclass(slots=True)
class Violations:
    """How many rows break one invariant, and the first few of their ids."""

    count: int = 0
    examples: list[int] = field(default_factory=list)
    unit: str = "attempt"  # what the example ids are ids of

    def add(self, row_id: int) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(row_id)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "examples": list(self.examples), "unit": self.unit}


@dataclass(slots=True)
class InvariantReport:
    """The result of `check_invariants`; `ok` when every count is zero.

    `double_dials` is `overlapping_calls` + `redials_too_soon` (disjoint: an
    attempt that overlaps is not also counted as too soon). Examples are
    attempt ids, except for `open_tasks` (task ids).
    """

    wave_id: int | None = None
    attempts_checked: int = 0
    calls_outside_window: Violations = field(default_factory=Violations)
    calls_to_uncallable: Violations = field(default_factory=Violations)
    double_dials: Violations = field(default_factory=Violations)
    overlapping_calls: Violations = field(default_factory=Violations)
    redials_too_soon: Violations = field(default_factory=Violations)
    over_daily_cap: Violations = field(default_factory=Violations)
    open_tasks: Violations = field(default_factory=lambda: Violations(unit="task"))
    answered_without_outcome: Violations = field(default_factory=Violations)
    in_flight_attempts: Violations = field(default_factory=Violations)

    def checks(self) -> Iterator[tuple[str, Violations]]:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Violations):
                yield f.name, value

    @property
    def ok(self) -> bool:
        return all(v.count == 0 for _, v in self.checks())

    def counts(self) -> dict[str, int]:
        return {name: v.count for name, v in self.checks()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave_id": self.wave_id,
            "ok": self.ok,
            "attempts_checked": self.attempts_checked,
            "checks": {name: v.as_dict() for name, v in self.checks()},
        }


def check_invariants(session: Session, policy: Policy, wave_id: int | None = None) -> InvariantReport:
    """Invariants 1, 2 and 4 (and the stored half of 3), from the database alone.

    Scope: with `wave_id`, the attempts and tasks of that wave (callbacks it
    spawned included); without, every attempt, and the tasks of waves that are
    done or cancelled (a running wave legitimately has open tasks). A dialer
    that is running shows its current calls as `in_flight_attempts`.

    Calling window (invariant 2): the attempt's start must fall inside the
    patient's window of that local day (`calendar.is_callable_at`, holidays
    included), as the patient's place is today.

    Uncallable patient (invariant 2). Statuses are current, not historical, so
    an attempt is only blamed when the record shows the status applied at its
    start:
    - an `opted_out` outcome recorded at T forbids every attempt starting
      after T (the attempt during which the patient opted out is legitimate),
      unless the patient re-enrolled later (`enrolled_on` after T's date);
    - withdrawn or deceased with no opt-out on record: nothing says when it
      happened, so the status is taken as older than the wave and every
      attempt counts;
    - suspended: attempts on local days up to `suspended_until` (no end date:
      all), as `rules.may_dial` decides it; when a nurse recorded the stay
      (a `hospitalised` outcome at T, the latest), only attempts starting
      after T (the call on which she learnt of it is legitimate);
    - no consent: every attempt.

    Double dials (invariant 1), one ordered query and one pass per patient,
    looking at all of the patient's attempts (other waves too), but blaming
    the later attempt of a pair, and with `wave_id` only when it is the
    wave's:
    - overlapping: an attempt starts before an earlier one ended (an
      earlier attempt with no `ended_at` is still running);
    - too soon: start-to-start closer than `retry.min_gap_minutes` to the
      previous attempt (the gap the rules measure: `DialHistory.last_dial_at`);
    - over the daily cap: the attempts beyond `caps.max_attempts_per_day` on
      one local day;
    - the one exception to both is the rules' own (`rules.requested_dial`):
      the first dial of a callback task, at the time the patient asked for.
      It still counts towards the day's dials; its retries are ordinary dials
      and are blamed like any other.

    Incoming calls (TaskKind.incoming: the patient called, a nurse answered)
    are not dials: none is blamed as outside the window, to an uncallable
    patient, overlapping, too soon or over the cap (a patient may call at any
    hour the line is open, suspended or not). They are contacts all the same:
    each counts among the day's dials and as the previous call, so an outbound
    dial too soon after one, or beyond the cap because of them, is blamed, as
    `rules.may_dial` (which reads the same attempts) would have refused it;
    and an answered one needs its outcome like any other.

    Outcomes (invariant 3): an answered attempt with no Outcome row, and
    attempts still `in_flight`. Tasks (invariant 4): any not in a terminal
    state.
    """
    report = InvariantReport(wave_id=wave_id)
    gap = timedelta(minutes=policy.retry.min_gap_minutes)
    cap = policy.caps.max_attempts_per_day
    opt_outs = store.opt_out_times(session, wave_id)
    stays = store.suspension_times(session, wave_id)
    # a local day is at most 24 h long, plus the gap that reaches back
    margin = timedelta(days=1) + gap
    windows = _window_cache(policy.calling_hours)
    in_flight, answered = AttemptState.in_flight.value, AttemptResult.answered.value
    incoming = TaskKind.incoming.value

    current: int | None = None
    limits = _Callable(forbid_all=False)
    place = cal.Place("75", cal.METROPOLE_ZONE)
    zone = ZoneInfo(cal.METROPOLE_ZONE)
    prev_start: datetime | None = None
    busy_until: datetime | None = None
    day: date | None = None
    on_day = 0
    # plain tuples, unpacked: at 200,000 rows, attribute access by name is what costs
    for (
        attempt_id, patient_id, started, ended, state, result, kind, task_attempt, attempt_wave, outcome_id,
        departement, timezone, preferred_start, preferred_end,
        status, consent, suspended_until, enrolled_on,
    ) in store.invariant_attempt_rows(session, wave_id, margin):  # fmt: skip
        if patient_id != current:
            current = patient_id
            place = cal.Place(departement, timezone, preferred_start, preferred_end)
            zone = ZoneInfo(timezone)
            limits = _Callable.of(
                status,
                consent,
                suspended_until,
                enrolled_on,
                opt_outs.get(patient_id),
                zone,
                stays.get(patient_id),
            )
            prev_start, busy_until, day, on_day = None, None, None, 0
        local_day = started.astimezone(zone).date()
        requested = requested_dial(kind, task_attempt)
        dial = kind != incoming
        if local_day != day:
            day, on_day = local_day, 0
        on_day += 1

        if wave_id is None or attempt_wave == wave_id:
            report.attempts_checked += 1
            if dial and not any(s <= started < e for s, e in windows(local_day, place)):
                report.calls_outside_window.add(attempt_id)
            if dial and limits.forbids(started, local_day):
                report.calls_to_uncallable.add(attempt_id)
            if state == in_flight:
                report.in_flight_attempts.add(attempt_id)
            if result == answered and outcome_id is None:
                report.answered_without_outcome.add(attempt_id)
            if dial and busy_until is not None and started < busy_until:
                report.overlapping_calls.add(attempt_id)
                report.double_dials.add(attempt_id)
            elif dial and prev_start is not None and not requested and started - prev_start < gap:
                report.redials_too_soon.add(attempt_id)
                report.double_dials.add(attempt_id)
            if dial and on_day > cap and not requested:
                report.over_daily_cap.add(attempt_id)

        prev_start = started
        end = ended if ended is not None else _FOREVER
        busy_until = end if busy_until is None or end > busy_until else busy_until

    report.open_tasks.count, report.open_tasks.examples = store.open_tasks(session, wave_id, MAX_EXAMPLES)
    return report


@dataclass(frozen=True, slots=True)
class _Callable:
    """When a patient may not be called, from their record (see `check_invariants`)."""

    forbid_all: bool
    forbid_after: datetime | None = None  # first opt-out
    allowed_again_on: date | None = None  # re-enrolled after that opt-out
    suspended_through: date | None = None
    suspended_from: datetime | None = None  # the hospitalised outcome that suspended the patient

    @classmethod
    def of(
        cls,
        status: str,
        consent: bool,
        suspended_until: date | None,
        enrolled_on: date | None,
        opted_out_at: datetime | None,
        zone: ZoneInfo,
        hospitalised_at: datetime | None = None,
    ) -> _Callable:
        gone = status in _GONE
        suspended = None
        if status == EnrolmentStatus.suspended.value:
            suspended = suspended_until or date.max
        again = None
        if (
            opted_out_at is not None
            and not gone
            and enrolled_on is not None
            and enrolled_on > opted_out_at.astimezone(zone).date()
        ):
            again = enrolled_on
        return cls(
            forbid_all=not consent or (gone and opted_out_at is None),
            forbid_after=opted_out_at,
            allowed_again_on=again,
            suspended_through=suspended,
            suspended_from=hospitalised_at if suspended is not None else None,
        )

    def forbids(self, started: datetime, local_day: date) -> bool:
        if self.forbid_all:
            return True
        if (
            self.forbid_after is not None
            and started > self.forbid_after
            and not (self.allowed_again_on is not None and local_day >= self.allowed_again_on)
        ):
            return True
        return (
            self.suspended_through is not None
            and local_day <= self.suspended_through
            and (self.suspended_from is None or started > self.suspended_from)
        )


def _window_cache(hours: CallingHours) -> Callable[[date, cal.Place], list[tuple[datetime, datetime]]]:
    """`calendar.utc_intervals` memoised per (day, place): 200,000 attempts share few."""

    @lru_cache(maxsize=65536)
    def windows(day: date, place: cal.Place) -> list[tuple[datetime, datetime]]:
        return cal.utc_intervals(day, place, hours)

    return windows
