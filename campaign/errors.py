"""Errors of carecall.

    CarecallError
     ├── ConfigError        policy or settings file is wrong (names file, key, problem)
     ├── ImportRowError     one CSV row is wrong (names line, field, reason)
     ├── NotFound           an id given by a user does not exist
     ├── InvalidArgument    a value given on the command line or a form is wrong (names which)
     ├── DatabaseUnavailable the database cannot be opened or reached (names the URL, no password)
     ├── InvalidTransition  a wave or task cannot go to the asked state
     │    └── PatientInCall the patient is on another call (an incoming call cannot start)
     ├── BackendError       the telephony backend failed
     └── ClaimLost          another worker took the task first

Messages never contain personal data (names, numbers, birth dates).
"""

from __future__ import annotations


class CarecallError(Exception):
    """carecall failed."""


class ConfigError(CarecallError):
    """The programme's configuration is invalid."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}")


class ImportRowError(CarecallError):
    """A row of an import file is invalid."""

    def __init__(self, line: int, field: str, reason: str) -> None:
        self.line, self.field, self.reason = line, field, reason
        super().__init__(f"line {line}: {field}: {reason}")


class NotFound(CarecallError):
    """No such record."""


class InvalidArgument(CarecallError):
    """A value given by a user is invalid."""


class DatabaseUnavailable(CarecallError):
    """The database cannot be opened or reached."""


class InvalidTransition(CarecallError):
    """That state change is not allowed."""


class PatientInCall(InvalidTransition):
    """The patient is already on a call."""


class BackendError(CarecallError):
    """The telephony backend failed."""


class ClaimLost(CarecallError):
    """Another worker claimed the task first."""
