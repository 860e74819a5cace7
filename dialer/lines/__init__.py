"""The dialer's own record of each call's line: the backend's call id and how far the call got.

Telephony ids stay out of the programme's tables: a `call_line` row is keyed to
its attempt, so an event or webhook that reaches any process, or arrives after
a restart, finds its attempt, and a crashed process's calls still alive on
the switch can be hung up. `call_line_event` carries events that reached a
process other than the call's owner to the owner (an inbox in the database).
"""

from dialer.lines.model import CallLine, CallLineEvent
from dialer.lines.store import (
    LineRecord,
    end_lines,
    events_for_worker,
    forward_events,
    lines_of,
    open_lines,
    orphan_lines,
    record_lines,
)

__all__ = [
    "CallLine",
    "CallLineEvent",
    "LineRecord",
    "end_lines",
    "events_for_worker",
    "forward_events",
    "lines_of",
    "open_lines",
    "orphan_lines",
    "record_lines",
]
