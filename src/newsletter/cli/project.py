"""`newsletter init`: start a project anywhere, without the repository."""

from __future__ import annotations

from pathlib import Path

import click

from .output import display, echo


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), default=Path("."))
def init(directory: Path) -> None:
    """Start a newsletter project in DIRECTORY (default: here).

    Writes a commented config.toml, a git-ignored secrets.toml with a fresh secret,
    an example week in issues/, static/images/, templates/ (for overriding the
    built-in theme), an example subscriber CSV and a .gitignore. Never overwrites a
    file: if any exists, nothing is written.

    \b
    Example:
        newsletter init my-newsletter && cd my-newsletter
        newsletter build issues/2023-W25.toml
    """
    from ..scaffold import init_project

    written = init_project(directory)
    echo(f"Started a newsletter project in {display(directory)}:")
    for path in written:
        echo(f"  {display(path)}")
    echo(f"Next: cd {display(directory)} && newsletter build issues/2023-W25.toml")
