"""Subscribers: adding, importing, listing, unsubscribing, and their signed tokens.

Someone who unsubscribed, bounced or complained is never resubscribed by an import:
their row stays as a suppression record. ``forget`` is the only real deletion.
The address and name rules are in ``addresses.py``, reading a CSV in ``subscriber_csv.py``;
this module holds the SQL (on ``subscribers``, and an import's TEMP staging table).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .addresses import (
    NAME_MAX,
    clean_name as _clean_name,
    first_name_of,
    name_problem as _name_problem,
    normalise_email,
)
from .errors import InputError, NewsletterError
from .pause import checkpoint
from .store import Store, utcnow
from .subscriber_csv import read_rows
from .tokens import verify_token

__all__ = [
    "NAME_MAX",
    "SEARCH_MAX",
    "STATUSES",
    "ImportReport",
    "Subscriber",
    "WeekGrowth",
    "add",
    "by_id",
    "by_token",
    "confirm",
    "counts_by_status",
    "delete",
    "get",
    "growth_by_week",
    "import_csv",
    "iter_subscribers",
    "normalise_email",
    "search",
    "unsubscribe_address",
    "unsubscribe_by_token",
]

STATUSES = ("active", "unsubscribed", "bounced", "complained")
#: The columns of an export (`subscribers export`, the studio's): everything but the token.
EXPORT_COLUMNS = (
    "email", "name", "status", "created", "source", "first_name", "consent_at", "consent_ip",
)  # fmt: skip


class SubscriberError(NewsletterError):
    exit_code = 2


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    created: str
    source: str
    token: str
    #: For "Hello {first_name},"; "" when not known (never guessed from ``name``).
    first_name: str = ""
    #: When and from which client address they confirmed (double opt-in): the consent record.
    consent_at: str = ""
    consent_ip: str = ""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscriber:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def public(self) -> dict[str, Any]:
        """What ``list --json`` and ``export`` show: everything but the token."""
        data = asdict(self)
        del data["token"], data["id"]
        return data


def _new_token_id() -> str:
    return secrets.token_urlsafe(12)


def _token_ids() -> Iterator[str]:
    """Endless :func:`_new_token_id` values, drawn from the OS 1,024 at a time: 12 random
    bytes are exactly 16 base64 characters, so one encoding of 12 x 1,024 random bytes
    is 1,024 tokens side by side (one system call instead of 1,024)."""
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(12 * 1024)).decode("ascii")
        for at in range(0, len(text), 16):
            yield text[at : at + 16]


def _insert(
    db: sqlite3.Connection, address: str, name: str, source: str, now: str, first_name: str = ""
) -> None:
    name = _clean_name(name)
    first_name = _clean_name(first_name) or first_name_of(name)
    db.execute(
        "INSERT INTO subscribers (email, name, first_name, status, created, updated, source, "
        "token) VALUES (?, ?, ?, 'active', ?, ?, ?, ?)",
        (address, name, first_name, now, now, source, _new_token_id()),
    )


def get(store: Store, email: str) -> Subscriber | None:
    row = store.db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return Subscriber.from_row(row) if row else None


def add(
    store: Store, email: str, name: str = "", source: str = "cli", first_name: str = ""
) -> Subscriber:
    """Add one subscriber; refuse an address that is already known, whatever its status."""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    problem = _name_problem(_clean_name(name)) or _name_problem(_clean_name(first_name))
    if problem:
        raise SubscriberError(f"{address}: {problem}")
    existing = get(store, address)
    if existing:
        raise SubscriberError(f"{existing.email} is already a subscriber ({existing.status})")
    with store.transaction() as db:
        _insert(db, address, name, source, utcnow(), first_name)
    found = get(store, address)
    assert found is not None
    return found


def iter_subscribers(store: Store, status: str | None = None) -> Iterator[Subscriber]:
    query, args = "SELECT * FROM subscribers", []
    if status:
        query, args = query + " WHERE status = ?", [status]
    for row in store.db.execute(query + " ORDER BY id", args):
        yield Subscriber.from_row(row)


# -- the studio's subscribers page: counts, search, the list's growth -------------------------


#: The longest search text: no address (254) or name (NAME_MAX) is longer.
SEARCH_MAX = 254


def counts_by_status(store: Store) -> dict[str, int]:
    """Subscribers per status, every status present (0 when none), in :data:`STATUSES` order.

    Counted in the ``subscribers_status`` index, never the table's rows.
    """
    found = dict.fromkeys(STATUSES, 0)
    for status, count in store.db.execute(
        "SELECT status, count(*) FROM subscribers INDEXED BY subscribers_status GROUP BY status"
    ):
        found[str(status)] = int(count)
    return found


def _like_pattern(text: str) -> str:
    r"""``%text%`` for ``LIKE ... ESCAPE '\'``: ``%``, ``_`` and ``\`` in ``text`` match
    themselves, not any run or any character."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(
    store: Store, query: str = "", status: str | None = None, after_id: int = 0, limit: int = 50
) -> list[Subscriber]:
    """Up to ``limit`` subscribers with ``id > after_id``, in id order, whose address or
    name contains ``query`` (surrounding spaces ignored; "" matches everyone), with
    ``status`` if given. The next page starts after the last id returned.

    The match is case-insensitive for ASCII letters (SQLite's LIKE: ``ADA`` finds
    ``ada@example.org``, but ``É`` does not find ``é``); ``%``, ``_`` and ``\\`` are
    literal. Keyset pagination reads forward from ``after_id`` along the primary key (or
    the ``subscribers_status`` index for a status, but for active with a text), and stops
    at the page's last match: a common text costs a few rows; a rare or absent one reads
    the rest of the table once (``bench/subscriber_search.py`` times it at 100,000).

    A :class:`Subscriber` holds its token: a page gets :meth:`Subscriber.public` (and the
    id), never the object itself.
    """
    if status is not None and status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    if not 1 <= limit <= 1000:
        raise SubscriberError(f"page size {limit} is out of range (1 to 1000)")
    text = query.strip()
    if len(text) > SEARCH_MAX:
        raise SubscriberError(f"search text is too long (at most {SEARCH_MAX} characters)")
    where: list[str] = ["id > ?"]
    args: list[object] = [max(after_id, 0)]
    if status is not None:
        # Active is most of a list: with a text to match, reading the table along its key
        # beats a look-up per row from the status index (the unary + keeps the index out).
        # The other statuses are a minority: their index range is the short way.
        where.append("+status = ?" if text and status == "active" else "status = ?")
        args.append(status)
    if text:
        pattern = _like_pattern(text)
        where.append("(email LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')")
        args += [pattern, pattern]
    rows = store.db.execute(
        f"SELECT * FROM subscribers WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        [*args, limit],
    )
    return [Subscriber.from_row(row) for row in rows]


