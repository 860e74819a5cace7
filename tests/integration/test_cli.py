"""The `carecall` command as a supervisor types it, on a real database.

In-process through typer's CliRunner for the supervisor's commands, each run
twice: with CARECALL_DATABASE_URL on a fresh SQLite file and on a fresh
PostgreSQL database (the CLI migrates either itself).  A real subprocess for
`carecall demo`, whose stdout and stderr must not carry one piece of any
generated patient's personal data; the demo builds its own SQLite file (--db),
so it runs on SQLite only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from factories import add_nurse, add_patient, dispose, fiction_phone, make_ctx, paris, running_wave
from sqlalchemy import text as sql
from typer.testing import CliRunner, Result

from campaign import services
from campaign.db import make_engine
from campaign.states import OutcomeCode
from dialer.cli import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "config/samples/patients.sample.csv"
BROKEN = "tests/data/patients-broken.csv"
CARECALL = Path(sys.executable).with_name("carecall")


pytestmark = pytest.mark.usefixtures("restore_logging")


def _runner(db_url: str, level: str = "info"):  # type: ignore[no-untyped-def]
    runner = CliRunner(
        env={
            "CARECALL_DATABASE_URL": db_url,
            "CARECALL_LOG_FORMAT": "json",
            "CARECALL_ACTOR": "supervisor:test",
            "CARECALL_LOG_LEVEL": level,
            "COLUMNS": "200",
        }
    )
    logs: list[str] = []

    def run(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        logs.append(result.stderr)
        return result

    run.logs = logs  # type: ignore[attr-defined]
    run.url = db_url  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)
    return _runner(db_url)


def _query(url: str, query: str, **params: object) -> list[tuple[object, ...]]:
    """Read the database the way any client would, whichever the backend."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sql(query), params)]
    finally:
        engine.dispose()


def _flat(text: str) -> str:
    """Rich tables and wrapping aside: one line, single spaces."""
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩┠┨━─┳┻╇╈┯┷└┘┌┐├┤┼╭╮╰╯]", " ", text).split())


def _row(text: str, *cells: str) -> bool:
    return any(all(c in line for c in cells) for line in text.splitlines())


