"""Collect stage: sources (feeds, newsroom pages, copied text) -> the item library.

Every source's import is one transaction: a source that fails (whatever the exception)
leaves the library as it was, and the other sources are still collected. Every text field
a source gives loses its control characters here, in one place, on its way into the library
(:func:`_new_item`).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from .. import library
from ..errors import ConfigError, InputError, NewsletterError
from ..normalise import clean_text, is_web_url, web_url
from ..pause import checkpoint
from ..settings import Settings, SourceSettings
from ..store import Store, utcnow
from .base import SELECTOR_KEYS, Candidate, Parsed
from .fetch import fetch

__all__ = [
    "PARSERS",
    "Candidate",
    "CollectReport",
    "Parsed",
    "SourceReport",
    "add_candidates",
    "collect",
    "collect_source",
    "source_for",
]


# "scheme://...": to be fetched (if http(s)); anything else is a local path.
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass
class SourceReport:
    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False
    problems: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class CollectReport:
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.sources if s.error)


def _parse_feed(source: SourceSettings, content: bytes, url: str) -> Parsed:
    from .feed import parse_feed

    return parse_feed(content, url)


def _parse_page(source: SourceSettings, content: bytes, url: str) -> Parsed:
    from .page import parse_page

    return parse_page(content, url, source.selectors)


def _parse_text(source: SourceSettings, content: bytes, url: str) -> Parsed:
    from .text import parse_text

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source.location}: not UTF-8 text; is it the right file?") from None
    return parse_text(text, source=source.name)


Parser = Callable[[SourceSettings, bytes, str], Parsed]

#: One parser per source type: (source, content, its URL) -> candidates. Each imports its
#: parsing library only when a source of its type is read.
PARSERS: dict[str, Parser] = {"feed": _parse_feed, "page": _parse_page, "text": _parse_text}


@dataclass(frozen=True)
class _Read:
    content: bytes | None
    url: str
    #: Conditional-GET validators to remember once the content is safely stored.
    etag: str | None = None
    last_modified: str | None = None


def _read(source: SourceSettings, settings: Settings, store: Store, conditional: bool) -> _Read:
    location = source.location
    if _SCHEME.match(location):
        if not is_web_url(location):
            raise InputError(f"{location}: only http(s) URLs or local paths can be read")
        state = library.read_source_state(store, source) if conditional else None
        fetched = fetch(
            location, settings.collect,
            etag=state.etag if state else None,
            last_modified=state.last_modified if state else None,
        )  # fmt: skip
        return _Read(fetched.content, fetched.url, fetched.etag, fetched.last_modified)
    path = settings.path(Path(location))
    try:
        if path.stat().st_size > settings.collect.max_bytes:
            raise InputError(f"{path}: over the {settings.collect.max_bytes}-byte limit")
        return _Read(path.read_bytes(), path.resolve().as_uri())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _new_item(
    candidate: Candidate, source: SourceSettings, settings: Settings, rank: int
) -> library.NewItem:
    """The library's item for ``candidate``: the one place where collected text is cleaned
    of control characters (they break the draft's TOML, headers and terminals)."""
    day = candidate.published
    if candidate.published_at is not None:
        moment = candidate.published_at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        try:
            day = moment.astimezone(ZoneInfo(settings.draft.timezone)).date()
        except (OverflowError, ValueError):  # the parsers refuse such dates; in case one did not
            day = None
    return library.NewItem(
        title=clean_text(candidate.title),
        source=source.name,
        url=web_url(candidate.url) if candidate.url else None,
        published=day,
        dated_by=clean_text(candidate.dated_by) if day else "",
        updated=candidate.updated,
        summary=clean_text(candidate.summary, lines=True),
        kind=clean_text(candidate.kind or source.kind),
        section=clean_text(candidate.section or source.section),
        author=clean_text(candidate.author),
        image_url=web_url(candidate.image_url) if candidate.image_url else None,
        image_alt=clean_text(candidate.image_alt),
        rank=rank,
    )


def source_for(
    location: str, kind: str, name: str | None = None, selectors: Sequence[str] = ()
) -> SourceSettings:
    """A one-off source, as ``newsletter import LOCATION --type KIND`` describes it.

    ``selectors`` are ``KEY=CSS`` strings, for page sources only. ``name`` defaults to the
    URL's host or the file's stem; a relative path is resolved against the working
    directory, since that is where the person typing it stands.
    """
    if not location.strip():
        raise InputError("the location is empty; give a path or an http(s) URL")
    if kind not in PARSERS:
        raise InputError(f"type {kind!r}: not a source type (use {', '.join(PARSERS)})")
    pairs: dict[str, str] = {}
    for selector in selectors:
        key, equals, css = selector.partition("=")
        if not equals or not key.strip():
            raise InputError(f"selector {selector!r}: write KEY=CSS, e.g. item=li.news")
        if key.strip() not in SELECTOR_KEYS:
            known = ", ".join(SELECTOR_KEYS)
            raise InputError(f"selector {selector!r}: unknown key {key.strip()!r} (use {known})")
        pairs[key.strip()] = css
    if pairs and kind != "page":
        raise InputError(f"selectors: only --type page uses them, not --type {kind}")
    remote = "://" in location
    if not remote and not Path(location).is_file():
        raise InputError("no such file (give a path to a file, or an http(s) URL)", location)
    default = urlsplit(location).netloc if remote else Path(location).stem
    try:
        return SourceSettings(
            name=name or default or location,
            type=kind,  # checked against PARSERS above
            location=location if remote else str(Path(location).resolve()),
            selectors=pairs,
        )
    except ValidationError as exc:
        raise InputError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def collect_source(
    source: SourceSettings, settings: Settings, store: Store, *, conditional: bool = True
) -> SourceReport:
    """Read, parse and store one source in one transaction; never raises for the source.

    ``conditional`` uses the ETag / Last-Modified remembered from the last successful
    collect of this source (a one-off import fetches afresh).
    """
    report = SourceReport(source.name)
    try:
        read = _read(source, settings, store, conditional)
        if read.content is None:
            report.not_modified = True
            return report
        parsed = PARSERS[source.type](source, read.content, read.url or source.location)
        report.problems = parsed.problems
        if parsed.error:
            report.error = f"{source.location}: {parsed.error}"
            return report
        add_candidates(store, settings, source, parsed.items, report)
        if parsed.items and (read.etag or read.last_modified):
            library.write_source_state(store, source, read.etag, read.last_modified)
    except NewsletterError as exc:
        report.error = str(exc)
    except (sqlite3.Error, ValueError) as exc:
        report.error = f"{source.location}: {_one_line(exc)}"
    except RecursionError:
        report.error = f"{source.location}: nested too deeply to read; nothing imported"
    except Exception as exc:  # a parser bug must not stop the other sources
        report.error = f"{source.location}: could not be read ({_one_line(exc)})"
    return report


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def add_candidates(
    store: Store,
    settings: Settings,
    source: SourceSettings,
    candidates: list[Candidate],
    report: SourceReport | None = None,
) -> SourceReport:
    """Store parsed items in one transaction: all of a source's items, or none."""
    report = report or SourceReport(source.name)
    now, days = utcnow(), settings.collect.same_title_days
    checkpoint("collect")
    with store.transaction() as db:
        for rank, candidate in enumerate(candidates):
            item = _new_item(candidate, source, settings, rank)
            if not item.title:
                report.problems.append(f"item {rank + 1}: no title once cleaned: skipped")
                continue
            outcome = library.add_item(db, item, now=now, same_title_days=days)
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def collect(
    settings: Settings,
    only: str | None = None,
    on_source: Callable[[SourceReport], None] | None = None,
) -> CollectReport:
    """Collect every configured source (or ``only`` one).

    A failing source is reported and does not stop the others.
    """
    sources = [s for s in settings.sources if only is None or s.name == only]
    if only and not sources:
        names = ", ".join(s.name for s in settings.sources) or "none configured"
        raise ConfigError(f"no source named {only!r} in [[sources]] ({names})")
    report = CollectReport()
    with Store(settings.store_path) as store:
        for source in sources:
            result = collect_source(source, settings, store)
            report.sources.append(result)
            if on_source:
                on_source(result)
    return report
