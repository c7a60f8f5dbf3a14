"""Send stage: built issue -> one message per active subscriber, through a transport.

``send_issue`` reads like the run: check the mode's settings, (re)build the loaded
issue's outputs if stale, take the issue's lease, start the
transports (the relay, or the capture server), deliver, report. The transport is
``[smtp] mode``'s (``modes.py``) unless the caller passes a factory, such as a
:class:`~.memory.MemoryRelay`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import ledger, library, subscribers
from ..errors import InputError, NewsletterError
from ..files import check_writable, write_atomic
from ..pause import checkpoint
from ..render import LoadedIssue, build_issue
from ..render.message import Recipient
from ..settings import Settings
from ..store import Store, utcnow
from .deliver import Delivery, Outcome, deliver
from .modes import mode_for
from .retry import Policy
from .transport import Envelope, TransportError, TransportFactory

__all__ = ["LeaseHeld", "SendReport", "plan", "send_issue", "send_test"]

#: A lease outlives a stalled renewal this long; a dead process's lease lapses after it.
LEASE_SECONDS = 60.0


class LeaseHeld(NewsletterError):
    exit_code = 1


@dataclass
class SendReport:
    issue: str
    mode: str
    started: str
    finished: str = ""
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    #: Sent by earlier runs (this run skipped them).
    already_sent: int = 0
    #: Refused for good (5xx) in earlier runs: a rerun cannot send to them.
    already_failed: int = 0
    remaining: int = 0
    stopped: str = ""
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    capture_dir: str = ""
    #: Whether out/<week>/ was (re)built first because it was missing or stale.
    built: bool = False
    #: --limit was given: recipients left for a later run are expected, not a problem.
    limited: bool = False

    @property
    def ok(self) -> bool:
        left = self.remaining and not self.limited
        return not (self.failed or self.deferred or self.stopped or left)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def prepare(loaded: LoadedIssue, settings: Settings) -> bool:
    """Refuse an invalid issue; (re)build its outputs if missing or stale. True if built."""
    loaded.require_valid()
    stale = loaded.stale()
    if stale:
        build_issue(loaded)
    return stale


def plan(loaded: LoadedIssue, settings: Settings, show: int = 5) -> tuple[int, list[str], int]:
    """For --dry-run: (recipients this run would send to, the first few, already sent).

    Reads only; writes nothing, not even the ledger rows.
    """
    with Store(settings.store_path) as store:
        return ledger.plan(store, loaded.week, show)


def _renew(
    store_path: Path,
    issue: str,
    owner: str,
    done: threading.Event,
    lost: threading.Event,
    halt: threading.Event,
) -> None:
    """Keep the lease while the run lasts; if another run took it over, halt this one."""
    with Store(store_path) as store:
        while not done.wait(LEASE_SECONDS / 4):
            try:
                kept = ledger.renew_lease(store, issue, owner, LEASE_SECONDS)
            except sqlite3.OperationalError:
                continue  # store busy for 30 s: try again next tick, the lease has slack
            if not kept:
                lost.set()
                halt.set()
                return


def send_issue(
    loaded: LoadedIssue,
    settings: Settings,
    *,
    limit: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[bool], None] | None = None,
    stop: threading.Event | None = None,
    transport: TransportFactory | None = None,
) -> SendReport:
    """Send the issue to every active subscriber who has not had it; safe to rerun.

    ``transport`` makes one transport per connection instead of ``[smtp] mode``'s.
    """
    mode = mode_for(settings, transport)
    mode.check(settings)
    # The report is written after the last message: a folder that cannot take it must
    # stop the run before the first one.
    check_writable(loaded.out_dir(), "send-report.json", what="[paths] output_dir")
    built = prepare(loaded, settings)
    issue, out = loaded.issue, loaded.out_dir()
    report = SendReport(
        issue=issue.week, mode=mode.name, started=utcnow(), built=built,
        limited=limit is not None,
    )  # fmt: skip
    started = dt.datetime.now(dt.UTC)
    stop = stop or threading.Event()
    with ExitStack() as stack:
        store = stack.enter_context(Store(settings.store_path))
        # The run's status watch checkpoints the WAL (deliver.py): none of the run's
        # commits, the first batch of ledger rows included, waits for an fsync.
        store.leave_checkpoints()
        owner = ledger.acquire_lease(store, issue.week, issue.subject, LEASE_SECONDS)
        if owner is None:
            holder = ledger.lease_holder(store, issue.week)
            raise LeaseHeld(
                f"another send of {issue.week} is running ({holder}); "
                "it will finish the job, or its lease lapses within a minute if it died"
            )
        stack.callback(ledger.release_lease, store, issue.week, owner)
        ledger.set_browser_version(
            store, issue.week, issue.preheader, lambda: loaded.archive_html,
            issue.date.isoformat(),
        )  # fmt: skip
        renewing, lost = threading.Event(), threading.Event()
        renewer = threading.Thread(
            target=_renew,
            args=(settings.store_path, issue.week, owner, renewing, lost, stop),
            daemon=True,
        )
        renewer.start()
        stack.callback(renewer.join)
        stack.callback(renewing.set)

        subscribers.refuse_header_injection(store)
        with store.transaction() as db:
            # Which stories this issue carries: `draft` never proposes them again.
            library.record_issue_items(db, issue.week, (item.id for item in issue.items()))
        counts = ledger.counts(store, issue.week)
        report.already_sent = counts.get("sent", 0)
        report.already_failed = counts.get("failed", 0)
        pending = counts.get("pending", 0)
        report.recipients = min(pending, limit) if limit is not None else pending
        if on_start:
            on_start(report.recipients)
        checkpoint("send")
        outcome = Outcome()
        if report.recipients:
            builder = loaded.message_builder()
            smtp = settings.smtp
            try:
                transports = stack.enter_context(mode.start(settings))
            except TransportError as exc:
                outcome.stopped = str(exc)
            else:
                report.capture_dir = transports.capture_dir
                outcome = deliver(
                    Delivery(
                        store=store, issue=issue.week, owner=owner, builder=builder,
                        sender=settings.envelope_sender, transports=transports.new,
                        connections=smtp.connections, rate=smtp.rate,
                        policy=Policy.from_settings(smtp), bounce_after=smtp.bounce_after,
                        limit=limit, on_result=on_result, stop=stop,
                    )
                )  # fmt: skip
        if lost.is_set():
            outcome.stopped = outcome.stopped or "the send lease was lost"
        delivered = bool(outcome.sent or outcome.failed or outcome.deferred)
        totals = ledger.record_totals(store, issue.week, owner, delivered)
        _fill(report, outcome, totals)
        if stop.is_set() and not outcome.stopped:
            report.stopped = "interrupted"
        report.finished = utcnow()
        report.seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        _write_reports(report, totals, store, out, started)
    return report


def _write_reports(
    report: SendReport, counts: dict[str, int], store: Store, out: Path, started: dt.datetime
) -> None:
    """This run's own ``send-report-<UTC time>.json``, and ``send-report.json``: the
    issue's total across every run, from the ledger (a no-op rerun never hides a real one)."""
    # To the microsecond: two quick reruns never share a name, and names sort by time.
    run_file = out / f"send-report-{started:%Y%m%dT%H%M%S.%fZ}.json"
    failures: list[dict[str, str]] = []
    deferred: list[dict[str, str]] = []
    for email, state, reply in ledger.refusals(store, report.issue):
        (failures if state == "failed" else deferred).append({"email": email, "reply": reply})
    runs = sorted(p.name for p in out.glob("send-report-*.json"))
    total = {
        "issue": report.issue,
        "updated": report.finished,
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "remaining": counts.get("pending", 0),
        "failures": failures,
        "deferred": deferred,
        "last_run": run_file.name,
        "runs": sorted({*runs, run_file.name}),
    }
    write_atomic(
        {
            run_file: json.dumps(asdict(report), indent=2).encode(),
            out / "send-report.json": json.dumps(total, indent=2).encode(),
        }
    )


