"""Command line: each command parses its options and calls one library function."""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import __version__, subscribers
from .checks import ChecksFailed, Finding, Report, Severity, check_issue, gate
from .collect import SourceReport, collect, collect_source
from .draft import draft_issue, list_items
from .errors import ConfigError, NewsletterError
from .render import GMAIL_CLIP_BYTES, build_issue
from .send import SendReport, plan, send_issue, send_test
from .settings import DEFAULT_CONFIG, Settings, SourceSettings, load_settings
from .store import Store
from .weekly import current_week, run_weekly

F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: never fold a long path or message onto two lines (logs and grep need one).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _human(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def with_settings(command: F) -> F:
    """Add ``--config PATH`` and pass the loaded :class:`Settings` as ``settings``."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        default=DEFAULT_CONFIG,
        show_default=True,
        help="Configuration file.",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path, **kwargs: Any) -> Any:
        return command(*args, settings=load_settings(config_path), **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="newsletter")
def cli() -> None:
    """Build and send an organisation's weekly email newsletter.

    \b
    Pipeline: collect -> draft -> build -> send.
    """


@cli.command()
@click.argument("issue_file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Output folder [default: [paths] output_dir].",
)
@with_settings
def build(issue_file: Path, out_dir: Path | None, settings: Settings) -> None:
    """Render ISSUE_FILE to HTML, plain text, a complete .eml and a browser version.

    \b
    Example:
        newsletter build issues/2023-W25.toml
    writes out/2023-W25/email.html, email.txt, email.eml and archive.html.
    """
    result = build_issue(issue_file, settings, out_dir)
    total_ms = sum(result.timings.values()) * 1000
    out.print(
        f"Built {result.issue.week} ({len(result.issue.items())} stories) in {total_ms:.0f} ms"
    )
    for path in result.files.values():
        out.print(f"  {_display(path)}  {_human(path.stat().st_size)}", markup=False)
    _check_counts(check_issue(issue_file, settings, build=result), issue_file)
    if result.clipped:
        err.print(
            f"[yellow]warning:[/] email.html is {_human(len(result.html.encode()))}, over Gmail's "
            f"{_human(GMAIL_CLIP_BYTES)} limit: Gmail will clip it. "
            "Cut stories or shorten summaries."
        )


def _progress() -> tuple[Any, Callable[[int], None], Callable[[bool], None]]:
    """A rich progress bar on a terminal; silent callbacks otherwise."""
    if not out.is_terminal:
        return contextlib.nullcontext(), lambda n: None, lambda ok: None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]:.0f}/s"),
        TimeRemainingColumn(),
        console=out,
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
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT finish the messages in flight, record them, then stop.

    A second signal is not caught: it ends the process at once (the ledger still holds,
    at the cost of the messages in flight).
    """
    stop = threading.Event()
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


def _report(report: SendReport) -> int:
    if report.built:
        out.print(f"Built {report.issue} first (its outputs were missing or stale)", markup=False)
    where = (
        f"captured in {_display(Path(report.capture_dir))}" if report.capture_dir else "via relay"
    )
    if not report.recipients and not report.stopped:
        out.print(
            f"Nothing to send: {report.issue} already went to {report.already_sent} subscribers.",
            markup=False,
        )
        return 0
    out.print(
        f"{report.issue}: sent {report.sent}, failed {report.failed}, "
        f"deferred {report.deferred}, remaining {report.remaining} "
        f"({report.rate:.0f} msg/s, {report.seconds:.1f} s, {where})",
        markup=False,
    )
    for failure in report.failures[:10]:
        err.print(f"  failed: {failure['email']}: {failure['reply']}", markup=False)
    if len(report.failures) > 10:
        err.print(f"  … and {len(report.failures) - 10} more in send-report.json", markup=False)
    if report.stopped:
        err.print(
            f"[red]stopped:[/] {escape(report.stopped)}; run the same command again to resume"
        )
    elif report.deferred or (report.remaining and not report.limited):
        err.print("[yellow]some messages were deferred; run the same command again to retry[/]")
    elif report.remaining:
        out.print(f"{report.remaining} left for the next run (--limit)", markup=False)
    return 0 if report.ok else 1


@cli.command()
@click.argument("issue_file", type=click.Path(path_type=Path))
@click.option(
    "--test",
    "test_addresses",
    multiple=True,
    metavar="ADDR",
    help="Send a [TEST] copy to ADDR only (repeatable); no ledger rows.",
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
    if test_addresses:
        # A test copy is how people look for problems: checks inform, they do not block.
        _check_counts(check_issue(issue_file, settings), issue_file)
        report = send_test(issue_file, settings, list(test_addresses))
        out.print(
            f"Test copy of {report.issue} sent to {report.sent} of {report.recipients}",
            markup=False,
        )
        for failure in report.failures:
            err.print(f"  failed: {failure['email']}: {failure['reply']}", markup=False)
        raise SystemExit(0 if not report.failed else 1)
    count, first, done = plan(issue_file, settings)
    if limit is not None:
        count = min(count, limit)
    if dry_run:
        out.print(f"Would send to {count} subscribers ({done} already have it).", markup=False)
        for address in first[:count]:
            out.print(f"  {address}", markup=False)
        if count > len(first):
            out.print(f"  … and {count - len(first)} more", markup=False)
        return
    if count:
        _gate(issue_file, settings, force)
    if count and not yes and sys.stdin.isatty():
        target = "the local capture" if settings.smtp.mode == "capture" else settings.smtp.host
        click.confirm(f"Send {issue_file} to {count} subscribers through {target}?", abort=True)
    progress, on_start, on_result = _progress()
    with _stop_on_signals() as stop, progress:
        report = send_issue(
            issue_file, settings, limit=limit, on_start=on_start, on_result=on_result, stop=stop
        )
    raise SystemExit(_report(report))


@cli.command()
@click.option("--week", help="ISO week such as 2023-W25 [default: this week].")
@click.option("--force", is_flag=True, help="Send even if the pre-send checks find errors.")
@with_settings
def weekly(week: str | None, force: bool, settings: Settings) -> None:
    """Send this week's issue: the cron / systemd-timer entry point.

    Uses issues/<week>.toml, builds it if needed, and sends to everyone who has not had
    it. It runs the pre-send checks first and refuses on errors (--force overrides).
    Running it again sends nothing and says so; the exit code is 0 only when everyone
    has it.

    \b
    Example (crontab, Fridays 09:00):
        0 9 * * 5  cd /srv/newsletter && .venv/bin/newsletter weekly
    """
    with _stop_on_signals() as stop:
        try:
            report = run_weekly(settings, week, force=force, on_checks=_forced, stop=stop)
        except ChecksFailed as exc:
            _print_findings(exc.report, minimum="error")
            raise
    raise SystemExit(_report(report))


@cli.command()
@click.argument("token_or_email")
@with_settings
def unsubscribe(token_or_email: str, settings: Settings) -> None:
    """Unsubscribe by the token of an unsubscribe link, or by address.

    \b
    Examples:
        newsletter unsubscribe ada@example.org
        newsletter unsubscribe 'Q2x0...Zz.k3J...'
    """
    with Store(settings.store_path) as store:
        found = subscribers.unsubscribe(
            store, settings.security.secret.get_secret_value(), token_or_email
        )
    out.print(f"{found.email} is {found.status}", markup=False)


@cli.group(name="subscribers")
def subscribers_group() -> None:
    """Manage the subscriber list (import, add, remove, list, export)."""


@subscribers_group.command(name="import")
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--source", help="Recorded as each new subscriber's source [default: import:FILE].")
@with_settings
def subscribers_import(csv_file: Path, source: str | None, settings: Settings) -> None:
    """Import a CSV with an `email` column (and optionally `name`).

    Invalid and duplicate rows are reported with their line numbers and skipped; the
    rest are imported in one transaction. Unsubscribed, bounced and complained
    addresses are never resubscribed. Exit code 1 when some rows were invalid.

    \b
    Example:
        newsletter subscribers import examples/subscribers.csv
    """
    with Store(settings.store_path) as store:
        report = subscribers.import_csv(store, csv_file, source)
    for problem in report.problems:
        err.print(problem, markup=False)
    out.print(
        f"Imported {report.imported}, already subscribed {report.already}, "
        f"skipped {len(report.problems)}",
        markup=False,
    )
    raise SystemExit(1 if report.invalid else 0)


@subscribers_group.command(name="add")
@click.argument("email")
@click.option("--name", default="", help="Display name, used in To and the greeting.")
@with_settings
def subscribers_add(email: str, name: str, settings: Settings) -> None:
    """Add one subscriber.

    \b
    Example:
        newsletter subscribers add ada@example.org --name "Ada Lovelace"
    """
    with Store(settings.store_path) as store:
        added = subscribers.add(store, email, name)
    out.print(f"Added {added.email}", markup=False)


@subscribers_group.command(name="remove")
@click.argument("email")
@click.option(
    "--forget",
    is_flag=True,
    help="Delete the subscriber and their send history (erasure request) instead "
    "of keeping them as unsubscribed.",
)
@with_settings
def subscribers_remove(email: str, forget: bool, settings: Settings) -> None:
    """Unsubscribe EMAIL (kept, so an import never re-adds them), or --forget it entirely.

    \b
    Example:
        newsletter subscribers remove ada@example.org
    """
    secret = settings.security.secret.get_secret_value()
    with Store(settings.store_path) as store:
        if forget:
            try:
                existed = subscribers.forget(store, email)
            except ValueError as exc:
                raise NewsletterError(str(exc)) from None
            if not existed:
                raise NewsletterError(f"{email}: no such subscriber")
            out.print(f"Forgot {email}", markup=False)
            return
        found = subscribers.unsubscribe(store, secret, email)
    out.print(f"{found.email} is {found.status}", markup=False)


def _status_option(command: F) -> F:
    return click.option(
        "--status", type=click.Choice(subscribers.STATUSES), help="Only this status."
    )(command)


@subscribers_group.command(name="list")
@_status_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@with_settings
def subscribers_list(status: str | None, as_json: bool, settings: Settings) -> None:
    """List subscribers as a table, or as JSON.

    \b
    Example:
        newsletter subscribers list --status active --json
    """
    with Store(settings.store_path) as store:
        rows = [s.public() for s in subscribers.iter_subscribers(store, status)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    columns = ("email", "name", "status", "created", "source")
    if not out.is_terminal:
        # Piped: whole values, tab-separated, for grep and cut (a table would truncate).
        for row in rows:
            out.print("\t".join(str(row[k]) for k in columns), markup=False)
    else:
        table = Table(*columns, box=None)
        for row in rows:
            table.add_row(*(escape(str(row[k])) for k in columns))
        out.print(table)
    out.print(f"{len(rows)} subscribers", markup=False)


@subscribers_group.command(name="export")
@_status_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of CSV.")
@with_settings
def subscribers_export(status: str | None, as_json: bool, settings: Settings) -> None:
    """Write every subscriber to stdout as CSV (or JSON), streaming.

    \b
    Example:
        newsletter subscribers export > subscribers.csv
    """
    with Store(settings.store_path) as store:
        rows = (s.public() for s in subscribers.iter_subscribers(store, status))
        if as_json:
            click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
            return
        writer = csv.DictWriter(
            sys.stdout, fieldnames=["email", "name", "status", "created", "source"]
        )
        writer.writeheader()
        writer.writerows(rows)


def _source_line(result: SourceReport) -> None:
    if result.error:
        err.print(f"[red]{escape(result.source)}: failed:[/] {escape(result.error)}")
        return
    if result.not_modified:
        out.print(f"{result.source}: not modified since the last collect", markup=False)
        return
    out.print(
        f"{result.source}: {result.new} new, {result.updated} updated, "
        f"{result.unchanged} unchanged",
        markup=False,
    )
    for problem in result.problems:
        err.print(f"  {result.source}: {problem}", markup=False)


@cli.command(name="collect")
@click.option("--source", "only", help="Collect this source only (its `name` in config).")
@with_settings
def collect_command(only: str | None, settings: Settings) -> None:
    """Collect every source in [[sources]] into the item library.

    Re-collecting updates changed items in place and never duplicates them. A source
    that fails is reported; the others are still collected (exit code 1).

    \b
    Example:
        newsletter collect
        newsletter collect --source newsroom
    """
    if not settings.sources:
        raise NewsletterError("no [[sources]] in the config; see the README, or use `import`")
    report = collect(settings, only, on_source=_source_line)
    raise SystemExit(1 if report.failed else 0)


@cli.command(name="import")
@click.argument("location")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["feed", "page", "text"]),
    required=True,
    help="What LOCATION is.",
)
@click.option("--name", help="Source name recorded on the items [default: the file or host].")
@click.option(
    "--selector",
    "selectors",
    multiple=True,
    metavar="KEY=CSS",
    help="For --type page: item=..., title=..., link=..., date=..., summary=..., image=...",
)
@with_settings
def import_command(
    location: str, kind: str, name: str | None, selectors: tuple[str, ...], settings: Settings
) -> None:
    """One-off import of a feed, a newsroom page or copied text (a path or a URL).

    \b
    Examples:
        newsletter import examples/nato-newsroom-2023-06-23.txt --type text
        newsletter import https://www.example.org/feed.xml --type feed
    """
    bad = [s for s in selectors if "=" not in s]
    if bad:
        raise click.BadParameter(
            f"{bad[0]!r}: write KEY=CSS, e.g. item=li.news", param_hint="--selector"
        )
    if selectors and kind != "page":
        raise click.BadParameter("only --type page uses selectors", param_hint="--selector")
    remote = "://" in location
    try:
        source = SourceSettings(
            name=name or (location.split("/")[2] if remote else Path(location).stem),
            type=kind,
            location=location if remote else str(Path(location).resolve()),
            selectors=dict(s.split("=", 1) for s in selectors),
        )
    except ValidationError as exc:
        raise NewsletterError(
            f"import: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None
    with Store(settings.store_path) as store:
        result = collect_source(source, settings, store, conditional=False)
    _source_line(result)
    raise SystemExit(1 if result.error else 0)


@cli.command(name="items")
@click.option("--week", help="Only items published in this ISO week, e.g. 2023-W25.")
@click.option("--source", help="Only items from this source.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@with_settings
def items_command(week: str | None, source: str | None, as_json: bool, settings: Settings) -> None:
    """List the item library.

    \b
    Example:
        newsletter items --week 2023-W25
    """
    with Store(settings.store_path) as store:
        rows = list_items(store, week=week, source=source)
    fields = ("id", "title", "url", "summary", "published", "kind", "section", "author", "source")
    records = [
        {k: row[k] for k in fields} | {"image": row["image_url"], "pinned": bool(row["pinned"])}
        for row in rows
    ]
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    if not out.is_terminal:
        for r in records:
            out.print(
                "\t".join(
                    str(r[k] or "") for k in ("id", "published", "kind", "section", "title", "url")
                ),
                markup=False,
            )
        return
    table = Table("id", "published", "kind", "section", "title", "url", box=None)
    for r in records:
        table.add_row(
            *(
                escape(str(r[k] or ""))
                for k in ("id", "published", "kind", "section", "title", "url")
            )
        )
    out.print(table)
    out.print(f"{len(records)} items", markup=False)


@cli.command(name="pin")
@click.argument("item_id")
@click.option("--unpin", is_flag=True, help="Remove the pin.")
@with_settings
def pin_command(item_id: str, unpin: bool, settings: Settings) -> None:
    """Pin an item (see `newsletter items`) so that `draft` takes it first.

    \b
    Example:
        newsletter pin 3f2a9c1b7d0e
    """
    with Store(settings.store_path) as store, store.transaction() as db:
        changed = db.execute(
            "UPDATE items SET pinned = ? WHERE id = ?", (0 if unpin else 1, item_id)
        ).rowcount
    if not changed:
        raise NewsletterError(f"{item_id}: no such item (see `newsletter items`)")
    out.print(f"{item_id} {'unpinned' if unpin else 'pinned'}", markup=False)


@cli.command(name="draft")
@click.option("--week", help="ISO week such as 2023-W25 [default: this week].")
@with_settings
def draft_command(week: str | None, settings: Settings) -> None:
    """Propose issues/<week>.toml from the week's items in the library.

    Never overwrites an issue file: if one exists, the proposal is written beside it
    as <week>.new.toml.

    \b
    Example:
        newsletter draft --week 2023-W25
    """
    draft = draft_issue(settings, week or current_week())
    count = (1 if draft.lead is not None else 0) + sum(len(i) for _, i in draft.sections)
    where = _display(draft.path)
    if draft.beside:
        out.print(
            f"{draft.week}.toml exists and may hold edits: wrote the draft to {where}", markup=False
        )
    else:
        out.print(
            f"Drafted {where}: {count} stories in {len(draft.sections)} sections", markup=False
        )
    for skipped in draft.skipped:
        out.print(f"  left out: {skipped}", markup=False)
    if draft.without_url:
        err.print(
            f"[yellow]{draft.without_url} stories have no URL:[/] add them where the file says "
            "NEEDS A URL before building"
        )


_STYLE = {"error": "red", "warning": "yellow", "info": "blue"}


def _disabled(report: Report) -> None:
    for name, reason in report.disabled.items():
        out.print(f"check {name} is off: {reason}", markup=False)


def _check_counts(report: Report, issue_file: Path) -> None:
    _disabled(report)
    errors, warnings, notes = (report.count(s) for s in ("error", "warning", "info"))
    style = "red" if errors else "yellow" if warnings else "green"
    out.print(
        f"[{style}]checks: {errors} errors, {warnings} warnings, {notes} notes[/]"
        + (f" (details: newsletter check {escape(str(issue_file))})" if errors or warnings else "")
    )


def _print_findings(report: Report, *, minimum: str = "info") -> None:
    levels: tuple[Severity, ...] = ("error", "warning", "info")
    shown = [f for f in report.findings if levels.index(f.severity) <= levels.index(minimum)]
    for finding in shown:
        style = _STYLE[finding.severity]
        out.print(
            f"[{style}]{finding.severity:<7}[/] [bold]{finding.check}[/]  {escape(finding.where)}"
        )
        out.print(f"         {finding.message}", markup=False)
        if finding.value:
            out.print(f"         value: {finding.value!r}", markup=False)
        if finding.fix:
            out.print(f"         fix: {finding.fix}", markup=False)
    _disabled(report)
    errors, warnings, notes = (report.count(s) for s in levels)
    out.print(f"{report.issue}: {errors} errors, {warnings} warnings, {notes} notes", markup=False)


@cli.command(name="check")
@click.argument("issue_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report.")
@click.option("--links", is_flag=True, help="Also request every link (HEAD, then GET) with httpx.")
@with_settings
def check_command(issue_file: Path, as_json: bool, links: bool, settings: Settings) -> None:
    """Run the pre-send checks on ISSUE_FILE: exit 0 clean, 1 warnings, 2 errors.

    Builds the issue in memory and checks size, links, images, the text part, headers
    and compliance, content, markup and CSS, and accessibility (see the README).

    \b
    Examples:
        newsletter check issues/2023-W25.toml
        newsletter check issues/2023-W25.toml --links --json
    """
    try:
        report = check_issue(issue_file, settings, network=links)
    except ConfigError as exc:
        report = Report(issue=str(issue_file), findings=[Finding("config", "error", str(exc))])
    except NewsletterError as exc:
        # An invalid issue file is a finding like any other, in the same format.
        report = Report(issue=str(issue_file), findings=[_file_finding(str(exc))])
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        _print_findings(report)
    raise SystemExit(report.exit_code)


def _file_finding(message: str) -> Finding:
    """``issues/x.toml:13: week: must be …`` -> where ``issues/x.toml:13``, what, how."""
    where, _, what = message.partition(": ")
    if not re.match(r"^.+:\d+$", where):
        where, what = "", message
    return Finding(
        "issue-file", "error", what, where, "",
        "correct it in the issue file; `build` and `send` apply the same rules",
    )  # fmt: skip


def _gate(issue_file: Path, settings: Settings, force: bool) -> None:
    """Refuse to send an issue with check errors, unless forced (which is logged)."""
    try:
        report = gate(issue_file, settings, force=force)
    except ChecksFailed as exc:
        _print_findings(exc.report, minimum="error")
        raise
    _forced(report)


def _forced(report: Report) -> None:
    _disabled(report)
    if report.count("error"):
        err.print(
            f"[yellow]warning:[/] sending despite {report.count('error')} check errors (--force)"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    try:
        cli.main(args=argv, prog_name="newsletter", standalone_mode=False)
    except NewsletterError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
