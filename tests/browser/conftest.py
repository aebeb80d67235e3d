"""Browser tests: Playwright driving Debian's chromium against a real `flowyard serve` process.

The browser is module-scoped (a session-scoped sync Playwright clashes with the async `user`
fixture tests). Every page records console errors and uncaught exceptions; a test fails if any
were logged. Screenshots go to `test-artifacts/browser/` (kept by CI, ignored by git); the
README's pictures are taken by the same tests (`keep`); `make screenshots` writes them to
`docs/screenshots/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from bench.canvas import CHROMIUM, CHROMIUM_ARGS
from tests.server.conftest import ServerProcess, free_port

ROOT = Path(__file__).parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module (a browser test walks through several pages of it)."""
    base = tmp_path_factory.mktemp("browser-server")
    process = ServerProcess(base / "data", free_port(), base / "server.log")
    process.start()
    yield process
    process.stop()


class PageErrors:
    """Console errors and uncaught exceptions a page logged."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")

    def exception(self, error: Exception) -> None:
        self.messages.append(f"uncaught: {error}")


def shot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artifact and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def keep(page: Page, name: str) -> Path:
    """A viewport screenshot for the README's walkthrough: a test artifact, and with
    `FLOWYARD_SCREENSHOTS=1` (`make screenshots`) the README's own picture in `docs/screenshots/`
    (not on every run, which would leave the work tree changed after each `make test`)."""
    folder = SCREENSHOTS if os.environ.get("FLOWYARD_SCREENSHOTS") == "1" else ARTIFACTS / "readme"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    errors = PageErrors()
    page.on("console", errors.console)
    page.on("pageerror", errors.exception)
    page.set_default_timeout(15_000)
    yield page
    shot(page, f"{request.node.name}-end")
    context.close()
    assert errors.messages == [], f"the page logged errors: {errors.messages}"
