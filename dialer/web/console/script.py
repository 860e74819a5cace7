"""The call's script, from prompts/scripts/, in its two parts.

Every script extends `scripts/call.fr.j2`: its `identity` block (who is on the line: the name AND the
birth date or the member number, since two patients can share a name) comes first, and the console
shows it alone until the nurse confirms; only then the theme's `conversation` block, which may speak
of the letter and of the patient's health.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import Template

from campaign.policy import Policy
from campaign.templates import environment

BASE_SCRIPT = "scripts/call.fr.j2"
GENERAL_SCRIPT = "scripts/general.fr.j2"  # a call without a theme: a callback, a request, an incoming call


@dataclass(frozen=True)
class CallScript:
    identity: str
    conversation: str
    theme_label: str | None


def _block(template: Template, name: str, values: dict[str, object]) -> str:
    return "".join(template.blocks[name](template.new_context(values))).strip("\n")


def call_script(
    policy: Policy,
    theme_code: str | None,
    *,
    nurse_name: str,
    first_name: str,
    last_name: str,
    tier: str,
    pathologies: Sequence[str],
) -> CallScript:
    """The script of a call on `theme_code` (None or unknown: the general one), both parts rendered."""
    theme = policy.themes.get(theme_code or "")
    values: dict[str, object] = {
        "nurse_name": nurse_name,
        "patient_first_name": first_name,
        "patient_last_name": last_name,
        "theme_label": theme.label if theme else None,
        "pathologies": list(pathologies),
        "tier": tier,
    }
    env = environment()
    script = env.get_template(theme.script if theme else GENERAL_SCRIPT)
    return CallScript(
        identity=_block(env.get_template(BASE_SCRIPT), "identity", values),
        conversation=_block(script, "conversation", values),
        theme_label=theme.label if theme else None,
    )
