"""Browser fixtures: Debian's ``chromium`` driven headless by Playwright for Python.

Playwright rather than Selenium: its pip wheel carries its own driver, so nothing but the
``chromium`` package is needed (no chromedriver to keep in step with the browser), and it
waits for conditions itself (``page.wait_for_function`` polls the DOM with a deadline). It is
pointed at the system browser with ``executable_path``; ``playwright install`` (a browser
download) is never run.

Where chromium or playwright is missing the tests that need them are skipped with the reason,
except under CI (CI=true), where that fails the run: CI installs both.

Use: a test takes ``page`` (a fresh headless page, 1200x800, 10 s default timeout) and calls
``page.goto(url)``; ``screenshot(page, path)`` keeps a PNG; ``page.errors`` lists the
page's uncaught script errors.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed, and CI must run the browser tests")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str | None:
    """Debian's chromium (``$SWARM_CHROMIUM`` overrides), or None."""
    override = os.environ.get("SWARM_CHROMIUM")
    if override:
        return override if os.path.exists(override) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium for one test module (closed after it, so that Playwright's event
    loop is gone before other modules' asyncio tests run)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (pip: the project's test extras)")
    path = chromium_path()
    if path is None:
        _missing("chromium (Debian package chromium)")
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start;
        # --disable-dev-shm-usage: a container's small /dev/shm crashes its renderer
        b = pw.chromium.launch(
            executable_path=path,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            timeout=30_000,
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own browser context; ``page.errors`` collects uncaught script
    errors (a test can assert it stays empty).

    The context bypasses the page's Content-Security-Policy: Playwright evaluates its
    expressions (``evaluate``, ``wait_for_function``) as strings, which a strict policy
    refuses; and so an escaping test proves the escaping itself, not the policy behind it."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, bypass_csp=True)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    try:
        yield pg
    finally:
        context.close()


def screenshot(page: Any, path: Path) -> Path:
    """Save the whole page as a PNG at *path* (a test's artifact) and return the path."""
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path
