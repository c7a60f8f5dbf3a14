"""The send ledger: who has had which issue, and who may be sending it right now.

It owns two tables; nothing else writes them:

* ``campaigns``: one row per issue, holding the send lease (one sender per issue);
* ``deliveries``: one row per issue and subscriber tried. It is written at the first try:
  ``sent`` once the relay has accepted the message, ``failed`` on a permanent refusal,
  ``pending`` when deferred. An active subscriber with no row is pending too, never tried;
  so a send's start costs nothing per subscriber, whatever the list's length.

Functions that take a :class:`~newsletter.store.Store` run their own transaction; those
that take ``db`` (a connection) join the caller's, so that changes to other tables can be
made in the same one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from . import subscribers
from .errors import NewsletterError
from .store import Store, utcnow

__all__ = [
    "IssueStats",
    "LedgerError",
    "PastIssue",
    "Pending",
    "Record",
    "SentIssue",
    "acquire_lease",
    "browser_version",
    "counts",
    "forget",
    "issue_report",
    "lease_active",
    "lease_holder",
    "past_issues",
    "pending_recipients",
    "plan",
    "record",
    "record_totals",
    "refusals",
    "release_lease",
    "remaining",
    "renew_lease",
    "sent_issues",
    "set_browser_version",
]


class LedgerError(NewsletterError):
    """Results can no longer be recorded: the run must stop."""


class Pending(NamedTuple):
    """A subscriber still to send to."""

    subscriber_id: int
    email: str
    name: str
    token: str
    first_name: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """The outcome of one delivery, as the ledger stores it."""

    subscriber_id: int
    state: str  # "sent", "failed" or "pending"
    reply: str
    attempts: int
    message_id: str
    #: Refused for good at RCPT TO: counts towards marking the subscriber bounced.
    bounce: bool = False


# -- the send lease: one sender per issue ------------------------------------------------------


def _owner() -> str:
    # host:pid says who holds it (and lets a dead local holder be detected); the nonce
    # tells two runs in one process (a web app, say) apart.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _alive(owner: str) -> bool:
    """Whether a lease owner (host:pid:nonce) may still be running. Other hosts: assume yes."""
    host, _, pid = owner.rsplit(":", 1)[0].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process nobody has reaped yet (no init in a container) is a zombie: dead.
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def acquire_lease(store: Store, issue: str, subject: str, seconds: float) -> str | None:
    """Take the send lease for ``issue``; return the new owner, or None when someone live
    holds it. Creates the issue's campaign row on first use."""
    owner, now = _owner(), time.time()
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO campaigns (issue, subject, created) VALUES (?, ?, ?)",
            (issue, subject, utcnow()),
        )
        row = db.execute(
            "SELECT lease_owner, lease_expires FROM campaigns WHERE issue = ?", (issue,)
        ).fetchone()
        holder, expires = row["lease_owner"], row["lease_expires"]
        if holder and holder != owner and expires and expires > now and _alive(holder):
            return None
        # The totals of the last run stop holding now: until this run records its own,
        # they are counted (a run that dies never records any).
        db.execute(
            "UPDATE campaigns SET lease_owner = ?, lease_expires = ?, sent = NULL, "
            "failed = NULL WHERE issue = ?",
            (owner, now + seconds, issue),
        )
    return owner


def record_totals(store: Store, issue: str, owner: str, delivered: bool) -> dict[str, int]:
    """At the end of a run: :func:`counts`, kept for the reports list while ``owner`` still
    holds the lease (a run that lost it to another records nothing: that one will), counted
    in the same transaction as the write. ``delivered``: this run reached someone, so its
    end is when the issue last went out. Returns the counts."""
    with store.transaction() as db:
        totals = counts(store, issue)
        db.execute(
            "UPDATE campaigns SET sent = ?, failed = ?, "
            "finished = CASE WHEN ? THEN ? ELSE finished END "
            "WHERE issue = ? AND lease_owner = ?",
            (totals.get("sent", 0), totals.get("failed", 0), delivered, utcnow(), issue, owner),
        )
    return totals


