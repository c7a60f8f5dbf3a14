"""The public URLs every message carries, each built in one place.

The email, the build's preview and the checks all use these, so every link written into a
message is spelt one way.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

__all__ = [
    "base_path",
    "browser_url",
    "confirm_url",
    "feed_url",
    "home_url",
    "localise_images",
    "relative_prefix",
    "resubscribe_url",
    "static_file",
    "stylesheet_url",
    "subscribe_url",
    "unsubscribe_url",
]


def home_url(base_url: str) -> str:
    """The newsletter's home: the archive of sent issues."""
    return base_url


def browser_url(base_url: str, week: str) -> str:
    """ "View this email in your browser": the issue's public page."""
    return f"{base_url}{week}/"


def unsubscribe_url(base_url: str, token: str | None = None) -> str:
    """A subscriber's one-click unsubscribe link; without a token, the generic page."""
    return f"{base_url}unsubscribe" + (f"?token={token}" if token else "")


def feed_url(base_url: str) -> str:
    """The Atom feed of sent issues."""
    return f"{base_url}feed.xml"


def subscribe_url(base_url: str) -> str:
    """The subscribe form."""
    return f"{base_url}subscribe"


def confirm_url(base_url: str, token: str) -> str:
    """The link in a confirmation mail that completes a subscription."""
    return f"{base_url}confirm?token={quote(token, safe='.')}"


def resubscribe_url(base_url: str, token: str) -> str:
    """The short-lived "resubscribe" link shown right after unsubscribing."""
    return f"{base_url}resubscribe?token={quote(token, safe='.')}"


def stylesheet_url(base_url: str) -> str:
    """The public pages' stylesheet (under ``_/``, out of the way of static files)."""
    return f"{base_url}_/newsletter.css"


def base_path(base_url: str) -> str:
    """The path every public route sits under: ``https://x.org/weekly/`` -> ``/weekly/``."""
    return urlsplit(base_url).path or "/"


def localise_images(page: str, base_url: str, prefix: str) -> str:
    """Point the page's images under ``base_url`` at ``prefix`` instead.

    The email keeps absolute URLs (it is read anywhere); a page served or published beside
    its images uses relative ones, so that it shows them wherever it is opened, from
    disk too. Only ``src`` attributes change: links stay as they were sent.
    """
    start = 'src="' + html.escape(base_url, quote=True)
    return page.replace(start, 'src="' + prefix)


def relative_prefix(folder: Path, target: Path) -> str:
    """A relative URL from a page in ``folder`` to the folder ``target``, ending in ``/``:
    ``out/2023-W25`` -> ``static`` is ``../../static/``. A file URL when there is no
    relative way (another drive)."""
    try:
        relative = os.path.relpath(target.resolve(), folder.resolve())
    except ValueError:
        return target.resolve().as_uri() + "/"
    return quote(Path(relative).as_posix()) + "/"


def static_file(base_url: str, static_dir: Path, url: str) -> Path | None:
    """The file under ``static_dir`` that serves ``url`` (relative to ``base_url``, or an
    absolute URL under it); None when the URL is hosted elsewhere. The path is resolved
    and may lie outside ``static_dir`` (``../``): callers refuse that."""
    absolute = urljoin(base_url, url)
    if not absolute.startswith(base_url):
        return None
    relative = unquote(urlsplit(absolute[len(base_url) :]).path)
    return (static_dir.resolve() / relative).resolve()
