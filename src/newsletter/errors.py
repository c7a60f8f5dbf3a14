"""Errors a user can cause, and how they are reported: one line, what and where."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = [
    "ConfigError",
    "InputError",
    "NewsletterError",
    "describe_validation_error",
    "located_errors",
]


class NewsletterError(Exception):
    """A problem the user can fix. The CLI prints ``str(error)`` and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(NewsletterError):
    """The configuration file or environment is wrong."""

    exit_code = 2


class InputError(NewsletterError):
    """An input file (an issue file, a template) is wrong.

    ``what`` says the problem and ``where`` the place (``file:line: story, field``), so
    that `check` can report it as a located finding without re-parsing the message.
    """

    exit_code = 2

    def __init__(self, what: str, where: str = "") -> None:
        self.what, self.where = what, where
        super().__init__(f"{where}: {what}" if where else what)


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


def located_errors(
    exc: ValidationError, where: Callable[[Sequence[int | str]], str]
) -> list[InputError]:
    """Every problem of a pydantic error, each as an :class:`InputError` with its place.

    ``where`` maps an error location (``("sections", 0, "items", 2, "url")``) to a
    human description such as ``issues/2023-W25.toml:41: section "News", item 3, url``.
    """
    # A misspelt key usually explains the "missing" error beside it, so it goes first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return [InputError(_message(error), where(error["loc"])) for error in errors]


def describe_validation_error(
    exc: ValidationError,
    where: Callable[[Sequence[int | str]], str],
    limit: int = 1,
) -> list[str]:
    """Turn a pydantic error into lines like ``<where>: <field> <problem>``."""
    errors = located_errors(exc, where)
    return [str(error) for error in (errors[:limit] if limit else errors)]
