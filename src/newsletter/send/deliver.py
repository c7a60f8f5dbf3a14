"""Delivering one issue to every active subscriber, exactly once, resumably.

The ledger (``deliveries``: one row per issue and subscriber) is the truth. A row is
``pending`` until the relay has answered DATA with 250, and it is marked ``sent`` before
that worker takes its next message; so a crash (SIGKILL included) can repeat at most the
messages in flight, one per connection. 5xx replies mark a row ``failed`` and are never
retried. Temporary failures leave it ``pending`` for the next run.
"""

from __future__ import annotations

import datetime as dt
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import NewsletterError
from ..render.message import Composer, Recipient
from ..store import Store, utcnow
from .smtp import Connection, PermanentFailure, TemporaryFailure

__all__ = ["Delivery", "LedgerError", "Outcome", "deliver", "pending_recipients"]

#: Longest pause between two tries of one message.
MAX_BACKOFF = 300.0

#: SQL for "still to send": the row is pending and the subscriber still active.
PENDING = (
    "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
    "WHERE d.issue = ? AND d.state = 'pending' AND s.status = 'active'"
)


class LedgerError(NewsletterError):
    """Results can no longer be recorded: the run must stop."""


@dataclass
class Outcome:
    sent: int = 0
    failed: int = 0
    #: Still pending after every try: a later run retries them.
    deferred: int = 0
    #: Why the run stopped before the end, if it did.
    stopped: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Result:
    subscriber_id: int
    email: str
    state: str
    reply: str
    attempts: int
    message_id: str
    bounce: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


class _LedgerWriter(threading.Thread):
    """Group commit: workers hand results over and wait until they are durable.

    One writer connection avoids lock contention between workers; batching many
    results per transaction keeps thousands of messages per second affordable. Each
    transaction also checks that this run still holds the issue's lease, so a run that
    lost it (stalled, then overtaken) stops within one message per connection.
    """

    def __init__(self, store_path: str, issue: str, owner: str, bounce_after: int) -> None:
        super().__init__(name="ledger", daemon=True)
        self.store_path, self.issue, self.owner = store_path, issue, owner
        self.bounce_after = bounce_after
        self.cond = threading.Condition()
        self.pending: list[_Result] = []
        self.closing = False
        self.error: str = ""

    def record(self, result: _Result) -> None:
        """Hand over a result and wait until it is committed; LedgerError if it cannot be."""
        with self.cond:
            if self.error:
                raise LedgerError(self.error)
            self.pending.append(result)
            self.cond.notify()
        result.done.wait()
        if not result.committed:
            raise LedgerError(self.error or "the ledger writer stopped")

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.join()

    def _fail(self, message: str, batch: list[_Result]) -> None:
        # Release everyone waiting, now and later: nothing may hang on a dead writer.
        with self.cond:
            self.error = message
            waiting, self.pending = self.pending, []
        for result in batch + waiting:
            result.done.set()

    def run(self) -> None:
        batch: list[_Result] = []
        try:
            with Store(self.store_path) as store:
                while True:
                    with self.cond:
                        while not self.pending and not self.closing:
                            self.cond.wait()
                        batch, self.pending = self.pending, []
                        if not batch and self.closing:
                            return
                    self._write(store, batch)
                    for result in batch:
                        result.committed = True
                        result.done.set()
                    batch = []
        except NewsletterError as exc:
            self._fail(str(exc), batch)
        except Exception as exc:
            self._fail(f"cannot record results in the store: {exc}", batch)

    def _write(self, store: Store, batch: list[_Result]) -> None:
        now = utcnow()
        with store.transaction() as db:
            row = db.execute(
                "SELECT lease_owner FROM campaigns WHERE issue = ?", (self.issue,)
            ).fetchone()
            if row is None or row["lease_owner"] != self.owner:
                raise LedgerError(f"another run took over the send of {self.issue}; stopping")
            db.executemany(
                "UPDATE deliveries SET state = ?, reply = ?, attempts = attempts + ?, "
                "message_id = ?, updated = ? WHERE issue = ? AND subscriber_id = ?",
                [
                    (r.state, r.reply, r.attempts, r.message_id, now, self.issue, r.subscriber_id)
                    for r in batch
                ],
            )
            db.executemany(
                "UPDATE subscribers SET bounces = bounces + 1, updated = ?, status = CASE "
                "WHEN bounces + 1 >= ? AND status = 'active' THEN 'bounced' ELSE status END "
                "WHERE id = ?",
                [(now, self.bounce_after, r.subscriber_id) for r in batch if r.bounce],
            )


