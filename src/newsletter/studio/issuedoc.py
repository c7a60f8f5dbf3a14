"""An issue file as the studio edits it: values changed in place, the rest left as written.

The issue file stays the single source of truth, edited by people in a text editor and
by the studio, sometimes in the same week. So the studio edits it through tomlkit, which
keeps comments, key order, blank lines and quoting; a change touches only the lines of
the values it changes (and the status lines). Every edit is checked the way `build`
checks the file (:func:`newsletter.issuefile.parse`), so the studio never writes a file
that `build` would refuse: a bad value is an :class:`EditError` naming the field.

Nothing reaches the disk before :meth:`IssueDoc.save`, which writes atomically and only
if the file is still the version the edit started from (else :class:`Conflict`).

**Story keys.** A story is named by its ``id`` when the file gives one, else by
:func:`newsletter.models.item_id` of its URL (or, for a story without one, its title): the
same id the model and the item library use. An edit that would change a derived key (a
new title for a story without a URL, a new or corrected URL) first writes the old key as
an explicit ``id = "…"``, so a key stays valid across requests, and the story stays
linked to its item in the library (which records what went out in which issue).

**Approval.** Any edit of the content sets ``status = "draft"`` and removes
``approved_by``, ``approved_at`` and ``approved_hash``; :meth:`IssueDoc.approve` records
them (see :mod:`newsletter.approval`). An edit that changes no value changes nothing.

The studio edits ``[lead]``, ``[[sections]]`` and ``[[sections.items]]`` tables; a file
that writes sections or stories as inline arrays can be read but not rearranged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import threading
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import (
    AoT,
    Table,
    Trivia,
)
from tomlkit.toml_document import TOMLDocument

from ..approval import content_hash, seal
from ..errors import InputError, NewsletterError
from ..files import write_atomic
from ..issuefile import parse
from ..models import APPROVAL_KEYS, control_problem, item_id
from .tomllayout import (
    blank_before,
    copy_table,
    detach_trailing_comments,
    drop_needs_url,
    multiline,
    prepend_comments,
    seams,
    set_key,
    text_item,
)

__all__ = ["Conflict", "EditError", "IssueDoc", "StoryRef"]

#: The fields of the issue itself that the studio edits.
FIELDS = ("subject", "preheader", "intro")
#: Where a missing top-level key goes: after the nearest key before it in this order.
_TOP_ORDER = (
    "newsletter", "number", "week", "date", *APPROVAL_KEYS, "subject", "preheader", "intro",
)  # fmt: skip
#: A story's keys in the order `draft` writes them; new keys are placed by it.
_STORY_ORDER = (
    "id", "title", "url", "summary", "published", "kind", "source", "author", "image",
)  # fmt: skip
#: A section for a story that has none to go to.
DEFAULT_SECTION = "News"
#: How `draft` marks a story without a URL; the mark goes when the studio fills it in.
#: One save at a time in this process: the version check and the write are one step for
#: the studio's own requests. (A text editor saving in that same instant is not covered.)
_SAVING = threading.Lock()


class Conflict(NewsletterError):
    """The file changed on disk since it was loaded: reload rather than overwrite."""


class EditError(InputError):
    """An edit that cannot be made: ``where`` names the field, ``what`` the problem."""


@dataclass
class StoryRef:
    """One story of the issue as the studio lists it."""

    #: Stable across requests and edits of the title or summary (see the module's notes).
    key: str
    #: "lead" or "section".
    where: str
    #: The section's index; -1 for the lead.
    section: int
    #: The story's index within its section (0 for the lead).
    index: int
    title: str
    url: str
    summary: str
    kind: str
    source: str
    #: ISO date, or "" when the story has none.
    published: str
    image_url: str
    #: No URL yet (copied text): it needs one before it can be built, unless
    #: ``[build] allow_linkless_items`` is set.
    linkless: bool


@dataclass
class _Slot:
    """Where a story's table is in the document."""

    table: Any
    section: int  # -1 for the lead
    index: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text(value: object) -> str:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _story_key(table: Any) -> str:
    """The key of a story table: its ``id``, else the id the model derives from it."""
    explicit = table.get("id")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    url, title = table.get("url"), table.get("title")
    url = url.strip() if isinstance(url, str) and url.strip() else None
    return item_id(url, title.strip() if isinstance(title, str) else "")


