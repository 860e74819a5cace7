"""CSV a supervisor opens in a spreadsheet, safe from formula injection.

A cell a spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage return)
gets a leading apostrophe: the spreadsheet then shows it as text (CSV injection, OWASP). Written for
French Excel: semicolons, decimal commas, dates day first, UTF-8 with its byte-order mark.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from starlette.responses import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as a spreadsheet cell that cannot be a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")  # a decimal comma
    elif isinstance(value, datetime):
        text = value.strftime("%d/%m/%Y %H:%M:%S")
    elif isinstance(value, date):
        text = value.strftime("%d/%m/%Y")
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads UTF-8 only after its byte-order mark
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue()


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    return Response(
        to_csv(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"},
    )


def _percent(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 1)


def wave_rows(report: dict[str, Any], total_label: str) -> list[list[Any]]:
    """Per tier, then the whole wave: the report's figures in the export's columns."""

    def row(label: str, t: dict[str, Any]) -> list[Any]:
        return [
            label,
            t["patients_in_wave"] if "patients_in_wave" in t else t["patients"],
            t["reached"],
            _percent(t["reached_share"]),
            _percent(t.get("reached_in_window_share")),
            t["attempts"],
            t["attempts_per_reach"],
            t["median_days_to_reach"],
            t["tasks"],
            t["tasks_done"],
            t["unreachable"],
            t["expired"],
            t["cancelled"],
            t["open"],
        ]

    return [row(tier, t) for tier, t in report["by_tier"].items()] + [row(total_label, report)]
