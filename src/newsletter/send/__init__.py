"""Send stage: built issue -> one message per active subscriber over SMTP.

``send_issue`` reads like the run: load and (re)build the issue, take the issue's lease,
write the ledger rows, start the capture server if configured, deliver, report.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError, NewsletterError
from ..files import write_atomic
from ..issuefile import load_issue
from ..models import Issue
from ..render import build_issue
from ..render.message import Composer, Recipient
from ..render.theme import Renderer, builtin_theme
from ..settings import SAMPLE_SECRET, Settings
from ..store import Store, utcnow
from .capture import CaptureServer
from .deliver import PENDING, Delivery, Outcome, deliver
from .smtp import Connection, ServerFailure, SmtpError, TemporaryFailure

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


def _stale(issue_path: Path, out: Path, settings: Settings) -> bool:
    """Whether out/<week>/ is missing or older than the issue file or any template."""
    built = out / "email.html"
    if not built.exists():
        return True
    newest = issue_path.stat().st_mtime
    for folder in (settings.templates_dir, builtin_theme()):
        if folder.is_dir():
            for template in folder.rglob("*.j2"):
                newest = max(newest, template.stat().st_mtime)
    return built.stat().st_mtime < newest


def prepare(issue_path: Path, settings: Settings) -> tuple[Issue, Path, bool]:
    """Load the issue and rebuild its outputs if they are missing or stale."""
    issue = load_issue(issue_path, settings)
    out = settings.output_dir / issue.week
    stale = _stale(Path(issue_path), out, settings)
    if stale:
        build_issue(issue_path, settings)
    return issue, out, stale


def _check_relay(settings: Settings) -> None:
    smtp = settings.smtp
    if smtp.mode != "relay":
        return
    if settings.security.secret.get_secret_value() == SAMPLE_SECRET:
        raise ConfigError(
            "[security] secret is still the sample value; set a long random secret "
            "(NEWSLETTER_SECURITY__SECRET) before sending through a relay"
        )
    loopback = smtp.host in ("localhost", "127.0.0.1", "::1")
    if smtp.username and smtp.security == "none" and not loopback:
        raise ConfigError(
            "[smtp] security = none with a username would send the password in clear "
            f"to {smtp.host}; use starttls or tls"
        )


@contextmanager
def _connections(settings: Settings, report: SendReport) -> Iterator[Callable[[], Connection]]:
    """A factory of connections to the relay, or to a capture server started for this run.

    One connection is opened first: a relay that cannot be reached, a TLS or login
    failure stops the run here, before any worker starts, instead of after every
    message's retries.
    """
    smtp = settings.smtp
    if smtp.mode == "relay":
        make: Callable[[], Connection] = lambda: Connection(smtp)  # noqa: E731
        _probe(make)
        yield make
        return
    maildir = settings.path(smtp.capture_dir)
    report.capture_dir = str(maildir)
    plain = smtp.model_copy(update={"security": "none", "username": ""})
    with CaptureServer(maildir) as server:
        yield lambda: Connection(plain, host=server.host, port=server.port)


def _probe(make: Callable[[], Connection]) -> None:
    for attempt in (1, 2):
        connection = make()
        try:
            connection.open()
            return
        except TemporaryFailure as exc:
            if attempt == 2:
                raise ServerFailure(f"cannot reach the relay: {exc}") from None
            time.sleep(1.0)
        finally:
            connection.close()


def plan(issue_path: Path, settings: Settings, show: int = 5) -> tuple[int, list[str], int]:
    """For --dry-run: (recipients this run would send to, the first few, already sent).

    Reads only; writes nothing, not even the ledger rows.
    """
    issue = load_issue(issue_path, settings)
    with Store(settings.store_path) as store:
        query = (
            "FROM subscribers s WHERE s.status = 'active' AND NOT EXISTS (SELECT 1 FROM "
            "deliveries d WHERE d.issue = ? AND d.subscriber_id = s.id AND d.state != 'pending')"
        )
        count = store.db.execute(f"SELECT COUNT(*) {query}", (issue.week,)).fetchone()[0]
        first = [
            r[0]
            for r in store.db.execute(
                f"SELECT s.email {query} ORDER BY s.id LIMIT ?", (issue.week, show)
            )
        ]
        done = store.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE issue = ? AND state = 'sent'", (issue.week,)
        ).fetchone()[0]
    return int(count), first, int(done)


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
                kept = store.renew_lease(issue, owner, LEASE_SECONDS)
            except sqlite3.OperationalError:
                continue  # store busy for 30 s: try again next tick, the lease has slack
            if not kept:
                lost.set()
                halt.set()
                return


def send_issue(
    issue_path: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[bool], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send the issue to every active subscriber who has not had it; safe to rerun."""
    _check_relay(settings)
    issue, out, built = prepare(issue_path, settings)
    report = SendReport(
        issue=issue.week, mode=settings.smtp.mode, started=utcnow(), built=built,
        limited=limit is not None,
    )  # fmt: skip
    started = dt.datetime.now(dt.UTC)
    stop = stop or threading.Event()
    with ExitStack() as stack:
        store = stack.enter_context(Store(settings.store_path))
        owner = store.acquire_lease(issue.week, issue.subject, LEASE_SECONDS)
        if owner is None:
            raise LeaseHeld(
                f"another send of {issue.week} is running ({store.lease_holder(issue.week)}); "
                "it will finish the job, or its lease lapses within a minute if it died"
            )
        stack.callback(store.release_lease, issue.week, owner)
        renewing, lost = threading.Event(), threading.Event()
        renewer = threading.Thread(
            target=_renew,
            args=(settings.store_path, issue.week, owner, renewing, lost, stop),
            daemon=True,
        )
        renewer.start()
        stack.callback(renewer.join)
        stack.callback(renewing.set)

        _refuse_header_injection(store)
        with store.transaction() as db:
            # Which stories this issue carries: `draft` never proposes them again.
            db.executemany(
                "INSERT OR IGNORE INTO issue_items (issue, item_id) VALUES (?, ?)",
                [(issue.week, item.id) for item in issue.items()],
            )
            # New active subscribers join a resumed run; unsubscribed ones are skipped later.
            db.execute(
                "INSERT OR IGNORE INTO deliveries (issue, subscriber_id, updated) "
                "SELECT ?, id, ? FROM subscribers WHERE status = 'active'",
                (issue.week, utcnow()),
            )
        counts = dict(
            store.db.execute(
                "SELECT d.state, COUNT(*) FROM deliveries d JOIN subscribers s "
                "ON s.id = d.subscriber_id WHERE d.issue = ? AND (d.state != 'pending' "
                "OR s.status = 'active') GROUP BY d.state",
                (issue.week,),
            ).fetchall()
        )
        report.already_sent = counts.get("sent", 0)
        pending = counts.get("pending", 0)
        report.recipients = min(pending, limit) if limit is not None else pending
        if on_start:
            on_start(report.recipients)
        outcome = Outcome()
        if report.recipients:
            composer = Composer(issue, settings, Renderer(settings))
            smtp = settings.smtp
            try:
                make = stack.enter_context(_connections(settings, report))
            except SmtpError as exc:
                outcome.stopped = str(exc)
            else:
                outcome = deliver(
                    Delivery(
                        store=store, issue=issue.week, owner=owner, composer=composer,
                        sender=settings.newsletter.from_address, make_connection=make,
                        connections=smtp.connections, rate=smtp.rate,
                        max_attempts=smtp.max_attempts, retry_delay=smtp.retry_delay,
                        bounce_after=smtp.bounce_after, limit=limit, on_result=on_result,
                        stop=stop,
                    )
                )  # fmt: skip
        if lost.is_set():
            outcome.stopped = outcome.stopped or "the send lease was lost"
        _fill(report, outcome, store, issue.week)
        if stop.is_set() and not outcome.stopped:
            report.stopped = "interrupted"
    report.finished = utcnow()
    report.seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    write_atomic({out / "send-report.json": json.dumps(asdict(report), indent=2).encode()})
    return report


