"""What every command shares: loading the settings, paths, messages, and printing rows.

Rows print as a table on a terminal, as tab-separated whole values when piped (for grep
and cut), or as JSON; all three stream, so memory stays flat for any list size.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..checks import Report
    from ..settings import Severity

F = TypeVar("F", bound=Callable[..., Any])

#: The config file commands read unless --config says otherwise.
DEFAULT_CONFIG = Path("config.toml")
#: A terminal table longer than this is cut; `export` or a pipe gives every row.
TABLE_LIMIT = 1000


def echo(message: str, *, err: bool = False, fg: str | None = None) -> None:
    """One line; colour only on a terminal (click strips it when piped)."""
    click.echo(click.style(message, fg=fg) if fg else message, err=err)


def error(message: str) -> None:
    click.echo(click.style("error:", fg="red") + " " + message, err=True)


def warning(message: str) -> None:
    click.echo(click.style("warning:", fg="yellow") + " " + message, err=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def human(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


#: ``--config PATH``, as ``config_path``: every command's, and the studio group's.
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Configuration file.",
)


def with_settings(command: F) -> F:
    """Add ``--config PATH`` and pass the loaded settings as ``settings``."""

    @config_option
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path, **kwargs: Any) -> Any:
        from ..settings import load_settings

        return command(*args, settings=load_settings(config_path), **kwargs)

    return wrapper  # type: ignore[return-value]


def print_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool = False,
    noun: str = "row",
    more: str = "",
) -> int:
    """Print ``rows`` as JSON, TSV when piped, or a table on a terminal; return the count.

    ``more`` names the command that gives every row when a terminal table is cut.
    """
    if as_json:
        return _json_rows(rows)
    if not is_terminal():
        count = 0
        for count, row in enumerate(rows, start=1):  # noqa: B007
            click.echo("\t".join(_cell(row.get(k)) for k in columns))
        return count
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(*columns, box=None)
    count = 0
    for count, row in enumerate(rows, start=1):
        if count <= TABLE_LIMIT:
            table.add_row(*(escape(_cell(row.get(k))) for k in columns))
    Console(highlight=False, soft_wrap=True).print(table)
    echo(plural(count, noun))
    if count > TABLE_LIMIT:
        echo(f"showing the first {TABLE_LIMIT:,}; {more or 'pipe the output'} gives all {count:,}")
    return count


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _json_rows(rows: Iterable[Mapping[str, Any]]) -> int:
    """A JSON list written one object at a time, never held whole in memory."""
    out = sys.stdout
    count = 0
    out.write("[")
    for count, row in enumerate(rows, start=1):
        out.write(("\n  " if count == 1 else ",\n  ") + json.dumps(row, ensure_ascii=False))
    out.write("\n]\n" if count else "]\n")
    out.flush()
    return count


# -- check reports, shared by check, build, send and weekly ---------------------------

_STYLE = {"error": "red", "warning": "yellow", "info": "blue"}


def print_disabled(report: Report) -> None:
    for name, reason in report.disabled.items():
        echo(f"check {name} is off: {reason}")


def print_check_counts(report: Report, issue_file: Path) -> None:
    print_disabled(report)
    errors, warnings, notes = (report.count(s) for s in ("error", "warning", "info"))
    colour = "red" if errors else "yellow" if warnings else "green"
    details = f" (details: newsletter check {issue_file})" if errors or warnings else ""
    counts = f"{plural(errors, 'error')}, {plural(warnings, 'warning')}, {plural(notes, 'note')}"
    echo(f"checks: {counts}{details}", fg=colour)


def print_findings(report: Report, *, minimum: Severity = "info") -> None:
    levels: tuple[Severity, ...] = ("error", "warning", "info")
    for finding in report.findings:
        if levels.index(finding.severity) > levels.index(minimum):
            continue
        label = click.style(f"{finding.severity:<7}", fg=_STYLE[finding.severity])
        click.echo(f"{label} {click.style(finding.check, bold=True)}  {finding.where}")
        click.echo(f"         {finding.message}")
        if finding.value:
            click.echo(f"         value: {finding.value!r}")
        if finding.fix:
            click.echo(f"         fix: {finding.fix}")
    print_disabled(report)
    errors, warnings, notes = (report.count(s) for s in levels)
    counts = f"{plural(errors, 'error')}, {plural(warnings, 'warning')}, {plural(notes, 'note')}"
    echo(f"{report.issue}: {counts}")


def print_forced(report: Report) -> None:
    """Before a send (and its question): the warnings every send repeats, such as an
    unsigned relay send; which checks are off; and that errors were overridden."""
    for finding in report.announced():
        if finding.severity != "info":
            warning(f"{finding.check}: {finding.message}; fix: {finding.fix}")
    print_disabled(report)
    if report.count("error"):
        warning(f"sending despite {report.count('error')} check errors (--force)")
