"""A console stream hears its own nurse's changes, and every stream hears the bus's reconnection."""

from __future__ import annotations

import asyncio
import threading

from dialer.staff.bus import PRESENCE, WAVES, LocalBus
from dialer.web.console.hub import PresenceHub


def test_each_stream_hears_its_nurse_only_and_all_hear_a_reconnection() -> None:
    async def scenario() -> None:
        bus = LocalBus()
        hub = PresenceHub(bus)
        three, seven, seven_again = hub.listen(3), hub.listen(7), hub.listen(7)
        # the bus delivers from another thread (the listener's, or the committing one)
        sender = threading.Thread(target=lambda: (bus.publish(PRESENCE, "7"), bus.publish(WAVES, "3")))
        sender.start()
        sender.join()
        assert await seven.next(1.0) == "7"
        assert await seven_again.next(1.0) == "7"
        assert await three.next(0.05) is None  # neither nurse 7's change nor a wave's
        bus.publish(PRESENCE, "")  # reconnected: anything may have been missed
        assert [await x.next(1.0) for x in (three, seven, seven_again)] == ["", "", ""]
        seven.close()
        bus.publish(PRESENCE, "7")
        assert await seven.next(0.05) is None
        assert await seven_again.next(1.0) == "7"

    asyncio.run(scenario())


def test_changes_that_piled_up_cost_one_look() -> None:
    async def scenario() -> None:
        bus = LocalBus()
        listener = PresenceHub(bus).listen(5)
        for _ in range(4):
            bus.publish(PRESENCE, "5")
        await asyncio.sleep(0)  # let the deliveries land
        assert await listener.next(1.0) == "5"
        assert await listener.next(0.05) is None

    asyncio.run(scenario())
