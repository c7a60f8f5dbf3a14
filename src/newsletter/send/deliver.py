"""Delivering one issue to every active subscriber, exactly once, resumably.

The ledger (``ledger.py``) is the truth. A row is ``pending`` until the relay has answered
DATA with 250. A worker hands each result to the ledger writer and goes on: it composes
and sends its next message while that result commits, but it sends no further one until
the result is durable. So a crash (SIGKILL included) can repeat at most the messages
accepted but not yet recorded: **at most** ``IN_FLIGHT x connections`` **duplicates**
(2 per connection). Waiting for each commit before the next message (1 per connection)
left the workers idle a third of the time. A worker also takes and composes its next
message before sending the current one, so that the SMTP connection can write the next
envelope with the current message's end (``then``; one round trip per message): that
delivers nothing by itself, so it does not change the bound.
5xx replies mark a row ``failed`` and are never retried. Temporary failures leave it
``pending`` for the next run.

One run has these threads:

* the caller's, which feeds pending recipients in id order into a short queue;
* ``connections`` workers, each with its own transport: rate limit, make sure at most one
  earlier result is still committing, take and compose the next job, try the message
  (``retry.attempt``, with the next envelope as ``then``), hand its result to the ledger
  writer;
* the ledger writer, which commits results in groups while this run holds the lease;
* the status watch, which notices subscribers who leave while the run is going.
"""

from __future__ import annotations

import collections
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import ledger, subscribers
from ..errors import InputError, NewsletterError
from ..ledger import LedgerError, Record
from ..render.message import MessageBuilder, Recipient
from ..store import Store
from .retry import Policy, RelayFailing, Result, attempt
from .transport import Envelope, Transport, TransportFactory

__all__ = ["IN_FLIGHT", "Delivery", "LedgerError", "Outcome", "deliver"]

