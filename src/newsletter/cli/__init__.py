"""Command line: a thin layer over the library, one module per command group.

Each command module imports only click at the top and its stage inside the command, and
the group below imports a command's module only when that command runs (or when help
lists it), so `newsletter --help` never loads MJML, premailer, lxml or httpx.
"""

from __future__ import annotations

import sys
from importlib import import_module

import click

from .. import __version__
from ..errors import NewsletterError
from .output import error

__all__ = ["cli", "main"]

#: Command name -> "module:attribute" under newsletter.cli, in the order help lists them.
COMMANDS = {
    "init": "project:init",
    "collect": "collect:collect_command",
    "import": "collect:import_command",
    "items": "collect:items_command",
    "pin": "collect:pin_command",
    "draft": "collect:draft_command",
    "check": "build:check_command",
    "build": "build:build",
    "send": "send:send",
    "weekly": "send:weekly",
    "serve": "web:serve",
    "publish": "web:publish",
    "studio": "studio:studio_group",
    "doctor": "doctor:doctor",
    "subscribers": "subscribers:subscribers_group",
    "unsubscribe": "subscribers:unsubscribe",
    "dkim": "dkim:dkim_group",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used, like MkDocs' ``commands/``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(import_module(f"{__name__}.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="newsletter")
def cli() -> None:
    """Build and send an organisation's weekly email newsletter.

    \b
    Pipeline: collect -> draft -> build -> send.
    Start a project with `newsletter init`.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    try:
        cli.main(args=argv, prog_name="newsletter", standalone_mode=False)
    except NewsletterError as exc:
        error(str(exc))
        return exc.exit_code
    except click.UsageError as exc:
        # One line, like every other mistake: the usage block would bury it.
        command = exc.ctx.command_path if exc.ctx else "newsletter"
        message = " ".join(exc.format_message().split())  # click lists choices on lines
        error(f"{message} (see `{command} --help`)")
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
