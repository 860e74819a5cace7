"""Member ids: the one stored form of an id, and the ids an import has met.

The insurer's member id is the key of a patient. People type it in any case and
with spaces, and Excel drops its leading zeros: 'hx 0002' and 'HX0002' are one
patient; '0012345' and '12345' are probably one person, and the import refuses a
new one like a known one unless the supervisor confirms. Pure: no database.
"""

from __future__ import annotations

__all__ = ["SIMILAR_ID", "MemberIds", "canonical_member_id", "member_key"]


def canonical_member_id(text: str) -> str:
    """A member id as stored: upper case, no spaces ('hx 0002' and 'HX0002' are one patient)."""
    return "".join(text.split()).upper()


def member_key(member_id: str) -> str:
    """The member id without its leading zeros, which Excel drops: '0012345' and '12345' share it.

    The database keeps it in the indexed column patient.member_key (the same
    ltrim, computed by the database), so a probable duplicate is found by index.
    """
    return member_id.lstrip("0")


SIMILAR_ID = (
    "same as {known} without its leading zeros; check the file, or import again with --accept-similar-ids"
)


class MemberIds:
    """The member ids met so far (in one file, or one upsert call), and their first lines.

    An id met again is a duplicate (check). An id that equals another met before
    once leading zeros are stripped (similar_line) is a probable duplicate, which
    the upsert refuses for a new patient unless the supervisor accepts similar
    ids. One dict entry per key, an int: a national file holds ~900,000 ids.
    """

    __slots__ = ("_first", "_others")

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # key -> line << 6 | leading zeros, of the first id with that key
        self._others: dict[str, int] = {}  # the other ids with a key already taken -> first line

    def check(self, member_id: str, line: int) -> str | None:
        """None the first time this id is met, else why its row is refused (a duplicate)."""
        key = member_id.lstrip("0")
        zeros = len(member_id) - len(key)  # < 64: an id has at most 32 characters
        first = self._first.get(key)
        if first is None:
            self._first[key] = line << 6 | zeros
            return None
        if first & 63 == zeros:
            return f"duplicate of line {first >> 6}"
        other = self._others.get(member_id)
        if other is None:
            self._others[member_id] = line
            return None
        return f"duplicate of line {other}"

    def similar_line(self, member_id: str) -> int | None:
        """The line of an earlier, other id with the same key as this (checked) one, if any."""
        key = member_id.lstrip("0")
        first = self._first.get(key)
        if first is None or first & 63 == len(member_id) - len(key):
            return None
        return first >> 6
