"""Commands from another thread against a dialer at work, on SQLite and PostgreSQL.

A "web" thread sends random commands (ready, pause, offline, hang-up, outcomes
for her call or for a call that is not hers) while the dialer dials, its
lines answer or not, and its nurses come and go. Whatever the interleaving:
every command is answered, no call gets two outcomes, every answered call
ends with its outcome, the stored board is exactly what the dialer knows, and
every invariant holds.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import date, timedelta

from factories import add_nurse, add_patient, add_task, dispose, engine_of, make_ctx, paris
from sqlalchemy import func, select

from campaign.invariants import check_invariants
from campaign.model import ATTEMPT, OUTCOME
from campaign.states import OutcomeCode
from dialer.backends.scripted import ScriptedLines, every_other_answered
from dialer.loop import Dialer
from dialer.presence import NurseStatus
from dialer.staff.bus import make_bus
from dialer.staff.commands import NurseCommands, OutcomeRequest
from dialer.staff.model import NurseCommand
from dialer.staff.store import presence_board
from dialer.step import step

MONDAY = date(2026, 12, 7)
COMMANDS = 150


def test_commands_from_another_thread_never_break_the_dialer(db_url: str) -> None:
    ctx, clock = make_ctx(db_url, paris(MONDAY, 10))
    nurses = [add_nurse(ctx) for _ in range(3)]
    for _ in range(40):
        add_task(ctx, add_patient(ctx, tier="low").id, tier="low")
    bus = make_bus(engine_of(ctx))
    d = Dialer(ctx, ScriptedLines(clock, every_other_answered), "w-c", None, deferred=True, bus=bus)
    d.start()
    web = NurseCommands(ctx, bus)
    done = threading.Event()
    errors: list[BaseException] = []
    sent: list[int] = []

    def browse() -> None:
        rng = random.Random(7)
        try:
            for _ in range(COMMANDS):
                nurse = rng.choice(nurses)
                with ctx.sessions() as s:
                    board = {v.nurse_id: v for v in presence_board(s)}
                mine = board[nurse].attempt_id
                other = next((v.attempt_id for n, v in board.items() if n != nurse and v.attempt_id), None)
                kind = rng.choice(
                    ["ready", "ready", "outcome", "outcome", "hangup", "pause", "offline", "stray"]
                )
                if kind == "ready":
                    sent.append(web.ready(nurse))
                elif kind == "pause":
                    sent.append(web.pause(nurse, rng.choice(["break", "meal"])))
                elif kind == "offline":
                    sent.append(web.offline(nurse))
                elif kind == "hangup":
                    sent.append(web.hangup(nurse))
                elif kind == "outcome" and mine is not None:
                    code = rng.choice([OutcomeCode.reached, OutcomeCode.escalation])
                    sent.append(web.outcome(nurse, OutcomeRequest(mine, code, note="x")))
                elif kind == "stray" and other is not None:
                    sent.append(web.outcome(nurse, OutcomeRequest(other, OutcomeCode.reached)))
                time.sleep(rng.uniform(0, 0.01))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=browse)
    thread.start()
    try:
        while not done.is_set():
            d.inbox.wait(0.005)
            if not d.inbox.wait(0):
                d.commands_due()  # the slow poll, every pass here
            clock.advance_to(clock.now() + timedelta(seconds=5))
            step(d, tick=True, sweep=False)
        thread.join(30)
        assert not errors, repr(errors[0])
        # the end of the day: every call she still has is finished and its outcome given
        for _ in range(20):
            d.commands_due()
            step(d, tick=True, sweep=False)
            for n in nurses:
                call = d.calls.get(d.call_of_nurse.get(n, -1))
                given = n in d._outcome_commands or any(m == n for m, _ in d._outcomes)
                if call is not None and d.presence.get(n) == NurseStatus.on_call:
                    d.hangup(n)
                elif call is not None and d.presence.get(n) == NurseStatus.wrap_up and not given:
                    sent.append(web.outcome(n, OutcomeRequest(call.attempt_id, OutcomeCode.reached)))
                d.nurse_offline(n)
        d.store_presence(force=True)

        with ctx.sessions() as s:
            results = {c.id: c.result for c in s.execute(select(NurseCommand)).scalars()}
            per_attempt = s.execute(
                select(OUTCOME.c.attempt_id, func.count()).group_by(OUTCOME.c.attempt_id)
            ).all()
            answered = {a.id for a in s.execute(select(ATTEMPT).where(ATTEMPT.c.result == "answered")).all()}
            board = {v.nurse_id: v for v in presence_board(s)}
            report = check_invariants(s, ctx.policy)
        assert len(sent) > COMMANDS // 2
        assert set(results) == set(sent)
        unanswered = {
            i: r for i, r in results.items() if not (r == "ok" or (r or "").startswith("refused: "))
        }
        assert not unanswered, f"every command answered: {unanswered}"
        assert any(r == "ok" for r in results.values()) and any(r != "ok" for r in results.values())
        assert all(count == 1 for _, count in per_attempt), "no call has two outcomes"
        assert {a for a, _ in per_attempt} == answered, "every answered call has its outcome"
        for n in nurses:
            row = board[n]
            assert (row.status, row.attempt_id) == (d.presence.get(n), d.call_of_nurse.get(n)), n
            assert row.status == NurseStatus.offline
        assert report.ok, report
    finally:
        bus.close()
        dispose(ctx)