def lease_holder(store: Store, issue: str) -> str:
    """Who holds the lease (host:pid:nonce), or "" when nobody does."""
    row = store.db.execute("SELECT lease_owner FROM campaigns WHERE issue = ?", (issue,)).fetchone()
    return str(row["lease_owner"]) if row and row["lease_owner"] else ""


def lease_active(store: Store, issue: str) -> str:
    """Who holds a live lease on ``issue`` (host:pid:nonce), or "": by the rule
    :func:`acquire_lease` applies, so a send that died stops counting as running."""
    row = store.db.execute(
        "SELECT lease_owner, lease_expires FROM campaigns WHERE issue = ?", (issue,)
    ).fetchone()
    if not row or not row["lease_owner"] or not row["lease_expires"]:
        return ""
    holder = str(row["lease_owner"])
    return holder if row["lease_expires"] > time.time() and _alive(holder) else ""


def renew_lease(store: Store, issue: str, owner: str, seconds: float) -> bool:
    """Extend the lease; False when ``owner`` no longer holds it."""
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE campaigns SET lease_expires = ? WHERE issue = ? AND lease_owner = ?",
            (time.time() + seconds, issue, owner),
        )
    return cursor.rowcount == 1


def release_lease(store: Store, issue: str, owner: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE campaigns SET lease_owner = NULL, lease_expires = NULL "
            "WHERE issue = ? AND lease_owner = ?",
            (issue, owner),
        )


# -- what went out: the public archive reads only this ------------------------------------


class SentIssue(NamedTuple):
    """An issue that has reached at least one subscriber: public from then on."""

    issue: str
    subject: str
    preheader: str
    #: When its send began (ISO time, UTC).
    sent: str
    #: The issue's own date (ISO), "" for one sent before it was kept.
    date: str = ""


def set_browser_version(
    store: Store, issue: str, preheader: str, html: Callable[[], str], date: str = ""
) -> None:
    """Keep the browser version as the issue went out, on its first send (``html`` is only
    called then: a resumed run does not render it again).

    Later edits to the issue file do not change what subscribers were sent, so they do
    not change its public page either.
    """
    row = store.db.execute(
        "SELECT archive_html IS NOT NULL FROM campaigns WHERE issue = ?", (issue,)
    ).fetchone()
    if row is None or row[0]:
        return
    page = html()
    with store.transaction() as db:
        db.execute(
            "UPDATE campaigns SET preheader = ?, archive_html = ?, issue_date = ? "
            "WHERE issue = ? AND archive_html IS NULL",
            (preheader, page, date, issue),
        )


#: A campaign is public once one message of it was accepted by the relay.
_SENT = "EXISTS (SELECT 1 FROM deliveries d WHERE d.issue = c.issue AND d.state = 'sent')"


def sent_issues(store: Store) -> list[SentIssue]:
    """Every issue that went out, newest first (a few a year: no paging needed)."""
    rows = store.db.execute(
        f"SELECT issue, subject, preheader, created, issue_date FROM campaigns c WHERE {_SENT} "
        "ORDER BY issue DESC"
    ).fetchall()
    return [SentIssue(*row) for row in rows]


def browser_version(store: Store, issue: str) -> str | None:
    """The browser version of ``issue`` as it went out; None if it has not gone out.

    "" for an issue sent before versions were kept: the caller renders its file instead.
    """
    row = store.db.execute(
        f"SELECT coalesce(archive_html, '') FROM campaigns c WHERE issue = ? AND {_SENT}",
        (issue,),
    ).fetchone()
    return None if row is None else str(row[0])


