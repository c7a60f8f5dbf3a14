"""The ``[theme]`` colours: contrast in dark mode, which the rendered HTML cannot show.

The light colours are checked where they are used, in the rendered HTML (``contrast`` in
``html.py``), and a failure there names the ``[theme]`` keys that hold its colours. Dark
mode lives in a media query that a check cannot evaluate, so its pairs are checked here,
from the configuration, naming the key at fault.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..settings import ThemeSettings
from . import Context, Problem, check
from .contrast import contrast_ratio, parse_color, to_hex

#: (text key, background key, required ratio): what the shipped templates put on what in
#: dark mode. Headlines are large (19 px and more, bold): 3:1, as WCAG allows.
DARK_PAIRS = (
    ("dark_text", "dark_background", 4.5),
    ("dark_muted", "dark_background", 4.5),
    ("dark_accent", "dark_background", 4.5),
    ("dark_heading", "dark_background", 3.0),
    ("dark_muted", "dark_page", 4.5),
    ("dark_brand_text", "dark_brand", 4.5),
)


_BACKGROUNDS = ("background", "page", "brand")
_TEXTS = ("text", "muted", "heading", "accent", "brand_text", "rule")


def theme_keys(theme: ThemeSettings, color: str, *, background: bool = False) -> list[str]:
    """The light ``[theme]`` keys whose colour is ``color`` (hex, as the checks print it),
    the likeliest first: a background colour is looked up among backgrounds first."""
    wanted = parse_color(color)
    if wanted is None:
        return []
    order = (*_BACKGROUNDS, *_TEXTS) if background else (*_TEXTS, *_BACKGROUNDS)
    return [
        name
        for name in order
        if parse_color(getattr(theme, name))[:3] == wanted[:3]  # type: ignore[index]
    ]


@check("theme-contrast", "error", "Dark-mode [theme] colours keep text contrast at 4.5:1.")
def dark_contrast(ctx: Context) -> Iterator[Problem]:
    theme = ctx.settings.theme
    for text_key, background_key, required in DARK_PAIRS:
        text, background = getattr(theme, text_key), getattr(theme, background_key)
        fg, bg = parse_color(text), parse_color(background)
        if fg is None or bg is None:
            continue  # the settings refuse a colour that is not #rgb or #rrggbb
        ratio = contrast_ratio(fg, bg)
        if ratio < required:
            yield Problem(
                f"in dark mode, {text_key} {to_hex(fg)} on {background_key} {to_hex(bg)} has "
                f"contrast {math.floor(ratio * 100) / 100:.2f}:1, below {required}:1",
                f"[theme] {text_key}",
                f"{text} on {background}",
                f"lighten [theme] {text_key} or darken [theme] {background_key}",
            )
