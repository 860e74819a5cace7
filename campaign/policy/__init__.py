"""The programme's policy, loaded from `config/*.toml` and validated at start-up.

`models`: what each key may hold; `files`: reading the files, and naming the file and
key of any mistake. Everything is imported from here.
"""

from campaign.policy.files import DEFAULT_CONFIG_DIR, load_policy, read_toml
from campaign.policy.models import (
    CALLBACK_PRIORITY,
    WEEKDAYS,
    CallingHours,
    CapsPolicy,
    DialerPolicy,
    InboundPolicy,
    InvalidKey,
    MailingPolicy,
    NurseLevel,
    OutreachPolicy,
    PathologyPolicy,
    Policy,
    PopulationPolicy,
    RetryPolicy,
    SimulationPolicy,
    Theme,
    Tier,
    TierPolicy,
    WebPolicy,
    Window,
)

__all__ = [
    "CALLBACK_PRIORITY",
    "DEFAULT_CONFIG_DIR",
    "WEEKDAYS",
    "CallingHours",
    "CapsPolicy",
    "DialerPolicy",
    "InboundPolicy",
    "InvalidKey",
    "MailingPolicy",
    "NurseLevel",
    "OutreachPolicy",
    "PathologyPolicy",
    "Policy",
    "PopulationPolicy",
    "RetryPolicy",
    "SimulationPolicy",
    "Theme",
    "Tier",
    "TierPolicy",
    "WebPolicy",
    "Window",
    "load_policy",
    "read_toml",
]