class WeekGrowth(NamedTuple):
    """One ISO week of the list's growth (weeks run Monday to Sunday, in UTC)."""

    #: The ISO week, as issue files name it: ``2023-W25``.
    week: str
    #: Who became an active subscriber that week: new rows (added, imported, or confirmed
    #: on the web: the double opt-in adds a row only once confirmed) and returning ones
    #: (resubscribed: a status change back to active).
    confirmed: int
    #: Status changes to unsubscribed that week (someone who left twice counts twice).
    unsubscribed: int


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


# One row per week from the first Monday to the last: each figure is a count over one range
# of an index (``subscribers_created``, ``status_changes_at``), so the cost follows the weeks
# asked for and the rows inside them, never the whole table. Times compare as text: every
# stored time starts YYYY-MM-DD and a status change made before schema 8 has at = ''.
_GROWTH_SQL = """
WITH RECURSIVE weeks(start) AS (
    SELECT ? UNION ALL SELECT date(start, '+7 days') FROM weeks WHERE start < ?
)
SELECT start,
    (SELECT count(*) FROM subscribers INDEXED BY subscribers_created
        WHERE created >= start AND created < date(start, '+7 days'))
    + (SELECT count(*) FROM status_changes INDEXED BY status_changes_at
        WHERE status = 'active' AND at >= start AND at < date(start, '+7 days')),
    (SELECT count(*) FROM status_changes INDEXED BY status_changes_at
        WHERE status = 'unsubscribed' AND at >= start AND at < date(start, '+7 days'))
FROM weeks ORDER BY start
"""