def _refuse_header_injection(store: Store) -> None:
    """A line break in a name or address would inject headers: refuse before sending any."""
    row = store.db.execute(
        "SELECT email FROM subscribers WHERE status = 'active' AND "
        "(instr(name, char(10)) OR instr(name, char(13)) OR instr(email, char(10)) "
        "OR instr(email, char(13))) LIMIT 1"
    ).fetchone()
    if row:
        raise InputError(
            f"subscriber {row['email']!r} has a line break in their name or address; "
            "fix it in the store, or `newsletter subscribers remove --forget` and add "
            "them again, before sending"
        )


def _fill(report: SendReport, outcome: Outcome, store: Store, week: str) -> None:
    report.sent, report.failed, report.deferred = outcome.sent, outcome.failed, outcome.deferred
    report.stopped = outcome.stopped
    report.failures = [{"email": e, "reply": r} for e, r in outcome.failures]
    report.remaining = store.db.execute(f"SELECT COUNT(*) {PENDING}", (week,)).fetchone()[0]


def send_test(issue_path: Path, settings: Settings, addresses: list[str]) -> SendReport:
    """Send a [TEST] copy to ``addresses`` only: no ledger rows, no lease."""
    from ..subscribers import normalise_email

    _check_relay(settings)
    issue, _, _ = prepare(issue_path, settings)
    try:
        recipients = [Recipient(normalise_email(a)) for a in addresses]
    except ValueError as exc:
        raise NewsletterError(f"--test: {exc}") from None
    report = SendReport(issue=issue.week, mode=settings.smtp.mode, started=utcnow())
    composer = Composer(issue, settings, test=True)
    with _connections(settings, report) as make:
        connection = make()
        try:
            for recipient in recipients:
                try:
                    connection.send(
                        settings.newsletter.from_address, recipient.email,
                        composer.wire(recipient),
                    )  # fmt: skip
                    report.sent += 1
                except SmtpError as exc:
                    report.failed += 1
                    report.failures.append({"email": recipient.email, "reply": str(exc)})
        finally:
            connection.close()
    report.recipients = len(recipients)
    report.finished = utcnow()
    return report
