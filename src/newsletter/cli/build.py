"""`newsletter check` and `newsletter build`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .output import (
    display,
    echo,
    human,
    print_check_counts,
    print_findings,
    warning,
    with_settings,
)

if TYPE_CHECKING:
    from ..settings import Settings


@click.command()
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
    from ..checks import check_issue
    from ..render import GMAIL_CLIP_BYTES, build_issue, open_issue

    loaded = open_issue(issue_file, settings)
    result = build_issue(loaded, out_dir)
    total_ms = sum(result.timings.values()) * 1000
    stories = len(result.issue.items())
    echo(f"Built {result.issue.week} ({stories} {'story' if stories == 1 else 'stories'}) "
         f"in {total_ms:.0f} ms")  # fmt: skip
    for path in result.files.values():
        echo(f"  {display(path)}  {human(path.stat().st_size)}")
    print_check_counts(check_issue(loaded, build=result), issue_file)
    if result.clipped:
        warning(
            f"email.html is {human(len(result.html.encode()))}, over Gmail's "
            f"{human(GMAIL_CLIP_BYTES)} limit: Gmail will clip it. "
            "Cut stories or shorten summaries."
        )


@click.command(name="check")
@click.argument("issue_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report.")
@click.option("--links", is_flag=True, help="Also request every link (HEAD, then GET) with httpx.")
@with_settings
def check_command(issue_file: Path, as_json: bool, links: bool, settings: Settings) -> None:
    """Run the pre-send checks on ISSUE_FILE: exit 0 clean, 1 warnings, 2 errors.

    Builds the issue in memory and checks size, links, images, the text part, headers
    and compliance, content, markup and CSS, and accessibility (see the README). Every
    rule that makes `build` or `send` refuse the file is an error here too.

    \b
    Examples:
        newsletter check issues/2023-W25.toml
        newsletter check issues/2023-W25.toml --links --json
    """
    from ..checks import Finding, Report, check_issue, refusal_finding
    from ..errors import ConfigError, InputError
    from ..render import open_issue

    try:
        report = check_issue(open_issue(issue_file, settings), network=links)
    except ConfigError as exc:
        report = Report(issue=str(issue_file), findings=[Finding("config", "error", str(exc))])
    except InputError as exc:
        # An unreadable issue file is a finding like any other, in the same format.
        report = Report(issue=str(issue_file), findings=[refusal_finding(exc)])
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print_findings(report)
    raise SystemExit(report.exit_code)
