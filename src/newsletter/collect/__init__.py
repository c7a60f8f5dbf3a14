"""Collect stage: sources (feeds, newsroom pages, copied text) -> the item library.

Every source's import is one transaction: a source that fails leaves the library as
it was, and the other sources are still collected.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from ..errors import ConfigError, InputError, NewsletterError
from ..models import item_id
from ..settings import Settings, SourceSettings
from ..store import Store, utcnow
from .base import Candidate, Parsed
from .fetch import fetch

__all__ = [
    "Candidate",
    "CollectReport",
    "Parsed",
    "SourceReport",
    "add_candidates",
    "canonical_url",
    "collect",
    "collect_source",
    "is_tracking",
    "item_id",
    "normalise_title",
]

# Query parameters that only say where a click came from.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|mkt_tok|igshid|ref_src)$",
    re.I,
)


def is_tracking(name: str) -> bool:
    """Whether a query parameter only says where a click came from."""
    return bool(_TRACKING.match(name))


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no default port."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port and not (
        (parts.scheme == "http" and parts.port == 80)
        or (parts.scheme == "https" and parts.port == 443)
    ):
        host = f"{host}:{parts.port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _TRACKING.match(k)
        ]
    )
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", query, ""))


def normalise_title(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


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


def _parse(source: SourceSettings, content: bytes, url: str) -> Parsed:
    if source.type == "feed":
        from .feed import parse_feed

        return parse_feed(content, url)
    if source.type == "page":
        from .page import parse_page

        return parse_page(content, url, source.selectors)
    from .text import parse_text

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source.location}: not UTF-8 text; is it the right file?") from None
    return parse_text(text, source=source.name)


@dataclass(frozen=True)
class _Read:
    content: bytes | None
    url: str
    #: Conditional-GET validators to remember once the content is safely stored.
    etag: str | None = None
    last_modified: str | None = None


def _state_key(source: SourceSettings) -> str:
    # Validators belong to this exact source: a changed location, type or selector set
    # must fetch afresh, or a fixed selector would see "not modified" for ever.
    return f"{source.name}\t{source.type}\t{source.location}\t{sorted(source.selectors.items())}"


def _read(source: SourceSettings, settings: Settings, store: Store, conditional: bool) -> _Read:
    location = source.location
    if re.match(r"^[a-z][a-z0-9+.-]*://", location, re.I):
        if not re.match(r"^https?://", location, re.I):
            raise InputError(f"{location}: only http(s) URLs or local paths can be read")
        state = None
        if conditional:
            state = store.db.execute(
                "SELECT etag, last_modified FROM source_state WHERE source = ?",
                (_state_key(source),),
            ).fetchone()
        fetched = fetch(
            location, settings.collect,
            etag=state["etag"] if state else None,
            last_modified=state["last_modified"] if state else None,
        )  # fmt: skip
        return _Read(fetched.content, fetched.url, fetched.etag, fetched.last_modified)
    path = settings.path(Path(location))
    try:
        if path.stat().st_size > settings.collect.max_bytes:
            raise InputError(f"{path}: over the {settings.collect.max_bytes}-byte limit")
        return _Read(path.read_bytes(), path.resolve().as_uri())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _upsert(
    db: sqlite3.Connection,
    candidate: Candidate,
    source: SourceSettings,
    settings: Settings,
    now: str,
    rank: int = 0,
) -> str:
    """Insert or update one item; returns "new", "updated" or "unchanged"."""
    days = settings.collect.same_title_days
    url = canonical_url(candidate.url) if candidate.url else None
    norm = normalise_title(candidate.title)
    day = candidate.published
    if candidate.published_at is not None:
        moment = candidate.published_at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        day = moment.astimezone(ZoneInfo(settings.draft.timezone)).date()
    published = day.isoformat() if day else None
    by_url: sqlite3.Row | None = None
    if url:
        by_url = db.execute("SELECT * FROM items WHERE url = ?", (url,)).fetchone()
    row = by_url or _same_story(db, norm, published, url, days)
    values = {
        "title": candidate.title.strip(),
        "norm_title": norm,
        "summary": candidate.summary,
        "published": published,
        "updated": candidate.updated.isoformat() if candidate.updated else None,
        "kind": candidate.kind or source.kind,
        "section": candidate.section or source.section,
        "author": candidate.author,
        "image_url": candidate.image_url,
        "image_alt": candidate.image_alt,
        "rank": rank,
    }
    if row is None:
        db.execute(
            "INSERT INTO items (id, url, original_url, first_seen, last_seen, source, "
            + ", ".join(values)
            + ") VALUES (?, ?, ?, ?, ?, ?, "
            + ", ".join("?" * len(values))
            + ")",
            (_new_id(db, url, candidate.title, published), url, candidate.url, now, now,
             source.name, *values.values()),
        )  # fmt: skip
        return "new"
    if by_url is not None:
        # The same source item again: it may have changed; keep what it no longer says.
        merged = {k: (v if v not in (None, "") else row[k]) for k, v in values.items()}
    else:
        # Another source's copy of a story already here: it only fills in what is missing
        # (a URL for copied text, a date, a summary), so sources never overwrite each other.
        merged = {k: (row[k] if row[k] not in (None, "") else v) for k, v in values.items()}
    url = row["url"] or url
    # A story moving down the page is not a change worth reporting.
    changed = url != row["url"] or any(
        str(merged[k] or "") != str(row[k] or "") for k in merged if k != "rank"
    )
    db.execute(
        "UPDATE items SET "
        + ", ".join(f"{k} = ?" for k in merged)
        + ", url = ?, last_seen = ? WHERE id = ?",
        (*merged.values(), url, now, row["id"]),
    )
    return "updated" if changed else "unchanged"


def _same_story(
    db: sqlite3.Connection, norm: str, published: str | None, url: str | None, days: int
) -> sqlite3.Row | None:
    """An item with the same headline published within ``days``: the same story.

    Two different URLs are two stories even under one headline (a weekly column); an
    undated copy only matches when one side has no URL to tell them apart.
    """
    others: list[sqlite3.Row] = db.execute(
        "SELECT * FROM items WHERE norm_title = ?", (norm,)
    ).fetchall()
    for other in others:
        if url and other["url"] and other["url"] != url:
            continue
        if published and other["published"]:
            gap = dt.date.fromisoformat(other["published"]) - dt.date.fromisoformat(published)
            if abs(gap.days) <= days:
                return other
        elif not (url and other["url"]):
            return other
    return None


def _new_id(db: sqlite3.Connection, url: str | None, title: str, published: str | None) -> str:
    """The model's id for the item, unless taken (a recurring headline without a URL)."""
    candidates = [item_id(url, title), item_id(None, f"{title}|{published}")]
    candidates += [item_id(None, f"{title}|{published}|{n}") for n in range(2, 100)]
    for candidate in candidates:
        if db.execute("SELECT 1 FROM items WHERE id = ?", (candidate,)).fetchone() is None:
            return candidate
    raise InputError(f"{title!r}: too many items with this headline")


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
        parsed = _parse(source, read.content, read.url or source.location)
        report.problems = parsed.problems
        add_candidates(store, settings, source, parsed.items, report)
        if parsed.items and (read.etag or read.last_modified):
            with store.transaction() as db:
                db.execute(
                    "INSERT INTO source_state (source, etag, last_modified, fetched) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
                    "etag = excluded.etag, last_modified = excluded.last_modified, "
                    "fetched = excluded.fetched",
                    (_state_key(source), read.etag, read.last_modified, utcnow()),
                )
    except NewsletterError as exc:
        report.error = str(exc)
    except (sqlite3.Error, ValueError) as exc:
        report.error = f"{source.location}: {exc}"
    return report


def add_candidates(
    store: Store,
    settings: Settings,
    source: SourceSettings,
    candidates: list[Candidate],
    report: SourceReport | None = None,
) -> SourceReport:
    """Store parsed items in one transaction: all of a source's items, or none."""
    report = report or SourceReport(source.name)
    now = utcnow()
    with store.transaction() as db:
        for rank, candidate in enumerate(candidates):
            outcome = _upsert(db, candidate, source, settings, now, rank)
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
