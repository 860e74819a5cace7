"""Every text a person reads or hears comes from a Jinja2 template in `prompts/`.

One environment for all of them (call scripts, IVR prompts, voicemail text,
physician letters, reports), so they share the same strictness: a variable
a template needs and does not get is an error, never a blank in front of a
patient. HTML and XML templates (`*.html.j2`, `*.xml.j2`...) are autoescaped,
plain-text ones are not. A few filters render numbers and dates the French
way, since French is what the programme's people read.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

_ESCAPED = (".html", ".htm", ".xml", ".svg")
_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
NBSP = "\u00a0"
NNBSP = "\u202f"  # narrow no-break space: French thousands separator and before '%'


def _autoescape(name: str | None) -> bool:
    """Escape by the format under the template suffix: 'x.fr.html.j2' is HTML."""
    if name is None:
        return False
    name = name.lower()
    for suffix in _TEMPLATE_SUFFIXES:
        name = name.removesuffix(suffix)
    return name.endswith(_ESCAPED)


def fr_number(value: float | int | None, digits: int = 0) -> str:
    """12345.6 -> '12 345,6' (thin no-break space, decimal comma)."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return text.replace(",", NNBSP).replace(".", ",")


def fr_percent(value: float | None, digits: int = 0) -> str:
    """A share (0.125) as French shows it: '12,5 %' (no-break space before %)."""
    if value is None:
        return "–"
    return f"{fr_number(value * 100, digits)}{NNBSP}%"


def fr_date(value: date | datetime | str | None, weekday: bool = False) -> str:
    """2025-03-03 -> '3 mars 2025' (or 'lundi 3 mars 2025'); ISO strings accepted."""
    if value is None:
        return "–"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    day = value.date() if isinstance(value, datetime) else value
    text = f"{'1er' if day.day == 1 else day.day} {_MONTHS[day.month - 1]} {day.year}"
    return f"{_WEEKDAYS[day.weekday()]} {text}" if weekday else text


@lru_cache(maxsize=8)
def environment(root: Path | None = None) -> Environment:
    """The shared environment on `root` (default: the repository's `prompts/`)."""
    env = Environment(
        loader=FileSystemLoader(root or PROMPTS_DIR),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # a template is read once per process: no stat of its file at every render
    )
    env.filters["fr_number"] = fr_number
    env.filters["fr_percent"] = fr_percent
    env.filters["fr_date"] = fr_date
    return env


def render(template_name: str, /, **ctx: Any) -> str:
    """Render `prompts/<template_name>` with `ctx`; a missing variable raises."""
    return environment().get_template(template_name).render(**ctx)
