"""Who may take a call: the skills a call needs, and whether a nurse's level and skills allow it.

Pure, like campaign.rules: the dialer's routing, a callback promised for
another nurse, the consoles' list of qualified nurses and the inbound line's
precedence all ask these same two functions.
"""

from __future__ import annotations

from campaign.policy import NurseLevel, Policy, Tier


def required_skills(pathologies: list[str], theme_code: str | None, policy: Policy) -> frozenset[str]:
    """Skills a nurse needs for this call: those of the pathologies the theme is about."""
    theme = policy.themes.get(theme_code or "")
    relevant = pathologies
    if theme and theme.pathologies:
        relevant = [p for p in pathologies if p in theme.pathologies] or pathologies
    return frozenset(s for p in relevant if (s := policy.skill_for(p)))


def may_take(
    level: NurseLevel, nurse_skills: frozenset[str], tier: Tier, skills: frozenset[str], policy: Policy
) -> bool:
    """A nurse of this level and these skills may take a call of this tier that needs these skills."""
    return level in policy.tiers[tier].nurse_levels and skills <= nurse_skills
