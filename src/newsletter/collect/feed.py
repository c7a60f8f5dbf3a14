"""Source type ``feed``: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by hand.

Everything that leaves this module is plain text: titles and summaries go through nh3 (an
allow-list sanitiser) with no tags allowed, so ``<script>``, event handlers and
``javascript:`` links cannot survive even where feedparser's own sanitiser lets HTML through.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import io
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import nh3

from .base import Candidate, Parsed

__all__ = ["SUMMARY_LIMIT", "clip", "html_to_text", "parse_feed"]

#: Summaries longer than this many characters are cut at a word boundary.
SUMMARY_LIMIT = 600

# Tags kept through the first sanitising pass only so they can become spaces: without
# this "<p>One.</p><p>Two.</p>" would read "One.Two.".
_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
               "blockquote", "tr", "td", "th", "table", "section", "article", "figure",
               "figcaption", "hr", "dd", "dt", "pre"}  # fmt: skip
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def html_to_text(markup: str) -> str:
    """Reduce an HTML fragment to one line of plain text; scripts and styles lose their content."""
    # nh3 leaves only bare block tags (no attributes) and escapes every other "<", so the
    # regex below cannot eat text; script/style content is dropped by nh3 itself.
    cleaned = nh3.clean(markup, tags=_BLOCK_TAGS, attributes={}, strip_comments=True)
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", cleaned))).strip()


def clip(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marked with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-\u2013\u2014") + "…"


def web_url(url: str | None, base: str) -> str | None:
    """``url`` made absolute against ``base``, or None when it is not http(s)."""
    if not url or not url.strip():
        return None
    absolute = urljoin(base, url.strip())
    parts = urlsplit(absolute)
    return absolute if parts.scheme in ("http", "https") and parts.netloc else None


def _day(when: dt.datetime | None) -> dt.date | None:
    """The calendar date where the publisher is (the offset it wrote), as its site shows it."""
    return when.date() if when else None


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    return when.astimezone(dt.UTC) if when else None


def _kind(media_types: Iterable[str]) -> str:
    types = list(media_types)
    for kind in ("video", "audio"):
        if any(t.startswith(kind) for t in types):
            return kind
    return ""


def parse_feed(content: bytes, base_url: str = "") -> Parsed:
    """Parse a feed document; relative links resolve against ``base_url`` (the feed's URL)."""
    head = content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"{"):
        return _parse_json_feed(content, base_url)
    # A stream, never bytes/str: feedparser would fetch a string that looks like a URL and
    # open one that names a file. The content-type makes it honour the XML declaration's
    # encoding instead of flagging every document as "no Content-type specified".
    result = feedparser.parse(
        io.BytesIO(content),
        response_headers={"content-type": "application/xml", "content-location": base_url},
    )
    if not result.get("version") or not result.entries:
        return Parsed(problems=[_not_a_feed(content, head, result)])
    parsed = Parsed()
    for number, entry in enumerate(result.entries, 1):
        # A plain dict: FeedParserDict.get("updated") falls back to "published" with a
        # DeprecationWarning, and an entry's date must not silently change meaning.
        _add(parsed, number, _from_feedparser(dict(entry), base_url))
    if result.get("bozo"):
        reason = str(result.get("bozo_exception", "")) or "unknown error"
        parsed.problems.insert(
            0, f"feed is malformed ({reason}): imported {len(parsed.items)} entries anyway"
        )
    return parsed


def _not_a_feed(content: bytes, head: bytes, result: Mapping[str, Any]) -> str:
    if not content.strip():
        return "the response is empty: no feed to import"
    if b"\x00" in content[:1024] or not _is_text(content[:4096]):
        return "the response is binary data, not a feed: nothing imported"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "the response is an HTML page, not a feed: nothing imported"
    if result.get("version"):
        return f"the feed ({result['version']}) has no entries: nothing imported"
    reason = result.get("bozo_exception") or "unknown format"
    return f"the response is not a recognisable feed ({reason}): nothing imported"


def _is_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(sample) - 3
    return True


def _add(parsed: Parsed, number: int, candidate: Candidate | str) -> None:
    """Keep a candidate, or record why entry ``number`` was skipped or doubtful."""
    if isinstance(candidate, str):
        parsed.problems.append(f"entry {number}: {candidate}")
        return
    if candidate.url is None:
        parsed.problems.append(
            f"entry {number} ({candidate.title!r}) has no usable http(s) link: kept without a URL"
        )
    parsed.items.append(candidate)