# -- reports: what each send did, for the studio ----------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueStats:
    """One issue's send, as its report page shows it. Every figure is a number of
    subscribers; ``sent + failed + deferred + pending`` is everyone the issue concerns."""

    issue: str
    subject: str
    #: The issue's own date (ISO), "" if unknown.
    issue_date: str
    #: When its first send began: the campaign row's creation (ISO time, UTC).
    started: str
    #: When its last run ended; while one runs, or after one died, when a delivery of it
    #: was last recorded (ISO time, UTC; "" before the first).
    last_delivery: str
    #: Whether a live send of it holds the lease right now (its figures are still moving).
    sending: bool
    #: Accepted by the relay.
    sent: int
    #: Refused for good (a 5xx, or a message that could not be built): never retried.
    failed: int
    #: Tried and not settled (a 4xx, or a stop): a later run tries them again.
    deferred: int
    #: Active subscribers never tried: a resumed send would take them (who joined after
    #: the send began included: ``newsletter send`` sends to every active subscriber).
    pending: int
    #: Recipients (sent or refused) whose address was marked bounced at or after
    #: ``started``: by this send's own refusals, or by a later one.
    bounced: int
    #: Recipients (sent) who unsubscribed at or after ``started``, by any link or by staff.
    unsubscribed: int
    #: Recipients (sent) marked as having complained at or after ``started``.
    complained: int


class PastIssue(NamedTuple):
    """A campaign (an issue a send was started for), with its settled figures."""

    issue: str
    subject: str
    #: When its first send began (ISO time, UTC).
    started: str
    #: The issue's own date (ISO), "" if unknown.
    issue_date: str
    sent: int
    failed: int


# Who left after the send, among its recipients: read along ``status_changes_at`` from the
# send's start (only the changes since), each one looked up in the issue's deliveries by
# primary key. A refusal can bounce an address; only a delivered message can be unsubscribed
# from or complained about. Changes before schema 8 have at = '' and are never counted.
_LEFT_SINCE = (
    "SELECT sc.status, count(DISTINCT sc.subscriber_id) "
    "FROM status_changes sc INDEXED BY status_changes_at "
    "JOIN deliveries d ON d.issue = ? AND d.subscriber_id = sc.subscriber_id "
    "WHERE sc.status IN ('unsubscribed', 'bounced', 'complained') AND sc.at >= ? "
    "AND (d.state = 'sent' OR (d.state = 'failed' AND sc.status = 'bounced')) "
    "GROUP BY sc.status"
)


def issue_report(store: Store, issue: str) -> IssueStats | None:
    """The figures of ``issue``'s send (every run of it together); None if no send of it
    was ever started. Reads only: the ledger's indexes, the issue's own delivery rows and
    the status changes since its send began, never the whole subscriber list.
    """
    row = store.db.execute(
        "SELECT subject, issue_date, created, finished, sent FROM campaigns WHERE issue = ?",
        (issue,),
    ).fetchone()
    if row is None:
        return None
    found = counts(store, issue)
    # Deferred: along deliveries_pending, the issue's unsettled rows only (the planner
    # would rather walk all of the issue's rows by primary key: 20 times slower at 100k).
    [(deferred,)] = store.db.execute(
        "SELECT count(*) FROM deliveries d INDEXED BY deliveries_pending "
        f"JOIN subscribers s ON s.id = d.subscriber_id WHERE d.issue = ? AND {_TRIED}",
        (issue,),
    ).fetchall()
    last = row["finished"] if row["sent"] is not None else None  # the last run ended then
    if last is None:
        [(last,)] = store.db.execute(
            "SELECT coalesce(max(updated), '') FROM deliveries WHERE issue = ?", (issue,)
        ).fetchall()
    # Times compare as text: "2023-06-23T07:00:00" sorts before both "...Z" and "...+00:00".
    since = str(row["created"])[:19]
    left = dict.fromkeys(("unsubscribed", "bounced", "complained"), 0)
    for status, count in store.db.execute(_LEFT_SINCE, (issue, since)):
        left[str(status)] = int(count)
    return IssueStats(
        issue=issue,
        subject=str(row["subject"]),
        issue_date=str(row["issue_date"]),
        started=str(row["created"]),
        last_delivery=str(last),
        sending=bool(lease_active(store, issue)),
        sent=found.get("sent", 0),
        failed=found.get("failed", 0),
        deferred=int(deferred),
        pending=found.get("pending", 0) - int(deferred),
        **left,
    )


