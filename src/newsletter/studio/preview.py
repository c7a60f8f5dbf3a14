"""The studio's preview: the issue file's current text built in process, checked, cached.

One render per version of the file (its sha256), shared by the page, the iframe and the
plain-text tab; a few versions are kept, so flipping between views renders nothing.
No subprocess and no file written: ``out/`` stays what `build` and `send` made.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ..checks import Finding, Report, check_issue
from ..errors import InputError
from ..issuefile import line_map
from ..render import Build, issue_from_text, render_issue
from ..render.theme import Renderer, template_dirs
from ..settings import Settings
from ..urls import localise_images

__all__ = ["FILES", "Preview", "Previews"]

#: Where the studio serves the project's static folder, for the preview's images.
FILES = "/files/"
#: The email's dark-mode rules, made unconditional for the dark preview.
_DARK = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")
_LINE = re.compile(r":(\d+)\b")


@dataclass
class Preview:
    version: str
    html: str = ""
    text: str = ""
    report: Report | None = None
    #: Why there is no preview (the file does not parse, a template fails).
    problem: str = ""
    #: Story table line -> story anchor, for linking findings to the story they name.
    anchors: list[tuple[int, str]] = field(default_factory=list)

    def dark_html(self) -> str:
        return _DARK.sub("@media all", self.html)

    def findings(self) -> list[tuple[Finding, str]]:
        """Each finding with the anchor of the story or field it concerns ("" if none)."""
        if self.report is None:
            return []
        return [(f, self.anchor_for(f.where)) for f in self.report.findings]

    def anchor_for(self, where: str) -> str:
        for name in ("subject", "preheader", "intro"):
            if where.endswith(f": {name}") or f", {name}" in where:
                return f"field-{name}"
        match = _LINE.search(where)
        if not match:
            return ""
        line, found = int(match[1]), ""
        for start, anchor in self.anchors:
            if start <= line:
                found = anchor
        return found


def _templates_mtime(settings: Settings) -> float:
    newest = 0.0
    for folder in template_dirs(settings):
        for template in folder.rglob("*.j2"):
            with contextlib.suppress(OSError):
                newest = max(newest, template.stat().st_mtime)
    return newest


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Previews:
    """Builds previews with one renderer for the studio's life: Jinja reloads a template
    changed on disk, and the cache is keyed on the templates' newest change too."""

    def __init__(self, settings: Settings, keep: int = 8) -> None:
        self.settings = settings
        self.renderer = Renderer(settings)
        self._cache: OrderedDict[tuple[str, str], Preview] = OrderedDict()
        self._keep = keep
        # One build at a time: the renderer's caches are not made for concurrent use.
        self._lock = threading.Lock()

    def get(self, text: str, source: str, anchors: dict[tuple[int | str, ...], str]) -> Preview:
        """The preview of ``text`` (the issue file's content); ``anchors`` maps a story's
        TOML path (``("lead",)``, ``("sections", 0, "items", 2)``) to its page anchor."""
        # A changed template shows at the next refresh too (settings are read at start).
        key = (source, version_of(text) + f":{_templates_mtime(self.settings)}")
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            preview = self._build(text, source, key[1], anchors)
            self._cache[key] = preview
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
            return preview

    def _build(
        self, text: str, source: str, version: str, anchors: dict[tuple[int | str, ...], str]
    ) -> Preview:
        preview = Preview(version)
        lines = line_map(text)
        preview.anchors = sorted(
            (lines[path], anchor) for path, anchor in anchors.items() if path in lines
        )
        try:
            loaded = issue_from_text(text, self.settings, source, renderer=self.renderer)
            build: Build | None = None
            if loaded.valid:
                build = render_issue(loaded)
                base = self.settings.newsletter.base_url
                preview.html = localise_images(build.html, base, FILES)
                preview.text = build.text
            preview.report = check_issue(loaded, build=build)
        except InputError as exc:
            preview.problem = str(exc)
        if not preview.html and not preview.problem and preview.report is not None:
            first = next(iter(preview.report.findings), None)
            preview.problem = f"{first.where}: {first.message}" if first else "no preview"
        return preview
