"""Dates and segments as a supervisor types them, through the installed `carecall` console
script: every date option takes the import file's forms, a wrong date or segment is one
line naming the option (exit 2), and `mailing record --late` plans a late mailing's wave
from today rather than on days gone."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from console_script import carecall, one_error_line

from campaign import calendar as cal
from campaign.clock import SystemClock


def _today() -> date:
    """Today in Paris, as `mailing record` reads it (the CLI runs on the wall clock)."""
    return cal.local_time_of(SystemClock().now(), "Europe/Paris").date()


@pytest.mark.parametrize(
    ("sent_on", "expected"),
    [
        ("9999-12-31", "--sent-on 9999-12-31 is more than 366 days ahead of today"),
        ("0001-01-01", "--sent-on 0001-01-01 is more than 90 days before today"),
        ("2026-02-30", "--sent-on '2026-02-30': no such calendar date"),
        ("31/04/2026", "--sent-on '31/04/2026': no such calendar date"),
        ("next monday", "--sent-on 'next monday': not a date"),
    ],
)
def test_a_wrong_sending_date_is_one_line(sent_on: str, expected: str, tmp_path: Path) -> None:
    line = one_error_line(carecall(tmp_path, "mailing", "record", "--theme", "diet", "--sent-on", sent_on))
    assert expected in line, line


@pytest.mark.parametrize("segment", [";;;", "", " ; "])
def test_a_segment_that_selects_nobody_is_refused(segment: str, tmp_path: Path) -> None:
    sent_on = (_today() + timedelta(days=7)).isoformat()
    line = one_error_line(
        carecall(tmp_path, "mailing", "record", "--theme", "diet", "--sent-on", sent_on, "--segment", segment)
    )
    assert "selects nobody" in line, line


def test_late_plans_the_wave_from_today(tmp_path: Path) -> None:
    today = _today()
    sent_on = (today - timedelta(days=20)).strftime("%d/%m/%Y")
    record = ("mailing", "record", "--theme", "diet", "--sent-on", sent_on)

    line = one_error_line(carecall(tmp_path, *record))
    assert "would have started on" in line and "before today" in line, line
    assert "--late" in line, "the line says how to record it anyway"

    proc = carecall(tmp_path, *record, "--late")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"calls from (\S+) to (\S+);", " ".join(proc.stdout.split()))
    assert found, proc.stdout
    start, end = date.fromisoformat(found[1]), date.fromisoformat(found[2])
    # the next working day at the latest (a weekend and a holiday: four days)
    assert today <= start <= today + timedelta(days=4), (today, start)
    assert end >= start + timedelta(days=14), "the wave keeps its whole length (15 working days)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("patients", "why", "X0000001", "--on", "31/02/2026"), "--on '31/02/2026': no such calendar date"),
        (("simulate", "--until", "soon"), "--until 'soon': not a date"),
        (("simulate", "--start", "12/31/2026", "--until", "2027-01-10"), "--start '12/31/2026': no such"),
        (("simulate", "--start", "10.12.2026", "--until", "01-12-2026"), "must be after --start 2026-12-10"),
    ],
)
def test_a_wrong_date_option_is_one_line_naming_it(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    line = one_error_line(carecall(tmp_path, *args))
    assert expected in line, line


def test_date_options_take_the_import_file_forms(tmp_path: Path) -> None:
    proc = carecall(tmp_path, "simulate", "--start", "07/12/2026", "--until", "08-12-2026")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from 2026-12-07 to 2026-12-08" in proc.stdout
