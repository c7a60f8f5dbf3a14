"""The public URLs every message carries, each built in one place.

The email, the build's preview and the checks all use these, so every link written into a
message is spelt one way.
"""

from __future__ import annotations

__all__ = ["browser_url", "home_url", "unsubscribe_url"]


def home_url(base_url: str) -> str:
    """The newsletter's home: the archive of sent issues."""
    return base_url


def browser_url(base_url: str, week: str) -> str:
    """ "View this email in your browser": the issue's public page."""
    return f"{base_url}{week}/"


def unsubscribe_url(base_url: str, token: str | None = None) -> str:
    """A subscriber's one-click unsubscribe link; without a token, the generic page."""
    return f"{base_url}unsubscribe" + (f"?token={token}" if token else "")
