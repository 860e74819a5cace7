"""What the inbound line says, rendered from prompts/ivr/inbound_*.fr.j2.

The hours are said from the policy's calling hours (a supervisor who edits
them changes what callers hear), grouped by runs of weekdays with the same
windows: "du lundi au jeudi de 9 h à 12 h 30 et de 13 h 30 à 19 h, …".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum

from campaign import calendar as cal
from campaign.policy import CallingHours, Window
from campaign.templates import render

_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


class Prompt(StrEnum):
    greeting = "greeting"
    recognised = "recognised"
    ask_member = "ask_member"
    ask_birth_year = "ask_birth_year"
    not_recognised = "not_recognised"
    unknown = "unknown"
    wait = "wait"
    connect = "connect"
    no_nurse = "no_nurse"
    callback_recorded = "callback_recorded"
    closed = "closed"
    goodbye = "goodbye"

    @property
    def template(self) -> str:
        return f"ivr/inbound_{self.value}.fr.j2"


def say_time(at: time) -> str:
    """09:00 -> '9 h', 12:30 -> '12 h 30' (how French announcements say it)."""
    return f"{at.hour} h" if at.minute == 0 else f"{at.hour} h {at.minute:02d}"


def _windows(windows: tuple[Window, ...]) -> str:
    return " et ".join(f"de {say_time(w.start)} à {say_time(w.end)}" for w in windows)


def say_hours(hours: CallingHours) -> str:
    """The line's opening hours in words, runs of days with the same windows said together."""
    runs: list[tuple[int, int, tuple[Window, ...]]] = []
    for day, windows in enumerate(hours.by_weekday):
        if not windows:
            continue
        if runs and runs[-1][1] == day - 1 and runs[-1][2] == windows:
            runs[-1] = (runs[-1][0], day, windows)
        else:
            runs.append((day, day, windows))
    parts = []
    for first, last, windows in runs:
        if first == last:
            days = f"le {_DAYS[first]}"
        elif last == first + 1:
            days = f"le {_DAYS[first]} et le {_DAYS[last]}"
        else:
            days = f"du {_DAYS[first]} au {_DAYS[last]}"
        parts.append(f"{days} {_windows(windows)}")
    if not parts:
        return "aux heures d'ouverture"
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " et " + parts[-1]
    return text + (", sauf les jours fériés" if hours.holidays else "")


def say_when(at: datetime, now: datetime, zone: str) -> str:
    """From when a callback may come, in the patient's time: 'aujourd'hui' or 'le lundi 14 décembre,
    à partir de 9 h'."""
    local, today = cal.local_time_of(at, zone), cal.local_time_of(now, zone).date()
    if local.date() == today:
        return "dans la journée"
    day = local.date()
    first = "1er" if day.day == 1 else str(day.day)
    return f"le {_DAYS[day.weekday()]} {first} {_MONTHS[day.month - 1]}, à partir de {say_time(local.time())}"


@dataclass(frozen=True, slots=True)
class Said:
    """A prompt and its words: a voice reads the words (Twilio), a switch plays the prompt's
    recording (Asterisk: `carecall/fr/inbound_<prompt>`)."""

    prompt: Prompt
    words: str

    @property
    def recording(self) -> str:
        return f"carecall/fr/inbound_{self.prompt.value}"


def text(prompt: Prompt, **values: str) -> Said:
    """One prompt's words, on one line."""
    return Said(prompt, " ".join(render(prompt.template, **values).split()))
