"""WCAG 2.x contrast of text against its background, from the inlined styles of an email.

Only inline ``style`` attributes and legacy attributes (``bgcolor``, ``<font color>``) are read:
premailer has already moved the stylesheet there, and ``<style>`` blocks that remain are media
queries (dark mode, mobile) that clients apply selectively. Colours are RGBA tuples with every
component in 0..1. Background images are ignored: text over an image is judged against the
background colour behind it.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

RGBA = tuple[float, float, float, float]
WHITE: RGBA = (1.0, 1.0, 1.0, 1.0)
BLACK: RGBA = (0.0, 0.0, 0.0, 1.0)
#: What browsers (and most mail clients) give a link without a colour of its own; a link does not
#: inherit the colour of its paragraph, so "nearest ancestor colour" would hide blue-on-blue.
LINK_BLUE: RGBA = (0.0, 0.0, 0xEE / 255, 1.0)

_NAMED = {
    "black": 0x000000, "silver": 0xC0C0C0, "gray": 0x808080, "grey": 0x808080,
    "white": 0xFFFFFF, "maroon": 0x800000, "red": 0xFF0000, "purple": 0x800080,
    "fuchsia": 0xFF00FF, "magenta": 0xFF00FF, "green": 0x008000, "lime": 0x00FF00,
    "olive": 0x808000, "yellow": 0xFFFF00, "navy": 0x000080, "blue": 0x0000FF,
    "teal": 0x008080, "aqua": 0x00FFFF, "cyan": 0x00FFFF, "orange": 0xFFA500,
    "darkgray": 0xA9A9A9, "darkgrey": 0xA9A9A9, "lightgray": 0xD3D3D3, "lightgrey": 0xD3D3D3,
    "dimgray": 0x696969, "dimgrey": 0x696969, "gainsboro": 0xDCDCDC, "whitesmoke": 0xF5F5F5,
    "darkblue": 0x00008B, "darkred": 0x8B0000, "darkgreen": 0x006400, "lightblue": 0xADD8E6,
    "steelblue": 0x4682B4, "royalblue": 0x4169E1, "crimson": 0xDC143C, "tomato": 0xFF6347,
    "gold": 0xFFD700, "pink": 0xFFC0CB, "brown": 0xA52A2A, "rebeccapurple": 0x663399,
}  # fmt: skip
_FUNC = re.compile(r"(rgba?|hsla?)\(\s*([^)]*)\)", re.IGNORECASE)
_IMPORTANT = re.compile(r"\s*!\s*important\s*$", re.IGNORECASE)
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_LENGTH = re.compile(r"([0-9]*\.?[0-9]+)\s*(px|pt|em|rem|%)?$")
#: HTML's default sizes for the keywords and for <font size="1..7">, in px.
_KEYWORD_SIZES = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0,
                  "x-large": 24.0, "xx-large": 32.0, "xxx-large": 48.0}  # fmt: skip
_FONT_SIZES = (10.0, 13.0, 16.0, 18.0, 24.0, 32.0, 48.0)
_HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67}
_BOLD_TAGS = {"b", "strong", "th", *_HEADING_EM}
_SKIPPED_TAGS = {"head", "style", "script", "template", "title"}


class Element(Protocol):
    """The parts of an lxml element read here (kept structural: lxml ships no type stubs)."""

    @property
    def tag(self) -> object: ...
    @property
    def text(self) -> str | None: ...
    @property
    def tail(self) -> str | None: ...
    def get(self, key: str) -> str | None: ...
    def __iter__(self) -> Iterator[Element]: ...


def _channel(text: str, scale: float) -> float:
    """One rgb()/hsl() component: a number out of ``scale`` or a percentage, clamped to 0..1."""
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text) / scale
    return min(max(value, 0.0), 1.0)


def parse_color(value: str) -> RGBA | None:
    """A CSS colour as RGBA in 0..1, or None if it is not one (``inherit``, ``url(...)``...)."""
    text = _IMPORTANT.sub("", value).strip().lower()
    if text in _NAMED:
        n = _NAMED[text]
        return ((n >> 16) / 255, ((n >> 8) & 0xFF) / 255, (n & 0xFF) / 255, 1.0)
    if text == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) in (3, 4):
            digits = "".join(d * 2 for d in digits)
        if len(digits) not in (6, 8) or not all(d in "0123456789abcdef" for d in digits):
            return None
        rgba = [int(digits[i : i + 2], 16) / 255 for i in range(0, len(digits), 2)] + [1.0]
        return (rgba[0], rgba[1], rgba[2], rgba[3])
    match = _FUNC.fullmatch(text)
    if not match:
        return None
    name, args = match.groups()
    # Legacy syntax separates with commas; the modern one with spaces and "/ alpha".
    parts = [p for p in re.split(r"[\s,/]+", args.strip()) if p]
    if len(parts) not in (3, 4):
        return None
    try:
        alpha = _channel(parts[3], 1.0) if len(parts) == 4 else 1.0
        if name.startswith("rgb"):
            r, g, b = (_channel(p, 255.0) for p in parts[:3])
        else:
            hue = float(parts[0].removesuffix("deg")) / 360 % 1.0
            r, g, b = colorsys.hls_to_rgb(hue, _channel(parts[2], 100), _channel(parts[1], 100))
    except ValueError:
        return None
    return (r, g, b, alpha)


def parse_style(style: str) -> dict[str, str]:
    """A style attribute as {property: value}, names lower-cased, ``!important`` honoured."""
    declarations: dict[str, str] = {}
    important: set[str] = set()
    for declaration in _COMMENT.sub("", style).split(";"):
        name, colon, value = declaration.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            continue
        stripped = _IMPORTANT.sub("", value).strip()
        if stripped != value.strip():
            important.add(name)
        elif name in important:
            continue
        declarations.pop(name, None)  # so that the dict's order is the order that wins
        declarations[name] = stripped
    return declarations


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour (components 0..1; alpha, if any, is ignored)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def blend(top: Sequence[float], bottom: Sequence[float]) -> RGBA:
    """``top`` composited over ``bottom`` (source-over, in sRGB as browsers do)."""
    ta = top[3] if len(top) > 3 else 1.0
    ba = bottom[3] if len(bottom) > 3 else 1.0
    alpha = ta + ba * (1 - ta)
    if alpha == 0:
        return (0.0, 0.0, 0.0, 0.0)
    r, g, b = (
        (t * ta + c * ba * (1 - ta)) / alpha for t, c in zip(top[:3], bottom[:3], strict=True)
    )
    return (r, g, b, alpha)


def contrast_ratio(fg: Sequence[float], bg: Sequence[float]) -> float:
    """WCAG contrast ratio, 1 to 21. A translucent bg is put on white, a translucent fg on bg."""
    under = blend(bg, WHITE)
    lighter, darker = sorted(
        (relative_luminance(blend(fg, under)), relative_luminance(under)), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)


def to_hex(color: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in color[:3])


@dataclass(frozen=True)
class ContrastResult:
    text: str
    tag: str
    #: The effective colours, as hex; a translucent colour is given already blended.
    color: str
    background: str
    ratio: float
    required: float
    large: bool

    @property
    def ok(self) -> bool:
        return self.ratio >= self.required


@dataclass(frozen=True)
class _State:
    color: RGBA
    background: RGBA  # always opaque: translucent layers are blended in as the walk descends
    size: float
    bold: bool
    #: `visibility` inherits and a descendant may undo it; display:none and the like it may not.
    visible: bool
    shown: bool


def _attribute_color(value: str | None) -> RGBA | None:
    if not value:
        return None
    # HTML's legacy colour parsing accepts hex without the "#" (bgcolor="ffffff").
    return parse_color(value) or parse_color("#" + value.strip())


def _font_size(value: str, parent: float) -> float | None:
    value = value.strip().lower()
    if value in _KEYWORD_SIZES:
        return _KEYWORD_SIZES[value]
    match = _LENGTH.match(value)
    if not match:
        return None
    number, unit = float(match[1]), match[2] or "px"
    return {"px": number, "pt": number * 4 / 3, "em": number * parent, "rem": number * 16.0,
            "%": number * parent / 100}[unit]  # fmt: skip


def _hidden(style: dict[str, str], element: Element) -> bool:
    if style.get("display", "").lower() == "none" or element.get("hidden") is not None:
        return True
    opacity = style.get("opacity", "").strip()
    if opacity and _LENGTH.match(opacity) and float(opacity.rstrip("%")) == 0:
        return True
    # The preheader idiom (MJML's among others): collapsed to nothing rather than display:none.
    return style.get("max-height", "").strip() in ("0", "0px") and "hidden" in style.get(
        "overflow", ""
    )


def _step(element: Element, tag: str, parent: _State) -> _State:
    style = parse_style(element.get("style") or "")
    color = parent.color
    if tag == "a" and element.get("href") is not None:
        color = LINK_BLUE
    if tag == "font" or tag == "body":
        color = _attribute_color(element.get("color" if tag == "font" else "text")) or color
    if "color" in style:
        color = parse_color(style["color"]) or color
    layer = _attribute_color(element.get("bgcolor"))
    for name, value in style.items():
        if name == "background-color":
            layer = parse_color(value) or layer
        elif name == "background":
            # The shorthand resets the colour to transparent unless it names one.
            tokens = re.findall(r"[a-z]+\([^)]*\)|[^\s,]+", value.lower())
            layer = next((c for c in map(parse_color, tokens) if c), None)
    background = blend(layer, parent.background) if layer else parent.background
    size = parent.size
    if "font-size" in style:
        declared = _font_size(style["font-size"], parent.size)
        size = size if declared is None else declared
    elif tag in _HEADING_EM:
        size = parent.size * _HEADING_EM[tag]
    elif tag == "font" and (element.get("size") or "").strip().isdigit():
        size = _FONT_SIZES[min(max(int(element.get("size") or 3), 1), 7) - 1]
    bold = parent.bold or tag in _BOLD_TAGS
    weight = style.get("font-weight", "").strip().lower()
    if weight:
        bold = weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 700)
    visibility = style.get("visibility", "").strip().lower()
    visible = parent.visible if not visibility else visibility == "visible"
    return _State(
        color, background, size, bold, visible, parent.shown and not _hidden(style, element)
    )


def _collapse(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_contrast(root: Element) -> list[ContrastResult]:
    """One result per visible element with text of its own, in document order."""
    results: list[ContrastResult] = []

    def walk(element: Element, parent: _State) -> None:
        tag = element.tag
        if not isinstance(tag, str) or tag.lower() in _SKIPPED_TAGS:
            return  # comments, processing instructions, and what is never rendered
        tag = tag.lower()
        state = _step(element, tag, parent)
        if not state.shown:
            return
        children = list(element)
        own = " ".join(t for t in (element.text, *(c.tail for c in children)) if t and t.strip())
        # MJML sets font-size:0 on layout cells to swallow whitespace; such text is invisible.
        if own and state.visible and state.size > 0:
            fg = blend(state.color, state.background)
            large = state.size >= 24 or (state.bold and state.size >= 18.66)
            results.append(
                ContrastResult(
                    text=_collapse(own),
                    tag=tag,
                    color=to_hex(fg),
                    background=to_hex(state.background),
                    ratio=contrast_ratio(fg, state.background),
                    required=3.0 if large else 4.5,
                    large=large,
                )
            )
        for child in children:
            walk(child, state)

    walk(root, _State(BLACK, WHITE, 16.0, False, True, True))
    return results
