"""Reading `config/*.toml` into a validated Policy.

A supervisor changes policy by editing config, so every mistake there is one
ConfigError naming the file, the key as written in that file and the problem,
and stops start-up.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from campaign.errors import ConfigError
from campaign.policy.models import InvalidKey, Policy, PopulationPolicy

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

# simulation.toml's sections; their keys are flattened into SimulationPolicy, but for [population],
# which is SimulationPolicy.population as it stands
_SIM_SECTIONS = ("population", "results", "timing", "nurse_outcomes", "nurses")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file of config/, or one ConfigError naming the file and what is wrong with it."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(path), "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "-", "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot be read: {exc.strerror or exc}") from None


def _loc(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))


def _flat_simulation(data: dict[str, Any], file: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """simulation.toml's sections as SimulationPolicy's fields, and each field's key in the file."""
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for section, body in data.items():
        if section not in _SIM_SECTIONS:
            raise ConfigError(str(file), section, f"unknown section; expected {', '.join(_SIM_SECTIONS)}")
        if not isinstance(body, dict):
            raise ConfigError(str(file), section, "expected a table of keys")
        if section == "population":
            unknown = sorted(set(body) - set(PopulationPolicy.model_fields))
            if unknown:
                expected = ", ".join(PopulationPolicy.model_fields)
                raise ConfigError(str(file), f"population.{unknown[0]}", f"unknown key; expected {expected}")
            flat["population"] = body
            where["population"] = "population"
            continue
        for key, value in body.items():
            if key in where:
                raise ConfigError(str(file), f"{section}.{key}", f"also given as {where[key]}")
            flat[key] = value
            where[key] = f"{section}.{key}"
    where.setdefault("population", "population")
    return flat, where


def _tables(themes: dict[str, Any], file: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for code, body in themes.get("themes", {}).items():
        if not isinstance(body, dict):
            raise ConfigError(str(file), f"themes.{code}", "expected a table (label, pathologies, script)")
        out.append((code, body))
    return out


def load_policy(config_dir: Path | str | None = None) -> Policy:
    """Read and validate `programme.toml`, `themes.toml` and `simulation.toml`.

    Any mistake is one ConfigError naming the file, the key as written in that file,
    and the problem.
    """
    directory = Path(config_dir) if config_dir else DEFAULT_CONFIG_DIR
    files = {
        "programme": directory / "programme.toml",
        "themes": directory / "themes.toml",
        "simulation": directory / "simulation.toml",
    }
    prog = read_toml(files["programme"])
    themes = read_toml(files["themes"])
    sim = read_toml(files["simulation"])
    for key in ("themes", "simulation"):
        if key in prog:
            raise ConfigError(str(files["programme"]), key, f"unknown key; {key} live in {key}.toml")
    for key in themes:
        if key != "themes":
            raise ConfigError(str(files["themes"]), key, "unknown key; expected [themes.CODE] tables")
    flat_sim, sim_keys = _flat_simulation(sim, files["simulation"])
    raw = {
        **prog,
        "themes": {code: {"code": code, **body} for code, body in _tables(themes, files["themes"])},
        "simulation": flat_sim,
    }
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        problem = str(err["msg"]).removeprefix("Value error, ")
        loc = _loc(err)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidKey):
            loc = f"{loc}.{cause.key}" if loc else cause.key
        head, _, rest = loc.partition(".")
        file = files[head] if head in ("themes", "simulation") else files["programme"]
        if head == "simulation":
            field, _, below = rest.partition(".")
            loc = ".".join(p for p in (sim_keys.get(field, field), below) if p)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(str(file), loc or "-", problem + more) from None
