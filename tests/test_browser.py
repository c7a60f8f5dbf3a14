"""Render the sample issue in headless Chromium: layout, images, contrast and screenshots.

The page gets no network: it is served from 127.0.0.1, the bundled images are answered from
static/images/, and any other request is aborted and fails the test. An email that only looks
right because a remote font or stylesheet happened to load would look broken in a mail client.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import pytest
from playwright.sync_api import Browser, BrowserContext, FloatRect, Page, Route

from newsletter import Build, Settings
from tests.conftest import STATIC, TEST_OUTPUT

IMAGES = STATIC / "images"
SCREENSHOTS = TEST_OUTPUT / "screenshots"

Scheme = Literal["light", "dark"]
OpenPage = Callable[..., Page]


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP origin on 127.0.0.1 serving in-memory pages: (origin, {path: body})."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def open_page(
    browser: Browser, site: tuple[str, dict[str, bytes]], settings: Settings
) -> Iterator[OpenPage]:
    """``open_page(html, width, scheme="light")``: a loaded page, after checking nothing leaked."""
    origin, pages = site
    image_prefix = f"{settings.newsletter.base_url}images/"
    blocked: list[str] = []
    contexts: list[BrowserContext] = []

    def handle(route: Route) -> None:
        url = route.request.url
        image = IMAGES / url.removeprefix(image_prefix)
        if url.startswith(origin + "/"):
            route.continue_()
        elif url.startswith(image_prefix) and image.parent == IMAGES and image.is_file():
            route.fulfill(path=image)
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    def open_(html: str, width: int, scheme: Scheme = "light") -> Page:
        path = f"/page-{len(pages)}.html"
        pages[path] = html.encode()
        # Mail clients run no scripts; Playwright's evaluate() still works without them.
        context = browser.new_context(
            viewport={"width": width, "height": 800}, color_scheme=scheme, java_script_enabled=False
        )
        contexts.append(context)
        context.route("**/*", handle)
        page = context.new_page()
        page.goto(origin + path, wait_until="load")
        leaked = blocked.copy()
        blocked.clear()  # reported here; teardown reports only what comes later
        assert leaked == [], f"the page requested non-local or unknown resources: {leaked}"
        return page

    yield open_
    for context in contexts:
        context.close()
    assert blocked == [], f"requests blocked after load: {blocked}"


# --- 1. no horizontal scrolling -------------------------------------------------------------

# clientWidth, not innerWidth: a classic scrollbar would otherwise hide up to 15 px of overflow.
_OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const culprits = [...document.body.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > width + 0.5)
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  return {scroll: document.documentElement.scrollWidth, width, culprits};
}"""


@pytest.mark.parametrize(
    ("part", "width"),
    [
        ("html", 320),
        ("html", 375),
        ("html", 600),
        ("archive_html", 375),
    ],
)
def test_no_horizontal_scrolling(
    open_page: OpenPage, sample_build: Build, part: str, width: int
) -> None:
    found = open_page(getattr(sample_build, part), width).evaluate(_OVERFLOW_JS)
    assert found["scroll"] <= found["width"], found


# --- 2. image and text columns stack on phones ----------------------------------------------


def _video_columns(page: Page) -> tuple[FloatRect, FloatRect]:
    image = page.locator(".mj-column-per-42", has=page.locator('img[src$="-video.png"]'))
    text = image.locator("xpath=following-sibling::div[contains(@class, 'mj-column-per-58')]")
    assert "Training Ukraine" in text.inner_text()
    boxes = image.bounding_box(), text.bounding_box()
    assert boxes[0] and boxes[1], "a column is not rendered"
    return boxes[0], boxes[1]


def _stacked(first: FloatRect, second: FloatRect) -> bool:
    return second["y"] >= first["y"] + first["height"] - 1 and abs(second["x"] - first["x"]) <= 1


def _side_by_side(first: FloatRect, second: FloatRect) -> bool:
    return abs(second["y"] - first["y"]) <= 1 and second["x"] >= first["x"] + first["width"] - 1


