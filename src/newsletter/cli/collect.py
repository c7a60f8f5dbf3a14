"""`newsletter collect`, `import`, `items`, `pin` and `draft`: sources -> library -> draft."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .output import display, echo, is_terminal, print_rows, with_settings

if TYPE_CHECKING:
    from ..collect import SourceReport
    from ..settings import Settings


def _source_line(result: SourceReport) -> None:
    if result.error:
        echo(click.style(f"{result.source}: failed:", fg="red") + f" {result.error}", err=True)
        return
    if result.not_modified:
        echo(f"{result.source}: not modified since the last collect")
        return
    echo(
        f"{result.source}: {result.new} new, {result.updated} updated, {result.unchanged} unchanged"
    )
    for problem in result.problems:
        echo(f"  {result.source}: {problem}", err=True)


@click.command(name="collect")
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
    from ..collect import collect
    from ..errors import ConfigError

    if not settings.sources:
        raise ConfigError("no [[sources]] in the config; see the README, or use `import`")
    report = collect(settings, only, on_source=_source_line)
    raise SystemExit(1 if report.failed else 0)


@click.command(name="import")
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
    from ..collect import collect_source, source_for
    from ..store import Store

    source = source_for(location, kind, name, selectors)
    with Store(settings.store_path) as store:
        result = collect_source(source, settings, store, conditional=False)
    _source_line(result)
    raise SystemExit(1 if result.error else 0)


# dated_by comes last when piped, so that `cut -f` positions from before it still hold; on a
# terminal it sits under the date instead, as a column of its own would squeeze the titles.
ITEM_COLUMNS = ("id", "published", "kind", "section", "title", "url", "dated_by")
TABLE_COLUMNS = ITEM_COLUMNS[:-1]
#: An undated item counts in the week it was first collected (library.DAY).
FIRST_SEEN = "first seen"


def _on_table(row: dict[str, Any]) -> dict[str, Any]:
    day = f"{row['published']}\n" if row["published"] else ""
    return row | {"published": day + row["dated_by"]}


@click.command(name="items")
@click.option("--week", help="Only items published in this ISO week, e.g. 2023-W25.")
@click.option("--source", help="Only items from this source.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@with_settings
def items_command(week: str | None, source: str | None, as_json: bool, settings: Settings) -> None:
    """List the item library: a table on a terminal, tab-separated when piped, or JSON.

    Under each date (and as dated_by when piped or in JSON) is the rule that dated the
    item: its "date line", the "page date" or a "text date" (copied text), the "feed
    date", the "date selector" (pages), or "first seen" when nothing did.

    \b
    Example:
        newsletter items --week 2023-W25
    """
    from .. import library
    from ..models import week_range
    from ..store import Store

    if week:
        week_range(week)  # refused in one line before the store is opened
    fields = ("id", "title", "url", "summary", "published", "kind", "section", "author", "source")
    with Store(settings.store_path) as store:
        rows = (
            {k: row[k] for k in fields}
            | {"dated_by": row["dated_by"] if row["published"] else FIRST_SEEN}
            | {"image": row["image_url"], "pinned": bool(row["pinned"])}
            for row in library.list_items(store, week=week, source=source)
        )
        if not as_json and is_terminal():
            print_rows(map(_on_table, rows), TABLE_COLUMNS, noun="item", more="--json")
        else:
            print_rows(rows, ITEM_COLUMNS, as_json=as_json, noun="item", more="--json")


@click.command(name="pin")
@click.argument("item_id")
@click.option("--unpin", is_flag=True, help="Remove the pin.")
@with_settings
def pin_command(item_id: str, unpin: bool, settings: Settings) -> None:
    """Pin an item (see `newsletter items`) so that `draft` takes it first.

    \b
    Example:
        newsletter pin 3f2a9c1b7d0e
    """
    from .. import library
    from ..errors import InputError
    from ..store import Store

    with Store(settings.store_path) as store:
        if not library.pin(store, item_id, pinned=not unpin):
            raise InputError("no such item (see `newsletter items`)", item_id)
    echo(f"{item_id} {'unpinned' if unpin else 'pinned'}")


@click.command(name="draft")
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
    import datetime as dt

    from ..audit import record_cli
    from ..draft import draft_issue
    from ..models import iso_week, week_range

    if week:
        week_range(week)  # refused in one line before the store is opened
    draft = draft_issue(settings, week or iso_week(dt.date.today()))
    record_cli(settings.store_path, "draft", f"{draft.week}: {draft.path.name}")
    count = (1 if draft.lead is not None else 0) + sum(len(i) for _, i in draft.sections)
    where = display(draft.path)
    if draft.beside:
        echo(f"{draft.week}.toml exists and may hold edits: wrote the draft to {where}")
    else:
        echo(f"Drafted {where}: {count} stories in {len(draft.sections)} sections")
    for skipped in draft.skipped:
        echo(f"  left out: {skipped}")
    if draft.without_url:
        echo(
            f"{draft.without_url} stories have no URL: add them where the file says "
            "NEEDS A URL before building",
            err=True,
            fg="yellow",
        )
