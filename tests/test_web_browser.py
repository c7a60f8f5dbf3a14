"""The public pages of a running `newsletter serve`, in headless Chromium.

One server for the module (tests/test_web_e2e.py's ``live_server``: three subscribers, the
sample issue sent in capture mode, base_url = the server's own 127.0.0.1 address). A person
reads the archive and an issue, subscribes (double opt-in, the confirmation link read from
the captured mail) and unsubscribes from a message's footer link. On every page: nothing
requested beyond the server (every other request is aborted and recorded), no console
error, no page error, no CSP violation (Chromium reports those on the console), and no
horizontal scrolling on a phone. Screenshots at 375 and 800 px are left in
test-output/screenshots/web-<page>-<width>.png.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Route

from tests.conftest import SAMPLE_ISSUE
from tests.test_browser import _OVERFLOW_JS, SCREENSHOTS
from tests.test_web_e2e import (
    SAMPLE_SUBJECT,
    SAMPLE_WEEK,
    SUBSCRIBERS,
    Live,
    live_server,
    make_project,
    recipient,
    web_url,
)

WIDTHS = (375, 800)
#: A hang guard for mail the server sends after answering; not a measure of speed.
MAIL_TIMEOUT = 30.0


def _remote_images(issue: Path) -> set[str]:
    """The issue's images that are not ours (absolute http(s) URLs): the only requests
    beyond the server a page may make; they are blocked all the same."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            image = node.get("image")
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
                found.add(url)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tomllib.loads(issue.read_text(encoding="utf-8")))
    return found


#: The sample issue's images are all bundled (static/images/, served by `serve`): none.
REMOTE_IMAGES = _remote_images(SAMPLE_ISSUE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(make_project(tmp_path_factory.mktemp("web-browser"))) as live:
        yield live


@dataclass
class Tab:
    """A page in its own browser context, and what it did that it should not have."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def shoot(self, name: str) -> None:
        """Screenshots of the current page at each of :data:`WIDTHS`; no sideways scrolling
        on the narrow one."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 800})
            overflow = self.page.evaluate(_OVERFLOW_JS)
            assert overflow["scroll"] <= overflow["width"], (name, width, overflow)
            path = SCREENSHOTS / f"web-{name}-{width}.png"
            path.unlink(missing_ok=True)  # a stale file from an earlier run must not pass
            self.page.screenshot(path=path, full_page=True)
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 800})
        self.clean()

    def clean(self) -> None:
        """Fail now (not only at teardown) if anything went wrong so far."""
        assert self.problems == [], self.problems
        unexpected = [url for url in self.blocked if url not in REMOTE_IMAGES]
        assert unexpected == [], f"requests beyond the server: {unexpected}"

    def heading(self) -> str:
        return self.page.locator("h1").inner_text().strip()


@pytest.fixture
def tab(browser: Browser, site: Live) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800})
    page = context.new_page()
    tab = Tab(page)

    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(site.base):
            route.continue_()
        else:
            tab.blocked.append(url)
            route.abort("blockedbyclient")

    def console(message: ConsoleMessage) -> None:
        # CSP violations ("Refused to load ...") and failed loads are console errors.
        if message.type == "error" and message.location.get("url") not in REMOTE_IMAGES:
            tab.problems.append(f"console: {message.text} ({message.location.get('url')})")

    def page_error(error: Error) -> None:
        tab.problems.append(f"page error: {error}")

    context.route("**/*", handle)
    page.on("console", console)
    page.on("pageerror", page_error)
    try:
        yield tab
    finally:
        context.close()
    tab.clean()


def _wait_for_mail(site: Live, to: str, subject: str) -> EmailMessage:
    """The message the server sends after answering (a background task)."""
    deadline = time.monotonic() + MAIL_TIMEOUT
    while True:
        for message in site.messages():
            if recipient(message) == to and subject in str(message["Subject"]):
                return message
        if time.monotonic() > deadline:
            pytest.fail(f"no {subject!r} mail to {to} was captured; server log: {site.log()}")
        time.sleep(0.05)  # polling for a file, not racing a timer


def _text(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert isinstance(part, EmailMessage), f"no text/{kind} part"
    content: Any = part.get_content()
    assert isinstance(content, str)
    return content


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[0]}\u2022\u2022\u2022@{domain}"


# --- the archive and an issue ----------------------------------------------------------------