def growth_by_week(store: Store, since: dt.date, until: dt.date | None = None) -> list[WeekGrowth]:
    """The list's growth per ISO week, from the week holding ``since`` to the week holding
    ``until`` (default: today, UTC), both included; every week present, 0 when quiet.

    ``confirmed`` counts subscribers by the week their row was created, whatever their
    status now, plus resubscriptions; ``unsubscribed`` counts changes by the time the
    status-change trigger recorded (changes made before schema 8 have no time and are
    left out). A forgotten subscriber (erasure) is gone from both.
    """
    first = _monday(since)
    last = _monday(until or dt.datetime.now(dt.UTC).date())
    if first > last:
        return []
    rows = store.db.execute(_GROWTH_SQL, (first.isoformat(), last.isoformat()))
    growth = []
    for start, joined, left in rows:
        # As models.iso_week (not imported here: models loads pydantic).
        year, week, _ = dt.date.fromisoformat(start).isocalendar()
        growth.append(WeekGrowth(f"{year}-W{week:02d}", int(joined), int(left)))
    return growth


def set_status(store: Store, subscriber_id: int, status: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE subscribers SET status = ?, updated = ? WHERE id = ?",
            (status, utcnow(), subscriber_id),
        )


def last_change(store: Store) -> int:
    """The number of the latest status change (0 if none): where a watch starts."""
    row = store.db.execute("SELECT coalesce(max(seq), 0) FROM status_changes").fetchone()
    return int(row[0])


def changes_after(store: Store, seq: int) -> list[tuple[int, int, bool]]:
    """(number, subscriber id, now active) of every status change after ``seq``, in order.

    A trigger numbers each change as it is committed, so this reads exactly the changes
    since the last look: its cost is their number, not the size of the list.
    """
    rows = store.db.execute(
        "SELECT seq, subscriber_id, status = 'active' FROM status_changes WHERE seq > ? "
        "ORDER BY seq",
        (seq,),
    )
    return [(int(row[0]), int(row[1]), bool(row[2])) for row in rows]


def count_bounces(
    db: sqlite3.Connection, subscriber_ids: list[int], bounce_after: int, now: str
) -> None:
    """Count a hard bounce for each id; at ``bounce_after`` an active subscriber is bounced.

    Runs in the caller's transaction, so the count moves with the ledger row it explains.
    """
    db.executemany(
        "UPDATE subscribers SET bounces = bounces + 1, updated = ?, status = CASE "
        "WHEN bounces + 1 >= ? AND status = 'active' THEN 'bounced' ELSE status END "
        "WHERE id = ?",
        [(now, bounce_after, subscriber_id) for subscriber_id in subscriber_ids],
    )


def refuse_header_injection(store: Store) -> None:
    """A line break in a name or address would inject headers: refuse before sending any."""
    # The partial index holds only rows with a line break: no walk over the whole list.
    row = store.db.execute(
        "SELECT email FROM subscribers INDEXED BY subscribers_line_break WHERE "
        "status = 'active' AND (instr(name, char(10)) OR instr(name, char(13)) "
        "OR instr(email, char(10)) OR instr(email, char(13))) LIMIT 1"
    ).fetchone()
    if row:
        raise InputError(
            f"subscriber {row['email']!r} has a line break in their name or address; "
            "fix it in the store, or `newsletter subscribers remove --forget` and add "
            "them again, before sending"
        )


def _unsubscribe(store: Store, found: Subscriber) -> Subscriber:
    # Idempotent: unsubscribing twice is not an error, and bounced stays bounced.
    if found.status == "active":
        set_status(store, found.id, "unsubscribed")
    return get(store, found.email) or found