#: Messages per connection that may have been accepted by the relay but not yet recorded.
IN_FLIGHT = 2


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
class Delivery:
    """Everything a run needs; see :func:`deliver`."""

    store: Store
    issue: str
    #: This run's lease owner: results are only recorded while it holds the lease.
    owner: str
    builder: MessageBuilder
    sender: str
    #: Called once per worker.
    transports: TransportFactory
    connections: int
    rate: float
    policy: Policy
    bounce_after: int
    limit: int | None = None
    on_result: Callable[[bool], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def deliver(run: Delivery) -> Outcome:
    """Send every pending message of ``run.issue``. The caller holds the issue's lease."""
    return _Run(run).go()


class _Handoff:
    """A result waiting for its commit."""

    __slots__ = ("committed", "done", "record")

    def __init__(self, record: Record) -> None:
        self.record = record
        self.done = threading.Event()
        self.committed = False


class _LedgerWriter(threading.Thread):
    """Group commit: workers hand results over and wait until they are durable.

    One writer connection avoids lock contention between workers; batching many
    results per transaction keeps thousands of messages per second affordable. Each
    transaction also checks that this run still holds the issue's lease, so a run that
    lost it (stalled, then overtaken) stops within one message per connection.
    """

    def __init__(self, store_path: Path, issue: str, owner: str, bounce_after: int) -> None:
        super().__init__(name="ledger", daemon=True)
        self.store_path, self.issue, self.owner = store_path, issue, owner
        self.bounce_after = bounce_after
        self.cond = threading.Condition()
        self.pending: list[_Handoff] = []
        self.closing = False
        self.error: str = ""

    def submit(self, record: Record) -> _Handoff:
        """Hand over a result; :meth:`wait` for it before the next message goes out."""
        handoff = _Handoff(record)
        with self.cond:
            if self.error:
                raise LedgerError(self.error)
            self.pending.append(handoff)
            self.cond.notify()
        return handoff

    def wait(self, handoff: _Handoff) -> None:
        """Until the result is committed; LedgerError if it cannot be."""
        handoff.done.wait()
        if not handoff.committed:
            raise LedgerError(self.error or "the ledger writer stopped")

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.join()

    def _fail(self, message: str, batch: list[_Handoff]) -> None:
        # Release everyone waiting, now and later: nothing may hang on a dead writer.
        with self.cond:
            self.error = message
            waiting, self.pending = self.pending, []
        for handoff in batch + waiting:
            handoff.done.set()

    def run(self) -> None:
        batch: list[_Handoff] = []
        try:
            with Store(self.store_path) as store:
                store.leave_checkpoints()  # the status watch does them, off this path
                while True:
                    with self.cond:
                        while not self.pending and not self.closing:
                            self.cond.wait()
                        batch, self.pending = self.pending, []
                        if not batch and self.closing:
                            return
                    records = [handoff.record for handoff in batch]
                    ledger.record(store, self.issue, self.owner, records, self.bounce_after)
                    for handoff in batch:
                        handoff.committed = True
                        handoff.done.set()
                    batch = []
        except NewsletterError as exc:
            self._fail(str(exc), batch)
        except Exception as exc:
            self._fail(f"cannot record results in the store: {exc}", batch)


class _StatusWatch(threading.Thread):
    """Subscribers who left (unsubscribed, bounced, complained) since the run began; and
    the run's WAL checkpoints, which the other connections leave to it so that no commit
    the workers wait for copies the WAL back with an fsync (seconds after a big insert).

    Refreshed twice a second: a set lookup per message instead of a query per message.
    Each look reads only the status changes numbered after the previous look
    (``subscribers.changes_after``), so it costs the same for a list of a thousand or of
    a million. Changes before the run are already in the pending query, which reads each
    subscriber's status when it fetches their batch.
    """

    def __init__(self, store_path: Path, on_error: Callable[[str], None]) -> None:
        super().__init__(name="status-watch", daemon=True)
        self.store_path, self.on_error = store_path, on_error
        self.left: frozenset[int] = frozenset()
        with Store(store_path) as store:
            self.seen = subscribers.last_change(store)
        self.finished = threading.Event()

    def run(self) -> None:
        left: set[int] = set()
        try:
            with Store(self.store_path) as store:
                while not self.finished.wait(0.5):
                    changes = subscribers.changes_after(store, self.seen)
                    for self.seen, subscriber_id, active in changes:
                        (left.discard if active else left.add)(subscriber_id)
                    if changes:
                        self.left = frozenset(left)
                    store.checkpoint()
        except (NewsletterError, sqlite3.Error) as exc:
            self.on_error(f"cannot watch for unsubscribes: {exc}")

    def close(self) -> None:
        self.finished.set()
        self.join()


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


#: The longest a primed envelope may wait for its message (a slow ``[smtp] rate`` spaces
#: messages out): the relay then sits in DATA, and relays time that out after minutes.
_PRIMED_WAIT_MAX = 10.0

#: A recipient and their message (or why it cannot be built), or the end of the work.
_Job = tuple[Recipient, bytes | Result] | Literal["end"]
_END: Literal["end"] = "end"


class _Run:
    """One call of :func:`deliver`: the state its threads share."""

    def __init__(self, run: Delivery) -> None:
        self.run = run
        self.outcome = Outcome()
        # Re-entrant: stop() is also called while the counters are being updated.
        self.lock = threading.RLock()
        self.jobs: queue.Queue[Recipient | None] = queue.Queue(maxsize=run.connections * 4)
        self.writer = _LedgerWriter(run.store.path, run.issue, run.owner, run.bounce_after)
        self.watch = _StatusWatch(run.store.path, self.stop)
        self.limiter = _RateLimit(run.rate)
        #: Whether a worker may start its next envelope early: not when a slow ``[smtp] rate``
        #: would leave the relay waiting in DATA for long.
        self.prime = self.limiter.interval * run.connections < _PRIMED_WAIT_MAX
        #: Consecutive messages deferred because of the relay: it is failing, not them.
        self.failing = RelayFailing(run.connections)

    def go(self) -> Outcome:
        self.writer.start()
        self.watch.start()
        workers = [
            threading.Thread(target=self._work, name=f"smtp-{n}")
            for n in range(self.run.connections)
        ]
        for worker in workers:
            worker.start()
        try:
            self._feed()
        finally:
            self._finish(workers)
        return self.outcome

    def stop(self, reason: str) -> None:
        with self.lock:
            self.outcome.stopped = self.outcome.stopped or reason
        self.run.stop.set()

    def _feed(self) -> None:
        run = self.run
        for number, row in enumerate(ledger.pending_recipients(run.store, run.issue)):
            if run.limit is not None and number >= run.limit:
                return
            recipient = Recipient(
                row.email, row.name, row.token, row.subscriber_id, first_name=row.first_name
            )
            while not run.stop.is_set():
                try:
                    self.jobs.put(recipient, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if run.stop.is_set():
                return

    def _work(self) -> None:
        transport: Transport | None = None
        #: Results still committing, oldest first.
        unsettled: collections.deque[tuple[Recipient, Result, _Handoff]] = collections.deque()
        try:
            transport = self.run.transports()
            job = self._take(wait=True)
            while isinstance(job, tuple) and not self.run.stop.is_set():
                recipient, data = job
                self.limiter.wait()
                # At most IN_FLIGHT - 1 earlier results may still be committing when this
                # message is delivered: the bound on duplicates after a crash.
                while len(unsettled) >= IN_FLIGHT:
                    self._settle(unsettled.popleft())
                if self.run.stop.is_set():
                    break
                # The next job, if one is ready, is composed now so that its envelope can go
                # with this message's end (``then``): it is sent next, whatever happens.
                following = self._take(wait=False)
                then = None
                if self.prime and isinstance(following, tuple) and isinstance(following[1], bytes):
                    then = Envelope(self.run.sender, following[0].email, following[1])
                unsettled.append(self._send(transport, recipient, data, then))
                if transport.needs_reconnect:
                    transport.close()
                job = following if following is not None else self._take(wait=True)
            while unsettled:
                self._settle(unsettled.popleft())
        except NewsletterError as exc:  # ServerFailure, LedgerError, DKIM or input errors
            self.stop(str(exc))
        except Exception as exc:
            self.stop(f"internal error: {exc!r}")
        finally:
            if transport is not None:
                transport.close()

    def _take(self, *, wait: bool) -> _Job | None:
        """The next recipient still subscribed, with their message; ``_END`` when the run
        has no more for this worker, None when ``wait`` is false and none is queued yet."""
        while True:
            try:
                recipient = self.jobs.get(block=wait)
            except queue.Empty:
                return None
            if recipient is None:
                return _END  # each worker gets one end marker
            if recipient.subscriber_id not in self.watch.left:
                return recipient, self._compose(recipient)

    def _compose(self, recipient: Recipient) -> bytes | Result:
        try:
            return self.run.builder.wire(recipient)
        except InputError as exc:
            # A name or address stored before today's rules (a control character, say):
            # this one subscriber fails for good; it must not stop everyone after them.
            return Result("failed", f"cannot build the message: {exc}", 0)

    def _send(
        self,
        transport: Transport,
        recipient: Recipient,
        data: bytes | Result,
        then: Envelope | None = None,
    ) -> tuple[Recipient, Result, _Handoff]:
        run = self.run
        if isinstance(data, Result):
            result = data
        else:
            envelope = Envelope(run.sender, recipient.email, data)
            result = attempt(transport, envelope, run.policy, run.stop, then=then)
            self._observe(result)
        record = Record(
            subscriber_id=recipient.subscriber_id,
            state=result.state,
            reply=result.reply,
            attempts=result.attempts,
            message_id=run.builder.message_id(recipient),
            bounce=result.bounce,
        )
        return recipient, result, self.writer.submit(record)

    def _settle(self, previous: tuple[Recipient, Result, _Handoff]) -> None:
        """Wait until a result is committed, then count it."""
        recipient, result, handoff = previous
        self.writer.wait(handoff)
        self._count(recipient, result)
        if self.run.on_result:
            self.run.on_result(result.state == "sent")

    def _count(self, recipient: Recipient, result: Result) -> None:
        with self.lock:
            if result.state == "sent":
                self.outcome.sent += 1
            elif result.state == "failed":
                self.outcome.failed += 1
                self.outcome.failures.append((recipient.email, result.reply))
            else:
                self.outcome.deferred += 1

    def _observe(self, result: Result) -> None:
        # Right after the attempt, not once it is committed: a failing relay must stop
        # the run before the next message, not one message per connection later.
        with self.lock:
            # Failures while stopping come from the stop itself, not from the relay.
            if self.failing.observe(result) and not self.run.stop.is_set():
                self.stop(f"the relay keeps failing: {result.reply}")

    def _finish(self, workers: list[threading.Thread]) -> None:
        for _ in workers:
            # Workers may have stopped early: never block on a full queue.
            while any(worker.is_alive() for worker in workers):
                try:
                    self.jobs.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
        for worker in workers:
            worker.join()
        self.writer.close()
        self.watch.close()
