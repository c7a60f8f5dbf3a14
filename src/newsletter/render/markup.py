"""Markdown for intros and summaries: safe HTML for the email, plain text for the text part.

Raw HTML in Markdown is never passed through (``html=False`` shows it as text), and
markdown-it refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` links.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

__all__ = ["TEXT_WIDTH", "markdown_html", "markdown_text", "smart_quotes", "wrap"]

#: RFC 5322 recommends lines of at most 78 characters.
TEXT_WIDTH = 78

# Images are not allowed in Markdown: they would be remote, unsized and without the
# alt-text checks that item images get.
# Typographic quotes ("smartquotes" only: no other replacements), so that a story typed
# with straight quotes does not sit beside one pasted with curly ones.
_md = (
    MarkdownIt("commonmark", {"html": False, "typographer": True})
    .disable("image")
    .enable("smartquotes")
)
#: The same quotes for plain text (titles): no Markdown at all, only the text rule.
_plain = MarkdownIt("zero", {"typographer": True}).enable("smartquotes")


def markdown_html(text: str, inline: bool = False) -> Markup:
    """Render Markdown to HTML that is safe to place in a template unescaped."""
    if inline:
        return Markup(_md.renderInline(text))
    return Markup(_md.render(text))


def smart_quotes(text: str) -> str:
    """Straight quotes to typographic ones (U+201C/U+201D, U+2018/U+2019): plain text in,
    plain text out (no Markdown, no HTML)."""
    if "'" not in text and '"' not in text:
        return text
    tokens = _plain.parseInline(text)
    return "".join(child.content for token in tokens for child in token.children or [])


def _inline_text(children: Sequence[Token]) -> str:
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for token in children:
        if token.type in ("text", "code_inline", "html_inline"):
            out.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif token.type == "link_open":
            hrefs.append((str(token.attrs.get("href", "")), len(out)))
        elif token.type == "link_close" and hrefs:
            href, start = hrefs.pop()
            label = "".join(out[start:])
            if href and href != label:
                out.append(f" ({href})")
    return "".join(out)


def markdown_text(text: str) -> str:
    """Reduce Markdown to plain text: paragraphs, "- " bullets and "label (url)" links."""
    blocks: list[str] = []
    prefix: list[str] = []
    for token in _md.parse(text):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            prefix.append("- " if token.type == "bullet_list_open" else "* ")
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            prefix.pop()
        elif token.type == "inline":
            line = _inline_text(token.children or [])
            blocks.append((prefix[-1] if prefix else "") + line)
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(blocks)


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap each paragraph to ``width``; never break a URL or any other long word.

    Jinja's own ``wordwrap`` breaks on hyphens, which cuts URLs such as
    ``https://example.org/a-long-slug`` in two; this does not.
    """
    paragraphs = []
    for paragraph in text.split("\n\n"):
        bullet = paragraph.startswith(("- ", "* "))
        wrapper = textwrap.TextWrapper(
            width=width,
            initial_indent=indent,
            subsequent_indent=indent + ("  " if bullet else ""),
            break_long_words=False,
            break_on_hyphens=False,
        )
        paragraphs.append(wrapper.fill(" ".join(paragraph.split())))
    return "\n\n".join(paragraphs)