def by_id(store: Store, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this row id (a staff page's buttons name them by id)."""
    row = store.db.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return Subscriber.from_row(row) if row else None


def by_token(store: Store, token_id: str) -> Subscriber | None:
    """The subscriber a (verified) token id names."""
    row = store.db.execute("SELECT * FROM subscribers WHERE token = ?", (token_id,)).fetchone()
    return Subscriber.from_row(row) if row else None


def unsubscribe_by_token(store: Store, secrets: str | Sequence[str], token: str) -> Subscriber:
    """Unsubscribe the subscriber a signed token names: the only way the web unsubscribes.

    ``secrets`` are the current secret and any previous ones (links signed before a
    rotation). Raises :class:`SubscriberError` for a forged or unknown token.
    """
    token_id = verify_token(secrets, token)
    if token_id is None:
        raise SubscriberError("invalid unsubscribe token (altered, or signed with another secret)")
    found = by_token(store, token_id)
    if found is None:
        raise SubscriberError("unsubscribe token names no subscriber (forgotten?)")
    return _unsubscribe(store, found)


def unsubscribe_address(store: Store, email: str) -> Subscriber:
    """Unsubscribe by address: staff only (`newsletter subscribers remove`), never the web."""
    try:
        found = get(store, normalise_email(email))
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    if found is None:
        raise SubscriberError(f"{email.strip()}: no such subscriber")
    return _unsubscribe(store, found)


def confirm(store: Store, email: str, name: str, ip: str, source: str) -> Subscriber:
    """Make ``email`` an active subscriber after they proved they own the mailbox.

    The double opt-in's last step (or the resubscribe button): a new address is added, a
    known one (unsubscribed, bounced, complained) is made active again with its bounce
    count reset. Either way the time and client address are recorded as the consent.
    """
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    name = _clean_name(name)
    if _name_problem(name):
        name = ""
    now = utcnow()
    with store.transaction() as db:
        if get(store, address) is None:
            _insert(db, address, name, source, now)
        db.execute(
            "UPDATE subscribers SET status = 'active', bounces = 0, updated = ?, "
            "consent_at = ?, consent_ip = ?, name = CASE WHEN name = '' THEN ? ELSE name END "
            "WHERE email = ?",
            (now, now, ip, name, address),
        )
    found = get(store, address)
    assert found is not None
    return found


def delete(db: sqlite3.Connection, subscriber_id: int) -> None:
    """Delete the subscriber's row, in the caller's transaction.

    An erasure request also deletes their send history: see :func:`newsletter.ledger.forget`.
    """
    db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,))


#: Skipped rows an ImportReport lists one by one; the others are only counted.
PROBLEMS_LISTED = 1_000
#: Staged rows moved into ``subscribers`` per transaction: each holds the write lock for
#: a fraction of a second, so a send or a web request never waits long for an import.
MOVE_BATCH = 20_000
#: Rows staged per commit of the TEMP table while the file is read (the store is untouched).
_STAGE_BATCH = 10_000


@dataclass
class ImportReport:
    imported: int = 0
    already: int = 0
    #: The first PROBLEMS_LISTED skipped rows, in line order: ``file:line: reason``.
    problems: list[str] = field(default_factory=list)
    #: How many skipped rows were invalid (not duplicates or suppressed addresses).
    invalid: int = 0
    #: Every skipped row, listed in ``problems`` or not.
    skipped: int = 0

    @property
    def unlisted(self) -> int:
        """Skipped rows counted but not listed in ``problems``."""
        return self.skipped - len(self.problems)

    def skip(self, problem: str, *, invalid: bool = False) -> None:
        self.skipped += 1
        if invalid:
            self.invalid += 1
        if len(self.problems) < PROBLEMS_LISTED:
            self.problems.append(problem)


# The staging table lives in the connection's TEMP database: a file SQLite deletes when the
# connection closes, never part of the store. Its UNIQUE index finds in-file duplicates
# (NOCASE, like ``subscribers.email``: stored addresses are ASCII).
_CREATE_STAGING = (
    "CREATE TEMP TABLE import_staging (line INTEGER NOT NULL, "
    "email TEXT NOT NULL UNIQUE COLLATE NOCASE, name TEXT NOT NULL, first_name TEXT NOT NULL, "
    "token TEXT NOT NULL)"
)
_STAGE_ROW = (
    "INSERT INTO temp.import_staging (line, email, name, first_name, token) "
    "VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (email) DO NOTHING"
)
# One move batch (staged rowids low < rowid <= high). CROSS JOIN keeps the staged rows the
# outer loop: one look-up in the ``subscribers.email`` index per row, whatever the list's size.
_KNOWN_SQL = (
    "SELECT s.line, s.email, m.status FROM temp.import_staging AS s "
    "CROSS JOIN subscribers AS m ON m.email = s.email "
    "WHERE s.rowid > ? AND s.rowid <= ? ORDER BY s.rowid"
)
_MOVE_SQL = (
    "INSERT INTO subscribers (email, name, first_name, status, created, updated, source, token) "
    "SELECT s.email, s.name, s.first_name, 'active', ?, ?, ?, s.token "
    "FROM temp.import_staging AS s "
    "WHERE s.rowid > ? AND s.rowid <= ? "
    "AND NOT EXISTS (SELECT 1 FROM subscribers AS m WHERE m.email = s.email) "
    "ORDER BY s.rowid"
)


