"""newsletter: curated news items -> weekly issue -> responsive HTML email + plain text -> SMTP."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, InputError, NewsletterError
from .issuefile import load_issue, parse_issue
from .models import Image, Issue, Item, Section
from .render import Build, build_issue, render_issue
from .settings import Settings, load_settings

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