class _RateLimit:
    """Spaces messages evenly across all connections; rate 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


@dataclass
class Delivery:
    """Everything a run needs; see :func:`deliver`."""

    store: Store
    issue: str
    #: This run's lease owner: results are only recorded while it holds the lease.
    owner: str
    composer: Composer
    sender: str
    make_connection: Callable[[], Connection]
    connections: int
    rate: float
    max_attempts: int
    retry_delay: float
    bounce_after: int
    limit: int | None = None
    on_result: Callable[[bool], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def pending_recipients(store: Store, issue: str, batch: int = 100) -> Iterator[Recipient]:
    """Pending recipients in id order, read in small batches: memory stays flat for any
    list size."""
    last = 0
    while True:
        rows = store.db.execute(
            f"SELECT s.id, s.email, s.name, s.token {PENDING} AND s.id > ? ORDER BY s.id LIMIT ?",
            (issue, last, batch),
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield Recipient(row["email"], row["name"], row["token"], row["id"])
        last = rows[-1]["id"]


def deliver(run: Delivery) -> Outcome:
    """Send every pending message of ``run.issue``. The caller holds the issue's lease."""
    outcome = Outcome()
    # Re-entrant: stop() is also called while the counters are being updated.
    lock = threading.RLock()
    jobs: queue.Queue[Recipient | None] = queue.Queue(maxsize=run.connections * 4)
    writer = _LedgerWriter(str(run.store.path), run.issue, run.owner, run.bounce_after)
    writer.start()
    limiter = _RateLimit(run.rate)
    # Consecutive messages that exhausted their retries: the relay itself is failing.
    streak = [0]

    def stop(reason: str) -> None:
        with lock:
            outcome.stopped = outcome.stopped or reason
        run.stop.set()

    def attempt(connection: Connection, recipient: Recipient) -> _Result:
        data = run.composer.wire(recipient)
        message_id = run.composer.message_id(recipient)
        last, tries = "", 0
        while tries < run.max_attempts and not (tries and run.stop.is_set()):
            tries += 1
            try:
                reply = connection.send(run.sender, recipient.email, data)
                return _Result(
                    recipient.subscriber_id, recipient.email, "sent", str(reply), tries, message_id
                )
            except PermanentFailure as exc:
                return _Result(
                    recipient.subscriber_id, recipient.email, "failed", str(exc), tries,
                    message_id, bounce=exc.stage == "rcpt",
                )  # fmt: skip
            except TemporaryFailure as exc:
                last = str(exc)
                connection.close()
                if tries < run.max_attempts:
                    delay = run.retry_delay * 2 ** (tries - 1) * random.uniform(0.5, 1.5)
                    run.stop.wait(min(delay, MAX_BACKOFF))
        return _Result(recipient.subscriber_id, recipient.email, "pending", last, tries, message_id)

    def count(result: _Result) -> None:
        with lock:
            if result.state == "sent":
                outcome.sent += 1
                streak[0] = 0
            elif result.state == "failed":
                outcome.failed += 1
                outcome.failures.append((result.email, result.reply))
            else:
                outcome.deferred += 1
                streak[0] += 0 if run.stop.is_set() else 1
                if streak[0] >= run.connections:
                    stop(f"the relay keeps failing: {result.reply}")

    # Subscribers who left (unsubscribed, bounced, complained) since the run began,
    # refreshed twice a second: a set lookup per message instead of a query per message.
    left: set[int] = set()
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)).isoformat(timespec="seconds")

    finished = threading.Event()

    def watch() -> None:
        nonlocal left
        try:
            with Store(run.store.path) as store:
                while not finished.wait(0.5):
                    left = {
                        row[0]
                        for row in store.db.execute(
                            "SELECT id FROM subscribers WHERE status != 'active' AND updated >= ?",
                            (since,),
                        )
                    }
        except (NewsletterError, sqlite3.Error) as exc:
            stop(f"cannot watch for unsubscribes: {exc}")

    watcher = threading.Thread(target=watch, name="status-watch", daemon=True)
    watcher.start()

    def worker() -> None:
        connection = run.make_connection()
        try:
            while (recipient := jobs.get()) is not None and not run.stop.is_set():
                if recipient.subscriber_id in left:
                    continue
                limiter.wait()
                result = attempt(connection, recipient)
                writer.record(result)
                count(result)
                if run.on_result:
                    run.on_result(result.state == "sent")
                if connection.needs_reconnect:
                    connection.close()
        except NewsletterError as exc:  # ServerFailure, LedgerError, DKIM or input errors
            stop(str(exc))
        except Exception as exc:
            stop(f"internal error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, name=f"smtp-{n}") for n in range(run.connections)]
    for thread in threads:
        thread.start()
    try:
        for number, recipient in enumerate(pending_recipients(run.store, run.issue)):
            if run.limit is not None and number >= run.limit:
                break
            while not run.stop.is_set():
                try:
                    jobs.put(recipient, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if run.stop.is_set():
                break
    finally:
        for _ in threads:
            # Workers may have stopped early: never block on a full queue.
            while any(t.is_alive() for t in threads):
                try:
                    jobs.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
        for thread in threads:
            thread.join()
        writer.close()
        finished.set()
        watcher.join()
    return outcome
