"""Source type ``feed``: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by hand.

Everything that leaves this module is plain text: titles and summaries go through nh3 (an
allow-list sanitiser) and lose every tag and attribute, so ``<script>``, event handlers and
``javascript:`` links cannot survive even where feedparser's own sanitiser lets HTML through.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import io
import json
import time
import xml.parsers.expat
from collections.abc import Iterable, Mapping
from typing import Any

import feedparser

from ..normalise import web_url
from .base import FEED_DATE, FEED_UPDATED, Candidate, Parsed, html_to_text, summary_text

__all__ = ["parse_feed"]

# Dates Python can still move to any time zone (the library uses [draft] timezone).
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(days=2)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC) - dt.timedelta(days=2)


def _first_web(*urls: str | None) -> str:
    """The first of ``urls`` that is an absolute http(s) URL, to resolve others against."""
    return next((u for u in urls if u and web_url(u, "")), "")


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
    """Parse a feed document; relative links resolve against ``base_url`` (the feed's URL).

    When ``base_url`` is not an http(s) URL (a feed read from a file), the site link the
    feed gives about itself (RSS channel link, Atom xml:base, JSON Feed feed_url) stands in.
    """
    head = content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"{"):
        return _parse_json_feed(content, base_url)
    # A stream, never bytes/str: feedparser would fetch a string that looks like a URL and
    # open one that names a file. The content-type makes it honour the XML declaration's
    # encoding instead of flagging every document as "no Content-type specified".
    # A file path as content-location would make feedparser turn "a.html" into "/dir/a.html".
    location = _first_web(base_url)
    result = feedparser.parse(
        io.BytesIO(content),
        response_headers={"content-type": "application/xml", "content-location": location},
    )
    if not result.get("version") or not result.entries:
        reason = _not_a_feed(content, head, result)
        # A real feed with no entries yet is news, not a failure; anything else is.
        if not result.get("version") or result.get("bozo") or _too_deep(content):
            return Parsed(error=reason)
        return Parsed(problems=[reason])
    base = _first_web(location, result.feed.get("link"))
    parsed = Parsed()
    for number, entry in enumerate(result.entries, 1):
        # A plain dict: FeedParserDict.get("updated") falls back to "published" with a
        # DeprecationWarning, and an entry's date must not silently change meaning.
        notes: list[str] = []
        _add(parsed, number, _from_feedparser(dict(entry), base, notes), notes)
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


#: Deeper than this, an entryless "feed" is junk (or an attack), not a quiet week.
_MAX_DEPTH = 100


def _too_deep(content: bytes) -> bool:
    """Whether the XML nests elements more than :data:`_MAX_DEPTH` deep (expat: no recursion)."""
    depth = deepest = 0

    def start(name: str, attrs: object) -> None:
        nonlocal depth, deepest
        depth += 1
        deepest = max(deepest, depth)

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler = start, end
    with contextlib.suppress(xml.parsers.expat.ExpatError):
        parser.Parse(content, True)
    return deepest > _MAX_DEPTH


def _is_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(sample) - 3
    return True


def _add(parsed: Parsed, number: int, candidate: Candidate | None, notes: list[str]) -> None:
    """Keep a candidate, and say what was skipped or doubtful about entry ``number``."""
    label = f"entry {number}" + (f" ({candidate.title!r})" if candidate else "")
    if candidate and candidate.url is None:
        notes.append("no usable http(s) link: kept without a URL")
    parsed.problems.extend(f"{label}: {note}" for note in notes)
    if candidate:
        parsed.items.append(candidate)


def _in_range(when: dt.datetime, raw: str, notes: list[str]) -> dt.datetime | None:
    """``when`` with a time zone, or None (and a note) when it cannot be a real date:
    "31 Dec 9999 -1200" is past the last date Python can hold once moved to UTC."""
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    try:
        utc: dt.datetime | None = when.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        notes.append(f"date {raw!r} is out of range: kept undated")
        return None
    return when


def _entry_date(raw: str, parsed: time.struct_time | None, notes: list[str]) -> dt.datetime | None:
    """The date as the publisher wrote it (keeping its offset), else feedparser's UTC reading.

    An unparseable or impossible date is reported and the entry kept undated.
    """
    if raw:
        for reader in (email.utils.parsedate_to_datetime, dt.datetime.fromisoformat):
            try:
                when = reader(raw.strip())
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            return _in_range(when, raw, notes)
    if parsed is not None:
        try:
            return _in_range(dt.datetime(*parsed[:6], tzinfo=dt.UTC), raw, notes)
        except (TypeError, ValueError, OverflowError):
            pass
    if raw:
        notes.append(f"unparseable date {raw!r}")
    return None


def _from_feedparser(entry: Mapping[str, Any], base_url: str, notes: list[str]) -> Candidate | None:
    title = html_to_text(entry.get("title", ""))
    if not title:
        notes.append("no title: skipped")
        return None
    # xml:base can differ per entry; feedparser records it on the text constructs.
    base = _first_web((entry.get("title_detail") or {}).get("base"), base_url)
    summary = entry.get("summary") or ""
    if not summary and entry.get("content"):
        summary = entry["content"][0].get("value", "")
    published = _entry_date(entry.get("published", ""), entry.get("published_parsed"), notes)
    updated = _entry_date(entry.get("updated", ""), entry.get("updated_parsed"), notes)
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
        summary=summary_text(summary),
        # Atom requires <updated> but not <published>: then the updated date is the only one.
        published=_day(published or updated),
        dated_by=FEED_DATE if published else FEED_UPDATED if updated else "",
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
        return Parsed(error=f"the response is not valid JSON ({exc}): nothing imported")
    except RecursionError:
        return Parsed(error="the JSON is nested too deeply to read: nothing imported")
    version = doc.get("version", "") if isinstance(doc, dict) else ""
    if not str(version).startswith("https://jsonfeed.org/version/"):
        return Parsed(error="the response is JSON but not a JSON Feed: nothing imported")
    base = _first_web(base_url, _str(doc.get("feed_url")), _str(doc.get("home_page_url")))
    items = doc.get("items")
    if not isinstance(items, list):
        return Parsed(error="the JSON Feed's items is not a list: nothing imported")
    if not items:
        return Parsed(problems=["the JSON Feed has no items: nothing imported"])
    parsed = Parsed()
    for number, item in enumerate(items, 1):
        notes = [] if isinstance(item, dict) else ["not a JSON object: skipped"]
        _add(parsed, number, _from_json(item, base, notes) if not notes else None, notes)
    return parsed


def _json_date(value: str, notes: list[str]) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        notes.append(f"unparseable date {value!r}")
        return None
    return _in_range(when, value, notes)


def _str(value: object) -> str:
    # JSON is whatever the publisher typed: a number or an object where a string belongs
    # counts as missing rather than crashing the import.
    return value if isinstance(value, str) else ""


def _from_json(item: Mapping[str, Any], base: str, notes: list[str]) -> Candidate | None:
    title = html_to_text(_str(item.get("title")))
    if not title:
        notes.append("no title: skipped")
        return None
    summary = (
        _str(item.get("summary"))
        or _str(item.get("content_html"))
        or _str(item.get("content_text"))
    )
    published = _json_date(_str(item.get("date_published")), notes)
    updated = _json_date(_str(item.get("date_modified")), notes)
    attachments = item.get("attachments")
    attachments = (
        [a for a in attachments if isinstance(a, dict)] if isinstance(attachments, list) else []
    )
    images = [_str(item.get("image")), _str(item.get("banner_image"))]
    images += [
        _str(a.get("url")) for a in attachments if _str(a.get("mime_type")).startswith("image/")
    ]
    image_url = web_url(next((u for u in images if u), None), base)
    # 1.1 has "authors" (a list); 1.0 had a single "author".
    authors = item.get("authors")
    first = authors[0] if isinstance(authors, list) and authors else item.get("author")
    author = _str(first.get("name")) if isinstance(first, dict) else ""
    return Candidate(
        title=title,
        url=web_url(_str(item.get("url")) or _str(item.get("external_url")), base),
        summary=summary_text(summary),
        published=_day(published or updated),
        dated_by=FEED_DATE if published else FEED_UPDATED if updated else "",
        published_at=_utc(published or updated),
        updated=_utc(updated),
        kind=_kind(_str(a.get("mime_type")) for a in attachments),
        author=html_to_text(author),
        image_url=image_url,
        image_alt=title if image_url else "",
    )
