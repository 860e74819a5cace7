"""Synthetic, fictional patients and nurses for demos, benchmarks and tests.

Never real people: names come from Faker, phone numbers only from the ranges
ARCEP reserves for fiction (01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49
+ four digits; 06 39 98 is fiction too but phonenumbers rejects it, so it is
kept for "invalid number" tests). Everything is deterministic by seed so a
benchmark or a failing test can be replayed exactly. Patients in `patients.py`,
nurses in `nurses.py`.
"""

from campaign.synthetic.nurses import generate_nurses, generate_patients_for, trained_codes, weekly_hours
from campaign.synthetic.patients import (
    FICTION_NUMBERS,
    FICTION_PREFIXES,
    HEADER,
    INVALID_FICTION_PREFIX,
    OVERSEAS_SHARE,
    REFERENCE_DATE,
    SENIOR_CASELOAD_OUTSIDE_HIGH,
    SHARED_LANDLINE_SHARE,
    fiction_number,
    generate_patients_csv,
    is_fiction_e164,
)

__all__ = [
    "FICTION_NUMBERS",
    "FICTION_PREFIXES",
    "HEADER",
    "INVALID_FICTION_PREFIX",
    "OVERSEAS_SHARE",
    "REFERENCE_DATE",
    "SENIOR_CASELOAD_OUTSIDE_HIGH",
    "SHARED_LANDLINE_SHARE",
    "fiction_number",
    "generate_nurses",
    "generate_patients_csv",
    "generate_patients_for",
    "is_fiction_e164",
    "trained_codes",
    "weekly_hours",
]
