"""Where events from other threads wait for the dialer's own thread.

An AMI reader, a webhook handler or a dial worker puts what happened here,
from its thread; the dialer takes it all at its next flush. Putting wakes the
owner at once (`wait`), so a call's answer reaches its nurse without waiting
for the next tick of the clock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._wake = threading.Event()

    def put(self, item: T) -> None:
        """From any thread."""
        self._items.append(item)
        self._wake.set()

    def take_all(self) -> list[T]:
        """What arrived so far, oldest first (the owner's thread)."""
        self._wake.clear()  # before taking: an item put meanwhile sets it again
        items = self._items
        out: list[T] = []
        while items:
            out.append(items.popleft())
        return out

    def wait(self, timeout: float) -> bool:
        """Sleep until something arrives or `timeout` real seconds pass; True if something is there."""
        return self._wake.wait(timeout) or bool(self._items)

    def __len__(self) -> int:
        return len(self._items)