def past_issues(store: Store, limit: int | None = None) -> list[PastIssue]:
    """Every campaign, newest issue first, with how many it sent and how many were refused
    for good; ``limit`` keeps the newest ones only.

    Unlike :func:`sent_issues` (the public archive) it lists a campaign that sent nothing
    yet too. The figures are the totals its last run recorded (:func:`record_totals`): one
    row per issue. Only a campaign with a run under way, or whose last run died, is
    counted in the ``deliveries_pending`` index (about one list's length of rows).
    """
    count = "(SELECT count(*) FROM deliveries d WHERE d.issue = c.issue AND d.state = '{}')"
    rows = store.db.execute(
        "SELECT c.issue, c.subject, c.created, c.issue_date, "
        f"coalesce(c.sent, {count.format('sent')}), coalesce(c.failed, {count.format('failed')}) "
        "FROM campaigns c ORDER BY c.issue DESC LIMIT ?",
        (-1 if limit is None else limit,),
    )
    return [PastIssue(*row) for row in rows]


# -- deliveries ------------------------------------------------------------------------------

#: Tried or settled: a delivery row exists from a message's first try on. Sent and failed
#: rows are final; a ``pending`` row with tries was deferred and waits for a later run.
_FINAL = "d.state IN ('sent', 'failed')"


def _active(store: Store) -> int:
    """Active subscribers, counted in the ``subscribers_status`` index."""
    row = store.db.execute("SELECT COUNT(*) FROM subscribers WHERE status = 'active'").fetchone()
    return int(row[0])


def counts(store: Store, issue: str) -> dict[str, int]:
    """Rows per state (states with none left out). ``pending`` is every active subscriber
    who has not had the issue sent or refused, whether tried yet or not.

    Read from the indexes: what the issue has settled, plus the count of active
    subscribers; never a walk over the whole list.
    """
    found: dict[str, int] = {}
    settled_active = 0
    for state, count, active in store.db.execute(
        "SELECT d.state, COUNT(*), COUNT(*) FILTER (WHERE s.status = 'active') "
        "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
        f"WHERE d.issue = ? AND {_FINAL} GROUP BY d.state",
        (issue,),
    ):
        found[str(state)] = int(count)
        settled_active += int(active)
    pending = _active(store) - settled_active
    if pending:
        found["pending"] = pending
    return found


def remaining(store: Store, issue: str) -> int:
    """Active subscribers who have not had the issue sent or refused."""
    return counts(store, issue).get("pending", 0)


