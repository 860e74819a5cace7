"""The board's live figures, as the supervisor reads them, and the fragments the stream pushes.

Two parts change independently: `presence` (the nurses, the calls they are on: what moves with
every call) and `waves` (progress and reach per wave, the queue of due tasks, abandoned patients:
what moves with attempts and outcomes, read at most once a second). `LiveBoard.compute` reads only
the parts that changed and renders the fragments from prompts/web/board_live.html.j2, the macros
the full page uses too.

Events of the stream (`/board/stream`): `nurses` (the whole table, when nurses come or go),
`nurse-<id>` (her row, when it changes), `nurse-counts` (nurses per state), `calls`, `waves`,
and `wave-<id>` for each wave followed (the wave's own page). A nurse's row carries `data-nurse`,
`data-version` (her presence's version) and `data-since` (when she entered her state, ISO), so a
client can tell which change it is showing and how long ago it happened (scripts/bench_consoles.py
measures the board's delay).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from campaign import calendar as cal
from campaign import services
from campaign.db import SessionFactory
from campaign.states import TaskStatus
from campaign.store import progress
from dialer.staff.bus import PRESENCE as PRESENCE_CHANNEL
from dialer.web.core import single_reads

PRESENCE, WAVES = "presence", "waves"
PARTS = frozenset({PRESENCE, WAVES})
TEMPLATE = "board_live.html.j2"
# a closed wave stays on the board this long, so the supervisor sees it finish
CLOSED_SHOWN = timedelta(days=1)
CALL_STATES = ("dialing", "ringing", "connected")
TIERS = ("high", "medium", "low")


@dataclass(frozen=True)
class NurseLine:
    nurse_id: int
    code: str
    name: str
    level: str
    status: str
    reason: str | None
    since: str  # Paris wall clock, HH:MM
    minutes: int  # in this state
    call_state: str | None
    version: int
    since_at: datetime | None = None  # the instant behind `since`


@dataclass(frozen=True)
class TierReach:
    tier: str
    patients: int
    reached: int

    @property
    def share(self) -> float | None:
        return self.reached / self.patients if self.patients else None


@dataclass(frozen=True)
class WaveLive:
    id: int
    theme: str
    status: str
    window_start: Any
    window_end: Any
    tasks: dict[str, int]  # by status, every tier
    attempts: int
    tiers: list[TierReach]

    @property
    def total(self) -> int:
        return sum(self.tasks.values())

    @property
    def open(self) -> int:
        return self.tasks.get(TaskStatus.pending, 0) + self.tasks.get(TaskStatus.in_progress, 0)

    @property
    def closed(self) -> int:
        return self.total - self.open

    @property
    def reached(self) -> int:
        return sum(t.reached for t in self.tiers)

    @property
    def patients(self) -> int:
        return sum(t.patients for t in self.tiers)

    def tier(self, tier: str) -> TierReach | None:
        return next((t for t in self.tiers if t.tier == tier), None)


@dataclass
class Live:
    now: datetime
    nurses: list[NurseLine] = field(default_factory=list)
    queue: int = 0
    waves: list[WaveLive] = field(default_factory=list)
    abandoned_attempts: int = 0
    abandoned_patients: int = 0

    @property
    def clock_text(self) -> str:
        """When the figures were read, on the Paris wall clock."""
        return cal.local_time_of(self.now, services.PARIS).strftime("%H:%M:%S")

    def count(self, status: str) -> int:
        return sum(1 for n in self.nurses if n.status == status)

    def calls(self, state: str) -> int:
        return sum(1 for n in self.nurses if n.call_state == state)


def _nurse_lines(views: Sequence[Any], now: datetime) -> list[NurseLine]:
    lines = []
    for v in views:
        minutes = max(0, int((now - v.since).total_seconds() // 60)) if v.since else 0
        since = cal.local_time_of(v.since, services.PARIS).strftime("%H:%M") if v.since else ""
        lines.append(
            NurseLine(
                v.nurse_id,
                v.code,
                v.display_name,
                v.level,
                str(v.status),
                v.reason,
                since,
                minutes,
                v.call_state,
                v.version,
                v.since,
            )
        )
    return sorted(lines, key=lambda n: n.code)


def _waves(s: Any, now: datetime) -> list[WaveLive]:
    rows = progress.board_waves(s, now - CLOSED_SHOWN)
    ids = [w.id for w in rows]
    tallies = progress.task_tallies(s, ids)
    patients = progress.wave_patients_by_tier(s, ids)
    reached = progress.reached_by_tier(s, ids)
    attempts = progress.attempts_by_wave(s, ids)
    out = []
    for w in rows:
        by_status: dict[str, int] = {}
        for (_tier, status), n in tallies[w.id].items():
            by_status[status] = by_status.get(status, 0) + n
        tiers = [
            TierReach(t, patients[w.id].get(t, 0), reached[w.id].get(t, 0))
            for t in TIERS
            if patients[w.id].get(t)
        ]
        out.append(
            WaveLive(
                w.id, w.theme_code, w.status, w.window_start, w.window_end, by_status, attempts[w.id], tiers
            )
        )
    return out


def read_waves(ctx: services.Context) -> list[WaveLive]:
    """The waves part alone (a wave's own page)."""
    with ctx.sessions() as s:
        return _waves(s, ctx.clock.now())


@dataclass(frozen=True)
class _Figures:
    """The waves part as last read: replaced whole, so a thread reading it never sees half of it."""

    queue: int = 0
    waves: list[WaveLive] = field(default_factory=list)
    abandoned_attempts: int = 0
    abandoned_patients: int = 0


def read_nurses(
    sessions: SessionFactory,
    now: datetime,
    previous: list[NurseLine] | None = None,
    nurses: frozenset[int] | None = None,
) -> list[NurseLine]:
    """Every nurse's line; with `previous` and `nurses`, only those nurses' presence is read again (the
    others' lines are `previous`'s)."""
    from dialer.staff.store import presence_board, presence_of_many

    with sessions() as s:
        if nurses is None or previous is None:
            return _nurse_lines(presence_board(s), now)
        fresh = presence_of_many(s, nurses)  # an inactive nurse is not in it: she leaves the board
    kept = [n for n in previous if n.nurse_id not in nurses]
    return sorted(kept + _nurse_lines(fresh, now), key=lambda n: n.code)


def read_figures(ctx: services.Context, now: datetime) -> _Figures:
    """The waves part: a count of due tasks, the waves' figures, the patients abandoned today."""
    with ctx.sessions() as s:
        today = cal.local_time_of(now, services.PARIS).date()
        abandoned = progress.abandoned_since(s, cal.at_local(today, time(0), services.PARIS))
        return _Figures(progress.queue_depth(s, now), _waves(s, now), *abandoned)


def read_live(ctx: services.Context) -> Live:
    """The board's figures now (the page, before its stream takes over)."""
    now = ctx.clock.now()
    f = read_figures(ctx, now)
    return Live(
        now, read_nurses(ctx.sessions, now), f.queue, f.waves, f.abandoned_attempts, f.abandoned_patients
    )


class LiveBoard:
    """What the feed computes: the parts that changed, read again, and their fragments rendered.

    The feed computes the two parts in threads of their own, at the same time: each part keeps its
    own state under its own lock. `calls` shows both (the nurses' calls, the queue): it is rendered by
    either from the newest state of the other."""

    def __init__(self, ctx: services.Context, templates: Environment) -> None:
        self.ctx = ctx
        self.templates = templates
        self._reads = single_reads(ctx)  # the nurses named, ten times a second: one round trip
        self._locks = {PRESENCE: threading.Lock(), WAVES: threading.Lock()}
        self._nurses: list[NurseLine] | None = None  # the presence part as last read
        self._rows: dict[int, tuple[NurseLine, Markup]] = {}  # each nurse's row as last rendered
        self._table: str | None = None  # the nurses' table as last rendered whole
        self._figures: _Figures | None = None

    def compute(
        self, parts: frozenset[str], heard: Mapping[str, Mapping[str, frozenset[str]] | None]
    ) -> dict[str, str]:
        """Ten times a second with nurses on calls: only what changed is read and rendered again (the
        nurses the notifications named, a nurse's row when her line changed); each part whole at the
        feed's refresh. The fragments of the parts asked for, and `calls`."""
        ui = self.templates.get_template(TEMPLATE).module
        out: dict[str, str] = {}
        if PRESENCE in parts:
            with self._locks[PRESENCE]:
                out.update(self._presence(ui, heard.get(PRESENCE)))
        if WAVES in parts:
            with self._locks[WAVES]:
                out.update(self._waves(ui))
        return out

    def _presence(self, ui: Any, heard: Mapping[str, frozenset[str]] | None) -> dict[str, str]:
        nurses = None
        if heard is not None and self._nurses is not None:
            nurses = frozenset(int(k) for k in heard.get(PRESENCE_CHANNEL, ()) if k.isdigit())
        now = self.ctx.clock.now()
        live = self._live(now, read_nurses(self._reads, now, self._nurses, nurses))
        self._nurses = live.nurses
        reasons = self.ctx.policy.web.pause_reasons
        rows = {}
        for n in live.nurses:
            cached = self._rows.get(n.nurse_id)
            rows[n.nurse_id] = (
                cached if cached is not None and cached[0] == n else (n, ui.nurse_row(n, reasons))
            )
        # the whole table only when nurses come or go; a changed row travels alone as `nurse-<id>`
        # (twenty boards would otherwise get every row of 250 nurses at each change of one)
        if self._table is None or rows.keys() != self._rows.keys():
            table = Markup("").join(html for _, html in rows.values())
            self._table = str(ui.nurses(live, reasons, table))
        self._rows = rows
        return {
            "nurses": self._table,
            "nurse-counts": str(ui.nurse_counts(live)),
            **{f"nurse-{nurse_id}": str(html) for nurse_id, (_, html) in rows.items()},
            "calls": str(ui.calls(live)),
        }

    def _waves(self, ui: Any) -> dict[str, str]:
        now = self.ctx.clock.now()
        figures = self._figures = read_figures(self.ctx, now)
        live = self._live(now, self._nurses or [])
        themes = {c: t.label for c, t in self.ctx.policy.themes.items()}
        out = {"waves": str(ui.waves(live, themes)), "calls": str(ui.calls(live))}
        for w in figures.waves:
            out[f"wave-{w.id}"] = str(ui.wave(w, themes))
        return out

    def _live(self, now: datetime, nurses: list[NurseLine]) -> Live:
        f = self._figures or _Figures()
        return Live(now, nurses, f.queue, f.waves, f.abandoned_attempts, f.abandoned_patients)
