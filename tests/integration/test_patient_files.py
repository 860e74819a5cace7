"""What the consoles read of a patient's file, and the audit trail of those reads (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

from factories import SENT_ON, add_nurse, add_patient, paris, running_wave
from sqlalchemy import select, update

from campaign import services, store
from campaign.model import NURSE, PATIENT, TASK
from campaign.states import AttemptResult, OutcomeCode
from campaign.store import files

DAY = date(2026, 12, 14)


def test_the_summary_shows_identity_programme_contacts_messages_and_open_tasks(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    referent = add_nurse(ctx, code="R01", level="senior", skills=["heart_failure"])
    patient = add_patient(ctx, tier="high", pathologies=["diabetes", "heart_failure"], city="Lyon")
    with ctx.sessions() as s:
        s.execute(update(PATIENT).where(PATIENT.c.id == patient.id).values(referent_nurse_id=referent))
        s.commit()
    running_wave(ctx, clock, "diet", SENT_ON)
    clock.advance_to(paris(DAY, 10))
    with ctx.sessions() as s:
        task = s.execute(select(TASK.c.id).where(TASK.c.patient_id == patient.id)).scalar_one()
    # two calls: no answer, then an escalation with a note and a message to the physician
    first = services.claim_and_start(ctx, task, referent, "desk")
    assert isinstance(first, services.Claimed)
    clock.advance_to(clock.now() + timedelta(seconds=30))
    services.finish_unanswered(ctx, first.attempt_id, AttemptResult.no_answer)
    clock.advance_to(paris(DAY + timedelta(days=1), 10))
    second = services.claim_and_start(ctx, task, referent, "desk")
    assert isinstance(second, services.Claimed)
    services.mark_answered(ctx, second.attempt_id)
    services.record_outcome(
        ctx,
        second.attempt_id,
        OutcomeCode.callback_requested,
        referent,
        callback_at=paris(DAY + timedelta(days=2), 15),
        note="rappeler après la consultation",
    )
    with ctx.sessions() as s:
        summary = store.patient_summary(s, patient.id, ctx.policy)
    assert (summary.member_id, summary.first_name, summary.last_name, summary.birth_date, summary.city) == (
        patient.member_id,
        patient.first_name,
        patient.last_name,
        patient.birth_date,
        "Lyon",
    )
    assert summary.tier == "high"
    assert summary.pathologies == (("diabetes", "Diabète"), ("heart_failure", "Insuffisance cardiaque"))
    assert summary.referent == ("R01", _name(ctx, referent))
    assert [(c.attempt_id, c.result, c.outcome, c.note) for c in summary.contacts] == [
        (second.attempt_id, "answered", "callback_requested", "rappeler après la consultation"),
        (first.attempt_id, "no_answer", None, ""),
    ]
    assert all(c.nurse_code == "R01" and c.kind == "wave" for c in summary.contacts)
    assert [(t.kind, t.status, t.assigned_nurse_code, t.theme_label) for t in summary.tasks] == [
        ("callback", "pending", "R01", ctx.policy.themes["diet"].label)
    ]
    assert summary.messages == ()


def test_the_summary_keeps_the_ten_newest_contacts_and_lists_physician_messages(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    nurse = add_nurse(ctx)
    patient = add_patient(ctx)
    clock.advance_to(paris(DAY, 9))
    attempts = []
    for k in range(12):
        clock.advance_to(paris(DAY, 9) + timedelta(hours=k * 3))
        _, attempt = services.start_incoming(ctx, patient.id, nurse, "web-1")
        services.record_outcome(ctx, attempt, OutcomeCode.escalation, nurse, message_body=f"message {k}")
        attempts.append(attempt)
    with ctx.sessions() as s:
        summary = store.patient_summary(s, patient.id, ctx.policy)
    assert [c.attempt_id for c in summary.contacts] == attempts[::-1][:10]
    assert all(c.kind == "incoming" and c.outcome == "escalation" for c in summary.contacts)
    assert [m.body for m in summary.messages] == [f"message {k}" for k in range(11, 1, -1)]


def test_the_audit_trail_is_newest_first_and_filters_by_patient_and_actor(env) -> None:  # type: ignore[no-untyped-def]
    ctx, clock = env
    a, b = add_patient(ctx), add_patient(ctx)
    with ctx.sessions() as s:
        files.audit(s, "nurse:N1", "patient.view", a.id, "console", clock.now())
        files.audit(s, "nurse:N1", "patient.denied", b.id, "not her call", clock.now() + timedelta(minutes=1))
        files.audit(s, "supervisor:sv", "patient.view", a.id, "board", clock.now() + timedelta(minutes=2))
        s.commit()
        everything = store.audit_trail(s)
        of_a = store.audit_trail(s, patient_id=a.id)
        by_n1 = store.audit_trail(s, actor="nurse:N1", limit=1)
    assert [(e.actor, e.action) for e in everything] == [
        ("supervisor:sv", "patient.view"),
        ("nurse:N1", "patient.denied"),
        ("nurse:N1", "patient.view"),
    ]
    assert [e.detail for e in of_a] == ["board", "console"] and {e.member_id for e in of_a} == {a.member_id}
    assert [(e.action, e.patient_id) for e in by_n1] == [("patient.denied", b.id)]


def _name(ctx: services.Context, nurse_id: int) -> str:
    with ctx.sessions() as s:
        return str(s.execute(select(NURSE.c.display_name).where(NURSE.c.id == nurse_id)).scalar_one())