def test_columns_stack_on_narrow_screens(open_page: OpenPage, sample_build: Build) -> None:
    narrow = _video_columns(open_page(sample_build.html, 375))
    assert _stacked(*narrow), narrow
    wide = _video_columns(open_page(sample_build.html, 600))
    assert _side_by_side(*wide), wide


def test_column_check_depends_on_media_queries(open_page: OpenPage, sample_build: Build) -> None:
    # Without MJML's min-width media query every column is width:100%, so they stack at any
    # width; the layout test above must be able to tell the difference.
    no_media = re.sub(
        r"<style[^>]*>[^<]*@media[^<]*</style>|<style media=[^>]*>[^<]*</style>",
        "",
        sample_build.html,
    )
    assert no_media.count("<style") < sample_build.html.count("<style")
    assert not _side_by_side(*_video_columns(open_page(no_media, 600)))


# --- 3. images: alt text and actually loaded ------------------------------------------------


def test_images_have_alt_and_load(open_page: OpenPage, sample_build: Build) -> None:
    images = open_page(sample_build.html, 600).eval_on_selector_all(
        "img",
        """imgs => imgs.map(
        i => ({src: i.src, alt: (i.getAttribute('alt') || '').trim(), width: i.naturalWidth}))""",
    )
    assert len(images) == 2, "the sample has a lead image and a video image"
    assert [i["src"] for i in images if not i["alt"]] == []
    assert [i["src"] for i in images if i["width"] == 0] == []


# --- 3b. touch targets and pictures in their columns (issue 12, WCAG 2.2) -----------------

# A standalone link is one that is the whole text of its block (a headline, a footer link):
# WCAG 2.2 (2.5.8) exempts links inside a sentence, not these. Each box at least 24 px tall.
_LINK_BOXES_JS = """() => [...document.querySelectorAll('a')]
  .filter(a => a.getClientRects().length)
  .filter(a => {
    const block = a.closest('p, h1, h2, h3, li, td');
    return block && block.textContent.replace(/\\s+/g, ' ').trim()
      === a.textContent.replace(/\\s+/g, ' ').trim();
  })
  .map(a => ({text: a.textContent.trim().slice(0, 40) || a.querySelector('img')?.alt,
              height: a.getBoundingClientRect().height}))"""

# Each picture's rendered box against the column (MJML's mj-column-per-N div) holding it.
_IMAGE_BOXES_JS = """() => [...document.querySelectorAll('img')].map(i => {
  const column = i.closest('[class*="mj-column-per-"]').getBoundingClientRect();
  const box = i.getBoundingClientRect();
  return {src: i.src, left: box.left, right: box.right, width: box.width, height: box.height,
          ratio: i.naturalHeight / i.naturalWidth,
          columnLeft: column.left, columnRight: column.right};
})"""


@pytest.mark.parametrize(
    ("width", "scheme"), [(320, "light"), (375, "light"), (600, "light"), (375, "dark")]
)
def test_standalone_links_are_24px_touch_targets(
    open_page: OpenPage, sample_build: Build, width: int, scheme: Scheme
) -> None:
    page = open_page(sample_build.html, width, scheme)
    links = page.evaluate(_LINK_BOXES_JS)
    # Every headline, both pictures, the header, "view in browser" and the footer links.
    assert len(links) >= 18, links
    assert [link for link in links if link["height"] < 24] == []
    found = page.evaluate(_OVERFLOW_JS)
    assert found["scroll"] <= found["width"], found


def test_the_touch_target_test_can_fail(open_page: OpenPage, sample_build: Build) -> None:
    # The old theme's footer: plain inline links in 13 px text, 15 px tall.
    html = sample_build.html.replace(
        "</body>",
        '<p style="font-size:13px;line-height:1.6"><a href="https://example.org/x">x</a></p></body>',
    )
    links = open_page(html, 375).evaluate(_LINK_BOXES_JS)
    assert [link["text"] for link in links if link["height"] < 24] == ["x"]


