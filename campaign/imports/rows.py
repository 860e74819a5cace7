"""One row of an import file -> a validated PatientRecord, or the reason it is refused.

Every field is validated; a bad row is rejected with its line, field and a reason
that never quotes the personal value (invariant 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from campaign.imports.phones import normalise_phone
from campaign.imports.values import (
    _CACHE,
    _cached_city,
    _cached_date,
    _cached_name,
    _cached_physician_name,
    _cached_place,
    _cached_window,
    _Invalid,
    _parse_birth_date,
    _parse_consent,
    _parse_member_id,
    _parse_nurse,
    _parse_past_date,
    _parse_rpps,
    _parse_sex,
    _parse_status,
    parse_pathologies,
    parse_tier,
)
from campaign.member_ids import MemberIds
from campaign.model import pathologies_to_text
from campaign.store.registry import PatientRecord, RowRejection


@dataclass(slots=True)
class _Context:
    today: date
    pathologies: dict[str, str]
    nurse_codes: set[str]
    nul: bool = False  # the file holds a NUL somewhere: look for it in each row
    member_ids: MemberIds = field(default_factory=MemberIds)  # the file's, so far
    index: tuple[int, ...] | None = None  # cell index of each of _FIELDS in this file
    _pathologies_cache: dict[str, str] = field(default_factory=dict)

    def set_index(self, columns: dict[str, int]) -> tuple[int, ...]:
        self.index = tuple(columns.get(name, _ABSENT) for name in _FIELDS)
        return self.index

    def pathologies_text(self, text: str) -> str:
        """parse_pathologies, stored form ('|a|b|'), memoised for this import's policy."""
        stored = self._pathologies_cache.get(text)
        if stored is None:
            stored = pathologies_to_text(parse_pathologies(text, self.pathologies))
            if len(self._pathologies_cache) < _CACHE:
                self._pathologies_cache[text] = stored
        return stored


_MISSING = "required value is missing"
_ABSENT = 1 << 30  # index of a column the file does not have: never < len(cells)
# fmt: off
_FIELDS = (
    "member_id", "last_name", "first_name", "birth_date", "sex", "postal_code", "phone",
    "phone_alt", "city", "pathologies", "tier", "status", "suspended_until", "consent",
    "preferred_window", "referent_nurse", "physician_rpps", "physician_name", "enrolled_on",
)


