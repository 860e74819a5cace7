"""One scheduler leader among several processes, and a quick takeover when it dies."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from campaign.db import make_engine
from campaign.leader import Leadership


@pytest.fixture()
def pg_engines(pg_cluster):  # type: ignore[no-untyped-def]
    url = pg_cluster.create_database()
    engines = [make_engine(url) for _ in range(3)]
    yield engines
    for e in engines:
        e.dispose()
    pg_cluster.drop_database(url.rsplit("/", 1)[1])


def test_only_one_of_three_holds_the_lock(pg_engines) -> None:  # type: ignore[no-untyped-def]
    leaders = [Leadership(e) for e in pg_engines]
    granted = [lead.try_acquire() for lead in leaders]
    assert granted.count(True) == 1
    # asking again changes nothing: the holder keeps it, the others still wait
    assert [lead.try_acquire() for lead in leaders] == granted


def test_a_follower_takes_over_within_seconds_when_the_leader_dies(pg_engines) -> None:  # type: ignore[no-untyped-def]
    first, second = Leadership(pg_engines[0]), Leadership(pg_engines[1])
    assert first.try_acquire()
    assert not second.try_acquire()
    pid = first._conn.execute(text("SELECT pg_backend_pid()")).scalar()  # type: ignore[union-attr]
    # the leader's process dies: PostgreSQL closes its session, as after a SIGKILL
    with pg_engines[2].connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.commit()
    deadline = time.monotonic() + 5
    while not second.try_acquire():
        assert time.monotonic() < deadline, "no takeover within 5 seconds"
        time.sleep(0.1)
    assert not first.still_held(), "the dead leader knows it lost the lock"
    assert not first.try_acquire(), "and cannot take it back while the new leader lives"


def test_release_hands_over_at_once(pg_engines) -> None:  # type: ignore[no-untyped-def]
    first, second = Leadership(pg_engines[0]), Leadership(pg_engines[1])
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()


def test_sqlite_is_single_process_so_always_leader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    lead = Leadership(engine)
    assert lead.try_acquire() and lead.still_held()
    lead.release()
    assert not lead.held
    engine.dispose()