def _ref(table: Any, section: int, index: int) -> StoryRef:
    image = table.get("image")
    url = _text(table.get("url"))
    return StoryRef(
        key=_story_key(table), where="lead" if section < 0 else "section", section=section,
        index=index, title=_text(table.get("title")), url=url,
        summary=_text(table.get("summary")), kind=_text(table.get("kind")) or "news",
        source=_text(table.get("source")), published=_text(table.get("published")),
        image_url=_text(image.get("url")) if isinstance(image, dict) else "",
        linkless=not url,
    )  # fmt: skip


# -- the document --------------------------------------------------------------------------------


class IssueDoc:
    """An issue file loaded for editing. Edits change :meth:`dumps`; :meth:`save` writes."""

    def __init__(self, path: Path, text: str, version: str) -> None:
        self.path = path
        #: The file's text as loaded (or as last saved).
        self.text = text
        #: sha256 hex of the file's bytes as loaded (or as last saved).
        self.version = version
        self._current = text
        self._parsed: tuple[str, TOMLDocument] | None = None
        # A file written with Windows line ends keeps them, in the lines edits add too.
        self._crlf = "\r\n" in text
        self._ending = text[len(text.rstrip("\r\n")) :]
        self._problems = self._refusals(text)

    @classmethod
    def load(cls, path: Path) -> IssueDoc:
        """Read ``path``; :class:`InputError` naming it if it is unreadable or not TOML."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError("issue file not found", str(path)) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", str(path)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
        try:
            tomllib.loads(text)
            doc = tomlkit.parse(text)
        except (tomllib.TOMLDecodeError, TOMLKitError) as exc:
            raise InputError(f"not valid TOML: {exc}", str(path)) from None
        except RecursionError:
            raise InputError("nested too deeply to be an issue file", str(path)) from None
        loaded = cls(path, text, _sha256(data))
        loaded._parsed = (text, doc)
        return loaded

    # -- reading ---------------------------------------------------------------------------

    def _doc(self, *, to_edit: bool = False) -> TOMLDocument:
        """The parsed text: shared by the reading methods, handed over (once) to an edit."""
        cached = self._parsed
        if cached is None or cached[0] != self._current:
            cached = (self._current, tomlkit.parse(self._current))
        self._parsed = None if to_edit else cached
        return cached[1]

    @staticmethod
    def _slots(doc: TOMLDocument) -> list[_Slot]:
        slots: list[_Slot] = []
        lead = doc.get("lead")
        if isinstance(lead, dict):
            slots.append(_Slot(lead, -1, 0))
        sections = doc.get("sections")
        for s, section in enumerate(sections if isinstance(sections, list) else []):
            items = section.get("items") if isinstance(section, dict) else None
            for i, story in enumerate(items if isinstance(items, list) else []):
                if isinstance(story, dict):
                    slots.append(_Slot(story, s, i))
        return slots

    def stories(self) -> list[StoryRef]:
        """Every story in reading order: the lead, then each section's stories."""
        return [_ref(slot.table, slot.section, slot.index) for slot in self._slots(self._doc())]

    def sections(self) -> list[str]:
        """The sections' titles, in order."""
        sections = self._doc().get("sections")
        return [
            _text(section.get("title")) if isinstance(section, dict) else ""
            for section in (sections if isinstance(sections, list) else [])
        ]

    def story_keys(self) -> set[str]:
        return {story.key for story in self.stories()}

    def dumps(self) -> str:
        """The file's text with every edit so far."""
        return self._current

    # -- editing: the issue's fields ---------------------------------------------------------

    def set_field(self, name: str, value: str) -> None:
        """Set ``subject``, ``preheader`` or ``intro`` (Markdown; kept on several lines)."""
        if name not in FIELDS:
            raise EditError("not a field the studio edits (subject, preheader or intro)", name)
        if not isinstance(value, str):
            raise EditError("must be text", name)
        text = multiline(value) if name == "intro" else value.strip()

        def change(doc: TOMLDocument) -> None:
            set_key(doc, name, text_item(text), _TOP_ORDER)

        self._edit(change)

    # -- editing: stories --------------------------------------------------------------------

    def edit_story(
        self,
        key: str,
        *,
        title: str | None = None,
        summary: str | None = None,
        url: str | None = None,
    ) -> None:
        """Change a story's title, summary or URL for this issue; None leaves it as it is.

        An empty ``url`` removes the link (the story is then flagged as linkless).
        """

        def change(doc: TOMLDocument) -> None:
            table = self._find(doc, key).table
            if not isinstance(table, Table):
                raise EditError("written as an inline table; edit it in the file", "story")
            old_key, had_url = _story_key(table), bool(_text(table.get("url")))
            wanted = {"title": title, "summary": summary, "url": url}
            for name, value in wanted.items():
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise EditError("must be text", name)
                value = multiline(value) if name == "summary" else value.strip()
                if _text(table.get(name)) == value.strip() and (name in table or not value):
                    continue
                if name == "summary" and not value:
                    table.remove("summary")
                    continue
                set_key(table, name, text_item(value), _STORY_ORDER)
            if _story_key(table) != old_key:
                set_key(table, "id", tomlkit.string(old_key), _STORY_ORDER)
            if not had_url and _text(table.get("url")):
                drop_needs_url(table)

        self._edit(change)

    def remove_story(self, key: str) -> None:
        """Take a story out of the issue."""

        def change(doc: TOMLDocument) -> None:
            self._take(doc, self._find(doc, key))

        self._edit(change)

    def add_story(self, fields: dict[str, object], section: int) -> str:
        """Append a story to section ``section``; return its key.

        ``fields`` are a story's keys as in the file: title, url, summary, published (a
        date or "YYYY-MM-DD"), kind, source, author, image ({"url", "alt"[, "width"]}),
        and id (the item library's id, when the story comes from there).
        """
        table = Table(Container(), Trivia(), True)
        for name in fields:
            if name not in _STORY_ORDER:
                raise EditError("not a story field (" + ", ".join(_STORY_ORDER) + ")", name)
        for name in _STORY_ORDER:
            if fields.get(name) is not None:
                table.append(name, _field_value(name, fields[name]))
        if "title" not in table:
            raise EditError("every story needs a headline", "title")
        added = _story_key(table)

        def change(doc: TOMLDocument) -> None:
            sections = self._sections(doc, create=section == 0)
            if not 0 <= section < len(sections):
                raise EditError(f"no section {section} in this issue", "section")
            self._insert(sections[section], None, table)

        self._edit(change)
        return added

    def move(self, key: str, delta: int) -> None:
        """Move a story ``delta`` places: -1 up, +1 down.

        Past the edge of its section it goes to the end of the previous section or the
        start of the next one. The lead moved down becomes the first story of the first
        section (the issue then has no lead); the very first and last stories stay put.
        """

        def change(doc: TOMLDocument) -> None:
            for _ in range(abs(delta)):
                self._step(doc, key, 1 if delta > 0 else -1)

        self._edit(change)

    def move_to_section(self, key: str, section: int) -> None:
        """Move a story to the end of section ``section`` (the lead too)."""

        def change(doc: TOMLDocument) -> None:
            slot = self._find(doc, key)
            sections = self._sections(doc)
            if not 0 <= section < len(sections):
                raise EditError(f"no section {section} in this issue", "section")
            if slot.section == section:
                return
            table = self._take(doc, slot)
            self._insert(sections[section], None, copy_table(table, aot_element=True))

        self._edit(change)

    def make_lead(self, key: str) -> None:
        """Pin a story as the lead; the old lead goes to the top of the first section."""

        def change(doc: TOMLDocument) -> None:
            slot = self._find(doc, key)
            if slot.section < 0:
                return
            table = self._take(doc, slot)
            old = doc.get("lead")
            if old is not None and not isinstance(old, Table):
                raise EditError("written as an inline table; rearrange it in the file", "lead")
            lead = copy_table(table, aot_element=False)
            if isinstance(old, Table):
                doc["lead"] = lead
                self._insert(
                    self._sections(doc, create=True)[0], 0, copy_table(old, aot_element=True)
                )
            elif "sections" in doc:
                at = next(
                    i for i, (k, _) in enumerate(doc.body) if k is not None and k.key == "sections"
                )
                doc._insert_at(at, "lead", lead)
            else:
                doc.append("lead", lead)

        self._edit(change)

    # -- approval ----------------------------------------------------------------------------

    def approve(self, who: str, now: dt.datetime, secret: str) -> None:
        """Record an approval of the content as it is now: by ``who``, at ``now``, sealed
        with ``secret`` (:func:`newsletter.approval.seal`).

        ``approved_at`` is written as a TOML offset date-time to the second, in ``now``'s
        zone (a naive ``now`` is local time). Refused (:class:`EditError`) when the file has
        a problem that `build` would refuse.
        """
        who = who.strip() if isinstance(who, str) else ""
        if not who or control_problem(who):
            raise EditError("name the staff account that approves, on one line", "approved_by")
        refusals = parse(self._current, str(self.path)).refusals
        if refusals:
            raise self._edit_error(refusals[0], prefix="cannot approve: ")
        when = (now if now.tzinfo else now.astimezone()).replace(microsecond=0)
        data = {**tomllib.loads(self._current), "approved_by": who, "approved_at": when}
        doc = self._doc(to_edit=True)
        for name, value in (
            ("status", "approved"),
            ("approved_by", who),
            ("approved_at", when),
            ("approved_hash", seal(data, secret)),
        ):
            set_key(doc, name, tomlkit.item(value), _TOP_ORDER)
        self._current = self._finish(doc, None)

    # -- saving ------------------------------------------------------------------------------

    def save(self, expected_version: str) -> str:
        """Write the edits atomically if the file is still ``expected_version``; the new version.

        :class:`Conflict` (and nothing written) when the file on disk changed since that
        version was read, by hand or by another studio page, or is gone.
        """
        data = self._current.encode("utf-8")
        with _SAVING:
            try:
                on_disk = self.path.read_bytes()
            except FileNotFoundError:
                raise Conflict(
                    f"{self.path}: the file was removed since the page loaded it; nothing saved"
                ) from None
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror or exc}", str(self.path)) from None
            if _sha256(on_disk) != expected_version:
                raise Conflict(
                    f"{self.path}: the file changed on disk since the page loaded it; reload "
                    "to see the changes (nothing saved)"
                )
            if data != on_disk:
                write_atomic({self.path: data})
        self.text, self.version = self._current, _sha256(data)
        return self.version

    # -- the machinery -----------------------------------------------------------------------

    def _find(self, doc: TOMLDocument, key: str) -> _Slot:
        for slot in self._slots(doc):
            if _story_key(slot.table) == key:
                return slot
        raise EditError(
            f"no story {key!r} in this issue (was it removed? reload the page)", "story"
        )

    @staticmethod
    def _sections(doc: TOMLDocument, *, create: bool = False) -> AoT:
        sections = doc.get("sections")
        if sections is None or (isinstance(sections, AoT) and not len(sections) and create):
            if not create:
                return AoT([])
            section = Table(Container(), Trivia(), True)
            section.append("title", DEFAULT_SECTION)
            sections = AoT([section])
            if "sections" in doc:
                doc["sections"] = sections
            else:
                doc.append("sections", sections)
            return sections
        if not isinstance(sections, AoT):
            raise EditError("written as an inline array; rearrange them in the file", "sections")
        return sections

    @staticmethod
    def _insert(section: Any, index: int | None, table: Table) -> None:
        """Put ``table`` into a section's stories at ``index`` (None: at the end)."""
        items = section.get("items")
        if items is None:
            section.append("items", AoT([table]))
            return
        if not isinstance(items, AoT):
            raise EditError("written as an inline array; rearrange them in the file", "items")
        index = len(items) if index is None else index
        if index < len(items):
            # The notes written above the story that was here stay above that story.
            before = items[index - 1] if index else section
            prepend_comments(items[index], detach_trailing_comments(before.value))
        items.insert(index, table)

    @staticmethod
    def _take(doc: TOMLDocument, slot: _Slot) -> Any:
        """Remove a story's table from where it is; return it."""
        if not isinstance(slot.table, Table):
            where = "lead" if slot.section < 0 else "story"
            raise EditError("written as an inline table; rearrange it in the file", where)
        if slot.section < 0:
            doc.remove("lead")
            return slot.table
        section = doc["sections"][slot.section]
        items = section.get("items")
        if not isinstance(items, AoT):
            raise EditError("written as an inline array; rearrange them in the file", "items")
        table = items[slot.index]
        # The notes written right above its header are about it: they go with it. Those
        # at its own end are about the next story: they stay above that one.
        above = items[slot.index - 1] if slot.index else section
        prepend_comments(table, detach_trailing_comments(above.value))
        if slot.index + 1 < len(items):
            prepend_comments(items[slot.index + 1], detach_trailing_comments(table.value))
        del items[slot.index]
        if not len(items):
            section.remove("items")
        return table

    def _step(self, doc: TOMLDocument, key: str, step: int) -> None:
        slot = self._find(doc, key)
        if slot.section < 0:
            if step > 0:
                table = self._take(doc, slot)
                self._insert(
                    self._sections(doc, create=True)[0], 0, copy_table(table, aot_element=True)
                )
            return
        sections = self._sections(doc)
        count = len(sections[slot.section].get("items") or [])
        target = slot.index + step
        if 0 <= target < count:
            table = self._take(doc, slot)
            self._insert(sections[slot.section], target, table)
        elif step < 0 and slot.section > 0:
            table = self._take(doc, slot)
            self._insert(sections[slot.section - 1], None, table)
        elif step > 0 and slot.section + 1 < len(sections):
            table = self._take(doc, slot)
            self._insert(sections[slot.section + 1], 0, table)

    @staticmethod
    def _refusals(text: str) -> Counter[str]:
        try:
            return Counter(error.what for error in parse(text, "issue").refusals)
        except InputError:
            return Counter()

    def _edit_error(self, error: InputError, prefix: str = "") -> EditError:
        # The field as the refusal names it, without the file and line (which will move).
        where = error.where.removeprefix(str(self.path))
        return EditError(prefix + error.what, re.sub(r"^(:\d+)?(: )?", "", where, count=1))

    def _edit(self, change: Callable[[TOMLDocument], None]) -> None:
        """Apply ``change`` to a fresh parse of the text; keep it only if the file stays valid."""
        doc = self._doc(to_edit=True)
        # The parts as they follow each other now (kept alive, so that ids stay unique).
        before = [container for _, container, _ in seams(doc)]
        try:
            change(doc)
        except TOMLKitError as exc:
            raise EditError(
                f"the file is laid out in a way the studio cannot edit ({exc})"
            ) from None
        old = tomllib.loads(self._current)
        new_text = self._finish(doc, before)
        try:
            new = tomllib.loads(new_text)
        except tomllib.TOMLDecodeError as exc:  # a tomlkit slip: never write it
            raise EditError(f"the edit would not be valid TOML ({exc}); nothing changed") from None
        if content_hash(new) == content_hash(old):
            return  # no value changed: the status stays, and so does the layout
        set_key(doc, "status", tomlkit.string("draft"), _TOP_ORDER)
        for name in APPROVAL_KEYS[1:]:
            if name in doc:
                doc.remove(name)
        new_text = self._finish(doc, None)
        self._check(new_text)
        self._current = new_text

    def _check(self, text: str) -> None:
        """:class:`EditError` for the first problem that the edit brought in."""
        parsed = parse(text, str(self.path))
        added = Counter(error.what for error in parsed.refusals) - self._problems
        for error in parsed.refusals:
            if error.what in added:
                raise self._edit_error(error)
        self._problems = Counter(error.what for error in parsed.refusals)

    def _finish(self, doc: TOMLDocument, before: list[Container] | None) -> str:
        """The text of ``doc`` with blank lines at new seams and the file's own line ends.

        A seam is where one table's part meets the next header; only seams that the edit
        made (``before`` lists the parts as they were) get a blank line, so a compact
        hand-written layout elsewhere stays as it is.
        """
        if before is not None:
            ids = [id(container) for container in before]
            old_pairs = set(itertools.pairwise(ids))
            for _, container, header in seams(doc):
                if header is not None and (id(container), id(header.value)) not in old_pairs:
                    blank_before(container, header)
        text = doc.as_string()
        text = text.rstrip("\r\n") + self._ending
        if self._crlf:
            text = re.sub(r"(?<!\r)\n", "\r\n", text)
        return text


def _field_value(name: str, value: object) -> Any:
    """A story field from ``add_story`` as a TOML item; :class:`EditError` for a wrong type."""
    if name == "published":
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError:
                raise EditError(
                    f"must be a date such as 2023-06-23 (got {value!r})", name
                ) from None
        if not isinstance(value, dt.date):
            raise EditError("must be a date such as 2023-06-23", name)
        return tomlkit.item(value)
    if name == "image":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise EditError('must be a table such as {"url": …, "alt": …}', name)
        image = tomlkit.inline_table()
        image.update(value)
        return image
    if not isinstance(value, str):
        raise EditError("must be text", name)
    value = multiline(value) if name == "summary" else value.strip()
    return text_item(value)
