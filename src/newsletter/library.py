"""The item library: the only module that reads or writes ``items``, ``source_state`` and
``issue_items``.

Collect adds items, draft selects them, the CLI lists and pins them, and send records
which items an issue carried. Each table's rules (a URL is stored canonical, the same
story is stored once, an issue's items are never drafted again) live here, once.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import InputError
from .models import item_id, week_range
from .normalise import canonical_url, normalise_title
from .store import Store, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .settings import SourceSettings

__all__ = [
    "NewItem",
    "Outcome",
    "SourceState",
    "add_item",
    "count_sent_elsewhere",
    "draftable_items",
    "list_items",
    "pin",
    "read_source_state",
    "record_issue_items",
    "write_source_state",
]

#: An item's day: its publication date, or the day it was first collected when the
#: source gave none (a listing page without dates), so that it can still be drafted.
DAY = "COALESCE(published, substr(first_seen, 1, 10))"

Outcome = Literal["new", "updated", "unchanged"]


@dataclass(frozen=True)
class NewItem:
    """One item as a source gave it, ready for the library."""

    title: str
    source: str
    #: As the source wrote it; the library keeps it as ``original_url`` and matches on
    #: its canonical form.
    url: str | None = None
    #: The calendar day it belongs to (collect has applied [draft] timezone).
    published: dt.date | None = None
    #: Which rule gave ``published`` ("date line", "page date", "feed date"...); "" if none.
    dated_by: str = ""
    updated: dt.datetime | None = None
    summary: str = ""
    kind: str = "news"
    section: str = ""
    author: str = ""
    image_url: str | None = None
    image_alt: str = ""
    #: Position in its source: 0 is the page's top story.
    rank: int = 0


# -- items ---------------------------------------------------------------------------------


def list_items(
    store: Store, *, week: str | None = None, source: str | None = None
) -> list[sqlite3.Row]:
    """The library, newest first; only ``week`` (``2023-W25``) or one ``source`` if given."""
    query, args = "SELECT * FROM items WHERE 1 = 1", []
    if week:
        start, end = week_range(week)
        query += f" AND {DAY} BETWEEN ? AND ?"
        args += [start.isoformat(), end.isoformat()]
    if source:
        query += " AND source = ?"
        args.append(source)
    return store.db.execute(query + f" ORDER BY {DAY} DESC, first_seen DESC", args).fetchall()


def pin(store: Store, item_id: str, pinned: bool = True) -> bool:
    """Pin (or unpin) an item so that draft takes it first; False when there is no such item."""
    with store.transaction() as db:
        changed = db.execute(
            "UPDATE items SET pinned = ? WHERE id = ?", (int(pinned), item_id)
        ).rowcount
    return bool(changed)


def add_item(db: sqlite3.Connection, item: NewItem, *, now: str, same_title_days: int) -> Outcome:
    """Insert or update one item inside the caller's transaction.

    The same URL is the same item; so is the same headline published within
    ``same_title_days`` (see :func:`_same_story`).
    """
    url = canonical_url(item.url) if item.url else None
    norm = normalise_title(item.title)
    published = item.published.isoformat() if item.published else None
    by_url: sqlite3.Row | None = None
    if url:
        by_url = db.execute("SELECT * FROM items WHERE url = ?", (url,)).fetchone()
    row = by_url or _same_story(db, norm, published, url, same_title_days)
    values = {
        "title": item.title.strip(),
        "norm_title": norm,
        "summary": item.summary,
        "published": published,
        "dated_by": item.dated_by if published else "",
        "updated": item.updated.isoformat() if item.updated else None,
        "kind": item.kind,
        "section": item.section,
        "author": item.author,
        "image_url": item.image_url,
        "image_alt": item.image_alt,
        "rank": item.rank,
    }
    if row is None:
        db.execute(
            "INSERT INTO items (id, url, original_url, first_seen, last_seen, source, "
            + ", ".join(values)
            + ") VALUES (?, ?, ?, ?, ?, ?, "
            + ", ".join("?" * len(values))
            + ")",
            (_new_id(db, url, item.title, published), url, item.url, now, now, item.source,
             *values.values()),
        )  # fmt: skip
        return "new"
    if by_url is not None:
        # The same source item again: it may have changed; keep what it no longer says.
        merged = {k: (v if v not in (None, "") else row[k]) for k, v in values.items()}
    else:
        # Another source's copy of a story already here: it only fills in what is missing
        # (a URL for copied text, a date, a summary), so sources never overwrite each other.
        merged = {k: (row[k] if row[k] not in (None, "") else v) for k, v in values.items()}
    merged["dated_by"] = _dated_by(row, values, merged["published"])
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


def _dated_by(row: sqlite3.Row, values: Mapping[str, object], published: object) -> str:
    """The rule that dated the kept date: the label travels with the date it explains."""
    kept, other = (row, values) if published == row["published"] else (values, row)
    if kept["dated_by"] or other["published"] != published:
        return str(kept["dated_by"] or "")
    return str(other["dated_by"] or "")  # the same date: an item from before labels gets one


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


# -- what draft may take -------------------------------------------------------------------


def draftable_items(store: Store, week: str) -> list[sqlite3.Row]:
    """The week's items that no other issue carried: pinned first, then newest first."""
    start, end = week_range(week)
    rows: list[sqlite3.Row] = store.db.execute(
        f"SELECT * FROM items WHERE {DAY} BETWEEN ? AND ? AND id NOT IN "
        "(SELECT item_id FROM issue_items WHERE issue != ?) "
        f"ORDER BY pinned DESC, {DAY} DESC, first_seen DESC",
        (start.isoformat(), end.isoformat(), week),
    ).fetchall()
    return rows


