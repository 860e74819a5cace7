"""The outcome form: every disposition reaches a valid outcome, and every mistake is named on its field
with what the nurse typed kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from factories import policy

from campaign import calendar as cal
from campaign.states import OutcomeCode
from dialer.web.console.forms import CALLBACK_HORIZON_DAYS, OutcomeForm, parse_date, parse_outcome, parse_time

# Thursday 3 December 2026, 10:00 in Paris (09:00 UTC)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
PARIS = cal.Place("75", "Europe/Paris")
REUNION = cal.Place("974", "Indian/Reunion")  # UTC+4, no summer time
QUALIFIED = {7: "Camille Martin", 9: "Inès Robert"}


def submit(place: cal.Place = PARIS, **fields: str) -> OutcomeForm:
    return parse_outcome(fields, now=NOW, place=place, hours=policy().calling_hours, qualified=QUALIFIED)


def codes(form: OutcomeForm) -> dict[str, str]:
    return {e.field: e.code for e in form.errors}


def test_reached_with_a_note() -> None:
    form = submit(code="reached", note="  Va bien, a repris la marche.  ")
    assert form.choice is not None and not form.errors
    assert form.choice.code == OutcomeCode.reached
    assert form.choice.note == "Va bien, a repris la marche."


def test_no_disposition_chosen_is_named_and_keeps_the_note() -> None:
    form = submit(note="Note longue à ne pas perdre")
    assert form.choice is None
    assert codes(form) == {"code": "missing"}
    assert form.values["note"] == "Note longue à ne pas perdre"


def test_unknown_disposition_is_refused() -> None:
    assert codes(submit(code="teleported")) == {"code": "missing"}


def test_callback_tomorrow_ten_for_herself_is_ten_paris_time() -> None:
    form = submit(code="callback_requested", callback_date="2026-12-04", callback_time="10:00")
    assert form.choice is not None, form.errors
    assert form.choice.callback_at == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert form.choice.callback_nurse_id is None  # the nurse recording it


def test_callback_time_is_the_patients_local_time() -> None:
    form = submit(REUNION, code="callback_requested", callback_date="2026-12-04", callback_time="10:00")
    assert form.choice is not None, form.errors
    assert form.choice.callback_at == datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def test_callback_promised_to_a_qualified_colleague() -> None:
    form = submit(
        code="callback_requested", callback_date="04/12/2026", callback_time="14h30", callback_nurse="9"
    )
    assert form.choice is not None, form.errors
    assert form.choice.callback_nurse_id == 9
    assert form.choice.callback_at == datetime(2026, 12, 4, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize("who", ["8", "x", "-1"])
def test_callback_for_a_nurse_not_qualified_is_refused(who: str) -> None:
    form = submit(
        code="callback_requested", callback_date="2026-12-04", callback_time="10:00", callback_nurse=who
    )
    assert codes(form) == {"callback_nurse": "not_qualified"}


def test_callback_without_date_and_time_names_both() -> None:
    form = submit(code="callback_requested", note="rappeler")
    assert codes(form) == {"callback_date": "missing", "callback_time": "missing"}
    assert form.values["note"] == "rappeler"


def test_callback_with_garbage_keeps_what_she_typed() -> None:
    form = submit(code="callback_requested", callback_date="31/02/2026", callback_time="25:00")
    assert codes(form) == {"callback_date": "invalid", "callback_time": "invalid"}
    assert form.values["callback_date"] == "31/02/2026"
    assert form.values["callback_time"] == "25:00"


def test_callback_in_the_past_is_refused() -> None:
    form = submit(code="callback_requested", callback_date="2026-12-03", callback_time="09:30")
    assert codes(form) == {"callback_date": "past"}


def test_callback_beyond_the_horizon_is_refused() -> None:
    day = (NOW + timedelta(days=CALLBACK_HORIZON_DAYS + 2)).date().isoformat()
    form = submit(code="callback_requested", callback_date=day, callback_time="10:00")
    assert codes(form) == {"callback_date": "too_far"}


def test_callback_outside_calling_hours_proposes_the_first_open_slot() -> None:
    form = submit(code="callback_requested", callback_date="2026-12-04", callback_time="21:00")
    err = form.error("callback_time")
    assert err is not None and err.code == "closed"
    first = err.params["first"]
    assert isinstance(first, datetime)
    assert (first.date(), first.time()) == (date(2026, 12, 5), time(9, 0))  # Saturday morning


def test_callback_on_a_public_holiday_is_refused() -> None:
    form = submit(code="callback_requested", callback_date="2026-12-25", callback_time="10:00")
    assert codes(form) == {"callback_time": "closed"}


def test_callback_in_the_hour_skipped_by_summer_time_is_refused() -> None:
    later = parse_outcome(
        {"code": "callback_requested", "callback_date": "2027-03-28", "callback_time": "02:30"},
        now=datetime(2027, 3, 20, 9, 0, tzinfo=UTC),
        place=PARIS,
        hours=policy().calling_hours,
        qualified={},
    )
    assert codes(later) == {"callback_time": "nonexistent"}


def test_wrong_number() -> None:
    form = submit(code="wrong_number")
    assert form.choice is not None and form.choice.code == OutcomeCode.wrong_number


def test_opt_out_asks_for_confirmation_first() -> None:
    form = submit(code="opted_out", note="ne veut plus")
    assert form.choice is None and form.confirm_opt_out and not form.errors
    confirmed = submit(code="opted_out", note="ne veut plus", confirm_opt_out="yes")
    assert confirmed.choice is not None and confirmed.choice.code == OutcomeCode.opted_out


def test_hospitalised_until_a_date() -> None:
    form = submit(code="hospitalised", hospitalised_until="2026-12-20")
    assert form.choice is not None, form.errors
    assert form.choice.hospitalised_until == date(2026, 12, 20)


def test_hospitalised_with_no_known_end() -> None:
    form = submit(code="hospitalised")
    assert form.choice is not None and form.choice.hospitalised_until is None


def test_hospitalised_until_yesterday_is_refused() -> None:
    form = submit(code="hospitalised", hospitalised_until="2026-12-02")
    assert codes(form) == {"hospitalised_until": "past"}
    assert submit(code="hospitalised", hospitalised_until="2026-12-03").choice is not None  # today is fine


def test_escalation_needs_a_message() -> None:
    assert codes(submit(code="escalation", message="   ")) == {"message": "missing"}
    form = submit(code="escalation", message="Essoufflement inhabituel depuis 3 jours.")
    assert form.choice is not None and form.choice.message == "Essoufflement inhabituel depuis 3 jours."


def test_too_long_texts_are_refused_not_cut() -> None:
    form = submit(code="escalation", message="x" * 2001, note="y" * 2001)
    assert codes(form) == {"note": "too_long", "message": "too_long"}
    assert len(form.values["note"]) == 2001


def test_fields_of_other_dispositions_are_ignored() -> None:
    form = submit(code="reached", callback_date="garbage", hospitalised_until="garbage", message="x")
    assert form.choice is not None and form.choice.callback_at is None and form.choice.message is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-12-04", date(2026, 12, 4)), ("4/12/2026", date(2026, 12, 4)), ("2026-13-01", None), ("", None)],
)
def test_parse_date(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10:00", time(10)), ("9h05", time(9, 5)), ("10:00:00", time(10)), ("24:00", None), ("10", None)],
)
def test_parse_time(text: str, expected: time | None) -> None:
    assert parse_time(text) == expected
