"""newsletter: curated news items -> weekly issue -> responsive HTML email + plain text -> SMTP."""

from __future__ import annotations

__version__ = "0.1.0"

from .build import Build, build_issue, render_issue  # noqa: E402
from .errors import ConfigError, InputError, NewsletterError  # noqa: E402
from .issuefile import load_issue, parse_issue  # noqa: E402
from .models import Image, Issue, Item, Section  # noqa: E402
from .settings import Settings, load_settings  # noqa: E402

__all__ = [
    "Build",
    "ConfigError",
    "Image",
    "InputError",
    "Issue",
    "Item",
    "NewsletterError",
    "Section",
    "Settings",
    "__version__",
    "build_issue",
    "load_issue",
    "load_settings",
    "parse_issue",
    "render_issue",
]