def _stamp() -> str:
    """Now, to the microsecond: tells a row this run deferred from one an earlier run did,
    however soon the rerun. Sorts with :func:`~newsletter.store.utcnow`'s whole seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def pending_recipients(store: Store, issue: str, batch: int = 100) -> Iterator[Pending]:
    """Pending recipients, never-tried ones first, read in small batches.

    Two passes, each in subscriber id order by keyset (``id > last``) along an index, so
    each batch is one index range and no sort; memory stays flat for any list size:

    1. active subscribers never tried (no row yet), along ``subscribers_status``;
    2. rows deferred by an earlier run (tried, still pending), along
       ``deliveries_pending``, so that a block of greylisted addresses early in the list
       never holds up everyone behind it.

    Rows this run defers (their ``updated`` is not older than the run's start) are left to
    the next run: they have had this run's tries already.
    """
    started = _stamp()
    for query, args in ((_NEVER_TRIED, (issue,)), (_DEFERRED_BEFORE, (issue, started))):
        last = 0
        while True:
            rows = store.db.execute(query, (*args, last, batch)).fetchall()
            if not rows:
                break
            for row in rows:
                yield Pending(row["id"], row["email"], row["name"], row["token"], row["first_name"])
            last = rows[-1]["id"]


#: Active subscribers with no row yet (or one an older version wrote up front, untried),
#: read along the ``subscribers_status`` index from ``id > ?``: one range, no sort.
_NEVER_TRIED = (
    "SELECT s.id, s.email, s.name, s.token, s.first_name FROM subscribers s "
    "INDEXED BY subscribers_status "
    "WHERE s.status = 'active' AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.issue = ? "
    "AND d.subscriber_id = s.id AND (d.state != 'pending' OR d.attempts > 0)) "
    "AND s.id > ? ORDER BY s.id LIMIT ?"
)

#: Rows an earlier run deferred (tried, still pending; ``updated`` before this run began),
#: read along the ``deliveries_pending`` index: only rows that were tried exist there.
_DEFERRED_BEFORE = (
    "SELECT s.id, s.email, s.name, s.token, s.first_name "
    "FROM deliveries d INDEXED BY deliveries_pending "
    "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.issue = ? AND d.state = 'pending' "
    "AND s.status = 'active' AND d.attempts > 0 AND d.updated < ? AND d.subscriber_id > ? "
    "ORDER BY d.subscriber_id LIMIT ?"
)


def refusals(store: Store, issue: str) -> Iterator[tuple[str, str, str]]:
    """(address, state, last reply) of every row refused for good (``failed``), then of
    every row still pending after being tried (deferred): the issue's problems across runs."""
    for state, condition in (("failed", "d.state = 'failed'"), ("pending", _TRIED)):
        rows = store.db.execute(
            "SELECT s.email, d.reply FROM deliveries d JOIN subscribers s "
            f"ON s.id = d.subscriber_id WHERE d.issue = ? AND {condition} ORDER BY d.subscriber_id",
            (issue,),
        )
        for row in rows:
            yield str(row[0]), state, str(row[1])


_TRIED = "d.state = 'pending' AND d.attempts > 0 AND s.status = 'active'"


def plan(store: Store, issue: str, show: int = 5) -> tuple[int, list[str], int]:
    """(active subscribers who have not had ``issue``, the first ``show`` of them, how many
    have had it), in the order a run takes them. Reads only."""
    found = counts(store, issue)
    # In the order a run takes them: never tried first, then those deferred.
    first = [p.email for p in itertools.islice(pending_recipients(store, issue, show), show)]
    return found.get("pending", 0), first, found.get("sent", 0)


def record(
    store: Store, issue: str, owner: str, records: Sequence[Record], bounce_after: int
) -> None:
    """Store a batch of outcomes in one transaction, if ``owner`` still holds the lease.

    :class:`LedgerError` when another run took the lease over: this one must stop, and
    none of the batch is recorded (those messages stay pending).
    """
    now, stamp = utcnow(), _stamp()
    with store.transaction() as db:
        row = db.execute("SELECT lease_owner FROM campaigns WHERE issue = ?", (issue,)).fetchone()
        if row is None or row["lease_owner"] != owner:
            raise LedgerError(f"another run took over the send of {issue}; stopping")
        # A subscriber's row is written at their first try, never before (see _NEVER_TRIED).
        db.executemany(
            "INSERT INTO deliveries (issue, subscriber_id, state, reply, attempts, message_id, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue, subscriber_id) DO UPDATE "
            "SET state = excluded.state, reply = excluded.reply, "
            "attempts = deliveries.attempts + excluded.attempts, "
            "message_id = excluded.message_id, updated = excluded.updated",
            [
                (issue, r.subscriber_id, r.state, r.reply, r.attempts, r.message_id, stamp)
                for r in records
            ],
        )
        bounced = [r.subscriber_id for r in records if r.bounce]
        if bounced:
            subscribers.count_bounces(db, bounced, bounce_after, now)


def forget(store: Store, email: str) -> bool:
    """An erasure request: delete the subscriber and their send history, in one transaction.

    Here rather than in ``subscribers`` because the history is the ledger's: the ledger
    stands on the subscribers' table, never the other way round. Returns whether one existed.
    """
    found = subscribers.get(store, subscribers.normalise_email(email))
    if found is None:
        return False
    with store.transaction() as db:
        # The recorded totals of their issues no longer hold: count those again.
        db.execute(
            "UPDATE campaigns SET sent = NULL, failed = NULL WHERE issue IN "
            "(SELECT issue FROM deliveries WHERE subscriber_id = ?)",
            (found.id,),
        )
        db.execute("DELETE FROM deliveries WHERE subscriber_id = ?", (found.id,))
        subscribers.delete(db, found.id)
    return True
