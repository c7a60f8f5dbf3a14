"""Checks of the HTML part: size, markup, CSS, images and accessibility."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import lxml.etree

from ..render import GMAIL_CLIP_BYTES
from ..urls import static_file
from . import Context, Problem, check

SIZE_WARNING = 90 * 1024
_FORBIDDEN = ("script", "form", "iframe", "video", "audio", "object", "embed", "applet")
# CSS that major clients (Gmail, Outlook) drop: fatal when it carries layout.
_UNSUPPORTED_CSS = re.compile(
    r"(?<![\w-])(position\s*:\s*(?:absolute|fixed|relative|sticky)"
    r"|display\s*:\s*(?:inline-)?(?:flex|grid)|float\s*:\s*(?:left|right))",
    re.IGNORECASE,
)
_FILE_NAME_ALT = re.compile(
    r"^(?:img|image|dsc|photo|pic)?[\w-]*\.(?:png|jpe?g|gif|webp|svg|bmp)$|^(?:img|dsc)[_-]?\d+$",
    re.IGNORECASE,
)
_VAGUE_LINK = {
    "click here", "here", "click", "this", "link", "this link", "more", "go",
    "read more", "read", "more info", "learn more", "find out more", "details", "continue",
    "continue reading", "watch", "watch now", "watch the video", "listen", "view", "see more",
}  # fmt: skip
#: Above this many images, or less text per image, filters and readers lose patience.
MAX_IMAGES = 20
MIN_TEXT_PER_IMAGE = 400


def _text_of(element: lxml.etree._Element) -> str:
    return " ".join("".join(element.itertext()).split())


@check("size", "error", "The HTML stays under Gmail's 102 KB clipping limit (warning from 90 KB).")
def size(ctx: Context) -> Iterator[Problem]:
    length = len(ctx.html.encode())
    if length > GMAIL_CLIP_BYTES:
        yield Problem(
            f"email.html is {length / 1024:.1f} KB: Gmail clips it after 102 KB, hiding the "
            "footer and its unsubscribe link",
            "email.html",
            f"{length} bytes",
            "cut stories or shorten summaries",
        )
    elif length > SIZE_WARNING:
        yield Problem(
            f"email.html is {length / 1024:.1f} KB, close to Gmail's 102 KB clipping limit",
            "email.html",
            f"{length} bytes",
            "keep an eye on it; shorter summaries help",
            severity="warning",
        )


@check("html-parse", "error", "The HTML parses without errors.")
def html_parse(ctx: Context) -> Iterator[Problem]:
    parser = lxml.etree.HTMLParser(recover=True)
    lxml.etree.fromstring(ctx.html.encode(), parser)
    for error in parser.error_log:
        if error.level >= lxml.etree.ErrorLevels.ERROR:
            yield Problem(
                f"malformed HTML: {error.message}",
                f"email.html:{error.line}",
                "",
                "fix the template that produces this markup",
            )


@check("forbidden-tags", "error", "No <script>, <form>, <iframe>, <video> or <object>.")
def forbidden_tags(ctx: Context) -> Iterator[Problem]:
    for element in ctx.tree.iter(*_FORBIDDEN):
        yield Problem(
            f"<{element.tag}> is stripped or blocked by mail clients and flagged by spam filters",
            f"email.html:{element.sourceline}",
            f"<{element.tag}>",
            "remove it; link to a web page instead",
        )


@check(
    "css-support",
    "warning",
    "No layout CSS that major clients drop (position, flex, grid, float, external stylesheets).",
)
def css_support(ctx: Context) -> Iterator[Problem]:
    for element in ctx.tree.iter("link"):
        if "stylesheet" in (element.get("rel") or "").lower():
            yield Problem(
                "an external stylesheet: mail clients do not load it",
                f"email.html:{element.sourceline}",
                element.get("href", ""),
                "put the CSS in the template's <mj-style>",
                severity="error",
            )
    seen: set[str] = set()
    for element in ctx.tree.iter():
        style = element.get("style") if isinstance(element.tag, str) else None
        for match in _UNSUPPORTED_CSS.finditer(style or ""):
            declaration = re.sub(r"\s+", "", match[0].lower())
            if declaration not in seen:
                seen.add(declaration)
                yield Problem(
                    f"`{declaration}` is ignored by Gmail or Outlook; layout built on it breaks",
                    f"email.html:{element.sourceline}",
                    declaration,
                    "use MJML sections and columns for layout",
                )


@check("media-queries", "error", "The mobile media queries survive CSS inlining.")
def media_queries(ctx: Context) -> Iterator[Problem]:
    styles = " ".join(_text_of(s) for s in ctx.tree.iter("style"))
    if uses_columns(ctx) and not re.search(r"@media[^{]*min-width[^{]*\{[^}]*!important", styles):
        yield Problem(
            "the responsive @media rules (with !important) are missing after inlining: "
            "columns will not stack on phones",
            "email.html <head>",
            "",
            "keep premailer's strip_important=False and the <style> blocks",
        )


def uses_columns(ctx: Context) -> bool:
    return 'class="mj-column' in ctx.html or "mj-column-per" in ctx.html


@check("image-alt", "error", "Every image has alt text that is not a file name.")
def image_alt(ctx: Context) -> Iterator[Problem]:
    for img in ctx.tree.iter("img"):
        src, alt = img.get("src", ""), (img.get("alt") or "").strip()
        where = ctx.where_url(src)
        if not alt:
            yield Problem(
                "the image has no alt text: screen readers and image-blocking clients show nothing",
                where,
                src,
                "describe the picture in the image's `alt`",
            )
        elif _FILE_NAME_ALT.match(alt) or alt == PurePosixPath(urlsplit(src).path).name:
            yield Problem(
                "the alt text is a file name",
                where,
                alt,
                "describe what the picture shows",
            )


@check("image-width", "warning", "Every image has a width attribute (Outlook needs it).")
def image_width(ctx: Context) -> Iterator[Problem]:
    for img in ctx.tree.iter("img"):
        if not (img.get("width") or "").strip():
            src = img.get("src", "")
            yield Problem(
                "no width attribute: Outlook shows the image at its full size",
                ctx.where_url(src),
                src,
                "give the image a `width` in the issue file",
            )


@check("image-fit", "error", "No image is wider than the column that holds it.")
def image_fit(ctx: Context) -> Iterator[Problem]:
    body = _body_width(ctx.tree)
    for img in ctx.tree.iter("img"):
        try:
            width = int((img.get("width") or "").strip())
        except ValueError:
            continue  # image-width reports a missing width
        box = _content_width(img, body)
        if box is not None and width > box:
            src = img.get("src", "")
            yield Problem(
                f"the image is {width} px wide in a {box} px column: Outlook keeps the "
                "width and widens the whole email",
                ctx.where_url(src),
                src,
                f"give it `width = {box}` or less (the theme caps the widths it knows)",
            )


_COLUMN_PER = re.compile(r"\bmj-column-per-(\d+(?:-\d+)?)\b")
_COLUMN_PX = re.compile(r"\bmj-column-px-(\d+)\b")
_MAX_WIDTH = re.compile(r"max-width:\s*(\d+)px")


def _body_width(tree: lxml.etree._Element) -> int:
    """The email's width: MJML's outer wrappers say max-width:600px (mj-body width)."""
    for div in tree.iter("div"):
        found = _MAX_WIDTH.search(div.get("style", ""))
        if found:
            return int(found[1])
    return 600


def _padding_x(style: str) -> int:
    """Left plus right padding in px from a style attribute (shorthand and longhands)."""
    left = right = 0
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        name, values = name.strip().lower(), [v.strip() for v in value.split()]
        px = [int(float(v[:-2])) if v.endswith("px") else 0 for v in values]
        if name == "padding" and px:
            # CSS shorthand: 1 to 4 values, top right bottom left.
            right = px[1] if len(px) > 1 else px[0]
            left = px[3] if len(px) > 3 else right
        elif name == "padding-left" and px:
            left = px[0]
        elif name == "padding-right" and px:
            right = px[0]
    return left + right


def _content_width(img: lxml.etree._Element, body: int) -> int | None:
    """The width of the box an MJML image sits in: its column (a share of the body, or
    pixels), less the padding of the cell that holds the image. None outside MJML's
    column structure (a hand-written template): nothing to compare with."""
    padded: int | None = None
    for ancestor in img.iterancestors():
        if ancestor.tag == "td" and padded is None and "padding" in ancestor.get("style", ""):
            padded = _padding_x(ancestor.get("style", ""))
        css_class = ancestor.get("class", "")
        per, px = _COLUMN_PER.search(css_class), _COLUMN_PX.search(css_class)
        if per:
            return int(body * float(per[1].replace("-", ".")) / 100) - (padded or 0)
        if px:
            return int(px[1]) - (padded or 0)
    return None


@check("image-missing", "error", "Every image served from base_url exists in static_dir.")
def image_missing(ctx: Context) -> Iterator[Problem]:
    base = ctx.settings.newsletter.base_url
    static = ctx.settings.static_dir.resolve()
    for item in ctx.issue.items():
        if not item.image:
            continue
        url = item.image.url
        path = static_file(base, static, url)
        if path is None:
            continue  # hosted elsewhere: for `check --links`
        if not path.is_relative_to(static):
            problem = f"{url!r} points outside {static}, so no file there can serve it"
        elif not _is_file(path):
            problem = f"no such file {path}: every recipient would see a broken image"
        else:
            continue
        yield Problem(
            problem,
            ctx.where(item),
            url,
            f"put the picture under {static} and give its path there, e.g. images/photo.png",
        )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False


@check("image-text", "warning", "No image the issue marks as containing text.")
def image_text(ctx: Context) -> Iterator[Problem]:
    for item in ctx.issue.items():
        if item.image and item.image.contains_text:
            yield Problem(
                "an image of text: unreadable with images off, in dark mode and to screen readers",
                ctx.where(item),
                item.image.url,
                "put the words in the HTML and keep the image decorative",
            )


@check("image-count", "info", "The number of images and the text-to-image balance.")
def image_count(ctx: Context) -> Iterator[Problem]:
    images = len(list(ctx.tree.iter("img")))
    words = len(_text_of(ctx.tree.find("body")).split()) if ctx.tree.find("body") is not None else 0
    chars = len(_text_of(ctx.tree.find("body"))) if ctx.tree.find("body") is not None else 0
    if images > MAX_IMAGES or (images and chars / images < MIN_TEXT_PER_IMAGE):
        yield Problem(
            f"{images} images for {words} words: image-heavy mail is filtered more often and "
            "reads badly with images off",
            "email.html",
            f"{images} images",
            "use fewer images or more text",
            severity="warning",
        )
    else:
        yield Problem(f"{images} images, {words} words of text", "email.html", "", "")


@check("lang-and-title", "error", "The HTML has a lang attribute and a <title>.")
def lang_and_title(ctx: Context) -> Iterator[Problem]:
    root = ctx.tree
    if not (root.get("lang") or "").strip():
        yield Problem(
            "<html> has no lang attribute: screen readers guess the language",
            "email.html",
            "",
            "set [newsletter] language",
        )
    title = root.find(".//title")
    if title is None or not _text_of(title):
        yield Problem(
            "the HTML has no <title>", "email.html", "", "keep <mj-title> in the template"
        )


@check("heading-order", "warning", "Headings go down one level at a time (h1, h2, h3).")
def heading_order(ctx: Context) -> Iterator[Problem]:
    previous = 0
    for element in ctx.tree.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        level = int(element.tag[1])
        if level > previous + 1:
            yield Problem(
                f"<h{level}> follows <h{previous or 'nothing'}>: "
                "screen reader users navigate by level",
                f"email.html:{element.sourceline}",
                _text_of(element)[:60],
                "use the next heading level in the template",
            )
        previous = level


@check("link-text", "warning", "No link whose whole text is 'click here', 'read more' or similar.")
def link_text(ctx: Context) -> Iterator[Problem]:
    for a in ctx.tree.iter("a"):
        text = _text_of(a).strip(" →»>").lower()
        if text in _VAGUE_LINK:
            href = a.get("href", "")
            yield Problem(
                f"the link text {text!r} says nothing out of context",
                ctx.where_url(href),
                href,
                "use words that say where the link goes",
            )


@check(
    "contrast",
    "error",
    "Text contrast against its background is at least 4.5:1 (3:1 for large text).",
)
def contrast(ctx: Context) -> Iterator[Problem]:
    from .contrast import text_contrast
    from .palette import theme_keys

    theme = ctx.settings.theme
    seen: set[tuple[str, str]] = set()
    for result in text_contrast(ctx.tree):
        if not result.ok:
            # One problem per pair of colours: a bad palette fails on every story at once.
            pair = (result.color, result.background)
            if pair in seen:
                continue
            seen.add(pair)
            fg = theme_keys(theme, result.color)
            bg = theme_keys(theme, result.background, background=True)
            fix = "darken the text or lighten the background in the template"
            if fg or bg:
                keys = " or ".join(f"[theme] {key}" for key in (*fg[:1], *bg[:1]))
                fix = f"change {keys} in config.toml"
            yield Problem(
                # Rounded down: 4.497 must not print as the 4.50 it fails to reach.
                f"contrast {math.floor(result.ratio * 100) / 100:.2f}:1 "
                f"({result.color} on {result.background}), "
                f"below {result.required}:1",
                f"email.html <{result.tag}>" + (f", [theme] {(fg or bg)[0]}" if fg or bg else ""),
                result.text,
                fix,
            )