def count_sent_elsewhere(store: Store, week: str) -> int:
    """How many of the week's items another issue already carried."""
    start, end = week_range(week)
    row = store.db.execute(
        "SELECT COUNT(*) FROM items JOIN issue_items ON issue_items.item_id = items.id "
        f"WHERE issue_items.issue != ? AND {DAY} BETWEEN ? AND ?",
        (week, start.isoformat(), end.isoformat()),
    ).fetchone()
    return int(row[0])


def record_issue_items(db: sqlite3.Connection, issue: str, item_ids: Iterable[str]) -> None:
    """Remember which items ``issue`` carries, inside the caller's transaction, so that
    draft never proposes them for another issue."""
    db.executemany(
        "INSERT OR IGNORE INTO issue_items (issue, item_id) VALUES (?, ?)",
        [(issue, item) for item in item_ids],
    )


# -- conditional GET validators per source -------------------------------------------------


@dataclass(frozen=True)
class SourceState:
    etag: str | None
    last_modified: str | None


def _state_key(source: SourceSettings) -> str:
    # Validators belong to this exact source: a changed location, type or selector set
    # must fetch afresh, or a fixed selector would see "not modified" for ever.
    return f"{source.name}\t{source.type}\t{source.location}\t{sorted(source.selectors.items())}"


def read_source_state(store: Store, source: SourceSettings) -> SourceState | None:
    """The ETag / Last-Modified of the source's last successful collect, if any."""
    row = store.db.execute(
        "SELECT etag, last_modified FROM source_state WHERE source = ?", (_state_key(source),)
    ).fetchone()
    return SourceState(row["etag"], row["last_modified"]) if row else None


def write_source_state(
    store: Store, source: SourceSettings, etag: str | None, last_modified: str | None
) -> None:
    """Remember the validators once the source's items are safely stored."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO source_state (source, etag, last_modified, fetched) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
            "etag = excluded.etag, last_modified = excluded.last_modified, "
            "fetched = excluded.fetched",
            (_state_key(source), etag, last_modified, utcnow()),
        )