def import_csv(store: Store, path: Path, source: str | None = None) -> ImportReport:
    """Import the ``email`` (and ``name``) columns of a CSV file, in flat memory.

    First the whole file is read, each row validated and staged in a TEMP table on this
    connection, which also catches in-file duplicates; the store itself is not touched, so
    a file found unreadable at its last line (:class:`InputError`) imports nothing. Then
    the staged rows move into ``subscribers`` in transactions of :data:`MOVE_BATCH` rows,
    each checking which addresses are already there (active: "already subscribed";
    unsubscribed, bounced or complained: never resubscribed), so a concurrent send or web
    request waits for one batch at most, never for the whole file.

    Interrupted while moving (Ctrl-C, a crash, a full disk), the batches committed so far
    stay imported and the rest do not: the store is consistent but holds part of the
    file. Importing the same file again completes it; the rows already there then count
    as "already subscribed".
    """
    report = ImportReport()
    now, source = utcnow(), source or f"import:{path.name}"
    db = store.db
    # Staged rows go to a temporary file, never to memory (whatever SQLite's build default).
    db.execute("PRAGMA temp_store = FILE")
    db.execute("DROP TABLE IF EXISTS temp.import_staging")
    db.execute(_CREATE_STAGING)
    try:
        last = _stage(db, path, report)
        checkpoint("import")
        for low in range(0, last, MOVE_BATCH):
            with store.transaction():
                _move(db, path, report, (low, low + MOVE_BATCH), (source, now))
    finally:
        db.execute("DROP TABLE IF EXISTS temp.import_staging")
    return report


def _stage(db: sqlite3.Connection, path: Path, report: ImportReport) -> int:
    """Read and validate every row into the staging table; the last staged rowid.

    Only the TEMP database is written (a deferred BEGIN takes no lock on the store).
    """
    rows, tokens = read_rows(path), _token_ids()
    stage = db.cursor()
    db.execute("BEGIN")
    try:
        for count, row in enumerate(rows, start=1):
            if row.problem:
                report.skip(f"{path}:{row.line}: {row.problem}", invalid=True)
                continue
            stage.execute(
                _STAGE_ROW, (row.line, row.address, row.name, row.first_name, next(tokens))
            )
            if stage.rowcount == 0:
                [(first,)] = db.execute(
                    "SELECT line FROM temp.import_staging WHERE email = ?", (row.address,)
                ).fetchall()
                report.skip(f"{path}:{row.line}: {row.address} duplicates line {first}; skipped")
            if count % _STAGE_BATCH == 0:
                db.execute("COMMIT")
                db.execute("BEGIN")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        rows.close()
        stage.close()
    [(last,)] = db.execute("SELECT max(rowid) FROM temp.import_staging").fetchall()
    return int(last or 0)


def _move(
    db: sqlite3.Connection,
    path: Path,
    report: ImportReport,
    rowids: tuple[int, int],
    source_now: tuple[str, str],
) -> None:
    """Staged rows ``low < rowid <= high`` into ``subscribers``, in the caller's transaction:
    the active ones already there are counted, the suppressed ones reported, the rest added
    (in the file's order, so ids follow it)."""
    for line, address, status in db.execute(_KNOWN_SQL, rowids):
        if status == "active":
            report.already += 1
        else:
            report.skip(f"{path}:{line}: {address} is {status}; not resubscribed")
    source, now = source_now
    inserted = db.execute(_MOVE_SQL, (now, now, source, *rowids))
    report.imported += inserted.rowcount
