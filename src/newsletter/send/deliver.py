"""Delivering one issue to every active subscriber, exactly once, resumably.

The ledger (``deliveries``: one row per issue and subscriber) is the truth. A row is
``pending`` until the relay has answered DATA with 250, and it is marked ``sent`` before
that worker takes its next message; so a crash (SIGKILL included) can repeat at most the
messages in flight, one per connection. 5xx replies mark a row ``failed`` and are never
retried. Temporary failures leave it ``pending`` for the next run.
"""

from __future__ import annotations

import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..store import Store, utcnow
from .compose import Composer, Recipient
from .smtp import Connection, PermanentFailure, ServerFailure, SmtpError, TemporaryFailure

__all__ = ["Delivery", "Outcome", "Target", "deliver"]

#: Longest pause between two tries of one message.
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Target:
    """Where messages go: the relay from config, or the capture server's port."""

    host: str
    port: int


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


class _LedgerWriter(threading.Thread):
    """Group commit: workers hand results over and wait until they are durable.

    One writer connection avoids lock contention between workers; batching many
    results per transaction keeps thousands of messages per second affordable.
    """

    def __init__(self, store_path: str, issue: str, bounce_after: int) -> None:
        super().__init__(name="ledger", daemon=True)
        self.store_path, self.issue, self.bounce_after = store_path, issue, bounce_after
        self.cond = threading.Condition()
        self.pending: list[_Result] = []
        self.closing = False
        self.error: BaseException | None = None

    def record(self, result: _Result) -> None:
        with self.cond:
            if self.error is not None:
                raise RuntimeError("the ledger writer failed") from self.error
            self.pending.append(result)
            self.cond.notify()
        result.done.wait()
        if self.error is not None:
            raise RuntimeError("the ledger writer failed") from self.error

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.join()

    def run(self) -> None:
        store = Store(self.store_path)
        try:
            while True:
                with self.cond:
                    while not self.pending and not self.closing:
                        self.cond.wait()
                    batch, self.pending = self.pending, []
                    if not batch and self.closing:
                        return
                try:
                    self._write(store.db, batch)
                except BaseException as exc:
                    self.error = exc
                    raise
                finally:
                    for result in batch:
                        result.done.set()
        finally:
            store.close()

    def _write(self, db: sqlite3.Connection, batch: list[_Result]) -> None:
        now = utcnow()
        db.execute("BEGIN IMMEDIATE")
        try:
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
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


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
    composer: Composer
    sender: str
    target: Target
    make_connection: Callable[[Target], Connection]
    connections: int
    rate: float
    messages_per_connection: int
    max_attempts: int
    retry_delay: float
    bounce_after: int
    limit: int | None = None
    on_result: Callable[[bool], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def _pending(store: Store, issue: str, batch: int = 100) -> Iterator[Recipient]:
    """Pending recipients in id order, read in small batches so that someone who
    unsubscribes during the run is skipped, and memory stays flat for any list size."""
    last = 0
    while True:
        rows = store.db.execute(
            "SELECT s.id, s.email, s.name, s.token FROM deliveries d "
            "JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE d.issue = ? AND d.state = 'pending' AND s.status = 'active' AND s.id > ? "
            "ORDER BY s.id LIMIT ?",
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
    writer = _LedgerWriter(str(run.store.path), run.issue, run.bounce_after)
    writer.start()
    limiter = _RateLimit(run.rate)
    # Consecutive messages that exhausted their retries: the relay itself is failing.
    streak = [0]

    def stop(reason: str) -> None:
        with lock:
            outcome.stopped = outcome.stopped or reason
        run.stop.set()

    def attempt(connection: Connection, recipient: Recipient, data: bytes) -> _Result:
        message_id = run.composer.message_id(recipient)
        last = ""
        for number in range(1, run.max_attempts + 1):
            if run.stop.is_set() and number > 1:
                break
            try:
                reply = connection.send(run.sender, recipient.email, data)
                return _Result(
                    recipient.subscriber_id, recipient.email, "sent", str(reply), number, message_id
                )
            except PermanentFailure as exc:
                return _Result(
                    recipient.subscriber_id, recipient.email, "failed", str(exc), number,
                    message_id, bounce=exc.stage == "rcpt",
                )  # fmt: skip
            except TemporaryFailure as exc:
                last = str(exc)
                connection.close()
                if number < run.max_attempts:
                    delay = run.retry_delay * 2 ** (number - 1) * random.uniform(0.5, 1.5)
                    run.stop.wait(min(delay, MAX_BACKOFF))
        return _Result(
            recipient.subscriber_id, recipient.email, "pending", last, run.max_attempts, message_id
        )

    def worker() -> None:
        connection = run.make_connection(run.target)
        try:
            while True:
                recipient = jobs.get()
                if recipient is None or run.stop.is_set():
                    return
                limiter.wait()
                data = run.composer.wire(recipient)
                try:
                    result = attempt(connection, recipient, data)
                except ServerFailure as exc:
                    stop(str(exc))
                    return
                writer.record(result)
                with lock:
                    if result.state == "sent":
                        outcome.sent += 1
                        streak[0] = 0
                    elif result.state == "failed":
                        outcome.failed += 1
                        outcome.failures.append((result.email, result.reply))
                    else:
                        outcome.deferred += 1
                        streak[0] += 1
                        if streak[0] >= run.connections:
                            stop(f"the relay keeps failing: {result.reply}")
                if run.on_result:
                    run.on_result(result.state == "sent")
                if connection.sent >= run.messages_per_connection:
                    connection.close()
        except SmtpError as exc:
            stop(str(exc))
        except BaseException as exc:
            stop(f"internal error: {exc!r}")
            raise
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, name=f"smtp-{n}") for n in range(run.connections)]
    for thread in threads:
        thread.start()
    try:
        for count, recipient in enumerate(_pending(run.store, run.issue)):
            if run.limit is not None and count >= run.limit:
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
            while True:
                try:
                    jobs.put(None, timeout=0.2)
                    break
                except queue.Full:
                    if not any(t.is_alive() for t in threads):
                        break
        for thread in threads:
            thread.join()
        writer.close()
    return outcome
