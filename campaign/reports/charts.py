"""SVG charts drawn on the server for the French HTML report: no script, no external
style or font, so the page opens from a mail attachment on a locked-down PC."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from campaign import templates

# ------------------------------------------------------------------ HTML and SVG

_C_ATTEMPTS = "#94a3b8"
_C_REACHED = "#15803d"
_C_UNREACHABLE = "#d97706"
_C_EXPIRED = "#b91c1c"
_C_CANCELLED = "#6b7280"
_C_OPEN = "#2563eb"
_C_BAR = "#1d4ed8"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _ticks(peak: float, n: int = 4) -> list[float]:
    """Round axis ticks from 0 to just above `peak`, steps of 1, 2 or 5 × 10^k (whole for counts)."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = peak / n
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 5, 10) if raw <= m * exp)
    if float(peak).is_integer():
        step = max(1.0, math.ceil(step))
    top = math.ceil(peak / step) * step
    return [i * step for i in range(round(top / step) + 1)]


def svg_columns(
    categories: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    title: str,
    height: int = 240,
) -> Markup:
    """Vertical grouped bars: one group per category, one bar per (label, colour, values)."""
    width = max(720, min(1100, 60 + len(categories) * (10 + 9 * len(series))))
    left, right, top, bottom = 40, 10, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = _ticks(max((v for _, _, vals in series for v in vals), default=0))
    peak = ticks[-1]
    slot = plot_w / max(1, len(categories))
    bar = max(1.0, min(22.0, (slot - 4) / max(1, len(series))))
    parts = [_svg_open(width, height, title)]
    for value in ticks:
        y = top + plot_h - plot_h * value / peak
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">'
            f"{_axis(value)}</text>"
        )
    every = max(1, math.ceil(len(categories) / 24))
    for ci, cat in enumerate(categories):
        x0 = left + ci * slot + (slot - bar * len(series)) / 2
        for si, (label, colour, values) in enumerate(series):
            v = values[ci]
            h = plot_h * v / peak
            parts.append(
                f'<rect x="{x0 + si * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(cat)} · {escape(label)} : '
                f"{_axis(v)}</title></rect>"
            )
        if ci % every == 0:
            x = left + ci * slot + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                f'fill="#374151">{escape(cat)}</text>'
            )
    parts.append(_legend([(label, colour) for label, colour, _ in series], left, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_rows(
    rows: Sequence[tuple[str, Sequence[float]]],
    segments: Sequence[tuple[str, str]],
    *,
    title: str,
    scale: float | None = None,
    marker: tuple[str, float] | None = None,
    percent: bool = False,
) -> Markup:
    """Horizontal stacked bars, one row per (label, values per segment).

    `scale` fixes the value at full width (default: the largest row); `marker`
    draws a labelled vertical line (a target); `percent` formats values as %.
    """
    width, label_w, right, row_h, top = 720, 110, 60, 24, 28
    height = top + len(rows) * row_h + (34 if len(segments) > 1 or marker else 10)
    full = scale or max((sum(v) for _, v in rows), default=0) or 1.0
    plot_w = width - label_w - right
    parts = [_svg_open(width, height, title)]
    for ri, (label, values) in enumerate(rows):
        y = top + ri * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" fill="#111827">{escape(label)}</text>'
        )
        x = float(label_w)
        for (seg, colour), v in zip(segments, values, strict=True):
            w = plot_w * min(v, full) / full if full else 0
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{colour}"><title>{escape(label)} · {escape(seg)} : '
                    f"{_value(v, percent)}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 15}" fill="#374151">{_value(sum(values), percent)}</text>'
        )
    if marker is not None:
        mlabel, mvalue = marker
        mx = label_w + plot_w * min(mvalue, full) / full
        bottom = top + len(rows) * row_h
        parts.append(
            f'<line x1="{mx:.1f}" y1="{top - 4}" x2="{mx:.1f}" y2="{bottom}" stroke="#dc2626" '
            f'stroke-dasharray="4 3"/><text x="{mx:.1f}" y="{bottom + 14}" text-anchor="middle" '
            f'fill="#dc2626">{escape(mlabel)} {_value(mvalue, percent)}</text>'
        )
    elif len(segments) > 1:
        parts.append(_legend(segments, label_w, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_lines(
    categories: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    title: str,
    percent: bool = False,
    height: int = 260,
) -> Markup:
    """Lines over shared categories (days), one per (label, colour, values): reach curves."""
    width, left, right, top, bottom = 720, 44, 10, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, _, vals in series for v in vals), default=0.0)
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if percent else _ticks(peak)
    full = ticks[-1] or 1.0
    step = plot_w / max(1, len(categories) - 1)
    parts = [_svg_open(width, height, title)]
    for value in ticks:
        y = top + plot_h - plot_h * value / full
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">'
            f"{_value(value, percent)}</text>"
        )
    every = max(1, math.ceil(len(categories) / 16))
    for ci, cat in enumerate(categories):
        if ci % every == 0:
            parts.append(
                f'<text x="{left + ci * step:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                f'fill="#374151">{escape(cat)}</text>'
            )
    for label, colour, values in series:
        points = " ".join(
            f"{left + i * step:.1f},{top + plot_h - plot_h * min(v, full) / full:.1f}"
            for i, v in enumerate(values)
        )
        last = _value(values[-1], percent) if values else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(label)} : {last}</title></polyline>"
        )
    parts.append(_legend([(label, colour) for label, colour, _ in series], left, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'role="img" aria-label="{escape(title)}" {_FONT}><title>{escape(title)}</title>'
        f'<text x="4" y="16" font-size="13" font-weight="600" fill="#111827">'
        f"{escape(title)}</text>"
    )


def _legend(items: Sequence[tuple[str, str]], x0: float, y: float) -> str:
    out, x = [], x0
    for label, colour in items:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14:.1f}" y="{y}" fill="#374151">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return "".join(out)


