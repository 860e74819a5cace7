"""A dialer process's garbage collections wait for the moment between two flushes."""

from __future__ import annotations

import gc

from dialer.step import GC_YOUNG, collect_between_flushes, settle_gc


def test_collections_run_between_flushes_not_in_a_nurses_wait() -> None:
    threshold = gc.get_threshold()
    try:
        settle_gc()
        # the automatic collector no longer fires at the young threshold, in the middle of a flush
        junk = [[] for _ in range(GC_YOUNG + 1_000)]
        assert gc.get_count()[0] >= GC_YOUNG
        # after the flush, the collection it would have made runs
        collect_between_flushes()
        assert gc.get_count()[0] < GC_YOUNG
        # and none is made while it is not due
        before = gc.get_stats()[0]["collections"]
        collect_between_flushes()
        assert gc.get_stats()[0]["collections"] == before
        del junk
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
