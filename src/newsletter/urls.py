"""The public URLs every message carries, each built in one place.

The email, the build's preview and the checks all use these, so every link written into a
message is spelt one way.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

__all__ = [
    "base_path",
    "browser_url",
    "confirm_url",
    "feed_url",
    "home_url",
    "resubscribe_url",
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


def base_path(base_url: str) -> str:
    """The path every public route sits under: ``https://x.org/weekly/`` -> ``/weekly/``."""
    return urlsplit(base_url).path or "/"
