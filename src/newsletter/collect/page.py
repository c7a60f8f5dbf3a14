"""Source type ``page``: an HTML newsroom listing page, read through CSS selectors.

The source's ``selectors`` say where the stories are: ``item`` (required) matches one element
per story; ``title``, ``link``, ``date``, ``summary`` and ``image`` are looked up inside each
item. Every field takes the first match, in document order, that gives a value, so a group
such as ``"h1, .teaser-content, a"`` serves items of different shapes on one page. Title and
link default to, and fall back to, the item's first ``a[href]`` (its text, else its title
attribute). Items that are navigation ("ALL NEWS", a link to a listing) are dropped: see
``is_navigation``.
Parsing uses selectolax's lexbor backend (its Modest backend is deprecated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from ..normalise import clip, parse_date, web_url
from .base import DATE_SELECTOR, SELECTOR_KEYS, SUMMARY_LIMIT, Candidate, Parsed, html_to_text

__all__ = ["NATO_NEWSROOM_SELECTORS", "is_navigation", "parse_page"]

#: Selectors for the NATO newsroom front page (tests/fixtures/pages/nato-newsroom-2022-12-07.html):
#: the lead story (image, date, headline, summary and related Audio/Transcript links, which
#: stay inside the item and so never become items), the teasers, and the headline list.
#: The list's entries carry a title attribute that its closing "ALL NEWS" link lacks.
NATO_NEWSROOM_SELECTORS: Final[Mapping[str, str]] = {
    "item": ".hero .box-media--stretched, .hero .teaser, .hero .list-bordered > li:has(> a[title])",
    "title": "h1, .teaser-content, a",
    "link": "a[href]",
    "date": ".date",
    "summary": ".overlay-desc > p",
    "image": "img",
}

_FIELDS = SELECTOR_KEYS[1:]
_ANCHOR = "a[href]"
# Lazy-loading scripts keep the real picture in a data- attribute and a placeholder in src.
_IMAGE_ATTRS = ("data-original", "data-src", "data-lazy-src", "src")

# Navigation heuristic (see is_navigation): link labels that lead to more stories, not a
# story, and the last path segments of listing pages ("news.htm", "/press/", "index.html").
_NAV_LABEL = re.compile(
    r"(?:(?:see|view|show|load|read|browse)\s+)?(?:all|more)"
    r"(?:\s+(?:news|stories|articles|posts|items|releases|press releases|updates|videos))?"
    r"|next|previous|older|newer|archives?|back",
    re.IGNORECASE,
)
_INDEX_STEMS = {"", "index", "default", "news", "newsroom", "press", "media", "archive",
                "articles", "stories", "latest", "all", "releases"}  # fmt: skip


def is_navigation(title: str, url: str | None, page_url: str) -> bool:
    """True for a link that leads to more stories rather than to a story.

    A label such as "ALL NEWS", "More", "Read more" or "See all", or a link back to the
    listing page itself or to a listing index (a last path segment such as ``news.htm``,
    ``/newsroom/`` or ``index.html`` with no query string).
    """
    if _NAV_LABEL.fullmatch(title.strip(" .:>\u00bb\u203a\u2192\u2026")):
        return True
    if url is None:
        return False
    target, page = urlsplit(url), urlsplit(page_url)
    if (target.netloc, target.path.rstrip("/"), target.query) == (
        page.netloc, page.path.rstrip("/"), page.query):  # fmt: skip
        return True
    stem = target.path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0].lower()
    return not target.query and stem in _INDEX_STEMS


def _text(node: LexborNode) -> str:
    # Through the same sanitiser as feed summaries: block tags become spaces, scripts vanish.
    return html_to_text(node.html or "")


def _title(nodes: list[LexborNode]) -> str:
    texts = (_text(n) for n in nodes)
    labels = (" ".join((n.attributes.get("title") or "").split()) for n in nodes)
    return next((t for t in texts if t), None) or next((t for t in labels if t), "")


def _image(nodes: list[LexborNode], base_url: str) -> tuple[str | None, str]:
    for node in nodes:
        img = node if node.tag == "img" else node.css_first("img")
        if img is None:
            continue
        for attr in _IMAGE_ATTRS:
            url = web_url(img.attributes.get(attr), base_url)  # data: placeholders -> None
            if url:
                return url, " ".join((img.attributes.get("alt") or "").split())
    return None, ""


def parse_page(html: str | bytes, base_url: str, selectors: Mapping[str, str]) -> Parsed:
    """The stories on a listing page; ``base_url`` is the page's URL (relative links)."""
    known = ", ".join(("item", *_FIELDS))
    problems = [f"unknown selector {key!r} ignored (known: {known})"
                for key in selectors if key not in ("item", *_FIELDS)]  # fmt: skip
    if not (selectors.get("item") or "").strip():
        return Parsed(problems=problems, error="no item selector configured: nothing imported")
    # Bytes: let lexbor find the charset (BOM, <meta charset>) instead of assuming UTF-8.
    tree = LexborHTMLParser(html, encoding=isinstance(html, bytes))
    fields: dict[str, str] = {}
    for key in ("item", *_FIELDS):
        selector = (selectors.get(key) or "").strip()
        if not selector:
            continue
        try:
            tree.css(selector)  # Validates once, so a typo is reported once, not per item.
        except SelectolaxError:
            outcome = "nothing imported" if key == "item" else "ignored"
            reason = f"the {key} selector {selector!r} is not valid CSS: {outcome}"
            if key == "item":
                return Parsed(problems=problems, error=reason)
            problems.append(reason)
            continue
        fields[key] = selector
    items = tree.css(fields["item"])
    if not items:
        reason = f"the item selector {fields['item']!r} matched nothing on {base_url}"
        return Parsed(problems=problems, error=reason)
    parsed = Parsed(problems=problems)
    seen: set[str] = set()
    for number, item in enumerate(items, 1):
        # lexbor's node.css() includes the item itself, so item = "a.headline" works with
        # link = "a[href]" and no special case.
        found = {key: item.css(sel) for key, sel in fields.items() if key != "item"}
        # A configured title/link selector that finds nothing in this item falls back to the
        # item's first link, so one selector set serves items of different shapes.
        anchors = item.css(_ANCHOR)
        links = [web_url(n.attributes.get("href"), base_url) for n in found.get("link", [])]
        links += [web_url(n.attributes.get("href"), base_url) for n in anchors]
        url = next((u for u in links if u), None)
        title = _title(found.get("title", [])) or _title(anchors)
        if not title:
            parsed.problems.append(f"item {number}: no title: skipped")
            continue
        if is_navigation(title, url, base_url):
            continue  # Not a story and not a fault of the page: nothing to report.
        if url in seen:
            continue  # The same story twice on one page (lead and list): the first is richer.
        # <time datetime="..."> is machine-readable; otherwise the first non-empty text.
        dates = (n.attributes.get("datetime") or _text(n) for n in found.get("date", []))
        raw = next((d for d in dates if d), "")
        published = parse_date(raw) if raw else None
        if raw and published is None:
            parsed.problems.append(f"item {number} ({title!r}): unparseable date {raw!r}")
        if url is None:
            parsed.problems.append(f"item {number} ({title!r}): no link: kept without a URL")
        else:
            seen.add(url)
        image_url, image_alt = _image(found.get("image", []), base_url)
        summaries = (_text(n) for n in found.get("summary", []))
        parsed.items.append(
            Candidate(
                title=title,
                url=url,
                summary=clip(next((s for s in summaries if s), ""), SUMMARY_LIMIT),
                published=published,
                dated_by=DATE_SELECTOR if published else "",
                image_url=image_url,
                image_alt=(image_alt or title) if image_url else "",
            )
        )
    return parsed
