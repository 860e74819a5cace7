"""What a supervisor sees when the configuration or the database is wrong: one line on
stderr naming the problem and where (file and key; the database URL without its
password and what failed), exit code 2, and never a traceback, whatever the command.

Each case runs the installed `carecall` console script in a subprocess, as a user
would: the entry point is what once let these errors through as tracebacks.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from console_script import carecall, one_error_line
from typer.testing import CliRunner

from dialer.cli import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "patients.sample.csv"
PASSWORD = "s3cret-pw"


pytestmark = pytest.mark.usefixtures("restore_logging")


# ---------------------------------------------------------------- configuration


def _config(tmp_path: Path, change: Callable[[Path], None]) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    change(folder)
    return folder


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}: the test's premise changed"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return change


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


# (change to a copy of config/, command, what the line must name); commands vary so every
# kind of mistake is seen through more than the one command that first loads the policy
CONFIG_CASES = {
    "wrong type": (
        _replace("programme.toml", "max_attempts = 6", 'max_attempts = "six"'),
        ["db", "upgrade"],
        ["programme.toml", "retry.max_attempts", "valid integer"],
    ),
    "a tier's attempt cap out of range": (
        _replace("programme.toml", "max_attempts = 8", "max_attempts = 0"),
        ["wave", "list"],
        ["programme.toml", "tiers.high.max_attempts", "greater than or equal to 1"],
    ),
    "unknown key": (
        _replace("programme.toml", "busy_minutes = 120", "busy_minutes = 120\nbusy_minuts = 60"),
        ["patients", "import", str(SAMPLE)],
        ["programme.toml", "retry.busy_minuts", "Extra inputs are not permitted"],
    ),
    "unknown section of simulation.toml": (
        _replace("simulation.toml", "[timing]", "[timings]"),
        ["wave", "list"],
        ["simulation.toml", "timings", "unknown section"],
    ),
    "negative minutes": (
        _replace("programme.toml", "referent_wait_minutes = 45", "referent_wait_minutes = -45"),
        ["serve"],
        ["programme.toml", "dialer.referent_wait_minutes", "greater than or equal to 0"],
    ),
    "negative retry spacing": (
        _replace("programme.toml", "unanswered_minutes = 240", "unanswered_minutes = -240"),
        ["simulate", "--until", "2026-12-20"],
        ["programme.toml", "retry.unanswered_minutes", "greater than or equal to 1"],
    ),
    "overlapping windows": (
        _replace(
            "programme.toml",
            'monday = ["09:00-12:30", "13:30-19:00"]',
            'monday = ["09:00-14:00", "13:30-19:00"]',
        ),
        ["demo", "--patients", "10", "--nurses", "2"],
        ["programme.toml", "calling_hours.monday", "windows 09:00-14:00 and 13:30-19:00 overlap"],
    ),
    "bad TOML": (
        _replace("programme.toml", "priority = 3", "priority = = 3"),
        ["nurses", "list"],
        ["programme.toml", "not valid TOML", "line"],
    ),
    "missing file": (
        _remove("themes.toml"),
        ["mailing", "record", "--theme", "diet", "--sent-on", "2026-12-07"],
        ["themes.toml", "file not found"],
    ),
    "theme about an unknown pathology": (
        _replace("themes.toml", '["diabetes", "heart_failure", "ckd", "coronary"]', '["diabetes", "gout"]'),
        ["scheduler", "run"],
        ["themes.toml", "themes.diet.pathologies", "unknown pathologies ['gout']"],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_config_is_one_line_naming_file_and_key(case: str, tmp_path: Path) -> None:
    change, command, expected = CONFIG_CASES[case]
    folder = _config(tmp_path, change)
    line = one_error_line(carecall(tmp_path, *command, CARECALL_CONFIG_DIR=str(folder)))
    for part in expected:
        assert part in line, line
    assert str(folder) in line, "the file is named with its folder"


@pytest.mark.parametrize(
    ("variable", "value"), [("CARECALL_LOG_FORMAT", "xml"), ("CARECALL_LOG_LEVEL", "loud")]
)
def test_a_bad_setting_is_one_line_naming_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    line = one_error_line(carecall(tmp_path, "wave", "list", **{variable: value}))
    assert variable in line and repr(value) in line, line


# ---------------------------------------------------------------- database


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


def _bad_databases(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """Per case, the URL and what the line must say."""
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are not the tables you are looking for\n" * 200, encoding="utf-8")
    port = _closed_port()
    return {
        "garbage": ("garbage", ["database URL 'garbage' is not a URL like sqlite:///"]),
        "unreachable PostgreSQL": (
            f"postgresql://carer:{PASSWORD}@127.0.0.1:{port}/carecall",
            [f"postgresql+psycopg://carer:***@127.0.0.1:{port}/carecall", "cannot connect", "refused"],
        ),
        "a file that is not a database": (
            f"sqlite:///{not_a_db}",
            [f"sqlite:///{not_a_db}", "cannot connect", "file is not a database"],
        ),
        "unsupported scheme": (
            f"mysql://carer:{PASSWORD}@db.example/carecall",
            ["mysql://carer:***@db.example/carecall", "does not work with 'mysql' databases"],
        ),
        "a folder that does not exist": (
            f"sqlite:///{tmp_path / 'nowhere' / 'carecall.db'}",
            ["cannot connect", f"the folder {tmp_path / 'nowhere'} does not exist"],
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["garbage", "unreachable PostgreSQL", "a file that is not a database", "unsupported scheme",
     "a folder that does not exist"],
)  # fmt: skip
def test_a_bad_database_is_one_line_naming_the_url_without_its_password(case: str, tmp_path: Path) -> None:
    url, expected = _bad_databases(tmp_path)[case]
    line = one_error_line(carecall(tmp_path, "db", "upgrade", CARECALL_DATABASE_URL=url))
    for part in expected:
        assert part in line, line
    assert PASSWORD not in line


# every command that touches the database or the configuration
COMMANDS = [
    ["db", "upgrade"],
    ["patients", "import", str(SAMPLE)],
    ["patients", "why", "X0000001", "--on", "2026-12-08"],
    ["patients", "show", "X0000001"],
    ["nurses", "generate", "2"],
    ["nurses", "list"],
    ["mailing", "record", "--theme", "diet", "--sent-on", "2026-12-07"],
    ["wave", "list"],
    ["wave", "plan", "1"],
    ["wave", "show", "1"],
    ["wave", "launch", "1"],
    ["wave", "report", "1"],
    ["scheduler", "run"],
    ["serve", "--worker", "dialer-9"],
    ["simulate", "--until", "2026-12-20"],
]


def test_every_command_fails_in_one_line_on_a_bad_config_or_database(tmp_path: Path) -> None:
    """In process (the same group handler the console script goes through, tested above),
    so that every command can be tried in seconds."""
    folder = _config(tmp_path, _replace("programme.toml", "busy_minutes = 120", "busy_minutes = -1"))
    url, _ = _bad_databases(tmp_path)["unreachable PostgreSQL"]
    runner = CliRunner(env={"CARECALL_LOG_FORMAT": "json", "COLUMNS": "80"})
    for env, expected in (
        ({"CARECALL_CONFIG_DIR": str(folder)}, "retry.busy_minutes"),
        ({"CARECALL_DATABASE_URL": url}, "cannot connect"),
    ):
        for command in COMMANDS:
            result = runner.invoke(app, command, env=env)
            assert result.exit_code == 2, (command, result.output)
            assert isinstance(result.exception, SystemExit), (command, result.exception)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (command, result.stderr)
            assert expected in lines[0] and PASSWORD not in lines[0], (command, lines[0])
            assert result.stdout == "", (command, result.stdout)


def test_the_demo_fails_in_one_line_on_a_bad_config_or_database_file(tmp_path: Path) -> None:
    demo = ["demo", "--patients", "10", "--nurses", "2", "--html", str(tmp_path / "r.html")]
    folder = _config(tmp_path, _replace("simulation.toml", "busy = 0.12", "busy = 0.9"))
    line = one_error_line(carecall(tmp_path, *demo, "--db", "d.db", CARECALL_CONFIG_DIR=str(folder)))
    assert "simulation.toml: results: busy + machine + failed exceed 1" in line, line

    line = one_error_line(carecall(tmp_path, *demo, "--db", str(tmp_path)))
    assert f"--db {tmp_path} is a folder" in line, line
