"""Command line: each command parses its options and calls one library function."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from . import __version__
from .build import GMAIL_CLIP_BYTES, build_issue
from .errors import NewsletterError
from .settings import DEFAULT_CONFIG, Settings, load_settings

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
    if result.clipped:
        err.print(
            f"[yellow]warning:[/] email.html is {_human(len(result.html.encode()))}, over Gmail's "
            f"{_human(GMAIL_CLIP_BYTES)} limit: Gmail will clip it. "
            "Cut stories or shorten summaries."
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
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
