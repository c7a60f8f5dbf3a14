"""Work the studio starts and then watches: a send, a collect.

A send runs in a thread of the studio's process as the same ledgered, resumable send as
the CLI (:func:`~newsletter.send.checked.send_checked`). Its progress is read from the
ledger, not from the thread: a reload, another worker, or a send started from the
command line all show the same numbers, and the ledger's lease lets only one run at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import ledger
from ..errors import NewsletterError
from ..settings import Settings
from ..store import Store

__all__ = ["Jobs", "Progress"]

#: The send rate is measured over about this many seconds of samples.
RATE_WINDOW = 15.0


@dataclass
class Job:
    kind: str
    key: str
    started: float = field(default_factory=time.time)
    done: bool = False
    error: str = ""
    summary: str = ""
    thread: threading.Thread | None = None


@dataclass
class Progress:
    week: str
    sent: int = 0
    failed: int = 0
    pending: int = 0
    running: bool = False
    holder: str = ""
    rate: float = 0.0
    eta_seconds: float | None = None
    error: str = ""
    summary: str = ""

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.pending

    @property
    def percent(self) -> int:
        return int(100 * (self.sent + self.failed) / self.total) if self.total else 0

    def as_json(self) -> dict[str, object]:
        return {
            "week": self.week, "sent": self.sent, "failed": self.failed,
            "pending": self.pending, "total": self.total, "percent": self.percent,
            "running": self.running, "rate": round(self.rate, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "error": self.error, "summary": self.summary,
        }  # fmt: skip


class Jobs:
    """The studio's background work, one per kind and key at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: dict[tuple[str, str], Job] = {}
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        #: Set at shutdown: a send finishes the messages in flight, records them, and
        #: releases its lease, as the CLI's does on SIGTERM.
        self.stop = threading.Event()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop a send in progress (it records what is in flight and releases its lease)
        and wait for it, at most ``timeout`` seconds."""
        self.stop.set()
        with self._lock:
            threads = [job.thread for job in self._jobs.values()
                       if job.thread is not None and not job.thread.daemon]  # fmt: skip
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def get(self, kind: str, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get((kind, key))

    def start(self, kind: str, key: str, work: Callable[[], str]) -> Job | None:
        """Run ``work`` (it returns a summary) in a thread; None when the same job runs.

        A send's thread is not a daemon: the process waits for it, and :meth:`shutdown`
        makes it stop cleanly. Other work (a collect, which has no stop) dies with the
        process; it is safe to repeat.
        """
        with self._lock:
            current = self._jobs.get((kind, key))
            if current is not None and not current.done:
                return None
            job = Job(kind, key)
            self._jobs[(kind, key)] = job
            job.thread = threading.Thread(
                target=lambda: self._run(job, work), name=f"studio-{kind}-{key}",
                daemon=kind != "send",
            )  # fmt: skip
        try:
            job.thread.start()
        except RuntimeError as exc:  # no thread to be had: say so rather than "running"
            job.error, job.done = f"could not start: {exc}", True
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[], str]) -> None:

        try:
            job.summary = work()
        except NewsletterError as exc:
            job.error = str(exc)
        except Exception as exc:  # a thread's failure must reach the page, not vanish
            job.error = f"unexpected error: {type(exc).__name__}: {exc}"
            raise
        finally:
            job.done = True

    def progress(self, week: str) -> Progress:
        """The send of ``week`` as the ledger has it, with a rate from recent samples."""
        with Store(self.settings.store_path) as store:
            counts = ledger.counts(store, week)
            holder = ledger.lease_active(store, week)
        progress = Progress(
            week, sent=counts.get("sent", 0), failed=counts.get("failed", 0),
            pending=counts.get("pending", 0), holder=holder,
        )  # fmt: skip
        job = self.get("send", week)
        progress.running = bool(holder) or (job is not None and not job.done)
        if job is not None:
            progress.error, progress.summary = job.error, job.summary
        now = time.monotonic()
        with self._lock:
            samples = self._samples.setdefault(week, deque())
            samples.append((now, progress.sent + progress.failed))
            while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
                samples.popleft()
            first_time, first_done = samples[0]
        if progress.running and now > first_time:
            progress.rate = (progress.sent + progress.failed - first_done) / (now - first_time)
            if progress.rate > 0:
                progress.eta_seconds = progress.pending / progress.rate
        return progress
