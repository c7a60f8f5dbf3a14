"""What every source parser returns (candidate items and the problems it skipped), and
the HTML-to-text rule that the feed and page parsers share."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field

import nh3

from ..normalise import clip

__all__ = [
    "DATE_LINE",
    "DATE_SELECTOR",
    "FEED_DATE",
    "FEED_UPDATED",
    "PAGE_DATE",
    "SELECTOR_KEYS",
    "SUMMARY_LIMIT",
    "TEXT_DATE",
    "Candidate",
    "Parsed",
    "html_to_text",
    "summary_text",
]

#: The selectors a page source understands: ``item``, then the fields looked up inside it.
SELECTOR_KEYS = ("item", "title", "link", "date", "summary", "image")

# Which rule gave an item its date: stored with the item and shown by `newsletter items`,
# so that a person can see why an item sits in its week.
#: Copied text: a date line beside the item's headline.
DATE_LINE = "date line"
#: Copied text: the page's date (a date line above the stories), for an item without its own.
PAGE_DATE = "page date"
#: Copied text: the first date in the item's running text, when nothing else dates it.
TEXT_DATE = "text date"
#: Feeds: the entry's publication date, or only its last-updated date when it has no other.
FEED_DATE = "feed date"
FEED_UPDATED = "feed updated"
#: Pages: the text or ``datetime`` of the element the ``date`` selector found.
DATE_SELECTOR = "date selector"

#: Summaries longer than this many characters are cut at a word boundary.
SUMMARY_LIMIT = 600

# Tags kept through the first sanitising pass only so they can become spaces: without
# this "<p>One.</p><p>Two.</p>" would read "One.Two.".
_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
               "blockquote", "tr", "td", "th", "table", "section", "article", "figure",
               "figcaption", "hr", "dd", "dt", "pre"}  # fmt: skip
# Dropped with their content. Beyond nh3's default (script, style) these are the elements
# whose content the HTML parser reads as raw text, which would otherwise come out as
# literal markup such as "<img src=x onerror=...>" from inside a <noscript>.
_DROP_WITH_CONTENT = {"script", "style", "noscript", "textarea", "xmp", "iframe", "noembed",
                      "noframes", "plaintext", "title", "template", "object"}  # fmt: skip
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def html_to_text(markup: str) -> str:
    """Reduce an HTML fragment to one line of plain text; scripts lose their content too."""
    # nh3 leaves only bare block tags (no attributes) and escapes every other "<", so the
    # regex below cannot eat text.
    cleaned = nh3.clean(
        markup, tags=_BLOCK_TAGS, clean_content_tags=_DROP_WITH_CONTENT, attributes={}
    )
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", cleaned))).strip()


def summary_text(markup: str) -> str:
    """An HTML summary as plain text of at most :data:`SUMMARY_LIMIT` characters."""
    return clip(html_to_text(markup), SUMMARY_LIMIT)


@dataclass
class Candidate:
    """One item as a parser found it, before it enters the library."""

    title: str
    #: Absolute http(s) URL, or None when the source gave none (copied text).
    url: str | None = None
    #: Plain text (Markdown-safe): parsers sanitise HTML away.
    summary: str = ""
    published: dt.date | None = None
    #: Which rule found ``published`` (:data:`DATE_LINE`, :data:`FEED_DATE`...); "" if none.
    dated_by: str = ""
    #: The exact publication time when the source gives one (feeds do); it decides the
    #: calendar date in [draft] timezone, so a story at 23:30 on Sunday in Brussels
    #: belongs to that week, not the next.
    published_at: dt.datetime | None = None
    updated: dt.datetime | None = None
    #: news, video, feature, audio, ...
    kind: str = ""
    #: A section the source suggests, e.g. "Further reading"; empty for the default.
    section: str = ""
    author: str = ""
    image_url: str | None = None
    image_alt: str = ""


@dataclass
class Parsed:
    items: list[Candidate] = field(default_factory=list)
    #: One line per thing skipped or doubtful, saying what and why.
    problems: list[str] = field(default_factory=list)
    #: Why nothing could be read at all (not a feed, selectors that match nothing...):
    #: then the source counts as failed, and ``collect`` / ``import`` exit non-zero.
    error: str = ""