def _axis(value: float) -> str:
    return templates.fr_number(value, 0 if float(value).is_integer() else 1)


def _value(value: float, percent: bool) -> str:
    return templates.fr_percent(value) if percent else _axis(value)


class Charts:
    """What the HTML template draws; it passes the (French) labels, we draw the shapes."""

    @staticmethod
    def daily(daily: Mapping[str, Mapping[str, int]], *, title: str, attempts: str,
              reached: str) -> Markup:  # fmt: skip
        days = list(daily)
        labels = [f"{d[8:10]}/{d[5:7]}" for d in days]
        return svg_columns(
            labels,
            [
                (attempts, _C_ATTEMPTS, [daily[d]["attempts"] for d in days]),
                (reached, _C_REACHED, [daily[d]["reached"] for d in days]),
            ],
            title=title,
        )

    @staticmethod
    def tiers(by_tier: Mapping[str, Mapping[str, Any]], *, title: str,
              tier_labels: Mapping[str, str], segment_labels: Mapping[str, str]) -> Markup:  # fmt: skip
        keys = ("tasks_done", "unreachable", "expired", "cancelled", "open")
        colours = (_C_REACHED, _C_UNREACHABLE, _C_EXPIRED, _C_CANCELLED, _C_OPEN)
        rows = [(tier_labels.get(tier, tier), [float(t[k]) for k in keys]) for tier, t in by_tier.items()]
        segments = [(segment_labels.get(k, k), c) for k, c in zip(keys, colours, strict=True)]
        return svg_rows(rows, segments, title=title)

    @staticmethod
    def occupancy(nurses: Mapping[str, Mapping[str, Any]], *, title: str, label: str,
                  target: float, target_label: str) -> Markup:  # fmt: skip
        rows = [(code, [float(n["occupancy"] or 0.0)]) for code, n in nurses.items()]
        peak = max([target, *(v[0] for _, v in rows)])
        return svg_rows(
            rows,
            [(label, _C_BAR)],
            title=title,
            scale=max(1.0, peak),
            marker=(target_label, target),
            percent=True,
        )

    @staticmethod
    def histogram(counts: Mapping[str, int], *, title: str, label: str) -> Markup:
        cats = list(counts)
        return svg_columns(
            [c.replace("-W", " S") for c in cats],
            [(label, _C_BAR, [counts[c] for c in cats])],
            title=title,
        )
