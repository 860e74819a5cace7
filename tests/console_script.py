"""Running the installed `carecall` console script as a user would, and reading its
one-line errors (tests of the command line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CARECALL = Path(sys.executable).with_name("carecall")


def carecall(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`carecall ARGS` in `cwd`, on a SQLite file there unless `env` says otherwise; the
    caller's CARECALL_* variables are not inherited."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARECALL_")}
    defaults = {
        "CARECALL_DATABASE_URL": f"sqlite:///{cwd / 'carecall.db'}",
        "CARECALL_LOG_FORMAT": "json",
        "COLUMNS": "80",  # a long message must still be one line
    }
    environ.update({**defaults, **env})
    return subprocess.run(
        [str(CARECALL), *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The failure's only line, after checking it is all the output: exit code 2, one
    `error: ` line on stderr, nothing on stdout, no traceback."""
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert proc.returncode == 2, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert proc.stdout.strip() == "", shown
    assert lines[0].startswith("error: "), shown
    return lines[0]
