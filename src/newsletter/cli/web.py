"""`newsletter serve` (the public pages) and `newsletter publish` (the same, as files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .output import display, echo, plural, warning, with_settings

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
    from ..web import create_app

    run_app(create_app(settings), host, port, f"Serving {settings.newsletter.name}")


def run_app(app: Any, host: str, port: int, what: str) -> None:
    """Serve an ASGI app with uvicorn: the public pages, or the studio.

    A port that cannot be had fails in one line, before uvicorn prints its own
    multi-line error.
    """
    import os
    import socket

    import uvicorn

    from ..errors import ConfigError

    try:
        probe = socket.create_server((host, port))
        probe.close()
    except OSError as exc:
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen: {os.strerror(exc.errno or 0)}"
        ) from None
    echo(f"{what} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app, host=host, port=port, log_level="warning",
        # Who the client is comes from [web] trusted_proxies, not from any peer's headers.
        proxy_headers=False, server_header=False, timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
    )  # fmt: skip


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Folder to write [default: <[paths] output_dir>/public].",
)
@with_settings
def publish(out_dir: Path | None, settings: Settings) -> None:
    """Write the public archive as static files, for a plain web server or object storage.

    The archive index.html, <week>/index.html for every issue that went out (drafts
    never), feed.xml, the stylesheet and every local image the issues use. Links inside
    the tree are relative, so it works opened from disk too; subscribe and unsubscribe
    stay absolute links to `newsletter serve`. The tree is built beside the folder and
    swapped in whole; a folder that publish did not make is refused, never replaced.

    \b
    Examples:
        newsletter publish                      # writes out/public/
        newsletter publish --out /var/www/news
    """
    from ..web.publish import publish as publish_archive

    report = publish_archive(settings, out_dir)
    echo(f"Published {plural(report.issues, 'issue')}, {plural(report.images, 'image')} "
         f"to {display(report.out)}")  # fmt: skip
    for week in report.skipped:
        warning(f"{week}: left out: sent before pages were kept, and its issue file is gone")
    if report.missing_images:
        names = ", ".join(report.missing_images[:5])
        more = len(report.missing_images) - 5
        warning(
            f"{plural(len(report.missing_images), 'image')} not in [paths] static_dir "
            f"{display(settings.static_dir)}: {names}" + (f" and {more} more" if more > 0 else "")
        )
