"""`carecall users add | list | unlock`: in process (CliRunner) and as the console script, the
password asked twice without echo or read from standard input."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from console_script import CARECALL, one_error_line
from factories import dispose, make_ctx
from sqlalchemy import select
from typer.testing import CliRunner, Result

from campaign.clock import SystemClock
from campaign.model import AuditEvent
from dialer.accounts import authenticate
from dialer.accounts.model import UserAccount
from dialer.cli import app

SECRET = "un mot de passe assez long"


pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _run(url: str, *args: str, stdin: str | None = None) -> Result:
    runner = CliRunner(env={"CARECALL_DATABASE_URL": url, "CARECALL_LOG_FORMAT": "json", "COLUMNS": "200"})
    return runner.invoke(app, list(args), input=stdin)


def _accounts(url: str) -> list[UserAccount]:
    ctx, _ = make_ctx(url, SystemClock().now())
    with ctx.sessions() as s:
        rows = list(s.execute(select(UserAccount)).scalars())
    dispose(ctx)
    return rows


def test_a_supervisor_account_with_the_password_asked_twice(url: str) -> None:
    result = _run(url, "users", "add", "Chef", "--role", "supervisor", stdin=f"{SECRET}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "account chef added (supervisor)" in result.stdout
    assert SECRET not in result.output, "no echo"
    (account,) = _accounts(url)
    assert account.username == "chef" and account.role == "supervisor" and account.nurse_id is None
    assert account.password_hash.startswith("$argon2id$") and SECRET not in account.password_hash


def test_two_different_passwords_create_nothing(url: str) -> None:
    result = _run(url, "users", "add", "chef", "--role", "supervisor", stdin=f"{SECRET}\nanother one!!\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert _accounts(url) == []


def test_a_nurse_account_names_an_existing_nurse(url: str) -> None:
    assert _run(url, "nurses", "generate", "2").exit_code == 0
    missing = _run(url, "users", "add", "ide", "--role", "nurse", "--password-stdin", stdin=SECRET)
    assert missing.exit_code == 2 and "a nurse account needs --nurse CODE" in missing.stderr
    unknown = _run(
        url, "users", "add", "ide", "--role", "nurse", "--nurse", "X99", "--password-stdin", stdin=SECRET
    )
    assert unknown.exit_code == 2 and "--nurse 'X99': no nurse with that code" in unknown.stderr
    ok = _run(
        url, "users", "add", "ide", "--role", "nurse", "--nurse", "N001", "--password-stdin", stdin=SECRET
    )
    assert ok.exit_code == 0, ok.output
    twice = _run(
        url, "users", "add", "ide2", "--role", "nurse", "--nurse", "N001", "--password-stdin", stdin=SECRET
    )
    assert twice.exit_code == 2 and "that nurse has an account already" in twice.stderr
    taken = _run(url, "users", "add", "IDE", "--role", "supervisor", "--password-stdin", stdin=SECRET)
    assert taken.exit_code == 2 and "user name 'ide' is taken" in taken.stderr
    (account,) = _accounts(url)
    assert account.role == "nurse" and account.nurse_id is not None


@pytest.mark.parametrize(
    ("args", "stdin", "error"),
    [
        (["bad name!", "--role", "supervisor"], SECRET, "user name 'bad name!'"),
        (["chef", "--role", "supervisor"], "short", "at least 10 characters"),
        (["chef", "--role", "supervisor", "--nurse", "N001"], SECRET, "--nurse is for nurse accounts only"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(url: str, args: list[str], stdin: str, error: str) -> None:
    result = _run(url, "users", "add", *args, "--password-stdin", stdin=stdin)
    assert result.exit_code == 2 and error in result.stderr, result.output
    assert stdin not in result.stderr or stdin == SECRET
    assert _accounts(url) == []


def test_list_and_unlock(url: str) -> None:
    assert (
        _run(url, "users", "add", "chef", "--role", "supervisor", "--password-stdin", stdin=SECRET).exit_code
        == 0
    )
    ctx, _ = make_ctx(url, SystemClock().now())
    for _ in range(ctx.policy.web.lock_after_failures):
        authenticate(ctx, ctx.policy.web, "chef", "wrong password", SystemClock().now())
    listed = _run(url, "users", "list")
    assert "chef" in listed.stdout and "locked until" in listed.stdout
    unlocked = _run(url, "users", "unlock", "chef")
    assert unlocked.exit_code == 0 and "account chef unlocked" in unlocked.stdout
    assert authenticate(ctx, ctx.policy.web, "chef", SECRET, SystemClock().now()).outcome == "ok"
    with ctx.sessions() as s:
        actions = list(s.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())
    dispose(ctx)
    assert actions[0] == "account.add" and "login.locked" in actions and "account.unlock" in actions
    assert _run(url, "users", "unlock", "nobody").exit_code == 2


def test_the_console_script_reads_the_password_from_stdin_and_hashes_with_argon2id(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARECALL_")}
    environ |= {"CARECALL_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "CARECALL_LOG_FORMAT": "json"}

    def carecall(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CARECALL), *args], input=stdin, env=environ, cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    done = carecall("users", "add", "chef", "--role", "supervisor", "--password-stdin", stdin=SECRET + "\n")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    (account,) = _accounts(f"sqlite:///{tmp_path / 'c.db'}")
    # argon2-cffi's defaults, RFC 9106's low-memory profile
    assert account.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    ctx, _ = make_ctx(f"sqlite:///{tmp_path / 'c.db'}", SystemClock().now() + timedelta(seconds=1))
    assert authenticate(ctx, ctx.policy.web, "chef", SECRET, ctx.clock.now()).outcome == "ok"
    dispose(ctx)
    error = one_error_line(
        carecall("users", "add", "xy", "--role", "nurse", "--password-stdin", stdin=SECRET)
    )
    assert "needs --nurse CODE" in error