def _fill(report: SendReport, outcome: Outcome, totals: dict[str, int]) -> None:
    report.sent, report.failed, report.deferred = outcome.sent, outcome.failed, outcome.deferred
    report.stopped = outcome.stopped
    report.failures = [{"email": e, "reply": r} for e, r in outcome.failures]
    report.remaining = totals.get("pending", 0)


def send_test(
    loaded: LoadedIssue,
    settings: Settings,
    addresses: list[str],
    *,
    transport: TransportFactory | None = None,
) -> SendReport:
    """Send a [TEST] copy to ``addresses`` only: no ledger rows, no lease, no retries."""
    from ..subscribers import normalise_email

    mode = mode_for(settings, transport)
    mode.check(settings)
    prepare(loaded, settings)
    issue = loaded.issue
    try:
        recipients = [Recipient(normalise_email(a)) for a in addresses]
    except ValueError as exc:
        raise InputError(f"{exc}", "--test") from None
    report = SendReport(issue=issue.week, mode=mode.name, started=utcnow())
    builder = loaded.message_builder(test=True)
    sender = settings.envelope_sender
    with mode.start(settings) as transports:
        report.capture_dir = transports.capture_dir
        connection = transports.new()
        try:
            for recipient in recipients:
                try:
                    connection.send(Envelope(sender, recipient.email, builder.wire(recipient)))
                    report.sent += 1
                except TransportError as exc:
                    report.failed += 1
                    report.failures.append({"email": recipient.email, "reply": str(exc)})
        finally:
            connection.close()
    report.recipients = len(recipients)
    report.finished = utcnow()
    return report
