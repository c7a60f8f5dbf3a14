"""newsletter: curated news items -> weekly issue -> responsive HTML email + plain text -> SMTP.

The public names below are imported on first use, so that ``import newsletter`` (and the
command line's start-up) does not pay for MJML, premailer and lxml until they are needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "Build": "render",
    "LoadedIssue": "render",
    "build_issue": "render",
    "open_issue": "render",
    "issue_from_text": "render",
    "render_issue": "render",
    "ConfigError": "errors",
    "InputError": "errors",
    "NewsletterError": "errors",
    "load_issue": "issuefile",
    "parse_issue": "issuefile",
    "Image": "models",
    "Issue": "models",
    "Item": "models",
    "Section": "models",
    "Settings": "settings",
    "load_settings": "settings",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    # Explicit re-exports (`X as X`), so type checkers see the lazy names.
    from .errors import (
        ConfigError as ConfigError,
        InputError as InputError,
        NewsletterError as NewsletterError,
    )
    from .issuefile import (
        load_issue as load_issue,
        parse_issue as parse_issue,
    )
    from .models import (
        Image as Image,
        Issue as Issue,
        Item as Item,
        Section as Section,
    )
    from .render import (
        Build as Build,
        LoadedIssue as LoadedIssue,
        build_issue as build_issue,
        issue_from_text as issue_from_text,
        open_issue as open_issue,
        render_issue as render_issue,
    )
    from .settings import (
        Settings as Settings,
        load_settings as load_settings,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'newsletter' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
