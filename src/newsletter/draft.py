"""Draft stage: the week's items in the library -> a proposed ``issues/<week>.toml``.

The draft is a starting point that people edit, so it never overwrites an issue file:
if one exists, the proposal goes to ``<week>.new.toml`` beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import library
from .errors import InputError
from .files import write_atomic
from .models import PREHEADER_MAX, week_range
from .normalise import clip
from .pause import checkpoint
from .settings import DraftSection, Settings
from .store import Store

__all__ = ["Draft", "draft_issue"]


@dataclass
class Draft:
    week: str
    path: Path
    lead: sqlite3.Row | None = None
    sections: list[tuple[str, list[sqlite3.Row]]] = field(default_factory=list)
    #: Items of the week left out, and why.
    skipped: list[str] = field(default_factory=list)
    #: Items that need a URL before the issue can be built.
    without_url: int = 0
    #: True when an issue file existed, so the draft went to <week>.new.toml.
    beside: bool = False


def _section_for(row: sqlite3.Row, sections: list[DraftSection]) -> DraftSection | None:
    titles = {s.title.casefold(): s for s in sections}
    if row["section"] and row["section"].casefold() in titles:
        return titles[row["section"].casefold()]
    for section in sections:
        if row["kind"] in section.kinds:
            return section
    return None


def _select(store: Store, settings: Settings, week: str) -> Draft:
    rows = library.draftable_items(store, week)
    sent = library.count_sent_elsewhere(store, week)
    draft = Draft(week, settings.issues_dir / f"{week}.toml")
    if sent:
        draft.skipped.append(f"{sent} items of the week went out in an earlier issue")
    sections = settings.draft.sections
    if settings.draft.lead and rows:
        # Pinned first; otherwise the newest news story with a picture; otherwise the
        # source's own top story (a newsroom page puts its lead first).
        pinned = [r for r in rows if r["pinned"]]
        pictured = [r for r in rows if r["image_url"] and r["kind"] == "news"]
        news = sorted((r for r in rows if r["kind"] == "news"), key=lambda r: r["rank"])
        draft.lead = (pinned or pictured or news or rows)[0]
    chosen: dict[str, list[sqlite3.Row]] = {s.title: [] for s in sections}
    for row in rows:
        if draft.lead is not None and row["id"] == draft.lead["id"]:
            continue
        section = _section_for(row, sections)
        if section is None:
            draft.skipped.append(f"{row['title']!r}: kind {row['kind']!r} has no section")
        elif len(chosen[section.title]) >= section.limit:
            draft.skipped.append(f"{row['title']!r}: {section.title} is full ({section.limit})")
        else:
            chosen[section.title].append(row)
    draft.sections = [(title, items) for title, items in chosen.items() if items]
    return draft


def _toml(value: object) -> str:
    # JSON string escapes are valid TOML basic-string escapes. JSON leaves DEL raw, which
    # TOML forbids; collect strips it, but a library filled by an older version may hold it.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def story_fields(row: sqlite3.Row) -> dict[str, object]:
    """A library item as an issue file's story: the keys `draft` writes, in its order
    (the studio adds a story from the library with the same)."""
    fields: dict[str, object] = {"id": row["id"], "title": row["title"], "url": row["url"] or ""}
    if row["summary"]:
        fields["summary"] = row["summary"]
    if row["published"]:
        fields["published"] = dt.date.fromisoformat(row["published"])
    fields.update(kind=row["kind"], source=row["source"])
    if row["author"]:
        fields["author"] = row["author"]
    if row["image_url"]:
        fields["image"] = {"url": row["image_url"], "alt": row["image_alt"] or row["title"]}
    return fields


def _item_lines(row: sqlite3.Row, table: str) -> list[str]:
    lines = [f"[{table}]"]
    if not row["url"]:
        lines.append("# NEEDS A URL: the source gave none; paste the story's web address.")
    for key, value in story_fields(row).items():
        if isinstance(value, dt.date):
            lines.append(f"{key} = {value.isoformat()}")
        elif isinstance(value, dict):
            lines.append(f"{key} = {{ url = {_toml(value['url'])}, alt = {_toml(value['alt'])} }}")
        else:
            lines.append(f"{key} = {_toml(value)}")
    return lines


def _preheader(draft: Draft) -> str:
    return clip(" ".join((draft.lead["summary"] if draft.lead else "").split()), PREHEADER_MAX)


def render_draft(draft: Draft, number: int) -> str:
    start, end = week_range(draft.week)
    lead = draft.lead
    lines = [
        f"# Draft for {draft.week} ({start:%d %B} to {end:%d %B %Y}), "
        "proposed by `newsletter draft`.",
        "# Edit freely: reorder or drop stories, rewrite the subject, preheader and intro.",
        "",
        f"number = {number}",
        f"week = {_toml(draft.week)}",
        f"date = {min(end - dt.timedelta(days=2), max(start, dt.date.today()))}",
        '# Approving in the studio sets this; typing "approved" here does not approve it.',
        'status = "draft"',
        f"subject = {_toml(lead['title'] if lead else 'This week')}",
        f"preheader = {_toml(_preheader(draft))}",
        "# Write a few sentences to open the issue (Markdown allowed).",
        'intro = ""',
        "",
    ]
    if lead is not None:
        lines += [*_item_lines(lead, "lead"), ""]
    for title, items in draft.sections:
        lines += ["[[sections]]", f"title = {_toml(title)}", ""]
        for row in items:
            lines += [*_item_lines(row, "[sections.items]"), ""]
    return "\n".join(lines).rstrip() + "\n"


def _issue_number(folder: Path, week: str) -> int:
    """The week's existing number, else one more than the latest earlier issue's."""
    numbers: dict[str, int] = {}
    for path in folder.glob("*-W*.toml"):
        if path.name.endswith(".new.toml"):
            continue
        try:
            number = tomllib.loads(path.read_text(encoding="utf-8")).get("number")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # an unreadable file is `build`'s to report, not draft's
        if isinstance(number, int):
            numbers[path.stem] = number
    if week in numbers:
        return numbers[week]
    earlier = [n for w, n in numbers.items() if w < week]
    return max(earlier, default=0) + 1


def draft_issue(settings: Settings, week: str) -> Draft:
    """Write the proposed issue file for ``week``; never overwrite an existing one."""
    with Store(settings.store_path) as store:
        draft = _select(store, settings, week)
    number = _issue_number(settings.issues_dir, week)
    if draft.lead is None and not draft.sections:
        raise InputError(
            f"no items published in {draft.week} in the library; run `newsletter collect` "
            "or `newsletter import` first"
        )
    draft.without_url = sum(
        1 for row in [draft.lead, *(r for _, items in draft.sections for r in items)]
        if row is not None and not row["url"]
    )  # fmt: skip
    if draft.path.exists():
        draft.path, draft.beside = draft.path.with_suffix(".new.toml"), True
    text = render_draft(draft, number)
    try:
        tomllib.loads(text)
        data = text.encode()
    except (tomllib.TOMLDecodeError, UnicodeEncodeError) as exc:
        # Say so in one line rather than write a file that `build` would refuse.
        reason = f"the proposed issue is not valid TOML ({exc}); nothing written"
        raise InputError(reason, str(draft.path)) from None
    checkpoint("draft")
    write_atomic({draft.path: data})
    return draft
