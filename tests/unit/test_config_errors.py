"""A mistake in config/ is reported with the file, the key as the supervisor wrote it in
that file, and the problem, on one line (tests/integration/test_cli_errors.py shows the
same through the `carecall` command)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign.errors import ConfigError
from campaign.policy import DEFAULT_CONFIG_DIR, load_policy


def _broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder)
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}: the test's premise changed"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("name", "old", "new", "file", "key", "problem"),
    [
        # simulation.toml is flattened for validation; the key named is the file's own
        ("simulation.toml", "ring_seconds_mean = 14", "ring_seconds_mean = -14",
         "simulation.toml", "timing.ring_seconds_mean", "greater than 0"),
        ("simulation.toml", "propensity_by_tier = {", "propensity_by_tiers = {",
         "simulation.toml", "population.propensity_by_tiers", "unknown key"),
        ("simulation.toml", "hospital_days = [2, 14]", "hospital_days = [14, 2]",
         "simulation.toml", "population.hospital_days", "expected [shortest, longest] in days"),
        ("simulation.toml", ", low = 0.25 }", " }",
         "simulation.toml", "population.hospital_stays_per_year", "missing tiers ['low']"),
        ("simulation.toml", "escalation = 0.02", "escalation = 0.95",
         "simulation.toml", "nurse_outcomes", "callback_requested + opted_out + escalation exceed 1"),
        # a window's problem names its weekday, on one line
        ("programme.toml", 'saturday = ["09:00-12:00"]', 'saturday = ["12:00-09:00"]',
         "programme.toml", "calling_hours.saturday", "'12:00-09:00': window ends (09:00) before it starts"),
        ("programme.toml", 'sunday = []', 'sunday = "none"',
         "programme.toml", "calling_hours.sunday", "expected a list of windows"),
        ("programme.toml", "holidays = true", "holidays = true\nlunch = false",
         "programme.toml", "calling_hours.lunch", "unknown key"),
        ("programme.toml", "expected_attempts_per_reach = { high = 3.7, medium = 3.9, low = 3.8 }",
         "expected_attempts_per_reach = { high = 3.7, medium = 3.9 }",
         "programme.toml", "dialer.expected_attempts_per_reach", "missing tiers ['low']"),
        ("programme.toml", "expected_reach = { high = 0.8, medium = 0.8, low = 0.75 }",
         "expected_reach = { high = 0.8, medium = 1.5, low = 0.75 }",
         "programme.toml", "dialer.expected_reach.medium", "less than or equal to 1"),
        ("themes.toml", "[themes.diet]", "[diet]",
         "themes.toml", "diet", "unknown key"),
    ],
)  # fmt: skip
def test_the_error_names_file_key_and_problem(
    tmp_path: Path, name: str, old: str, new: str, file: str, key: str, problem: str
) -> None:
    folder = _broken(tmp_path, name, old, new)
    with pytest.raises(ConfigError) as caught:
        load_policy(folder)
    error = caught.value
    assert error.file == str(folder / file)
    assert error.key == key
    assert problem in error.problem
    assert "\n" not in str(error)
