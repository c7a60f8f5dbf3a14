"""Reading issue files (``issues/<week>.toml``) with errors that point at a line.

tomllib gives no positions for values, so a small scanner maps each table header
and key to its line; that is enough to say "line 41, section "News", item 3, url".
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import InputError, located_errors
from .models import Issue
from .settings import Settings

__all__ = [
    "ParsedIssue",
    "item_location",
    "line_map",
    "load_issue",
    "parse",
    "parse_issue",
    "read_issue_text",
]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\s-]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def line_map(text: str) -> dict[tuple[int | str, ...], int]:
    """Map TOML paths such as ``("sections", 1, "items", 0, "url")`` to 1-based line numbers."""
    lines: dict[tuple[int | str, ...], int] = {}
    counters: dict[tuple[int | str, ...], int] = {}
    table: tuple[int | str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = [n.strip() for n in header[2].split(".")]
            # Array-of-tables indices of enclosing tables carry over: [[sections.items]]
            # belongs to the latest [[sections]].
            path: list[int | str] = []
            for depth, name in enumerate(names):
                path.append(name)
                key = tuple(path)
                is_last = depth == len(names) - 1
                if is_last and header[1] == "[[":
                    counters[key] = counters.get(key, -1) + 1
                    path.append(counters[key])
                    # A new parent element restarts its children's numbering.
                    for other in [
                        k for k in counters if k[: len(key) + 1] == (*key, counters[key] - 1)
                    ]:
                        del counters[other]
                elif key in counters:
                    path.append(counters[key])
            table = tuple(path)
            lines.setdefault(table, number)
            continue
        key_match = _KEY.match(line)
        if key_match:
            lines.setdefault((*table, key_match[1]), number)
    return lines


def _describe(loc: Sequence[int | str], data: dict[str, Any]) -> str:
    """``("sections", 1, "items", 2, "url")`` -> ``section "News", item 3 "Title", url``."""
    parts: list[str] = []
    node: Any = data
    i = 0
    while i < len(loc):
        part = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        child = node.get(part) if isinstance(node, dict) else None
        if isinstance(child, list) and isinstance(nxt, int) and part in ("sections", "items"):
            element = child[nxt] if nxt < len(child) else {}
            label = "section" if part == "sections" else "item"
            title = element.get("title") if isinstance(element, dict) else None
            parts.append(f"{label} {nxt + 1}" + (f" {title!r}" if isinstance(title, str) else ""))
            node, i = element, i + 2
            continue
        if part == "lead":
            title = child.get("title") if isinstance(child, dict) else None
            parts.append("lead story" + (f" {title!r}" if isinstance(title, str) else ""))
        elif not isinstance(part, int):
            parts.append(str(part))
        node, i = child, i + 1
    return ", ".join(parts)


def _line_for(loc: Sequence[int | str], lines: dict[tuple[int | str, ...], int]) -> int | None:
    # The deepest known prefix: the field's own line, else its table's line.
    for end in range(len(loc), 0, -1):
        found = lines.get(tuple(loc[:end]))
        if found:
            return found
    return None


@dataclass
class ParsedIssue:
    """An issue file validated both ways: what `check` reports and what `build` refuses."""

    #: The issue as far as it could be read: strict when valid, else lenient (bad links
    #: and missing alt texts let through for the checks); None when even that failed.
    issue: Issue | None
    #: Every rule that makes `build` and `send` refuse the file, each with its place.
    refusals: list[InputError] = field(default_factory=list)
    #: TOML paths to line numbers, for locating findings.
    lines: dict[tuple[int | str, ...], int] = field(default_factory=dict)


def parse(text: str, source: str, settings: Settings | None = None) -> ParsedIssue:
    """Validate issue TOML strictly, collecting every refusal rather than the first."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source) from None
    except RecursionError:
        raise InputError(
            "arrays or inline tables nested too deeply to be an issue file",
            f"{source}:{_deep_line(text)}",
        ) from None
    if settings and not data.get("newsletter"):
        data["newsletter"] = settings.newsletter.name
    lines = line_map(text)

    def where(loc: Sequence[int | str]) -> str:
        line = _line_for(loc, lines)
        label = _describe(loc, data)
        prefix = f"{source}:{line}" if line else source
        return f"{prefix}: {label}" if label else prefix

    refusals: list[InputError] = []
    issue: Issue | None = None
    for lenient in (False, True):
        try:
            issue = Issue.model_validate(data, context={"lenient": lenient})
            break
        except ValidationError as exc:
            if not lenient:
                refusals = located_errors(exc, where)
    if settings is not None and not settings.build.allow_linkless_items:
        # From the raw data, so that it is found even when the file has other problems.
        for loc in _linkless(data):
            refusals.append(
                InputError(
                    "the story has no URL; add its web address, "
                    "or set [build] allow_linkless_items = true",
                    where((*loc, "url")),
                )
            )
    return ParsedIssue(issue, refusals, lines)


def _deep_line(text: str, limit: int = 100) -> int:
    """The line where brackets first nest ``limit`` deep (strings are not told apart)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            depth += 1 if char in "[{" else -1 if char in "]}" else 0
            if depth >= limit:
                return number
    return 1


def _linkless(data: dict[str, Any]) -> list[tuple[int | str, ...]]:
    """Where stories have no URL (missing, or blank) in raw issue data."""
    stories: list[tuple[tuple[int | str, ...], Any]] = []
    if "lead" in data:
        stories.append((("lead",), data["lead"]))
    sections = data.get("sections")
    for s, section in enumerate(sections if isinstance(sections, list) else []):
        items = section.get("items") if isinstance(section, dict) else None
        for i, item in enumerate(items if isinstance(items, list) else []):
            stories.append((("sections", s, "items", i), item))
    return [loc for loc, story in stories if _blank_url(story)]


def _blank_url(story: Any) -> bool:
    # A URL of the wrong type is the model's type error, not a missing link.
    url = story.get("url", "") if isinstance(story, dict) else None
    return isinstance(url, str) and not url.strip()


def parse_issue(
    text: str, source: str, settings: Settings | None = None, *, lenient: bool = False
) -> Issue:
    """Parse and validate issue TOML; ``source`` names the file in error messages.

    Raises the first refusal, or with ``lenient`` returns what the checks would see.
    """
    parsed = parse(text, source, settings)
    if parsed.refusals and not (lenient and parsed.issue is not None):
        raise parsed.refusals[0]
    assert parsed.issue is not None
    return parsed.issue


def item_location(issue: Issue, index: int) -> tuple[int | str, ...]:
    """Location of the ``index``-th story of :meth:`Issue.items`, for error messages."""
    if issue.lead is not None:
        if index == 0:
            return ("lead",)
        index -= 1
    for s, section in enumerate(issue.sections):
        if index < len(section.items):
            return ("sections", s, "items", index)
        index -= len(section.items)
    raise IndexError(index)


def read_issue_text(path: Path) -> str:
    """The file's text, or :class:`InputError` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("issue file not found", str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", str(path)) from None


def load_issue(
    path: Path | str, settings: Settings | None = None, *, lenient: bool = False
) -> Issue:
    """Read ``path`` or raise :class:`InputError` naming the file, line, story and field."""
    path = Path(path)
    return parse_issue(read_issue_text(path), str(path), settings, lenient=lenient)