def test_archive_lists_the_issue_and_links_to_it(tab: Tab, site: Live) -> None:
    page = tab.page
    page.goto(site.base, wait_until="load")
    assert tab.heading() == "NATO Newsroom Weekly"
    link = page.get_by_role("link", name=SAMPLE_SUBJECT)
    assert link.count() == 1
    assert link.get_attribute("href") == f"{SAMPLE_WEEK}/"
    assert "Week 25, 2023" in page.locator(".issues li").first.inner_text()
    tab.shoot("archive")
    link.click()
    page.wait_for_url(f"{site.base}{SAMPLE_WEEK}/")
    assert page.title().startswith(SAMPLE_SUBJECT) or SAMPLE_SUBJECT in page.content()
    tab.clean()


_IMAGES_JS = """imgs => imgs.map(i => ({
  src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth,
  alt: (i.getAttribute('alt') || '').trim()}))"""


def test_issue_page_loads_every_local_image(tab: Tab, site: Live) -> None:
    page = tab.page
    page.goto(f"{site.base}{SAMPLE_WEEK}/", wait_until="load")
    assert "DIANA" in page.inner_text("body")
    images = page.eval_on_selector_all("img", _IMAGES_JS)
    local = [i for i in images if i["src"] not in REMOTE_IMAGES]
    assert len(local) == 2, "the sample has a lead image and a video image"
    assert [i["src"] for i in local if not i["src"].startswith(f"{site.base}images/")] == []
    assert [i["src"] for i in local if not (i["complete"] and i["width"] > 0)] == []
    assert [i["src"] for i in images if not i["alt"]] == []
    tab.shoot("issue")


# --- subscribe: form, mail, confirm ----------------------------------------------------------


def test_subscribe_with_double_opt_in(tab: Tab, site: Live) -> None:
    page = tab.page
    address, name = "zoe.reader@example.net", "Zoë Reader"
    page.goto(f"{site.base}subscribe", wait_until="load")
    assert tab.heading() == "Subscribe to NATO Newsroom Weekly"
    tab.shoot("subscribe")
    page.fill("#email", address)
    page.fill("#name", name)
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state("load")
    assert tab.heading() == "Check your inbox"
    tab.clean()
    assert address not in site.subscribers(), "nobody is subscribed before confirming"

    mail = _wait_for_mail(site, address, "Confirm your subscription")
    found = re.search(r"(https?://\S+/confirm\?token=\S+)", _text(mail, "plain"))
    assert found, _text(mail, "plain")
    page.goto(web_url(found.group(1), site.port), wait_until="load")
    assert tab.heading() == "Confirm your subscription"
    assert _mask(address) in page.inner_text("main")
    tab.shoot("confirm")
    assert address not in site.subscribers(), "opening the link alone subscribes nobody"

    page.get_by_role("button", name="Yes, subscribe me").click()
    page.wait_for_load_state("load")
    assert tab.heading() == "You are subscribed"
    tab.shoot("subscribed")

    row = site.subscribers()[address]
    assert (row["status"], row["name"], row["consent_ip"]) == ("active", name, "127.0.0.1")
    consent = dt.datetime.fromisoformat(row["consent_at"])
    assert consent.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - consent) < dt.timedelta(days=1)  # today, not a default


# --- unsubscribe from a message's footer -----------------------------------------------------


def test_unsubscribe_from_the_footer_link(tab: Tab, site: Live) -> None:
    page = tab.page
    address = SUBSCRIBERS[1][0]
    issue = next(
        m
        for m in site.messages()
        if recipient(m) == address and str(m["Subject"]) == SAMPLE_SUBJECT
    )
    links = re.findall(r'<a href="([^"]+)"[^>]*>\s*Unsubscribe\s*</a>', _text(issue, "html"))
    assert len(links) == 1, links
    footer = html.unescape(links[0])
    assert footer.startswith(f"{site.base}unsubscribe?token="), footer
    assert f"<{footer}>" in str(issue["List-Unsubscribe"]), "footer and header links differ"

    page.goto(web_url(footer, site.port), wait_until="load")
    assert tab.heading() == "Unsubscribe from NATO Newsroom Weekly?"
    assert _mask(address) in page.inner_text("main")
    assert address not in page.content(), "the page shows the address masked only"
    tab.shoot("unsubscribe")
    assert site.subscribers()[address]["status"] == "active", "a GET must not unsubscribe"

    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state("load")
    assert tab.heading() == "You are unsubscribed"
    assert _mask(address) in page.inner_text("main")
    assert page.get_by_role("button", name="Resubscribe").is_visible()
    tab.shoot("unsubscribed")
    assert site.subscribers()[address]["status"] == "unsubscribed"

    # Changed their mind: the button on the same page makes them active again.
    page.get_by_role("button", name="Resubscribe").click()
    page.wait_for_load_state("load")
    assert tab.heading() == "You are subscribed"
    row = site.subscribers()[address]
    assert (row["status"], row["consent_ip"]) == ("active", "127.0.0.1")
