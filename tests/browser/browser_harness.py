"""The browser tests' harness: a real `carecall serve` in a thread, and a headless Chromium.

Used through tests/browser/conftest.py's fixtures (`chrome`, `chrome_factory`, `live_server`,
`login`, `axe_violations`, `screenshot`); importable as `browser_harness` too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import factories
import pytest

from campaign import migrate, services
from campaign.clock import ScaledClock, SystemClock
from campaign.db import make_engine, session_factory
from campaign.policy import Policy
from dialer.backends.factory import TelephonySetup
from dialer.serve import Share, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HERE = Path(__file__).resolve().parent
AXE = sorted(HERE.glob("axe-core-*.min.js"))
SCREENSHOTS = HERE / "screenshots"
# a Monday, 10:00 in Paris: inside calling hours, no holiday anywhere
MONDAY_10_PARIS = datetime(2026, 12, 7, 9, tzinfo=UTC)
WAIT = 15.0  # seconds a page or an element may take


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> None:
    """Skip outside CI when Debian's chromium or chromium-driver is missing; fail in CI."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        msg = f"{', '.join(missing)} not found (apt-get install chromium chromium-driver, or ./scripts/test)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def make_chrome(user_data_dir: Path) -> Any:
    """A headless Chromium driven by Selenium through Debian's chromedriver (they always match)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=fr-FR",
        "--window-size=1280,900",
        f"--user-data-dir={user_data_dir}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def reset(driver: Any) -> None:
    """A clean browser for the next test: no cookies, no page."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get("about:blank")


# ---------------------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running `carecall serve` (dialer + web application) on a SQLite file."""

    base_url: str
    db_url: str
    ctx: services.Context  # on the server's clock, for seeding and checking the database
    clock: ScaledClock
    stop_event: threading.Event
    thread: threading.Thread
    engines: list[Any] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        for engine in self.engines:
            engine.dispose()


def start_live_server(
    folder: Path,
    *,
    start: datetime | None = None,
    telephony: TelephonySetup | None = None,
    seed: Callable[[services.Context], None] | None = None,
    policy: Policy | None = None,
    worker: str = "browser-1",
    **serve_kwargs: Any,
) -> LiveServer:
    """`serve` in a thread on a fresh SQLite file in `folder`, on a scaled clock at factor 1 from
    `start` (default Monday 7 December 2026, 10:00 Paris); `seed(ctx)` runs before the dialer starts
    (it loads its nurses then). Returns once the log-in page answers. The simulated nurses take no
    breaks (tests/factories.py's policy): a quarter-hour pause in real time would decide what a page
    shows."""
    folder.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{folder / 'carecall.db'}"
    pol = policy or factories.policy()
    clock = ScaledClock(start or MONDAY_10_PARIS, SystemClock().now(), 1.0)
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    ctx = services.Context(session_factory(engine), pol, clock)
    if seed is not None:
        seed(ctx)
    last_error: BaseException | None = None
    for _ in range(3):  # another process may take the free port first: try another
        port = free_port()
        stop = threading.Event()
        failure: list[BaseException] = []

        def run(
            port: int = port, stop: threading.Event = stop, failure: list[BaseException] = failure
        ) -> None:
            try:
                serve(
                    db_url,
                    pol,
                    config_dir=str(Path(__file__).resolve().parents[2] / "config"),
                    worker=worker,
                    share=Share(1, 1),
                    clock=clock,
                    stop=stop,
                    telephony=telephony,
                    host="127.0.0.1",
                    port=port,
                    **serve_kwargs,
                )
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=run, name=f"live-server-{port}", daemon=True)
        thread.start()
        base_url = f"http://127.0.0.1:{port}"
        if _wait_until_up(base_url, thread):
            return LiveServer(base_url, db_url, ctx, clock, stop, thread, [engine])
        stop.set()
        thread.join(30)
        last_error = failure[0] if failure else None
    engine.dispose()
    raise RuntimeError(f"the live server did not start: {last_error!r}")


def _wait_until_up(base_url: str, thread: threading.Thread, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and thread.is_alive():
        try:
            with urllib.request.urlopen(base_url + "/login", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------- helpers


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT, message: str = "") -> Any:
    """Until `condition` holds. An element the page swapped out while the condition read it (a live
    row replacing itself) means: look again, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message
    )


def login(chrome: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the log-in page, as a person would; returns once the answer page is loaded."""
    from selenium.webdriver.common.by import By

    chrome.get(base_url + "/login")
    chrome.find_element(By.ID, "username").clear()
    chrome.find_element(By.ID, "username").send_keys(username)
    chrome.find_element(By.ID, "password").send_keys(password)
    chrome.execute_script("window.carecallLogInPage = true;")
    chrome.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    # a new document has no mark; asking while it loads may fail (Chromium: "node does not belong
    # to the document"), which means: ask again
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, WAIT, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.carecallLogInPage && document.readyState === 'complete';"),
        "the log-in form was not answered",
    )


def axe_violations(chrome: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core (vendored from the npm registry) run in the page: its violations of those impacts,
    each with its rule, help text and the elements at fault."""
    assert AXE, "tests/browser/axe-core-*.min.js is missing"
    chrome.execute_script(AXE[-1].read_text(encoding="utf-8"))
    result = chrome.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done(JSON.stringify(r.violations)))
          .catch(e => done(JSON.stringify({error: String(e)})));
        """
    )
    found = json.loads(result)
    if isinstance(found, dict):
        raise AssertionError(f"axe-core failed: {found['error']}")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in found
        if v.get("impact") in impacts
    ]


def screenshot(chrome: Any, name: str) -> Path:
    """A PNG of the page: tests/browser/screenshots/NAME.png with CARECALL_SCREENSHOTS=1 (for the
    README), else a temporary folder."""
    if os.environ.get("CARECALL_SCREENSHOTS", "") == "1":
        folder = SCREENSHOTS
    else:
        folder = Path(tempfile.gettempdir()) / "carecall-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    chrome.save_screenshot(str(path))
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