# fmt: on
def _parse_row(
    line: int, cells: list[str], columns: dict[str, int], width: int, ctx: _Context
) -> PatientRecord | RowRejection:
    """Validate every field; the first problem names the rejection, the rest are listed.

    The hot loop of a national import (~900,000 rows): written out field by field
    (no loop over a table of parsers), each field checked by its one parser in
    campaign.imports.values, memoised where values repeat across a registry (names,
    dates, postal codes, pathologies…), so a row costs a few microseconds.
    """
    n = len(cells)
    if n > width and any(c.strip() for c in cells[width:]):
        return RowRejection(
            line,
            "row",
            f"{n} cells but the header has {width} (a delimiter in a value that is not quoted?)",
        )
    i = ctx.index if ctx.index is not None else ctx.set_index(columns)
    if ctx.nul:
        for name, index in zip(_FIELDS, i, strict=True):
            if index < n and "\x00" in cells[index]:
                return RowRejection(line, name, "contains a NUL character (a damaged file?)")
    problems: list[tuple[str, str]] = []
    add = problems.append

    t = cells[i[0]].strip() if i[0] < n else ""
    member_id = None
    if not t:
        add(("member_id", _MISSING))
    else:
        try:
            member_id = _parse_member_id(t)
        except _Invalid as exc:
            add(("member_id", str(exc)))

    names: list[str] = []
    for index, name in ((i[1], "last_name"), (i[2], "first_name")):
        t = cells[index].strip() if index < n else ""
        if not t:
            add((name, _MISSING))
            continue
        try:
            names.append(_cached_name(t))
        except _Invalid as exc:
            add((name, str(exc)))

    t = cells[i[3]].strip() if i[3] < n else ""
    birth = None
    if not t:
        add(("birth_date", _MISSING))
    else:
        try:
            birth = _parse_birth_date(t, ctx.today)
        except _Invalid as exc:
            add(("birth_date", str(exc)))

    t = cells[i[4]].strip() if i[4] < n else ""
    sex = None
    if t:
        try:
            sex = _parse_sex(t)
        except _Invalid as exc:
            add(("sex", str(exc)))

    t = cells[i[5]].strip() if i[5] < n else ""
    place = None
    region = "FR"
    if not t:
        add(("postal_code", _MISSING))
    else:
        try:
            place = _cached_place(t)
            region = place[2]
        except _Invalid as exc:
            add(("postal_code", str(exc)))

    t = cells[i[6]].strip() if i[6] < n else ""
    phone = None
    if not t:
        add(("phone", _MISSING))
    else:
        try:
            phone = normalise_phone(t, region)
        except _Invalid as exc:
            add(("phone", str(exc)))

    t = cells[i[7]].strip() if i[7] < n else ""
    phone_alt = None
    if t:
        try:
            phone_alt = normalise_phone(t, region)
        except _Invalid as exc:
            add(("phone_alt", str(exc)))

    t = cells[i[8]].strip() if i[8] < n else ""
    city = ""
    if t:
        try:
            city = _cached_city(t)
        except _Invalid as exc:
            add(("city", str(exc)))

    t = cells[i[9]].strip() if i[9] < n else ""
    pathologies = None
    if not t:
        add(("pathologies", _MISSING))
    else:
        try:
            pathologies = ctx.pathologies_text(t)
        except _Invalid as exc:
            add(("pathologies", str(exc)))

    t = cells[i[10]].strip() if i[10] < n else ""
    tier = None
    if not t:
        add(("tier", _MISSING))
    else:
        try:
            tier = parse_tier(t).value
        except _Invalid as exc:
            add(("tier", str(exc)))

    t = cells[i[11]].strip() if i[11] < n else ""
    status = None
    if t:
        try:
            status = _parse_status(t)
        except _Invalid as exc:
            add(("status", str(exc)))

    t = cells[i[12]].strip() if i[12] < n else ""
    suspended_until = None
    if t:
        try:
            suspended_until = _cached_date(t)
        except _Invalid as exc:
            add(("suspended_until", str(exc)))

    t = cells[i[13]].strip() if i[13] < n else ""
    consent = None
    if t:
        try:
            consent = _parse_consent(t)
        except _Invalid as exc:
            add(("consent", str(exc)))

    t = cells[i[14]].strip() if i[14] < n else ""
    window = None
    if t:
        try:
            window = _cached_window(t)
        except _Invalid as exc:
            add(("preferred_window", str(exc)))

    t = cells[i[15]].strip() if i[15] < n else ""
    nurse = None
    if t:
        try:
            nurse = _parse_nurse(t, ctx.nurse_codes)
        except _Invalid as exc:
            add(("referent_nurse", str(exc)))

    t = cells[i[16]].strip() if i[16] < n else ""
    rpps = None
    if t:
        try:
            rpps = _parse_rpps(t)
        except _Invalid as exc:
            add(("physician_rpps", str(exc)))
    rpps_given = bool(t)

    t = cells[i[17]].strip() if i[17] < n else ""
    physician_name = None
    if t:
        try:
            physician_name = _cached_physician_name(t)
        except _Invalid as exc:
            add(("physician_name", str(exc)))

    t = cells[i[18]].strip() if i[18] < n else ""
    enrolled_on = None
    if t:
        try:
            enrolled_on = _parse_past_date(t, ctx.today)
        except _Invalid as exc:
            add(("enrolled_on", str(exc)))

    if physician_name is not None and not rpps_given:
        add(("physician_rpps", "required when physician_name is given"))

    if member_id is not None:
        why = ctx.member_ids.check(member_id, line)
        if why is not None:
            problems.insert(0, ("member_id", why))

    if problems:
        name, reason = problems[0]
        others = sorted({p[0] for p in problems[1:]} - {name})
        if others:
            reason += f" (also invalid: {', '.join(others)})"
        return RowRejection(line, name, reason)

    assert member_id is not None and birth is not None and place is not None
    assert phone is not None and pathologies is not None and tier is not None
    # fmt: off
    return PatientRecord(
        member_id, names[0], names[1], birth, phone, place[0], place[1], place[3],
        pathologies, tier, sex, phone_alt, city, status, suspended_until, consent,
        window[0] if window else None, window[1] if window else None,
        nurse, rpps, physician_name, enrolled_on, line,
    )
    # fmt: on
