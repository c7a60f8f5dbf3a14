"""Build stage: loaded issue -> ``out/<week>/`` (email.html, email.txt, email.eml, archive.html)."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_atomic
from ..models import Issue
from ..pause import checkpoint
from ..urls import localise_images, relative_prefix
from .loaded import LoadedIssue, issue_from_text, open_issue
from .theme import Renderer

__all__ = [
    "GMAIL_CLIP_BYTES",
    "Build",
    "LoadedIssue",
    "Renderer",
    "build_issue",
    "issue_from_text",
    "open_issue",
    "render_issue",
]

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


def _pinned_now() -> dt.datetime | None:
    # SOURCE_DATE_EPOCH pins the Date header for reproducible builds.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return None


def render_issue(
    loaded: LoadedIssue, *, now: dt.datetime | None = None, msgid: str | None = None
) -> Build:
    """Every output in memory, from the loaded issue's one render; nothing touches the disk.

    An invalid issue renders as far as its lenient reading goes, for the checks;
    :func:`build_issue` refuses it.
    """
    renderer = loaded.renderer
    before = dict(renderer.timings)
    builder = loaded.message_builder(now=now or _pinned_now())
    html, text = builder.preview()
    archive = loaded.archive_html
    start = time.perf_counter()
    eml = builder.preview_message(msgid or loaded.new_message_id())
    timings = {k: v - before.get(k, 0.0) for k, v in renderer.timings.items()}
    timings["mime"] = time.perf_counter() - start
    return Build(
        issue=loaded.issue, html=html, text=text, archive_html=archive, eml=eml, timings=timings
    )


def build_issue(
    loaded: LoadedIssue,
    out_dir: Path | None = None,
    *,
    now: dt.datetime | None = None,
    msgid: str | None = None,
) -> Build:
    """Render and write one issue to ``<out_dir>/<week>/``.

    Everything is rendered before the first byte is written, so a bad issue or
    template leaves the previous outputs untouched. The written archive.html, a preview
    opened from disk, finds its images in ``[paths] static_dir`` through a relative path;
    the email keeps absolute URLs.
    """
    build = render_issue(loaded.require_valid(), now=now, msgid=msgid)
    target = loaded.out_dir(out_dir)
    start = time.perf_counter()
    files = {target / name: data for name, data in build.outputs().items()}
    settings = loaded.settings
    local = relative_prefix(target, settings.static_dir)
    preview = localise_images(build.archive_html, settings.newsletter.base_url, local)
    files[target / "archive.html"] = preview.encode()
    checkpoint("build")
    write_atomic(files)
    build.files = {path.name: path for path in files}
    build.timings["write"] = time.perf_counter() - start
    return build
