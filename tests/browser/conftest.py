"""A dashboard on a seeded SQLite store, and Debian's Chromium driven by Playwright.

The browser is the system's /usr/bin/chromium (`make test` installs Debian's ``chromium``
package when it is missing), so no browser is downloaded. These tests fail rather than skip
when it is missing: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from bridge import clock
from bridge.store.db import make_engine, upgrade
from tests.browser.store import NOW, seed, serve

CHROMIUM = Path(os.environ.get("LMSBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium"))
TOKEN = "browser-test-token-0123456789"
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(autouse=True)
def _pinned_clock() -> None:
    """The seeded store is laid out around NOW; the pages compute "ago" and windows from it."""
    clock.set_now(NOW)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard behind a token, on loopback, as the daemon serves it."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'state.db'}")
    upgrade(engine)
    seed(engine)
    ops = serve(engine, "127.0.0.1:0", TOKEN)
    yield f"http://127.0.0.1:{ops.port}"
    ops.stop()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: run `make test`, or apt-get install chromium"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
