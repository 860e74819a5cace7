"""The web application served by uvicorn beside a dialer process, in a thread of its own.

The dialer keeps the main thread (its loop, its signals); uvicorn runs with
its signal handlers off, and stops when the dialer stops.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import uvicorn
from fastapi import FastAPI

from campaign.errors import InvalidArgument

log = structlog.get_logger("carecall.web")
SWITCH_INTERVAL_SECONDS = 0.001


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """The dialer's own handlers stop the process; uvicorn stops with it."""


@contextmanager
def serving(app: FastAPI, host: str, port: int, start_timeout: float = 15.0) -> Iterator[None]:
    """Serve `app` on host:port until the block ends. A port that cannot be bound stops start-up."""
    # the pages share the GIL with the dialer's thread: each time a page's thread comes back from a
    # system call (a query, a write to a socket) while the dialer computes, it waits for the GIL up to
    # the switch interval (5 ms by default), a dozen times for a console's call panel
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="carecall-web", daemon=True)
    thread.start()
    end = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            raise InvalidArgument(f"--host {host} --port {port}: the web server could not listen there")
        time.sleep(0.01)
    log.info("web serving", host=host, port=port)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
