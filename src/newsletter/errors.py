"""Errors a user can cause, and how they are reported: one line, what and where."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = ["ConfigError", "InputError", "NewsletterError", "describe_validation_error"]


class NewsletterError(Exception):
    """A problem the user can fix. The CLI prints ``str(error)`` and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(NewsletterError):
    """The configuration file or environment is wrong."""

    exit_code = 2


class InputError(NewsletterError):
    """An input file (an issue file, a template) is wrong."""

    exit_code = 2


def _message(error: Any) -> str:
    msg = str(error["msg"])
    # pydantic prefixes messages raised from our validators; the prefix means nothing to a reader.
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if error["type"] == "missing":
        return "is missing"
    if error["type"] == "extra_forbidden":
        return "is not a known key (check its spelling)"
    return msg


def describe_validation_error(
    exc: ValidationError,
    where: Callable[[Sequence[int | str]], str],
    limit: int = 1,
) -> list[str]:
    """Turn a pydantic error into lines like ``<where>: <field> <problem>``.

    ``where`` maps an error location (``("sections", 0, "items", 2, "url")``) to a
    human description such as ``issues/2023-W25.toml:41: section "News", item 3, url``.
    """
    # A misspelt key usually explains the "missing" error beside it, so it goes first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    lines = []
    for error in errors[:limit] if limit else errors:
        lines.append(f"{where(error['loc'])}: {_message(error)}")
    return lines
