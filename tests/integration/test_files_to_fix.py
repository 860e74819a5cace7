"""Patients left with no number to call (SQLite and PostgreSQL).

An independent check found them vanishing: a nurse flags the last number
wrong, the patient gets no next contact, planning leaves them out of every
wave, and nobody is told. They are listed for the supervisor, counted in the
wave report, and an import that brings a new number gives them a next
contact again.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from factories import SENT_ON, add_nurse, add_patient, paris, running_wave
from sqlalchemy import select

from campaign import calendar as cal
from campaign import services
from campaign.explain import patients_to_fix
from campaign.imports import import_patients
from campaign.model import PATIENT, TASK, AuditEvent
from campaign.reports import wave_report
from campaign.rules import RetryDecision
from campaign.states import AttemptResult, OutcomeCode, TaskStatus

DAY = SENT_ON + timedelta(days=7)  # Monday 14 December, inside the wave


def _wrong_number(ctx: services.Context, clock, nurse: int, patient_id: int) -> None:  # type: ignore[no-untyped-def]
    """The nurse reaches a stranger on the patient's number and says so."""
    with ctx.sessions() as s:
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient_id)).scalar_one()
    claimed = services.claim_and_start(ctx, task, nurse, "desk")
    assert isinstance(claimed, services.Claimed), claimed
    clock.advance_to(clock.now() + timedelta(seconds=20))
    services.mark_answered(ctx, claimed.attempt_id)
    clock.advance_to(clock.now() + timedelta(minutes=1))
    services.record_outcome(ctx, claimed.attempt_id, OutcomeCode.wrong_number, nurse)


def _next_contact(ctx: services.Context, patient_id: int):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return s.execute(select(PATIENT.c.next_contact_on).where(PATIENT.c.id == patient_id)).scalar_one()


def test_a_patient_with_no_number_left_is_listed_until_an_import_brings_one(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    lost = add_patient(ctx)
    spare = add_patient(ctx, phone_alt="+33261910042")  # a second, good number
    info = running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))
    for p in (lost, spare):
        _wrong_number(ctx, clock, nurse, p.id)

    listed = patients_to_fix(ctx, actor="supervisor:test")
    assert [x.member_id for x in listed] == [lost.member_id], "the patient with a second number is callable"
    assert listed[0].flagged == 1 and listed[0].since == DAY and listed[0].next_contact_on is None
    assert _next_contact(ctx, lost.id) is None, "no contact can be kept without a number"
    with ctx.sessions() as s:
        assert wave_report(s, ctx.policy, info.wave_id)["patients_to_fix"] == 1
        audited = s.execute(select(AuditEvent.action).where(AuditEvent.action == "patients.to_fix")).all()
    assert audited, "reading the list (it names patients) is in the audit trail"

    # a week later the supervisor imports the file again, with a new number for that patient
    clock.advance_to(paris(DAY + timedelta(days=7), 9))
    csv = tmp_path / "fix.csv"
    csv.write_text(
        "member_id;last_name;first_name;birth_date;phone;postal_code;pathologies;tier\n"
        f"{lost.member_id};Fictive;Camille;{lost.birth_date.isoformat()};"
        f"03 53 01 00 77;{lost.postal_code};diabète;{lost.tier}\n",
        encoding="utf-8",
    )
    summary = import_patients(ctx.sessions, csv, clock, ctx.policy)
    assert not summary.rejected and summary.updated == 1, summary.rejected
    assert summary.contacts_restored == 1
    assert patients_to_fix(ctx, actor="supervisor:test") == []
    place = cal.Place("75", "Europe/Paris")
    assert _next_contact(ctx, lost.id) == cal.local_date(clock.now(), place), "due again from the import"
    # re-importing the same file restores nothing more and changes nothing
    again = import_patients(ctx.sessions, csv, clock, ctx.policy)
    assert (again.updated, again.unchanged, again.contacts_restored) == (0, 1, 0)


def _not_in_service(ctx: services.Context, clock, nurse: int, patient_id: int) -> tuple[str, RetryDecision]:  # type: ignore[no-untyped-def]
    """The network refuses the call at once: no one has that number any more (Q.850 1)."""
    with ctx.sessions() as s:
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient_id)).scalar_one()
    claimed = services.claim_and_start(ctx, task, nurse, "desk")
    assert isinstance(claimed, services.Claimed), claimed
    clock.advance_to(clock.now() + timedelta(seconds=3))
    decision = services.finish_unanswered(ctx, claimed.attempt_id, AttemptResult.number_not_in_service)
    return claimed.number, decision


def test_a_number_the_network_says_is_no_ones_is_flagged_and_never_dialed_again(env) -> None:  # type: ignore[no-untyped-def]
    """Not six attempts at a dead number: the first says it, the number is flagged; the patient
    with another number is called on it, the one without is listed for the supervisor."""
    ctx, clock = env
    nurse = add_nurse(ctx, level="senior")
    lost = add_patient(ctx)
    spare = add_patient(ctx, phone_alt="+33261910042")
    running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))

    dead, closed = _not_in_service(ctx, clock, nurse, lost.id)
    assert closed.close == TaskStatus.unreachable and "needs a new number" in closed.reason
    listed = patients_to_fix(ctx, actor="supervisor:test")
    assert [(x.member_id, x.flagged, x.next_contact_on) for x in listed] == [(lost.member_id, 1, None)]
    assert _next_contact(ctx, lost.id) is None

    dead, retry = _not_in_service(ctx, clock, nurse, spare.id)
    assert retry.close is None and retry.next_at is not None
    with ctx.sessions() as s:
        flagged = s.execute(select(PATIENT.c.flagged_numbers).where(PATIENT.c.id == spare.id)).scalar_one()
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == spare.id)).scalar_one()
    assert list(flagged) == [dead]
    clock.advance_to(retry.next_at)
    again = services.claim_and_start(ctx, task, nurse, "desk")
    assert isinstance(again, services.Claimed), again
    assert again.number == "+33261910042" != dead, "the next attempt dials the other number"
