"""`newsletter subscribers ...` and `newsletter unsubscribe`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .output import echo, print_rows, with_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ..settings import Settings

F = TypeVar("F", bound="Callable[..., Any]")

#: Kept in step with newsletter.subscribers.STATUSES (a test checks), so that --help
#: need not import the subscribers module.
STATUSES = ("active", "unsubscribed", "bounced", "complained")
COLUMNS = ("email", "name", "status", "created", "source")


@click.command()
@click.argument("token_or_email")
@with_settings
def unsubscribe(token_or_email: str, settings: Settings) -> None:
    """Unsubscribe by the token of an unsubscribe link, or by address.

    \b
    Examples:
        newsletter unsubscribe ada@example.org
        newsletter unsubscribe 'Q2x0...Zz.k3J...'
    """
    from .. import audit, subscribers
    from ..store import Store

    with Store(settings.store_path) as store:
        if "@" in token_or_email:
            found = subscribers.unsubscribe_address(store, token_or_email)
        else:
            secrets = settings.security.all_secrets()
            found = subscribers.unsubscribe_by_token(store, secrets, token_or_email)
        audit.record(store, audit.cli_actor(), "unsubscribe", found.email)
    echo(f"{found.email} is {found.status}")


@click.group(name="subscribers")
def subscribers_group() -> None:
    """Manage the subscriber list (import, add, remove, list, export)."""


@subscribers_group.command(name="import")
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--source", help="Recorded as each new subscriber's source [default: import:FILE].")
@with_settings
def subscribers_import(csv_file: Path, source: str | None, settings: Settings) -> None:
    """Import a CSV with an `email` column (and optionally `name`).

    Invalid and duplicate rows are reported with their line numbers (the first 1,000;
    the rest are counted) and skipped. A file that cannot be read as CSV imports
    nothing; otherwise the rows are added in short transactions once the whole file has
    been read. Unsubscribed, bounced and complained addresses are never resubscribed.
    Exit code 1 when some rows were invalid.

    \b
    Example:
        newsletter subscribers import examples/subscribers.csv
    """
    from .. import audit, subscribers
    from ..store import Store

    with Store(settings.store_path) as store:
        report = subscribers.import_csv(store, csv_file, source)
        if report.imported:  # an import that added nobody leaves the store as it was
            what = f"{csv_file.name}: {report.imported} imported, {report.skipped} skipped"
            audit.record(store, audit.cli_actor(), "import", what)
    for problem in report.problems:
        echo(problem, err=True)
    if report.unlisted:
        echo(f"... and {report.unlisted} more skipped rows", err=True)
    echo(
        f"Imported {report.imported}, already subscribed {report.already}, skipped {report.skipped}"
    )
    raise SystemExit(1 if report.invalid else 0)


@subscribers_group.command(name="add")
@click.argument("email")
@click.option("--name", default="", help="Full name, used in the To header.")
@click.option("--first-name", default="", help="For the greeting: Hello {first_name},")
@with_settings
def subscribers_add(email: str, name: str, first_name: str, settings: Settings) -> None:
    """Add one subscriber.

    \b
    Example:
        newsletter subscribers add ada@example.org --name "Ada Lovelace" --first-name Ada
    """
    from .. import audit, subscribers
    from ..store import Store

    with Store(settings.store_path) as store:
        added = subscribers.add(store, email, name, first_name=first_name)
        audit.record(store, audit.cli_actor(), "add-subscriber", added.email)
    echo(f"Added {added.email}")


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
    from .. import audit, ledger, subscribers
    from ..errors import InputError
    from ..store import Store

    with Store(settings.store_path) as store:
        if forget:
            try:
                existed = ledger.forget(store, email)
            except ValueError as exc:
                raise InputError(str(exc), email) from None
            if not existed:
                raise InputError("no such subscriber", email)
            audit.record(store, audit.cli_actor(), "forget", email)
            echo(f"Forgot {email}")
            return
        found = subscribers.unsubscribe_address(store, email)
        audit.record(store, audit.cli_actor(), "unsubscribe", found.email)
    echo(f"{found.email} is {found.status}")


def _status_option(command: F) -> F:
    return click.option("--status", type=click.Choice(STATUSES), help="Only this status.")(command)


def _public_rows(
    settings: Settings, status: str | None, columns: tuple[str, ...] = COLUMNS
) -> Iterator[dict[str, Any]]:
    from .. import subscribers
    from ..store import Store

    with Store(settings.store_path) as store:
        # The columns of Subscriber.public(), without dataclasses.asdict's deep copies:
        # they were two thirds of the time of listing 200,000 subscribers.
        for subscriber in subscribers.iter_subscribers(store, status):
            yield {column: getattr(subscriber, column) for column in columns}


@subscribers_group.command(name="list")
@_status_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@with_settings
def subscribers_list(status: str | None, as_json: bool, settings: Settings) -> None:
    """List subscribers: a table on a terminal, tab-separated when piped, or JSON.

    A terminal table shows the first 1,000; pipe it or use `export` for every row.

    \b
    Example:
        newsletter subscribers list --status active --json
    """
    print_rows(
        _public_rows(settings, status), COLUMNS, as_json=as_json, noun="subscriber",
        more="`newsletter subscribers export`",
    )  # fmt: skip


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
    # The consent record (when and from where a subscriber confirmed) and the first name
    # too, which `import` reads back.
    from ..subscribers import EXPORT_COLUMNS

    rows = _public_rows(settings, status, EXPORT_COLUMNS)
    if as_json:
        print_rows(rows, EXPORT_COLUMNS, as_json=True)
        return
    writer = csv.writer(sys.stdout)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows([row[column] for column in EXPORT_COLUMNS] for row in rows)
