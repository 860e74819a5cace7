"""An ASGI application served by uvicorn on a real local port, in a thread: what a provider's
webhooks or a dialplan's requests reach in the tests (tests/telephony, tests/inbound)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def bound_socket() -> socket.socket:
    """A socket bound to a free local port (known before the server starts: a webhook URL names it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def uvicorn_server(app: FastAPI, sock: socket.socket) -> Iterator[None]:
    """The app served by uvicorn on an already bound local socket, in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn on a free local port, in a thread; yields its base URL."""
    sock = bound_socket()
    with uvicorn_server(app, sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
