"""Logging for every carecall process: structlog, scrubbed of personal data.

Readable lines on a terminal, one JSON object per line otherwise (for the log
collector), ISO-8601 UTC timestamps.  Standard-library loggers (SQLAlchemy,
Alembic, APScheduler, uvicorn) go through the same pipeline, so the same
scrubbing applies to what libraries log.

Invariant 5 says no personal data in logs.  `scrub_personal_data` is the
last line of defence, run just before rendering: values under personal keys
(name, phone, birth_date...) are redacted whatever they are, and phone
numbers, dd/mm/yyyy dates and social-security numbers are masked inside any
string, including the message and tracebacks.  It cannot recognise a name
inside free text: log ids (patient_id), never people.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Words that make a key personal, matched against the key's parts
# ("first_name", "firstName", "patient.phone" all match).
_PERSONAL_WORDS = frozenset(
    {
        "name", "names", "firstname", "lastname", "surname", "fullname", "nom", "prenom",
        "phone", "phones", "mobile", "telephone", "tel", "number", "numbers", "msisdn",
        "birth", "birthdate", "birthday", "dob",
        "email", "mail", "address", "street",
        "nir", "ssn", "insee",
    }
)  # fmt: skip
# structlog's own keys: never redacted by key (their text is still scanned).
_STRUCTURAL_KEYS = frozenset({"event", "level", "timestamp", "logger", "exception", "stack"})

_SEP = r"[ .\-]?"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SQLAlchemy errors print the statement's parameters: patient rows.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: redacted]"),
    # French social-security number (NIR): 1 75 03 2A 123 456 78
    (
        re.compile(
            r"(?<![\w+])[12]"
            + _SEP
            + r"\d{2}"
            + _SEP
            + r"\d{2}"
            + _SEP
            + r"(?:\d{2}|2[AB])"
            + _SEP
            + r"\d{3}"
            + _SEP
            + r"\d{3}"
            + _SEP
            + r"\d{2}(?!\d)"
        ),
        "[nir]",
    ),
    # French numbers: +33 1 99 00 12 34, 0033 (0)1..., 01 99 00 12 34, 01.99.00.12.34
    (
        re.compile(
            r"(?<![\w+])(?:(?:\+|00)33" + _SEP + r"(?:\(0\)" + _SEP + r")?|0)[1-9]"
            r"(?:" + _SEP + r"\d{2}){4}(?!\d)"
        ),
        "[phone]",
    ),
    # Any other international number: +262 692 12 34 56, +4915112345678
    (re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:" + _SEP + r"\d){6,12}(?!\d)"), "[phone]"),
    # dd/mm/yyyy (also dd.mm.yyyy, dd-mm-yyyy): how birth dates are written in France
    (
        re.compile(r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])([/.\-])(?:0?[1-9]|1[0-2])\1(?:19|20)\d{2}(?!\d)"),
        "[date]",
    ),
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


def is_personal_key(key: object) -> bool:
    """Whether a key names personal data ("phone", "first_name", "patientBirthDate"...)."""
    if not isinstance(key, str) or key in _STRUCTURAL_KEYS:
        return False
    words = _SPLIT.split(_CAMEL.sub("_", key).lower())
    return any(w in _PERSONAL_WORDS for w in words) or key.lower() in _PERSONAL_WORDS


def scrub_text(text: str) -> str:
    """Mask phone numbers, dd/mm/yyyy dates and NIRs inside free text."""
    for pattern, mask in _PATTERNS:
        text = pattern.sub(mask, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if depth > 8:  # pathological nesting: say nothing
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_personal_key(k) and v is not None else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    return value


def scrub_personal_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact personal keys, mask phones/dates in every string.

    Must run after `format_exc_info` (so tracebacks are scanned) and before
    the renderer.  Over-masking is accepted: leaking is not.
    """
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # ProcessorFormatter's _record etc.
            continue
        if is_personal_key(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(value)
    return event_dict


LogFormat = Literal["auto", "console", "json"]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_HANDLER_NAME = "carecall"  # configuring again replaces our handler, never duplicates it


_CHATTY_LIBRARIES = ("alembic", "apscheduler", "faker", "httpx", "uvicorn")
# SQLAlchemy logs fetched rows (names, birth dates) at debug; the Twilio SDK logs every request's
# parameters (the patient's number) at info: never below warning.
_NEVER_BELOW_WARNING = ("sqlalchemy", "twilio")


def configure_logging(
    fmt: LogFormat | str = "auto",
    level: str | int = "info",
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and the stdlib root logger for this process. Idempotent.

    fmt: "console" (human-readable), "json" (one object a line), or "auto":
    console when `stream` is a terminal, JSON otherwise.  Logs go to stderr
    by default, keeping stdout for the CLI's output.
    """
    stream = stream if stream is not None else sys.stderr
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"log format must be auto, console or json, not {fmt!r}")
    if fmt == "auto":
        fmt = "console" if _is_tty(stream) else "json"
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if fmt == "console":
        # Plain tracebacks: rich's would print local variables, i.e. patient data.
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(stream), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # text, so the scrubber sees it
            scrub_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Libraries chat at info (Alembic's plugins on every start): only their warnings, unless debugging.
    library_level = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    for name in _NEVER_BELOW_WARNING:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging (CLI option, tests) must take effect.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger; bind ids (patient_id, task_id), never personal fields."""
    return structlog.stdlib.get_logger(name, **initial)


__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "is_personal_key",
    "scrub_personal_data",
    "scrub_text",
]
