"""Facts the tests check the calendar against, from DESIGN.md, not from campaign.calendar.

An oracle that called the production calendar would share its bugs: these are
written out by hand, from the IANA zones and the `holidays` package's
subdivisions that DESIGN.md lists.
"""

from __future__ import annotations

# département -> (IANA zone, holidays subdivision)
WHERE: dict[str, tuple[str, str | None]] = {
    "75": ("Europe/Paris", None),
    "13": ("Europe/Paris", None),
    "57": ("Europe/Paris", "57"),
    "67": ("Europe/Paris", "6AE"),
    "68": ("Europe/Paris", "6AE"),
    "2A": ("Europe/Paris", None),
    "971": ("America/Guadeloupe", "971"),
    "972": ("America/Martinique", "972"),
    "973": ("America/Cayenne", "973"),
    "974": ("Indian/Reunion", "974"),
    "976": ("Indian/Mayotte", "976"),
    "977": ("America/St_Barthelemy", "BL"),  # Saint-Barthélemy: its own abolition day (9 October)
    "978": ("America/Marigot", "MF"),  # Saint-Martin: 28 May
}
