"""One loaded issue: read and validated once, rendered once, shared by every stage.

`check`, `build`, `send` and `weekly` all take a :class:`LoadedIssue`, so
one command parses the file once and runs Jinja -> MJML -> premailer at most once per
variant (the email and the browser version), however many stages it goes through.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import cached_property
from pathlib import Path

from ..issuefile import ParsedIssue, parse, read_issue_text
from ..models import Issue
from ..settings import Settings
from .message import MessageBuilder, Rendered, message_id, render_with_placeholders
from .theme import Links, Renderer, template_dirs

__all__ = ["LoadedIssue", "issue_from_text", "open_issue"]


class LoadedIssue:
    """An issue file with everything derived from it computed at most once."""

    def __init__(
        self,
        path: Path,
        settings: Settings,
        text: str,
        parsed: ParsedIssue,
        renderer: Renderer | None = None,
    ) -> None:
        self.path, self.settings, self.text = path, settings, text
        if renderer is not None:
            # A long-lived caller (a benchmark, a server) reuses one renderer.
            self.__dict__["renderer"] = renderer
        self.source = str(path)
        self.lines = parsed.lines
        #: Every rule that makes `build` and `send` refuse, with its place; `check`
        #: reports each as an error.
        self.refusals = parsed.refusals
        self._issue = parsed.issue
        self._builders: dict[bool, MessageBuilder] = {}

    @property
    def valid(self) -> bool:
        return not self.refusals

    def require_valid(self) -> LoadedIssue:
        """Raise the first refusal, as `build` and `send` do; else return self."""
        if self.refusals:
            raise self.refusals[0]
        return self

    @property
    def issue(self) -> Issue:
        """The validated issue (lenient when invalid, for the checks)."""
        if self._issue is None:
            raise self.refusals[0]
        return self._issue

    @property
    def week(self) -> str:
        return self.issue.week

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.settings)

    @cached_property
    def rendered(self) -> Rendered:
        """The email, rendered once with per-recipient placeholders."""
        return render_with_placeholders(self.renderer, self.issue, self.settings)

    @cached_property
    def archive_html(self) -> str:
        """The browser version: no greeting, no personal data."""
        links = Links.for_issue(self.settings, self.week)
        return self.renderer.render_html(self.issue, links, archive=True)

    def message_builder(
        self, *, test: bool = False, now: dt.datetime | None = None
    ) -> MessageBuilder:
        """The message builder for this issue (real sends, test copies, the preview).

        One per kind for the command's life (unless ``now`` pins the Date): building one
        encodes the whole message once, and checks, build and send all ask for it.
        """
        if now is not None:
            return MessageBuilder(self.issue, self.settings, self.rendered, test=test, now=now)
        if test not in self._builders:
            self._builders[test] = MessageBuilder(
                self.issue, self.settings, self.rendered, test=test
            )
        return self._builders[test]

    def new_message_id(self) -> str:
        return message_id(self.settings.newsletter.from_address)

    def out_dir(self, output_dir: Path | None = None) -> Path:
        return (output_dir or self.settings.output_dir) / self.week

    def stale(self, output_dir: Path | None = None) -> bool:
        """Whether the built outputs are missing or older than the issue file or a template."""
        built = self.out_dir(output_dir) / "email.html"
        try:
            built_at = built.stat().st_mtime
        except OSError:
            return True
        newest = _mtime(self.path)
        for folder in template_dirs(self.settings):
            for template in folder.rglob("*.j2"):
                newest = max(newest, _mtime(template))
        return built_at < newest


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("inf")  # gone since: treat as changed


def open_issue(
    path: Path | str, settings: Settings, *, renderer: Renderer | None = None
) -> LoadedIssue:
    """Read and validate an issue file once.

    Raises :class:`InputError` only when the file cannot be read or is not TOML; a file
    that breaks the issue rules loads with :attr:`LoadedIssue.refusals` filled, so that
    `check` can name every problem while `build` and `send` refuse the first.
    """
    path = Path(path)
    text = read_issue_text(path)
    return LoadedIssue(path, settings, text, parse(text, str(path), settings), renderer)


def issue_from_text(
    text: str, settings: Settings, source: str = "issue.toml", *, renderer: Renderer | None = None
) -> LoadedIssue:
    """Like :func:`open_issue` for text that is not (yet) a file: an editor's buffer, a test."""
    return LoadedIssue(Path(source), settings, text, parse(text, source, settings), renderer)
