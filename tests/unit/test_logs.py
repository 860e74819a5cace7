"""Logs never carry personal data (invariant 5), and render as asked."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import structlog

from campaign.logs import (
    REDACTED,
    configure_logging,
    get_logger,
    is_personal_key,
    scrub_personal_data,
    scrub_text,
)

FICTION_PHONES = [
    "+33199001234",
    "+33 1 99 00 12 34",
    "+33 (0)1 99 00 12 34",
    "0033 2 61 91 12 34",
    "01 99 00 12 34",
    "01.99.00.12.34",
    "01-99-00-12-34",
    "0199001234",
    "06 39 98 12 34",
    "+262 692 12 34 56",
    "+590690123456",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def scrub(**event: Any) -> dict[str, Any]:
    return dict(scrub_personal_data(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "first_name",
        "last_name",
        "phone",
        "phone_alt",
        "number",
        "birth_date",
        "email",
        "address",
        "firstName",
        "patientBirthDate",
        "display_name",
        "nir",
    ],
)
def test_personal_keys_are_redacted_whatever_the_value(key: str) -> None:
    for value in ["Jeanne Martin", 42, date(1950, 3, 12), ["a", "b"], {"x": 1}]:
        assert scrub(**{key: value})[key] == REDACTED


@pytest.mark.parametrize(
    "key", ["patient_id", "task_id", "tier", "status", "attempts", "event", "level", "timestamp"]
)
def test_ids_and_structure_keys_are_kept(key: str) -> None:
    assert not is_personal_key(key)
    assert scrub(**{key: "high"})[key] == "high"


def test_none_under_a_personal_key_stays_visible() -> None:
    """'phone=None' says the number is missing, and leaks nothing."""
    assert scrub(phone=None)["phone"] is None


@pytest.mark.parametrize("phone", FICTION_PHONES)
def test_phone_numbers_are_masked_inside_any_string(phone: str) -> None:
    out = scrub(event=f"dialing {phone} now", detail=f"[{phone}]")
    assert out["event"] == "dialing [phone] now"
    assert out["detail"] == "[[phone]]"


@pytest.mark.parametrize("text", ["born 12/03/1950", "né le 1/3/1950", "dob 31.12.1949"])
def test_day_month_year_dates_are_masked(text: str) -> None:
    out = scrub_text(text)
    assert "[date]" in out
    assert not re.search(r"\d{4}", out)


def test_social_security_numbers_are_masked() -> None:
    assert scrub_text("nir 1 75 03 2A 123 456 78 ok") == "nir [nir] ok"
    assert scrub_text("nir 285037512345612") == "nir [nir]"


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-12T09:30:00+00:00",  # ISO timestamps are everywhere, and not personal
        "wave 12 planned 340 tasks on 2025-03-12",
        "claimed task 123456 lease 30s",
        "retry in 00:15:00",
        "took 0.25 s",
    ],
)
def test_ordinary_operational_text_is_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_nested_values_are_scrubbed() -> None:
    out = scrub(row={"line": 3, "fields": {"last_name": "Martin", "note": "call 0199001234"}})
    assert out["row"] == {"line": 3, "fields": {"last_name": REDACTED, "note": "call [phone]"}}
    assert scrub(numbers_tried=None, items=("0199001234", 5))["items"] == ["[phone]", 5]


def test_sqlalchemy_error_parameters_are_dropped() -> None:
    text = "(IntegrityError) UNIQUE failed\n[SQL: INSERT ...]\n[parameters: ('Jeanne', 'x')]\n(Bg)"
    out = scrub_text(text)
    assert "Jeanne" not in out and "[parameters: redacted]" in out and out.endswith("(Bg)")


def _json_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_output_is_scrubbed_and_timestamped_in_utc() -> None:
    buf = io.StringIO()
    configure_logging("json", stream=buf)
    get_logger("carecall.test").info(
        "reached 01 99 00 12 34", patient_id=7, phone="+33199001234", first_name="Jeanne"
    )
    (line,) = _json_lines(buf)
    assert line["event"] == "reached [phone]"
    assert line["patient_id"] == 7
    assert line["phone"] == line["first_name"] == REDACTED
    assert line["level"] == "info" and line["logger"] == "carecall.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])
    assert "0199" not in buf.getvalue() and "Jeanne" not in buf.getvalue()


def test_tracebacks_are_scrubbed() -> None:
    buf = io.StringIO()
    configure_logging("json", stream=buf)
    try:
        raise ValueError("cannot parse 01 99 00 12 34 for patient born 12/03/1950")
    except ValueError:
        get_logger().exception("import failed")
    (line,) = _json_lines(buf)
    assert "ValueError: cannot parse [phone] for patient born [date]" in line["exception"]


def test_stdlib_loggers_go_through_the_same_pipeline() -> None:
    buf = io.StringIO()
    configure_logging("json", level="warning", stream=buf)
    logging.getLogger("sqlalchemy.engine").warning("row %s", "+33 1 99 00 12 34")
    logging.getLogger("apscheduler").info("not shown at warning level")
    get_logger().info("not shown either")
    (line,) = _json_lines(buf)
    assert line == {**line, "event": "row [phone]", "logger": "sqlalchemy.engine", "level": "warning"}


def test_console_output_is_human_readable_and_scrubbed() -> None:
    buf = io.StringIO()
    configure_logging("console", stream=buf)
    get_logger().info("wave planned", wave_id=3, phone="0199001234")
    out = buf.getvalue()
    assert "wave planned" in out and "wave_id=3" in out
    assert "0199001234" not in out and REDACTED in out
    assert not out.lstrip().startswith("{")
    assert "\x1b[" not in out  # no colours when not on a terminal


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    buf = io.StringIO()
    configure_logging("auto", stream=buf)
    get_logger().info("hello")
    assert _json_lines(buf)[0]["event"] == "hello"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    configure_logging("auto", stream=tty)
    get_logger().info("hello")
    assert "hello" in tty.getvalue() and not tty.getvalue().lstrip().startswith("{")


def test_configuring_twice_does_not_duplicate_lines() -> None:
    buf = io.StringIO()
    configure_logging("json", stream=io.StringIO())
    configure_logging("json", stream=buf)
    get_logger().info("once")
    assert len(_json_lines(buf)) == 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", level="loud")


@pytest.mark.parametrize("level", ["debug", "info"])
def test_the_twilio_sdk_never_logs_a_request_s_parameters(level: str) -> None:
    """The SDK logs every request's parameters (To: the patient's number) at info, URL-encoded
    where the scrubber cannot see a number: its logger stays at warning whatever the level."""
    from twilio.http.http_client import TwilioHttpClient

    buf = io.StringIO()
    configure_logging("json", level=level, stream=buf)
    TwilioHttpClient().log_request(
        {"method": "POST", "url": "https://api.twilio.com/x", "params": {"To": "+33261910001"}, "headers": {}}
    )
    assert "261910001" not in buf.getvalue()
