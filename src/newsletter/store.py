"""The SQLite store: the connection, transactions and schema migrations.

One file, WAL mode, a busy timeout, and a schema version migrated forward on open.
Every multi-row change is one transaction, so a crash leaves the store as it was.
Each table has one module that owns its SQL: ``subscribers`` in ``subscribers.py``,
``campaigns`` and ``deliveries`` (the send ledger and lease) in ``ledger.py``, ``items``,
``source_state`` and ``issue_items`` in ``library.py``, ``throttle`` in ``throttle.py``,
``staff``, ``staff_sessions`` and ``audit`` in ``studio/accounts.py``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NewsletterError

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "utcnow"]


class StoreError(NewsletterError):
    exit_code = 2


# Each entry migrates from version i to i + 1. Never edit a released entry: append.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')),
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        token TEXT NOT NULL UNIQUE,
        bounces INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE campaigns (
        issue TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        created TEXT NOT NULL,
        finished TEXT,
        lease_owner TEXT,
        lease_expires REAL
    );
    CREATE TABLE deliveries (
        issue TEXT NOT NULL REFERENCES campaigns(issue),
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        reply TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        updated TEXT NOT NULL,
        PRIMARY KEY (issue, subscriber_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_pending ON deliveries(issue, state, subscriber_id);
    """,
    # 2: the item library (collect, draft).
    """
    CREATE TABLE items (
        id TEXT PRIMARY KEY,
        url TEXT UNIQUE,
        original_url TEXT,
        title TEXT NOT NULL,
        norm_title TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        published TEXT,
        updated TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'news',
        section TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        image_url TEXT,
        image_alt TEXT NOT NULL DEFAULT '',
        pinned INTEGER NOT NULL DEFAULT 0,
        -- Position in its source at the last collect: 0 is the page's top story.
        rank INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX items_published ON items(published);
    CREATE INDEX items_norm_title ON items(norm_title);
    CREATE TABLE source_state (
        source TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        fetched TEXT
    );
    CREATE TABLE issue_items (
        issue TEXT NOT NULL,
        item_id TEXT NOT NULL,
        PRIMARY KEY (issue, item_id)
    ) WITHOUT ROWID;
    """,
    # 3: the public pages. Consent records (double opt-in), each sent issue's browser
    # version as it went out, and the subscribe form's rate limits.
    """
    ALTER TABLE subscribers ADD COLUMN consent_at TEXT NOT NULL DEFAULT '';
    ALTER TABLE subscribers ADD COLUMN consent_ip TEXT NOT NULL DEFAULT '';
    ALTER TABLE campaigns ADD COLUMN preheader TEXT NOT NULL DEFAULT '';
    ALTER TABLE campaigns ADD COLUMN issue_date TEXT NOT NULL DEFAULT '';
    ALTER TABLE campaigns ADD COLUMN archive_html TEXT;
    CREATE TABLE throttle (
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX throttle_key ON throttle(key, at);
    """,
    # 4: a send notices who left since its last look by reading only what changed: every
    # change of a subscriber's status gets the next number, whoever makes it.
    """
    CREATE TABLE status_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        subscriber_id INTEGER NOT NULL,
        status TEXT NOT NULL
    );
    CREATE TRIGGER subscribers_status_changed AFTER UPDATE OF status ON subscribers
    WHEN OLD.status IS NOT NEW.status
    BEGIN
        INSERT INTO status_changes (subscriber_id, status) VALUES (NEW.id, NEW.status);
    END;
    """,
    # 5: a send's once-per-run questions stop reading the whole list. The ledger writes a
    # delivery row when a message is tried, not one per subscriber up front; "how many are
    # active" is read from an index; the line-break check (subscribers.py) finds offenders
    # in a partial index that holds only them (its WHERE must stay the query's, word for word).
    """
    CREATE INDEX subscribers_status ON subscribers(status);
    CREATE INDEX subscribers_line_break ON subscribers(id) WHERE instr(name, char(10)) OR
        instr(name, char(13)) OR instr(email, char(10)) OR instr(email, char(13));
    """,
    # 6: which rule dated each item ("date line", "page date", "feed date"...), so that
    # `items` can show why an item sits in its week. Items collected before stay '': the
    # rule that dated them was not kept.
    """
    ALTER TABLE items ADD COLUMN dated_by TEXT NOT NULL DEFAULT '';
    """,
    # 7: a subscriber's first name, for "Hello {first_name},": imported from its own column
    # (Mailchimp's FNAME, "First name"), never guessed from a full name's first word.
    """
    ALTER TABLE subscribers ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
    """,
    # 8: the studio. Staff accounts (a password hash, never the password), their login
    # sessions (only a hash of the cookie's token is kept), the audit log; and when each
    # status change happened, for the list's growth over time (earlier changes stay '').
    """
    CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('editor', 'sender', 'admin')),
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE staff_sessions (
        token_hash TEXT PRIMARY KEY,
        staff_id INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
        created TEXT NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        what TEXT NOT NULL DEFAULT ''
    );
    ALTER TABLE status_changes ADD COLUMN at TEXT NOT NULL DEFAULT '';
    DROP TRIGGER subscribers_status_changed;
    CREATE TRIGGER subscribers_status_changed AFTER UPDATE OF status ON subscribers
    WHEN OLD.status IS NOT NEW.status
    BEGIN
        INSERT INTO status_changes (subscriber_id, status, at)
        VALUES (NEW.id, NEW.status, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
    END;
    CREATE INDEX status_changes_at ON status_changes(status, at);
    CREATE INDEX subscribers_created ON subscribers(created);
    """,
    # 9: each campaign's totals as its last run ended, so that listing past issues reads
    # one row per issue, not every delivery row of each (a million per issue at scale).
    # NULL while a run is under way or after one that died: then they are counted.
    """
    ALTER TABLE campaigns ADD COLUMN sent INTEGER;
    ALTER TABLE campaigns ADD COLUMN failed INTEGER;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, one by one. Not executescript(): it would commit the
    migration's transaction. A trigger's body holds ";" too, so pieces are joined until
    SQLite says the statement is complete."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Store:
    """A connection to the store. Not shared between threads: open one per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process kill; only power loss can lose the
            # last commits, and those messages would then be resent, never lost.
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 30000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def leave_checkpoints(self) -> None:
        """Stop this connection's commits from copying the WAL back into the store.

        SQLite does that on the commit that finds the WAL over 1,000 pages, with an fsync:
        seconds, after a large insert, inside a commit that a send's workers are waiting
        for. Whoever calls this must call :meth:`checkpoint` regularly from elsewhere.
        """
        self.db.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy what it can of the WAL into the store, waiting for nobody (PASSIVE)."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        if int(self.db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
            return  # the common case: no write lock needed just to open the store
        with self.transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: made by a newer newsletter (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}); upgrade newsletter"
                )
            for script in _MIGRATIONS[version:]:
                for statement in _statements(script):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
