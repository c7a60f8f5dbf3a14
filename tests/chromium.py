"""Debian's Chromium, driven by Playwright: the one launch every browser test shares.

It never downloads a browser. Without /usr/bin/chromium the browser tests are skipped,
unless NEWSLETTER_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Chromium resolves names on its own (prefetch, its services), unseen by page.route:
    # no look-up may leave loopback (see the GUIDE's browser notes).
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="module", name="browser")
def fixture_browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("NEWSLETTER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; NEWSLETTER_REQUIRE_BROWSER=1 forbids skipping", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