def test_supervisor_session(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("db", "upgrade")
    assert r.exit_code == 0, r.output
    assert "database at revision" in r.stdout

    r = cli("nurses", "generate", "3")
    assert r.exit_code == 0, r.output
    assert "added 3 nurses" in r.stdout

    r = cli("patients", "import", SAMPLE)
    assert r.exit_code == 0, r.output
    rows = sum(1 for line in (ROOT / SAMPLE).read_text(encoding="utf-8-sig").splitlines()[1:] if line.strip())
    flat = _flat(r.stdout)
    assert "rows imported updated unchanged rejected" in flat
    assert f"{rows} {rows} 0 0 0" in flat, flat

    r = cli("patients", "import", SAMPLE)
    assert r.exit_code == 0, r.output
    assert f"{rows} 0 0 {rows} 0" in _flat(r.stdout), "a re-import imports and updates nothing"

    r = cli("patients", "import", BROKEN)
    assert r.exit_code == 1, r.output
    flat = _flat(r.stdout)
    assert "Rejected rows" in flat
    expected = {
        3: "phone",
        4: "birth_date",
        5: "pathologies",
        6: "tier",
        7: "member_id",
        8: "birth_date",
        10: "member_id",
    }
    for line, field in expected.items():
        assert _row(r.stdout, f" {line} ", field), f"line {line} ({field}) not listed:\n{r.stdout}"
    assert "duplicate of line 2" in flat
    assert "10 3 0 0 7" in flat, "the good rows of the broken file were kept"
    assert "Traceback" not in r.output

    r = cli("mailing", "record", "--theme", "diet", "--sent-on", "07/12/2026")  # as in the import file
    assert r.exit_code == 0, r.output
    m = re.search(r"mailing (\d+): (\d+) patients; letters arrive 2026-12-10; wave (\d+)", _flat(r.stdout))
    assert m, r.stdout
    wave = m[3]

    r = cli("wave", "plan", wave)
    assert r.exit_code == 0, r.output
    assert re.search(rf"wave {wave}: \d+ tasks planned", r.stdout)

    r = cli("wave", "show", wave)
    assert r.exit_code == 0, r.output
    flat = _flat(r.stdout)
    assert f"Wave {wave} — theme diet, status planned" in flat
    assert "day high medium low nurse minutes capacity" in flat
    days = re.findall(r"^\S*\s*(2026-12-\d\d)\s", r.stdout, re.MULTILINE)
    assert "2026-12-10" in days and "2026-12-28" in days
    assert "2026-12-25" not in days and "2026-12-13" not in days, "no row for Christmas nor a Sunday"
    assert f"nothing is dialed until carecall wave launch {wave}" in flat

    r = cli("wave", "launch", wave)
    assert r.exit_code == 0, r.output
    assert f"wave {wave} is now running" in r.stdout

    r = cli("wave", "plan", wave)
    assert r.exit_code == 2
    assert f"wave {wave} is running; only a scheduled or planned wave can be planned" in _flat(r.output)
    assert "Traceback" not in r.output

    member = "100200301"
    r = cli("patient", "why", member, "--on", "25.12.2026")
    assert r.exit_code == 0, r.output
    flat = _flat(r.stdout)
    assert f"{member} on 2026-12-25: not called on this day: calendar" in flat
    assert "holiday where the patient lives (Noël" in flat

    # the reads of a patient's file by a person are in the audit trail, with the CLI's actor
    r = cli("patients", "show", member)
    assert r.exit_code == 0, r.output
    actions = _query(
        cli.url,
        "SELECT action, actor FROM audit_event WHERE patient_id = "
        "(SELECT id FROM patient WHERE member_id = :member) ORDER BY id",
        member=member,
    )
    assert ("patient.why", "supervisor:test") in actions
    assert ("patient.read", "supervisor:test") in actions
    assert "Camille" not in r.stdout and member in r.stdout, "the file shown is the patient's"

    # what went to the logs (stderr, JSON) holds no patient's personal data
    _assert_no_personal_data_in_logs(cli)


def _assert_no_personal_data_in_logs(cli) -> None:  # type: ignore[no-untyped-def]
    logs = "\n".join(cli.logs)
    assert '"event"' in logs, "the commands did log"
    names, phones, births, members = _personal_data(cli.url)
    assert not [n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", logs)]
    assert not _phones_in(logs) & phones
    assert not [b for b in births if b in logs]
    assert not [m for m in members if m in logs]


def test_debug_logs_carry_no_personal_data(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cli = _runner(db_url, level="debug")
    assert cli("db", "upgrade").exit_code == 0
    assert cli("nurses", "generate", "3").exit_code == 0
    assert cli("patients", "import", SAMPLE).exit_code == 0
    assert cli("patients", "show", "100200301").exit_code == 0
    _assert_no_personal_data_in_logs(cli)


def test_clear_errors_without_tracebacks(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("db", "upgrade").exit_code == 0

    r = cli("mailing", "record", "--theme", "astrology", "--sent-on", "2026-12-07")
    assert r.exit_code == 2
    flat = _flat(r.output)
    assert "error: theme 'astrology' is not in config/themes.toml" in flat
    assert "diet" in flat, "the known themes are named"
    assert ("Traceback" not in r.output and r.exception is None) or isinstance(r.exception, SystemExit)

    r = cli("mailing", "record", "--theme", "diet", "--sent-on", "2026-12-07", "--segment", "tier=urgent")
    assert r.exit_code == 2
    assert "unknown tier 'urgent'" in _flat(r.output)

    r = cli("mailing", "record", "--theme", "diet", "--sent-on", "07/12/26")
    assert r.exit_code == 2
    assert "error: --sent-on '07/12/26': year must have four digits; give a date like 2026-12-07" in r.stderr

    r = cli("wave", "show", "99")
    assert r.exit_code == 2
    assert "wave 99 does not exist" in _flat(r.output)

    r = cli("patient", "why", "NOBODY1")
    assert r.exit_code == 2
    assert "no patient with member id 'NOBODY1'" in _flat(r.output)

    for out in (r.output,):
        assert "Traceback" not in out


# ---------------------------------------------------------------- the demo, in a real process


def _personal_data(url: str) -> tuple[list[str], set[str], list[str], list[str]]:
    """Names, phone numbers (national significant digits), birth dates and member ids."""
    rows = _query(url, "SELECT first_name, last_name, phone, phone_alt, birth_date, member_id FROM patient")
    names, phones, births, members = [], set(), [], []
    for first, last, phone, alt, birth, member in rows:
        names += [first, last, f"{first} {last}"]
        for number in (phone, alt):
            if number:
                assert number.startswith("+33")
                phones.add(number.removeprefix("+33"))
        d = date.fromisoformat(str(birth)[:10])
        births += [d.isoformat(), d.strftime("%d/%m/%Y"), d.strftime("%d.%m.%Y"), d.strftime("%d-%m-%Y")]
        members.append(member)
    return names, phones, births, members


_PHONE_LIKE = re.compile(r"(?:\+\s?33|0033|\b0)?\s?[1-9](?:[\s.\-]?\d\d){4}\b")


def _phones_in(text: str) -> set[str]:
    found = set()
    for m in _PHONE_LIKE.finditer(text):
        digits = re.sub(r"\D", "", m[0])
        found.add(digits[-9:])
    return found


@pytest.mark.slow
def test_demo_figures_and_no_personal_data_in_its_output(tmp_path: Path) -> None:
    db, html, out = tmp_path / "demo.db", tmp_path / "r.html", tmp_path / "out.json"
    env = {**os.environ, "CARECALL_LOG_FORMAT": "json", "COLUMNS": "160"}
    env.pop("CARECALL_DATABASE_URL", None)
    proc = subprocess.run(
        [
            str(CARECALL),
            "demo",
            "--patients",
            "200",
            "--nurses",
            "3",
            "--json",
            str(out),
            "--db",
            str(db),
            "--html",
            str(html),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr

    figures = json.loads(out.read_text(encoding="utf-8"))
    for key in (
        "patients",
        "tasks",
        "attempts",
        "reached",
        "unreachable",
        "calls_outside_window",
        "double_dials",
        "open_tasks",
        "by_tier",
        "nurse_occupancy",
    ):
        assert key in figures, key
    assert figures["patients"] > 50 and figures["attempts"] >= figures["reached"] > 0
    assert figures["calls_outside_window"] == 0
    assert figures["double_dials"] == 0
    assert figures["open_tasks"] == 0
    assert set(figures["by_tier"]) == {"high", "medium", "low"}
    assert len(figures["nurse_occupancy"]) == 3
    assert figures["invariants"]["ok"] is True
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")

    names, phones, births, members = _personal_data(f"sqlite:///{db}")
    assert len(phones) >= 200
    for stream_name, text in (
        ("stdout", proc.stdout),
        ("stderr", proc.stderr),
        ("report.json", out.read_text(encoding="utf-8")),
        ("report.html", html.read_text(encoding="utf-8")),
    ):
        leaked_names = sorted({n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)})
        assert leaked_names == [], f"names in {stream_name}: {leaked_names[:5]}"
        leaked_phones = sorted(_phones_in(text) & phones)
        assert leaked_phones == [], f"phone numbers in {stream_name}: {len(leaked_phones)}"
        for national in list(phones)[:50]:
            e164, digits = "+33" + national, "0" + national
            spaced = " ".join([digits[:2], digits[2:4], digits[4:6], digits[6:8], digits[8:]])
            assert e164 not in text and digits not in text and spaced not in text
        leaked_births = sorted({b for b in births if b in text})
        assert leaked_births == [], f"birth dates in {stream_name}: {leaked_births[:5]}"
        leaked_members = sorted({m for m in members if m in text})
        assert leaked_members == [], f"member (insurance) numbers in {stream_name}: {leaked_members[:5]}"


# ---------------------------------------------------------------- patients to fix


def test_patients_to_fix_lists_those_with_no_number_left(cli) -> None:  # type: ignore[no-untyped-def]
    """A patient whose only number a nurse flagged wrong is listed; one with a second,
    good number is not (the dialer tries that one)."""
    sent_on, day = date(2026, 12, 7), date(2026, 12, 14)
    ctx, clock = make_ctx(cli.url, paris(sent_on, 8))
    try:
        nurse = add_nurse(ctx)
        only = add_patient(ctx)
        two = add_patient(ctx, phone_alt=fiction_phone(9876, "+3353010"))
        info = running_wave(ctx, clock, "diet", sent_on)
        clock.advance_to(paris(day, 10))
        _all_due(cli.url, info.wave_id, clock.now())
        for patient in (only, two):
            ((task,),) = _query(cli.url, "SELECT id FROM call_task WHERE patient_id = :p", p=patient.id)
            claimed = services.claim_and_start(ctx, int(task), nurse, "desk")
            assert isinstance(claimed, services.Claimed), claimed
            services.mark_answered(ctx, claimed.attempt_id)
            services.record_outcome(ctx, claimed.attempt_id, OutcomeCode.wrong_number, nurse)
    finally:
        dispose(ctx)

    r = cli("patients", "to-fix")
    assert r.exit_code == 0, r.output
    assert _row(r.stdout, only.member_id, "medium", "enrolled", " 1 ", "2026-12-14"), r.stdout
    assert two.member_id not in r.stdout
    assert "1 patient to fix" in r.stdout
    assert ("patients.to_fix", "supervisor:test") in _query(cli.url, "SELECT action, actor FROM audit_event")


def _all_due(url: str, wave_id: int, at: datetime) -> None:
    """The wave's tasks due now, whatever day planning gave them."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sql("UPDATE call_task SET not_before = :at WHERE wave_id = :w"), {"at": at, "w": wave_id}
            )
    finally:
        engine.dispose()


def test_a_nurse_phone_is_set_listed_and_cleared(cli, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Real telephony keeps her phone in her conference: a supervisor sets it per nurse."""
    assert cli("db", "upgrade").exit_code == 0
    assert cli("nurses", "generate", "1").exit_code == 0
    ((code,),) = _query(db_url, "select code from nurse")
    assert isinstance(code, str)
    r = cli("nurses", "phone", code, "nurse-ide-01")
    assert r.exit_code == 0, r.output
    assert _row(cli("nurses", "list").stdout, code, "nurse-ide-01")
    r = cli("nurses", "phone", "NOBODY", "x")
    assert r.exit_code == 2 and "no nurse with code 'NOBODY'" in r.output
    r = cli("nurses", "phone", code)
    assert r.exit_code == 2 and "--clear" in r.output
    assert cli("nurses", "phone", code, "--clear").exit_code == 0
    assert not _row(cli("nurses", "list").stdout, code, "nurse-ide-01")
    assert _query(db_url, "select phone_endpoint from nurse") == [(None,)]
