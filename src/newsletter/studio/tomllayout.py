"""Placing values and tables in a tomlkit document the way a person would have written them.

The layout half of :mod:`.issuedoc`: a new key goes beside its neighbours in the usual
order, a moved story keeps its comments, a new seam between tables gets one blank line,
and a multi-line text opens on its own line. Nothing here knows what an issue is.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Item, Null, String, StringType, Table, Trivia, Whitespace
from tomlkit.toml_document import TOMLDocument

__all__ = [
    "NEEDS_URL",
    "blank_before",
    "copy_table",
    "detach_trailing_comments",
    "drop_needs_url",
    "multiline",
    "own_part",
    "prepend_comments",
    "seams",
    "set_key",
    "text_item",
]  # fmt: skip

#: The comment `draft` writes above a story that has no URL.
NEEDS_URL = "# NEEDS A URL"


def text_item(value: str) -> Item:
    """A TOML string for ``value``: one line, or a multi-line string opening on its own line."""
    if "\n" not in value:
        return tomlkit.string(value)
    item = String.from_raw(value, StringType.MLB)
    raw = item._original  # the escaped text between the quotes
    if not raw.startswith("\n"):
        # The newline right after the opening quotes is not part of the value.
        item = String(StringType.MLB, value, "\n" + raw, Trivia())
    return item


def multiline(value: str) -> str:
    """Form text as stored: Unix line ends, no blank edges, closing quotes on their own line."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value + "\n" if "\n" in value else value


# -- placing keys and tables ---------------------------------------------------------------------


def set_key(table: Any, key: str, value: Any, order: tuple[str, ...]) -> None:
    """Set ``key``: in place when it exists, else after the nearest key before it in ``order``."""
    if key in table:
        table[key] = value
        return
    container: Container = table.value if isinstance(table, Table) else table
    position = order.index(key)
    before = [k for k in order[:position] if k in container]
    after = [k for k in order[position + 1 :] if k in container]
    if before:
        container._insert_after(before[-1], key, value)
    elif after:
        index = next(
            i for i, (k, _) in enumerate(container.body) if k is not None and k.key == after[0]
        )
        container._insert_at(index, key, value)
    else:
        container.append(key, value)
        return
    if isinstance(table, Table):
        dict.__setitem__(table, key, container[key])


def copy_table(source: Any, *, aot_element: bool) -> Table:
    """The same story as a ``[lead]`` table or a ``[[sections.items]]`` element."""
    table = Table(Container(), Trivia(), aot_element)
    for key, value in source.value.body:
        if not isinstance(value, Null):
            table.raw_append(key, value)
    trivia = source.trivia
    table.trivia.comment_ws, table.trivia.comment = trivia.comment_ws, trivia.comment
    # Comment lines carried above the header (notes about this story) go along.
    table.trivia.indent = "".join(
        f"{line}\n" for line in trivia.indent.splitlines() if line.strip()
    )
    table.invalidate_display_name()
    return table


def drop_needs_url(table: Table) -> None:
    """Remove the comment `draft` writes above a story that has no URL."""
    body = table.value.body
    for i, (key, item) in enumerate(body):
        if (
            key is None
            and isinstance(item, Comment)
            and item.as_string().lstrip().startswith(NEEDS_URL)
        ):
            body[i] = (None, Null())  # a comment has no key: the key map is unaffected


def own_part(container: Container) -> list[Item]:
    """The items of a table before its first sub-table: what precedes the next header."""
    own: list[Item] = []
    for _, item in container.body:
        if isinstance(item, Table | AoT):
            break
        if not isinstance(item, Null):
            own.append(item)
    return own


def _parts(
    container: Container, owner: Table | None, out: list[tuple[Table | None, Container]]
) -> None:
    """Each table's own part in the order they are written, with the table that heads it."""
    if owner is None or not owner.is_super_table():
        out.append((owner, container))
    for _, item in container.body:
        if isinstance(item, Table):
            _parts(item.value, item, out)
        elif isinstance(item, AoT):
            for table in item.body:
                _parts(table.value, table, out)


def seams(doc: TOMLDocument) -> list[tuple[Table | None, Container, Table | None]]:
    """(header of the part, the part, the header after it) in file order."""
    segments: list[tuple[Table | None, Container]] = []
    _parts(doc, None, segments)
    return [
        (owner, container, segments[i + 1][0] if i + 1 < len(segments) else None)
        for i, (owner, container) in enumerate(segments)
    ]


def blank_before(container: Container, header: Table) -> None:
    """One blank line between a part and the header that now follows it."""
    own = own_part(container)
    # Only the leading line breaks: comment lines carried above the header stay.
    indent = header.trivia.indent.lstrip("\n")
    if not own:
        header.trivia.indent = indent
        return
    last = own[-1]
    if isinstance(last, Whitespace):
        if "\n" in last.s:
            header.trivia.indent = indent
            return
    elif "\n" not in last.trivia.trail:
        last.trivia.trail += "\n"
    header.trivia.indent = "\n" + indent


def detach_trailing_comments(container: Container) -> str:
    """Take the comment lines that end the own part of ``container`` (what is written
    just above the next header) out of it; return them as text, one per line.

    tomlkit files a comment written above a header under the part before it: these are
    notes about whatever header comes next.
    """
    body = container.body
    end = next((i for i, (_, item) in enumerate(body) if isinstance(item, Table | AoT)), len(body))
    start = end
    while start and isinstance(body[start - 1][1], Comment | Null):
        start -= 1
    lines = [
        item.as_string().strip("\r\n") for _, item in body[start:end] if isinstance(item, Comment)
    ]
    for i in range(start, end):
        body[i] = (None, Null())  # a comment has no key: the key map is unaffected
    return "".join(line + "\n" for line in lines)


def prepend_comments(table: Table, lines: str) -> None:
    """Write comment ``lines`` right above ``table``'s header, before any already there."""
    if lines:
        table.trivia.indent = lines + table.trivia.indent.lstrip("\n")