@pytest.mark.parametrize("width", [320, 375, 600])
def test_pictures_stay_in_their_column_and_keep_their_shape(
    open_page: OpenPage, sample_build: Build, width: int
) -> None:
    images = open_page(sample_build.html, width).evaluate(_IMAGE_BOXES_JS)
    assert len(images) == 2
    for image in images:
        assert image["left"] >= image["columnLeft"] - 0.5, image
        assert image["right"] <= image["columnRight"] + 0.5, image
        # Not squashed: the numeric height attribute must not fix the height on a phone.
        assert image["height"] == pytest.approx(image["width"] * image["ratio"], abs=1.5), image
    lead, video = images
    if width < 480:
        # Stacked on a phone, the video picture fills the width like the lead one.
        assert video["width"] == pytest.approx(lead["width"], abs=1), images


# --- 4. screenshots for a human to look at --------------------------------------------------


@pytest.mark.parametrize(
    ("width", "scheme"),
    [(600, "light"), (375, "light"), (320, "light"), (600, "dark"), (375, "dark")],
)
def test_screenshots(open_page: OpenPage, sample_build: Build, width: int, scheme: Scheme) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"email-{width}{'-dark' if scheme == 'dark' else ''}.png"
    path.unlink(missing_ok=True)  # a stale file from an earlier run must not pass
    open_page(sample_build.html, width, scheme).screenshot(path=path, full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- 5. summary text contrast (WCAG 2.x AA, 4.5:1) ------------------------------------------

# Every element under a summary that has its own text, with its colour and the colour of the
# nearest ancestor that paints a background (the canvas is white when none does).
_COLOURS_JS = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
  .filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
  .map(e => {
    let bg = 'rgb(255, 255, 255)';
    for (let a = e; a; a = a.parentElement) {
      const c = getComputedStyle(a).backgroundColor;
      if (!/^rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') { bg = c; break; }
    }
    return {text: e.textContent.trim().slice(0, 40), color: getComputedStyle(e).color, bg};
  })"""


def _rgba(css: str) -> tuple[float, float, float, float]:
    match = re.fullmatch(r"rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)", css)
    assert match, f"unexpected colour syntax {css!r}"
    r, g, b, a = match.groups()
    return float(r), float(g), float(b), float(a or 1)


def _luminance(rgb: Iterable[float]) -> float:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(color: str, background: str) -> float:
    *fg, alpha = _rgba(color)
    bg = _rgba(background)[:3]
    # Semi-transparent text is seen blended over its background.
    seen = tuple(f * alpha + b * (1 - alpha) for f, b in zip(fg, bg, strict=True))
    light, dark = sorted((_luminance(seen), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_helper() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(1)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast(open_page: OpenPage, sample_build: Build, scheme: Scheme) -> None:
    """Every visible piece of text (headlines, dates, summaries, header, footer links), in
    light and dark mode, as Chromium computes its colours."""
    found = open_page(sample_build.html, 600, scheme).evaluate(_COLOURS_JS)
    assert len(found) >= 40, "every story, the header and the footer should be checked"
    poor = [
        (f["text"], f["color"], f["bg"], round(contrast(f["color"], f["bg"]), 2))
        for f in found
        if contrast(f["color"], f["bg"]) < 4.5
    ]
    assert poor == []


def test_rules_between_sections_darken_in_dark_mode(
    open_page: OpenPage, sample_build: Build
) -> None:
    script = """() => [...document.querySelectorAll('.nl-section-title h2')]
      .map(h => getComputedStyle(h).borderTopColor)"""
    light = open_page(sample_build.html, 600, "light").evaluate(script)
    dark = open_page(sample_build.html, 600, "dark").evaluate(script)
    assert len(light) == 3
    assert set(light) == {"rgb(213, 221, 230)"}  # [theme] rule, #d5dde6
    assert set(dark) == {"rgb(44, 58, 72)"}  # [theme] dark_rule, #2c3a48
