"""What every source parser returns: candidate items and the problems it skipped."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = ["Candidate", "Parsed"]


@dataclass
class Candidate:
    """One item as a parser found it, before it enters the library."""

    title: str
    #: Absolute http(s) URL, or None when the source gave none (copied text).
    url: str | None = None
    #: Plain text (Markdown-safe): parsers sanitise HTML away.
    summary: str = ""
    published: dt.date | None = None
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
