"""Why a patient is or is not called, why a wave is not dialing, who cannot be called at all.

patient    `patient why` and the patient's file (both audited)
wave       `wave show`'s reasons
to_fix     patients with no number left, the supervisor's list of files to fix
"""

from __future__ import annotations

from campaign.explain.patient import Explanation, Finding, explain_patient, local_text, patient_file
from campaign.explain.to_fix import ToFix, patients_to_fix
from campaign.explain.wave import WaveExplanation, explain_wave

__all__ = [
    "Explanation",
    "Finding",
    "ToFix",
    "WaveExplanation",
    "explain_patient",
    "explain_wave",
    "local_text",
    "patient_file",
    "patients_to_fix",
]
