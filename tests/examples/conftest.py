"""Fixtures for the demo site's tests: a migrated demo database, the demo server,
and a headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.unavailable import unavailable

from .demo import DemoServer, demo_env, manage

CHROMIUM = "/usr/bin/chromium"
#: Debian's Chromium with no sandbox (containers), GPU, QUIC or background traffic.
#: Playwright adds a fresh --user-data-dir (a new temporary profile) on every launch.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Most a single browser action or expectation waits, in milliseconds.
BROWSER_TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated demo database with the demo data (blogs, posts, demo/demo)."""
    path = tmp_path_factory.mktemp("demo") / "db.sqlite3"
    env = demo_env(path)
    manage(env, "migrate", "--noinput")
    manage(env, "demo_data")
    return path


@pytest.fixture(scope="session")
def demo_server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo served by djwire (in-memory layer) for the whole session."""
    server = DemoServer(demo_env(demo_db), tmp_path_factory.mktemp("logs") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ensure_chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing (as the README says)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        unavailable(f"{CHROMIUM} is missing and apt-get (as root) is not available to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "chromium"]):
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode:
            unavailable(f"{' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Debian Chromium (never a browser downloaded by Playwright).

    Module-scoped: Playwright's sync API runs its own event loop, which must be gone
    before other modules' asyncio tests run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (it is in the dev extra: pip install -e .[dev])")
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Make pages, each in its own context (own cookies: a separate visitor)."""
    contexts: list[Any] = []

    def make(viewport: tuple[int, int] = (1100, 760)) -> Any:
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, timezone_id="UTC"
        )
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.console_messages = []  # type: ignore[attr-defined]
        page.on("console", lambda message: page.console_messages.append(message.text))
        page.on("pageerror", lambda error: page.console_messages.append(f"pageerror: {error}"))
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
