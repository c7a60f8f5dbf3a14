"""Collect stage: sources (feeds, newsroom pages, copied text) -> the item library.

Every source's import is one transaction: a source that fails leaves the library as
it was, and the other sources are still collected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from ..errors import ConfigError, InputError
from ..settings import Settings, SourceSettings
from ..store import Store, utcnow
from .base import Candidate, Parsed
from .fetch import FetchError, fetch

__all__ = [
    "Candidate",
    "CollectReport",
    "Parsed",
    "SourceReport",
    "add_candidates",
    "canonical_url",
    "collect",
    "collect_source",
    "item_id",
    "normalise_title",
]

# Query parameters that only say where a click came from.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|mkt_tok|igshid|ref_src)$",
    re.I,
)


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


def item_id(url: str | None, title: str) -> str:
    """The same id the issue model derives, so drafted items keep it in issue files."""
    return hashlib.sha1((url or title.casefold()).encode()).hexdigest()[:12]


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

        if "item" not in source.selectors:
            raise ConfigError(f"[[sources]] {source.name}: a page source needs selectors.item")
        return parse_page(content, url, source.selectors)
    from .text import parse_text

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source.location}: not UTF-8 text; is it the right file?") from None
    return parse_text(text, source=source.name)


def _read(source: SourceSettings, settings: Settings, store: Store) -> tuple[bytes | None, str]:
    location = source.location
    if re.match(r"^https?://", location, re.I):
        state = store.db.execute(
            "SELECT etag, last_modified FROM source_state WHERE source = ?", (source.name,)
        ).fetchone()
        fetched = fetch(
            location, settings.collect,
            etag=state["etag"] if state else None,
            last_modified=state["last_modified"] if state else None,
        )  # fmt: skip
        with store.transaction() as db:
            db.execute(
                "INSERT INTO source_state (source, etag, last_modified, fetched) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET etag = excluded.etag, "
                "last_modified = excluded.last_modified, fetched = excluded.fetched",
                (source.name, fetched.etag, fetched.last_modified, utcnow()),
            )
        return fetched.content, fetched.url
    path = settings.path(Path(location))
    try:
        return path.read_bytes(), path.resolve().as_uri()
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
    row = None
    if url:
        row = db.execute("SELECT * FROM items WHERE url = ?", (url,)).fetchone()
    if row is None:
        # The same story from another source: same title, published within a few days.
        for other in db.execute("SELECT * FROM items WHERE norm_title = ?", (norm,)).fetchall():
            if (
                published is None
                or other["published"] is None
                or abs(
                    (
                        dt.date.fromisoformat(other["published"]) - dt.date.fromisoformat(published)
                    ).days
                )
                <= days
            ):
                row = other
                break
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
            (
                item_id(url, candidate.title),
                url,
                candidate.url,
                now,
                now,
                source.name,
                *values.values(),
            ),
        )
        return "new"
    # Keep what the other source knew when this one does not say (a URL, a date, a summary).
    merged = {k: (v if v not in (None, "") else row[k]) for k, v in values.items()}
    if not url and row["url"]:
        url = row["url"]
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


def collect_source(
    source: SourceSettings,
    settings: Settings,
    store: Store,
    content: bytes | None = None,
    url: str = "",
) -> SourceReport:
    """Read, parse and store one source in one transaction."""
    report = SourceReport(source.name)
    try:
        if content is None:
            content, url = _read(source, settings, store)
        if content is None:
            report.not_modified = True
            return report
        parsed = _parse(source, content, url or source.location)
        report.problems = parsed.problems
        add_candidates(store, settings, source, parsed.items, report)
    except (FetchError, InputError) as exc:
        report.error = str(exc)
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
