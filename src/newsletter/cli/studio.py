"""`newsletter studio`: the staff's web app, and its accounts and audit log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .output import config_option, warning
from .web import run_app

if TYPE_CHECKING:
    from ..settings import Settings


@click.group(name="studio", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8001, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@config_option
@click.pass_context
def studio_group(ctx: click.Context, host: str, port: int, config_path: Path) -> None:
    """Run the studio: compose, preview, approve, test and send the week's issue.

    Staff sign in with accounts made by `newsletter studio user add`. It serves none of
    the public pages (that is `newsletter serve`): run both, behind one https proxy.

    \b
    Examples:
        newsletter studio user add ada --role admin
        newsletter studio --port 8001
        newsletter studio audit
    """
    if ctx.invoked_subcommand is None:
        from ..settings import load_settings

        run_studio(host, port, load_settings(config_path))
    else:
        # `newsletter studio --config X user list` means X for the subcommand too.
        ctx.default_map = _config_defaults(studio_group, config_path)


def _config_defaults(group: click.Group, config_path: Path) -> dict[str, object]:
    defaults: dict[str, object] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            defaults[name] = _config_defaults(command, config_path)
        else:
            defaults[name] = {"config_path": config_path}
    return defaults


def run_studio(host: str, port: int, settings: Settings) -> None:
    from ..errors import ConfigError
    from ..store import Store
    from ..studio import accounts
    from ..studio.app import create_app
    from ..studio.base import is_loopback

    if settings.studio.auth == "none":
        if not is_loopback(host):
            raise ConfigError(
                f'[studio] auth = "none" is for one person on this computer: --host {host} '
                'is not a loopback address; use --host 127.0.0.1, or set auth = "accounts"'
            )
        warning('[studio] auth = "none": no sign-in; anyone on this computer is an admin')
    else:
        with Store(settings.store_path) as store:
            if not accounts.list_users(store):
                warning("no staff accounts yet: add one with `newsletter studio user add NAME "
                        "--role admin`")  # fmt: skip
    app = create_app(settings)
    try:
        run_app(app, host, port, f"Studio for {settings.newsletter.name}")
    finally:
        # A second Ctrl-C makes uvicorn skip the app's shutdown: stop a send here too.
        app.state.studio.jobs.shutdown()


def _register() -> None:
    from .studio_admin import audit_command, user_group

    studio_group.add_command(user_group)
    studio_group.add_command(audit_command)


_register()
