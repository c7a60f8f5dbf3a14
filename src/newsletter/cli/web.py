"""`newsletter serve` (the public pages) and `newsletter publish` (the same, as files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .output import echo, with_settings

if TYPE_CHECKING:
    from ..settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@with_settings
def serve(host: str, port: int, settings: Settings) -> None:
    """Serve the public pages: unsubscribe, subscribe, the archive, the feed, images.

    Routes sit under the path of [newsletter] base_url, so every link in the messages
    resolves here. Put it behind an https reverse proxy for real use (see README).

    \b
    Example:
        newsletter serve --port 8000
    """
    import socket

    import uvicorn

    from ..errors import ConfigError
    from ..web import create_app

    app = create_app(settings)
    try:
        # Fail with one line, before uvicorn prints its own multi-line error.
        probe = socket.create_server((host, port))
        probe.close()
    except OSError as exc:
        raise ConfigError(f"--host {host} --port {port}: cannot listen: {exc.strerror}") from None
    echo(f"Serving {settings.newsletter.name} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app, host=host, port=port, log_level="warning",
        # Who the client is comes from [web] trusted_proxies, not from any peer's headers.
        proxy_headers=False, server_header=False, timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
    )  # fmt: skip