def _entry_date(raw: str, parsed: time.struct_time | None) -> dt.datetime | None:
    """The date as the publisher wrote it (keeping its offset), else feedparser's UTC reading."""
    if raw:
        for reader in (email.utils.parsedate_to_datetime, dt.datetime.fromisoformat):
            try:
                when = reader(raw.strip())
            except (TypeError, ValueError, IndexError):
                continue
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if parsed is not None:
        return dt.datetime(*parsed[:6], tzinfo=dt.UTC)
    return None


def _from_feedparser(entry: Mapping[str, Any], base_url: str) -> Candidate | str:
    title = html_to_text(entry.get("title", ""))
    if not title:
        return "no title: skipped"
    # xml:base can differ per entry; feedparser records it on the text constructs.
    base = (entry.get("title_detail") or {}).get("base") or base_url
    summary = entry.get("summary") or ""
    if not summary and entry.get("content"):
        summary = entry["content"][0].get("value", "")
    published = _entry_date(entry.get("published", ""), entry.get("published_parsed"))
    updated = _entry_date(entry.get("updated", ""), entry.get("updated_parsed"))
    media = [(m.get("url"), m.get("medium") or "", m.get("type") or "")
             for m in entry.get("media_content", [])]  # fmt: skip
    enclosures = [(e.get("href"), "", e.get("type") or "")
                  for e in entry.get("links", []) if e.get("rel") == "enclosure"]  # fmt: skip
    kind = _kind(x for _, medium, mime in media + enclosures for x in (medium, mime))
    # Preference: an image media:content, then a media:thumbnail, then an image enclosure.
    images = [u for u, medium, mime in media if medium == "image" or mime.startswith("image/")]
    images += [t.get("url") for t in entry.get("media_thumbnail", [])]
    images += [u for u, _, mime in enclosures if mime.startswith("image/")]
    image = next((u for u in images if u), None)
    image_url = web_url(image, base)
    author = (entry.get("author_detail") or {}).get("name") or entry.get("author", "")
    return Candidate(
        title=title,
        url=web_url(entry.get("link"), base),
        summary=clip(html_to_text(summary)),
        # Atom requires <updated> but not <published>: then the updated date is the only one.
        published=_day(published or updated),
        published_at=_utc(published or updated),
        updated=_utc(updated),
        kind=kind,
        author=html_to_text(author),
        image_url=image_url,
        # feedparser drops media:description, so the headline is the best alt we have.
        image_alt=title if image_url else "",
    )


def _parse_json_feed(content: bytes, base_url: str) -> Parsed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Parsed(problems=[f"the response is not valid JSON ({exc}): nothing imported"])
    version = doc.get("version", "") if isinstance(doc, dict) else ""
    if not str(version).startswith("https://jsonfeed.org/version/"):
        return Parsed(problems=["the response is JSON but not a JSON Feed: nothing imported"])
    base = base_url or str(doc.get("feed_url") or "")
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        return Parsed(problems=["the JSON Feed has no items: nothing imported"])
    parsed = Parsed()
    for number, item in enumerate(items, 1):
        _add(parsed, number, _from_json(item, base) if isinstance(item, dict) else "not an object")
    return parsed


def _json_date(value: object) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _from_json(item: Mapping[str, Any], base: str) -> Candidate | str:
    title = html_to_text(str(item.get("title") or ""))
    if not title:
        return "no title: skipped"
    summary = item.get("summary") or item.get("content_html") or item.get("content_text") or ""
    published = _json_date(item["date_published"]) if item.get("date_published") else None
    updated = _json_date(item["date_modified"]) if item.get("date_modified") else None
    attachments = [a for a in item.get("attachments") or [] if isinstance(a, dict)]
    types = [str(a.get("mime_type") or "") for a in attachments]
    image = item.get("image") or item.get("banner_image")
    if not image:
        image = next((a.get("url") for a, t in zip(attachments, types, strict=True)
                      if t.startswith("image/")), None)  # fmt: skip
    image_url = web_url(str(image) if image else None, base)
    # 1.1 has "authors" (a list); 1.0 had a single "author".
    authors = item.get("authors") or [item.get("author") or {}]
    author = authors[0].get("name", "") if isinstance(authors[0], dict) else ""
    return Candidate(
        title=title,
        url=web_url(item.get("url") or item.get("external_url"), base),
        summary=clip(html_to_text(str(summary))),
        published=_day(published or updated),
        published_at=_utc(published or updated),
        updated=_utc(updated),
        kind=_kind(types),
        author=html_to_text(str(author)),
        image_url=image_url,
        image_alt=title if image_url else "",
    )
