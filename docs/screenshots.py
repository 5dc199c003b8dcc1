"""The README's pictures of the console, made the way tests/browser sees it.

    .venv/bin/python docs/screenshots.py        # writes the console-*.png of docs/images/

Starts the embedded default (what `make run` starts) on free ports with a
state directory of its own, drives Debian's headless Chromium through the
same setup as the browser tests, and saves the pages. Nothing here reaches
the network.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser.conftest import launch, open_page, start_embedded, stop_embedded  # noqa: E402

DOCS = ROOT / "docs" / "images"
TURNS = "li.turn:not(.pending)"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def say(page: Any, utterance: str, count: int) -> Any:
    page.fill("#utterance", utterance)
    page.click("#say button[type=submit]")
    expect(page.locator(TURNS)).to_have_count(count, timeout=15_000)
    return page.locator(TURNS).nth(count - 1)


def conversation(browser: Any, url: str) -> None:
    page = open_page(browser, url, viewport=WIDE).page
    say(page, "how many people are in space", 1)
    say(page, "say hello", 2)
    say(page, "it's Grace Hopper", 3)
    page.screenshot(path=DOCS / "console-conversation.png", full_page=True)
    page.context.close()


def skill_io(browser: Any, url: str) -> None:
    page = open_page(browser, url, viewport=WIDE).page
    first = say(page, "say hello to Ada", 1)
    first.locator("details.io summary").click()
    editor = first.locator("textarea.request-body")
    editor.fill(editor.input_value().replace('"Ada"', '"Linus"'))
    editor.evaluate("editor => { editor.scrollTop = 0; }")  # show the envelope's start
    first.locator("button.send-as-is").click()
    expect(page.locator(TURNS)).to_have_count(2, timeout=15_000)
    page.locator(TURNS).nth(1).scroll_into_view_if_needed()
    page.screenshot(path=DOCS / "console-skill-io.png", full_page=True)
    page.context.close()


def events(browser: Any, url: str) -> None:
    page = open_page(browser, url, viewport=WIDE).page
    page.click("nav.tabs button[data-tab=events]")
    page.click("#event-kinds button[data-kind=cloudwatch]")
    page.click("#event-form button[type=submit]")
    expect(page.locator("#event-result tbody tr")).to_have_count(1, timeout=15_000)
    page.screenshot(path=DOCS / "console-events.png", full_page=True)
    page.context.close()


def certify(browser: Any, url: str) -> None:
    page = open_page(browser, url, viewport=WIDE).page
    page.click("nav.tabs button[data-tab=certify]")
    page.click("#certify-run")
    expect(page.locator("[data-part=certify-summary]")).to_contain_text("pass", timeout=30_000)
    page.screenshot(path=DOCS / "console-certify.png", full_page=True)
    page.context.close()


def phone(browser: Any, url: str) -> None:
    page = open_page(browser, url, viewport=PHONE).page
    say(page, "say hello to Ada", 1)
    page.screenshot(path=DOCS / "console-phone.png")
    page.context.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as home:
        server = start_embedded(Path(home))
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for shoot in (conversation, skill_io, events, certify, phone):
                    shoot(browser, server.console)
                browser.close()
        finally:
            stop_embedded(server)
    for picture in sorted(DOCS.glob("console-*.png")):
        print(picture.relative_to(ROOT))


if __name__ == "__main__":
    main()
