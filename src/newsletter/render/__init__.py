"""Build stage: issue file -> ``out/<week>/`` (email.html, email.txt, email.eml, archive.html)."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_atomic
from ..issuefile import load_issue
from ..models import Issue
from ..settings import Settings
from .mime import compose, message_id
from .theme import Links, Renderer

__all__ = ["GMAIL_CLIP_BYTES", "Build", "Renderer", "build_issue", "render_issue", "write_atomic"]

#: Gmail hides everything after about 102 KB of HTML behind "[Message clipped]".
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass
class Build:
    """A rendered issue, before or after it is written."""

    issue: Issue
    html: str
    text: str
    archive_html: str
    eml: bytes
    #: Seconds spent per stage, for ``bench/build.py`` and ``--verbose``.
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def clipped(self) -> bool:
        return len(self.html.encode()) > GMAIL_CLIP_BYTES

    def outputs(self) -> dict[str, bytes]:
        return {
            "email.html": self.html.encode(),
            "email.txt": self.text.encode(),
            "email.eml": self.eml,
            "archive.html": self.archive_html.encode(),
        }


def _now() -> dt.datetime:
    # SOURCE_DATE_EPOCH pins the Date header for reproducible builds.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return dt.datetime.now(dt.UTC)


def render_issue(
    issue: Issue,
    settings: Settings,
    renderer: Renderer | None = None,
    *,
    now: dt.datetime | None = None,
    msgid: str | None = None,
) -> Build:
    """Render every output in memory; nothing touches the disk."""
    renderer = renderer or Renderer(settings)
    links = Links.for_issue(settings, issue)
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], str]) -> str:
        start = time.perf_counter()
        result = fn()
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
        return result

    source = timed("jinja", lambda: renderer.render_mjml(issue, links))
    compiled = timed("mjml", lambda: renderer.compile_mjml(source))
    html = timed("premailer", lambda: renderer.inline_css(compiled))
    text = timed("text", lambda: renderer.render_text(issue, links))
    archive_source = timed("jinja", lambda: renderer.render_mjml(issue, links, archive=True))
    archive_compiled = timed("mjml", lambda: renderer.compile_mjml(archive_source))
    archive = timed("premailer", lambda: renderer.inline_css(archive_compiled))
    start = time.perf_counter()
    message = compose(
        issue,
        settings.newsletter,
        text,
        html,
        date=now or _now(),
        msgid=msgid or message_id(settings.newsletter),
    )
    eml = message.as_bytes()
    timings["mime"] = time.perf_counter() - start
    return Build(issue=issue, html=html, text=text, archive_html=archive, eml=eml, timings=timings)


def build_issue(
    issue_path: Path | str,
    settings: Settings,
    out_dir: Path | None = None,
    *,
    renderer: Renderer | None = None,
    now: dt.datetime | None = None,
    msgid: str | None = None,
) -> Build:
    """Load, render and write one issue to ``<out_dir>/<week>/``.

    Everything is rendered before the first byte is written, so a bad issue or
    template leaves the previous outputs untouched.
    """
    issue = load_issue(issue_path, settings)
    build = render_issue(issue, settings, renderer, now=now, msgid=msgid)
    target = (out_dir or settings.output_dir) / issue.week
    start = time.perf_counter()
    files = {target / name: data for name, data in build.outputs().items()}
    write_atomic(files)
    build.files = {path.name: path for path in files}
    build.timings["write"] = time.perf_counter() - start
    return build
