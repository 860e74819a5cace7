"""Whom the inbound line may offer a call: the active nurses stored ready with no call (both backends)."""

from __future__ import annotations

from datetime import timedelta

from factories import add_nurse, dispose, make_ctx
from inbound_world import OPEN, WORKER
from sqlalchemy import update

from campaign.model import NURSE
from campaign.policy import NurseLevel
from dialer.inbound import store
from dialer.inbound.decision import ReadyNurse
from dialer.staff.model import NursePresence


def test_ready_nurses_are_the_active_ones_stored_ready_with_no_call(db_url: str) -> None:
    ctx, clock = make_ctx(db_url, OPEN)
    try:
        since = clock.now() - timedelta(minutes=3)
        ready = add_nurse(ctx, level="junior", skills=["copd"])
        paused, calling, gone = add_nurse(ctx), add_nurse(ctx), add_nurse(ctx)
        add_nurse(ctx)  # no dialer has seen her: offline
        rows = [
            (ready, "ready", None),
            (paused, "paused", None),
            (calling, "ready", 41),  # her call's attempt
            (gone, "ready", None),  # made inactive below
        ]
        with ctx.sessions() as s:
            for nurse_id, status, attempt_id in rows:
                s.add(
                    NursePresence(
                        nurse_id=nurse_id,
                        status=status,
                        since=since,
                        attempt_id=attempt_id,
                        worker=WORKER,
                        updated_at=since,
                    )
                )
            s.execute(update(NURSE).where(NURSE.c.id == gone).values(active=False))
            s.commit()
        with ctx.sessions() as s:
            found = store.ready_nurses(s)
        assert found == [ReadyNurse(ready, NurseLevel.junior, frozenset({"copd"}), since)]
    finally:
        dispose(ctx)
