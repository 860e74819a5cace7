"""Browser tests: a real headless Chromium (Debian's chromium + chromium-driver, through Selenium)
against a real `carecall serve` (dialer + web application) on a SQLite file.

    @pytest.fixture(scope="module")
    def server(live_server):
        return live_server(seed=lambda ctx: ...)        # nurses, accounts, patients…

    def test_x(chrome, server, login, axe_violations, screenshot):
        login(chrome, server.base_url, "ide01", "a long password")
        assert axe_violations(chrome) == []
        screenshot(chrome, "nurse-console")

One browser for the whole session (cookies cleared before each test): starting
Chromium costs about a second. Outside CI a machine without /usr/bin/chromium skips
these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import (
    LiveServer,
    make_chrome,
    remove_tree,
    require_chromium,
    reset,
    start_live_server,
)
from browser_harness import (
    axe_violations as _axe_violations,
)
from browser_harness import (
    login as _login,
)
from browser_harness import (
    screenshot as _screenshot,
)


@pytest.fixture(scope="session")
def _chrome_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_chromium()
    folder = tmp_path_factory.mktemp("chromium-profile")
    driver = make_chrome(folder)
    try:
        yield driver
    finally:
        driver.quit()
        remove_tree(folder)


@pytest.fixture
def chrome(_chrome_session: Any) -> Any:
    """The session's Chromium, with no cookies and a blank page."""
    reset(_chrome_session)
    return _chrome_session


@pytest.fixture
def chrome_factory(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """More browsers for one test (a nurse and a supervisor side by side); closed after it."""
    require_chromium()
    drivers: list[Any] = []

    def make() -> Any:
        driver = make_chrome(tmp_path / f"chromium-{len(drivers)}")
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Starts `carecall serve` in a thread: `live_server(start=…, telephony=…, seed=…, **serve_kwargs)`
    returns a LiveServer (base_url, db_url, ctx, clock); every server started stops with the module."""
    started: list[LiveServer] = []

    def start(**kwargs: Any) -> LiveServer:
        server = start_live_server(tmp_path_factory.mktemp("live"), **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def login() -> Callable[[Any, str, str, str], None]:
    """`login(chrome, base_url, username, password)`: through the log-in page."""
    return _login


@pytest.fixture
def axe_violations() -> Callable[[Any], list[dict[str, Any]]]:
    """`axe_violations(chrome)`: axe-core's serious and critical violations on the page."""
    return _axe_violations


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """`screenshot(chrome, name)`: tests/browser/screenshots/NAME.png with CARECALL_SCREENSHOTS=1."""
    return _screenshot
