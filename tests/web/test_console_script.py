"""Every call script starts by confirming who is on the line, and says nothing medical before."""

from __future__ import annotations

import pytest
from factories import policy

from campaign.templates import render
from dialer.web.console.script import CallScript, call_script

THEMES = sorted(policy().themes)


def script_of(theme: str | None, tier: str = "high") -> CallScript:
    return call_script(
        policy(),
        theme,
        nurse_name="Camille Martin",
        first_name="Jeanne",
        last_name="Durand",
        tier=tier,
        pathologies=["Insuffisance cardiaque"],
    )


@pytest.mark.parametrize("theme", [*THEMES, None, "no_such_theme"])
def test_identity_part_asks_for_name_and_birth_date_or_member_number_and_nothing_else(
    theme: str | None,
) -> None:
    s = script_of(theme)
    identity = s.identity
    assert "Jeanne Durand" in identity
    assert "date de naissance" in identity and "numéro d'adhérent" in identity
    # nothing of the letter's theme or of the patient's health before the identity is confirmed
    assert "courrier" not in identity.split("→")[0]
    assert "Insuffisance cardiaque" not in identity
    label = policy().themes[theme].label if theme in policy().themes else None
    assert label is None or label not in identity


@pytest.mark.parametrize("theme", THEMES)
def test_conversation_part_is_the_themes_and_leaves_the_identity_out(theme: str) -> None:
    s = script_of(theme)
    conversation = s.conversation
    assert "courrier" in conversation
    assert "Insuffisance cardiaque" in conversation
    assert "date de naissance" not in conversation
    assert s.theme_label == policy().themes[theme].label


@pytest.mark.parametrize("theme", THEMES)
def test_the_whole_script_starts_with_the_identity_check(theme: str) -> None:
    text = render(
        policy().themes[theme].script,
        nurse_name="Camille Martin",
        patient_first_name="Jeanne",
        patient_last_name="Durand",
        theme_label=None,
        pathologies=[],
        tier="low",
    )
    assert text.index("date de naissance") < text.index("courrier «")


def test_high_tier_adds_the_warning_signs() -> None:
    assert "Signes d'alerte" in script_of("diet", "high").conversation
    assert "Signes d'alerte" not in script_of("diet", "low").conversation
