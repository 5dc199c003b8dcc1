"""Browser fixtures: Debian's Chromium driven by Playwright, against real servers (docs/console.md).

The main server is what `make run` starts: the embedded default, its seven
example functions as real processes, verification on, the console enabled.
Every test gets a fresh page whose console errors fail it. Without Chromium
(or Playwright) every test here is skipped with one message: the line below
that says how to get it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, shared with the end-to-end suite)
    dev_ca,
    function_process,
    start_server,
)
from tests.helpers import free_port, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_BROWSER = (
    "no headless Chromium: tests/browser need Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y chromium; .ci/run installs it as root) and the playwright package "
    "(pip install -e '.[test]')"
)
#: A 1x1 PNG, served for card images: tests never reach the network.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """Playwright, or every test skipped with NO_BROWSER (one skip line, from here)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NO_BROWSER)
    if not CHROMIUM.exists():
        pytest.skip(NO_BROWSER)
    driver = sync_playwright().start()
    yield driver
    driver.stop()


def launch(playwright: Any, *extra: str) -> Any:
    """Debian's Chromium, headless; never a browser Playwright would download."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@dataclass
class Embedded:
    """`funker-dispatch serve` with no config, as `make run` runs it."""

    url: str
    admin_url: str
    log_path: Path
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def console(self) -> str:
        return self.admin_url + "/console"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_embedded(home: Path) -> Embedded:
    """`funker-dispatch serve` with no config, its state in `home`, on free ports."""
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    env.update(FUNKER_DISPATCH_HOME=str(home), FUNKER_DISPATCH_SERVER_ADMIN_PORT=str(admin))
    log_path = home / "server.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "funker_dispatch", "serve", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Embedded(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", log_path, home, process
    )

    def healthy() -> bool:
        assert process.poll() is None, server.log()
        try:
            for url in (server.url, server.admin_url):
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    pass
            return True
        except OSError:
            return False

    try:
        wait_until(healthy, 30, "the embedded default to answer on both listeners")
    except BaseException:
        stop_embedded(server)
        raise
    return server


def stop_embedded(server: Embedded) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def embedded(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """Started only when a browser is there (the fixture above skips first otherwise)."""
    server = start_embedded(tmp_path_factory.mktemp("console-home"))
    yield server
    stop_embedded(server)


@dataclass
class Page:
    """A fresh page, and what its console said that was an error."""

    page: Any
    errors: list[str] = field(default_factory=list)


def open_page(
    browser: Any,
    url: str,
    *,
    viewport: dict[str, int] | None = None,
    init_script: str | None = None,
) -> Page:
    context = browser.new_context(
        viewport=viewport or {"width": 1280, "height": 900}, accept_downloads=True
    )
    if init_script is not None:
        context.add_init_script(init_script)
    page = context.new_page()
    watched = Page(page)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    # Card images are https URLs of the function's choosing: answered here, never fetched.
    context.route(
        "https://**/*.png", lambda route: route.fulfill(body=PIXEL, content_type="image/png")
    )
    page.goto(url)
    page.locator("body[data-ready=true]").wait_for()
    return watched


@pytest.fixture
def console(browser: Any, embedded: Embedded) -> Iterator[Any]:
    """The embedded default's console in a fresh page; a console error fails the test."""
    watched = open_page(browser, embedded.console)
    yield watched.page
    watched.page.context.close()
    assert watched.errors == [], watched.errors
