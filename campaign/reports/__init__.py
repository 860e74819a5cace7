"""The wave report: what a wave did, per tier and per nurse, and whether the invariants held.

Computed from the database only (never from a dialer's memory), so the same
figures come out whoever asks and whenever. Built to stay fast on a national
wave (100,000 tasks, a few hundred thousand attempts): counts are aggregated
in SQL where that is easy, and the rest is one streamed pass over the few
columns it needs; no ORM object is loaded per row.

`wave_report` (figures.py) returns plain JSON-serialisable data; `render_text` draws it for
the supervisor's terminal (dialer/cli/render.py, English, as the CLI), `render_html` as a
self-contained French page for the programme's staff (no external script,
style or font: it must open from a mail attachment on a locked-down PC).
The report carries no personal data: ids, counts, nurse codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaign import templates
from campaign.reports.charts import Charts, svg_columns, svg_lines, svg_rows
from campaign.reports.figures import wave_report, write_json
from campaign.reports.load import (
    DayLoad,
    load_by_day,
    max_daily_load_deviation,
    occupancy_by_nurse,
    occupancy_spread,
)

HTML_TEMPLATE = "reports/wave_report.fr.html.j2"

__all__ = [
    "HTML_TEMPLATE",
    "DayLoad",
    "load_by_day",
    "max_daily_load_deviation",
    "occupancy_by_nurse",
    "occupancy_spread",
    "render_html",
    "svg_columns",
    "svg_lines",
    "svg_rows",
    "wave_report",
    "write_json",
]


def render_html(report: Mapping[str, Any]) -> str:
    """The French page for the programme's staff: one file, inline CSS and SVG only."""
    return templates.render(HTML_TEMPLATE, r=report, charts=Charts())
