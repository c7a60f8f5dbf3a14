"""Rate limits kept in the store, so every web worker on the store shares them.

It owns the ``throttle`` table: one row per accepted event, keyed by what is limited
("ip:203.0.113.9", "address:ada@example.org"). Rows older than the longest window are
pruned as new ones arrive.
"""

from __future__ import annotations

import time

from .store import Store

__all__ = ["allow", "clear", "count"]

#: Rows older than this are deleted: longer than any window in use.
KEEP_SECONDS = 2 * 24 * 3600.0


def allow(store: Store, key: str, limit: int, window: float, now: float | None = None) -> bool:
    """Record one event for ``key`` and return True, unless ``limit`` were already
    recorded in the last ``window`` seconds (then record nothing and return False)."""
    now = time.time() if now is None else now
    with store.transaction() as db:
        db.execute("DELETE FROM throttle WHERE at < ?", (now - KEEP_SECONDS,))
        (count,) = db.execute(
            "SELECT count(*) FROM throttle WHERE key = ? AND at > ?", (key, now - window)
        ).fetchone()
        if count >= limit:
            return False
        db.execute("INSERT INTO throttle (key, at) VALUES (?, ?)", (key, now))
    return True


def count(store: Store, key: str, window: float, now: float | None = None) -> int:
    """Events recorded for ``key`` in the last ``window`` seconds; records nothing."""
    now = time.time() if now is None else now
    (found,) = store.db.execute(
        "SELECT count(*) FROM throttle WHERE key = ? AND at > ?", (key, now - window)
    ).fetchone()
    return int(found)


def clear(store: Store, key: str) -> None:
    """Forget every event recorded for ``key``."""
    with store.transaction() as db:
        db.execute("DELETE FROM throttle WHERE key = ?", (key,))
