"""`newsletter send` and `newsletter weekly`."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .output import (
    display,
    echo,
    is_terminal,
    plural,
    print_check_counts,
    print_findings,
    print_forced,
    with_settings,
)

if TYPE_CHECKING:
    from ..send import SendReport
    from ..settings import Settings


def _progress() -> tuple[Any, Callable[[int], None], Callable[[bool], None]]:
    """A rich progress bar on a terminal; silent callbacks otherwise."""
    if not is_terminal():
        return contextlib.nullcontext(), lambda n: None, lambda ok: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]:.0f}/s"),
        TimeRemainingColumn(),
        console=Console(highlight=False, soft_wrap=True),
    )
    task = progress.add_task("sending", total=None, failed=0, rate=0.0)
    started = [time.monotonic()]
    done = [0, 0]

    def on_start(total: int) -> None:
        started[0] = time.monotonic()
        progress.update(task, total=total)

    def on_result(ok: bool) -> None:
        done[0 if ok else 1] += 1
        elapsed = max(time.monotonic() - started[0], 1e-6)
        progress.update(task, advance=1, failed=done[1], rate=(done[0] + done[1]) / elapsed)

    return progress, on_start, on_result


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """SIGTERM/SIGINT finish the messages in flight, record them, then stop.

    A second signal is not caught: it ends the process at once (the ledger still holds,
    at the cost of the messages in flight).
    """
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def first(sig: int, frame: Any) -> None:
        stop.set()
        signal.signal(sig, previous[signal.Signals(sig)])

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, first)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _audit(settings: Settings, report: SendReport) -> None:
    """A run that reached someone goes in the audit log (a no-op rerun, or a run that
    could not start, leaves the store as it was)."""
    from ..audit import record_cli

    if report.sent or report.failed or report.deferred:
        what = f"{report.issue}: {report.sent} sent, {report.failed} failed"
        what += f", {report.deferred} deferred" + (f", {report.stopped}" if report.stopped else "")
        record_cli(settings.store_path, "sent", what)


def _audit_test(settings: Settings, issue: str, addresses: tuple[str, ...]) -> None:
    from ..audit import record_cli

    record_cli(settings.store_path, "test", f"{issue} to {', '.join(addresses)}")


def _report(report: SendReport) -> int:
    if report.built:
        echo(f"Built {report.issue} first (its outputs were missing or stale)")
    where = (
        f"captured in {display(Path(report.capture_dir))}" if report.capture_dir else "via relay"
    )
    if not report.recipients and not report.stopped:
        echo(
            f"Nothing to send: {report.issue} already went to "
            f"{plural(report.already_sent, 'subscriber')}."
        )
        if report.already_failed:
            # Exit 0 all the same: a rerun cannot change a 5xx, and cron retries of the
            # same issue must not alarm again; the run that failed them exited 1.
            echo(
                f"{report.already_failed} failed permanently in earlier runs; see send-report.json",
                err=True,
                fg="yellow",
            )
        return 0
    echo(
        f"{report.issue}: sent {report.sent}, failed {report.failed}, "
        f"deferred {report.deferred}, remaining {report.remaining} "
        f"({report.rate:.0f} msg/s, {report.seconds:.1f} s, {where})"
    )
    for failure in report.failures[:10]:
        echo(f"  failed: {failure['email']}: {failure['reply']}", err=True)
    if len(report.failures) > 10:
        echo(f"  … and {len(report.failures) - 10} more in send-report.json", err=True)
    if report.stopped:
        echo(
            click.style("stopped:", fg="red")
            + f" {report.stopped}; run the same command again to resume",
            err=True,
        )
    elif report.deferred or (report.remaining and not report.limited):
        echo("some messages were deferred; run the same command again to retry", err=True,
             fg="yellow")  # fmt: skip
    elif report.remaining:
        echo(f"{report.remaining} left for the next run (--limit)")
    return 0 if report.ok else 1


@click.command()
@click.argument("issue_file", type=click.Path(path_type=Path))
@click.option(
    "--test",
    "test_addresses",
    multiple=True,
    metavar="ADDR",
    help="Send a [TEST] copy to ADDR only (repeat --test for more); no ledger rows.",
)
@click.option("--dry-run", is_flag=True, help="Show who would get it; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages this run.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Send even if the pre-send checks find errors.")
@with_settings
def send(
    issue_file: Path,
    test_addresses: tuple[str, ...],
    dry_run: bool,
    limit: int | None,
    yes: bool,
    force: bool,
    settings: Settings,
) -> None:
    """Send ISSUE_FILE to every active subscriber who has not had it yet.

    Builds first if the outputs are missing or stale. Safe to run again: it resumes
    where a killed or failed run stopped, and never sends anyone the issue twice.

    \b
    Examples:
        newsletter send issues/2023-W25.toml --test me@example.org
        newsletter send issues/2023-W25.toml --dry-run
        newsletter send issues/2023-W25.toml --yes
    """
    from ..checks import ChecksFailed, check_issue
    from ..render import open_issue
    from ..send import plan, send_test
    from ..send.checked import send_checked
    from ..send.modes import mode_for

    loaded = open_issue(issue_file, settings).require_valid()
    if test_addresses:
        # A test copy is how people look for problems: checks inform, they do not block.
        print_check_counts(check_issue(loaded), issue_file)
        report = send_test(loaded, settings, list(test_addresses))
        if report.sent:
            _audit_test(settings, report.issue, test_addresses)
        echo(f"Test copy of {report.issue} sent to {report.sent} of {report.recipients}")
        for failure in report.failures:
            echo(f"  failed: {failure['email']}: {failure['reply']}", err=True)
        raise SystemExit(0 if not report.failed else 1)
    if dry_run:
        count, first, done = plan(loaded, settings)
        count = min(count, limit) if limit is not None else count
        echo(f"Would send to {plural(count, 'subscriber')} ({done} already have it).")
        for address in first[:count]:
            echo(f"  {address}")
        if count > len(first):
            echo(f"  … and {count - len(first)} more")
        return

    def confirm(count: int) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            # Nobody to ask: sending anyway would turn a forgotten --yes into a real send.
            raise click.UsageError(
                "use --yes to send without a terminal", ctx=click.get_current_context()
            )
        target = mode_for(settings).target(settings)
        click.confirm(
            f"Send {issue_file} to {plural(count, 'subscriber')} through {target}?", abort=True
        )

    progress, on_start, on_result = _progress()
    stop = threading.Event()
    with contextlib.ExitStack() as sending:

        def start(total: int) -> None:
            # Only now: Ctrl-C at the prompt or during the checks still quits at once.
            sending.enter_context(_stop_on_signals(stop))
            # The bar appears once sending starts, never over the confirmation prompt.
            sending.enter_context(progress)
            on_start(total)

        try:
            report = send_checked(
                loaded, settings, force=force, limit=limit, confirm=confirm,
                on_checks=print_forced, on_start=start, on_result=on_result, stop=stop,
            )  # fmt: skip
        except ChecksFailed as exc:
            print_findings(exc.report, minimum="error")
            raise
    _audit(settings, report)
    raise SystemExit(_report(report))


@click.command()
@click.option("--week", help="ISO week such as 2023-W25 [default: this week].")
@click.option("--force", is_flag=True, help="Send even if the pre-send checks find errors.")
@with_settings
def weekly(week: str | None, force: bool, settings: Settings) -> None:
    """Send this week's issue: the cron / systemd-timer entry point.

    Uses issues/<week>.toml, builds it if needed, and sends to everyone who has not had
    it. It runs the pre-send checks first and refuses on errors (--force overrides).
    Running it again sends nothing and says so; the exit code is 0 only when everyone
    has it. With [weekly] require_approval = true it sends only an issue approved in
    the studio, and otherwise exits 2 with one line saying why.

    \b
    Example (crontab, Fridays 09:00):
        0 9 * * 5  cd /srv/newsletter && .venv/bin/newsletter weekly
    """
    from ..checks import ChecksFailed
    from ..weekly import run_weekly

    with _stop_on_signals() as stop:
        try:
            report = run_weekly(settings, week, force=force, on_checks=print_forced, stop=stop)
        except ChecksFailed as exc:
            print_findings(exc.report, minimum="error")
            raise
    _audit(settings, report)
    raise SystemExit(_report(report))
