"""One PRESENCE subscription per application, fanned out by nurse to the console streams open for her.

With a subscription per stream, every change of any nurse would wake every open console (250 at
scale) only for each to find it was not hers; here the bus's delivering thread hands a change to the
streams of that nurse alone. An empty payload (the bus reconnected: anything may have been missed)
goes to every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from dialer.staff.bus import PRESENCE, Bus, Subscription


@dataclass(eq=False)
class Listener:
    """A console stream's end: `next` waits for a change of its nurse's presence."""

    hub: PresenceHub
    nurse: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def next(self, timeout: float) -> str | None:
        """The next change (its payload), or None after `timeout` seconds without one."""
        try:
            payload = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        while not self.queue.empty():  # several changes since: one look at the row covers them all
            self.queue.get_nowait()
        return payload

    def close(self) -> None:
        self.hub._remove(self)


class PresenceHub:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Listener]] = {}
        self._subscription: Subscription | None = None

    def listen(self, nurse_id: int) -> Listener:
        """From the stream's event loop: her changes from now on."""
        listener = Listener(self, str(nurse_id), asyncio.get_running_loop())
        with self._lock:
            self._listeners.setdefault(listener.nurse, set()).add(listener)
            if self._subscription is None:
                self._subscription = self.bus.subscribe(PRESENCE, callback=self._deliver)
        return listener

    def _deliver(self, _channel: str, payload: str) -> None:
        """In the bus's delivering thread: quick, never blocks."""
        with self._lock:
            if payload == "":
                targets = [listener for group in self._listeners.values() for listener in group]
            else:
                targets = list(self._listeners.get(payload, ()))
        for listener in targets:
            with contextlib.suppress(RuntimeError):  # its event loop is closed: nobody reads any more
                listener.loop.call_soon_threadsafe(listener.queue.put_nowait, payload)

    def _remove(self, listener: Listener) -> None:
        with self._lock:
            group = self._listeners.get(listener.nurse)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[listener.nurse]
