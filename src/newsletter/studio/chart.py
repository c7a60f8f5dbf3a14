"""The list's growth as an inline SVG chart, drawn on the server: no JavaScript library.

One bar per ISO week: new subscribers above the zero line, unsubscribes below it, on one
scale, so a bad week shows as a long bar downwards. The chart is an image to assistive
technology (``role="img"``), named by its ``<title>``; its ``<desc>`` reads out every
week's figures, and a text legend gives the totals. Each bar has its own ``<title>``,
which browsers show on hover.

The markup is embedded into pages with ``|safe``: every piece of text in it is XML-escaped
here (and stripped of the characters XML cannot hold), and numbers are formatted from ints.
It has no ``style`` attribute (the studio's CSP, ``style-src 'self'``, would refuse it):
presentation attributes only, and ``class="growth-chart"`` for the stylesheet to make it
shrink on a phone (``max-width: 100%; height: auto``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NEW_COLOUR", "UNSUBSCRIBED_COLOUR", "growth_svg"]

#: The bars' colours: each has a contrast of at least 4.5:1 against a white page.
NEW_COLOUR = "#1b6e34"
UNSUBSCRIBED_COLOUR = "#b3261e"
_TEXT = "#333333"
_AXIS = "#8a8a8a"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'

# Everything XML 1.0 cannot hold, even escaped: C0 controls but tab and line breaks, lone
# surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: object) -> str:
    """``value`` as XML character data or an attribute value (double-quoted)."""
    return html.escape(_NOT_XML.sub("", str(value)), quote=True)


def _id(prefix: str) -> str:
    """An id prefix reduced to letters, digits, ``-`` and ``_`` (never empty)."""
    return re.sub(r"[^A-Za-z0-9_-]", "", prefix) or "growth"


def _n(value: float) -> str:
    """A coordinate: one decimal, no trailing ``.0``."""
    return f"{value:.1f}".removesuffix(".0")


def _open(width: int, height: int, prefix: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{prefix}-title {prefix}-desc" class="growth-chart">',
        f'<title id="{prefix}-title">{_text(title)}</title>',
        f'<desc id="{prefix}-desc">{_text(desc)}</desc>',
    ]


@dataclass(frozen=True)
class _Plot:
    """Where things go: the plot area between the y labels, the legend and the week labels."""

    width: int
    height: int
    weeks: list[tuple[str, int, int]]
    left: float = 44.0
    top: float = 36.0

    @property
    def right(self) -> float:
        return self.width - 8.0

    @property
    def bottom(self) -> float:
        return self.height - 22.0

    @property
    def up(self) -> int:
        """The most new subscribers in one week."""
        return max(new for _, new, _ in self.weeks)

    @property
    def down(self) -> int:
        """The most unsubscribes in one week."""
        return max(left for _, _, left in self.weeks)

    @property
    def scale(self) -> float:
        """Pixels per subscriber: the largest week up and the largest down fill the height."""
        span = self.up + self.down
        return (self.bottom - self.top) / span if span else 0.0

    @property
    def zero(self) -> float:
        return self.top + self.up * self.scale if self.up + self.down else self.bottom

    @property
    def slot(self) -> float:
        return (self.right - self.left) / len(self.weeks)

    def middle(self, index: int) -> float:
        return self.left + self.slot * (index + 0.5)


def growth_svg(
    rows: Sequence[tuple[str, int, int]],
    width: int = 640,
    height: int = 200,
    *,
    title: str = "List growth per week",
    mark: str | None = None,
    mark_label: str = "sent",
    id_prefix: str = "growth",
) -> str:
    """An SVG chart of ``rows``: (week label, new subscribers, unsubscribes), oldest first,
    as :func:`newsletter.subscribers.growth_by_week` returns them.

    ``mark`` names a week to flag with a dashed line and ``mark_label`` (the week an issue
    went out, on its report page). ``id_prefix`` keeps the ``<title>``/``<desc>`` ids
    unique when a page holds two charts. No rows: a one-line "No data yet" image.
    """
    width, height = max(int(width), 240), max(int(height), 100)
    prefix = _id(id_prefix)
    weeks = [(str(week), max(int(new), 0), max(int(left), 0)) for week, new, left in rows]
    if not weeks:
        return "".join(
            [
                *_open(width, 32, prefix, title, "No data yet."),
                f'<text x="0" y="20" fill="{_TEXT}" {_FONT}>No data yet</text>',
                "</svg>",
            ]
        )
    plot = _Plot(width, height, weeks)
    total_new = sum(new for _, new, _ in weeks)
    total_left = sum(left for _, _, left in weeks)
    figures = "; ".join(f"{week}: {new:,} new, {left:,} unsubscribed" for week, new, left in weeks)
    desc = (
        f"New subscribers (bars up) and unsubscribes (bars down) per week, from "
        f"{weeks[0][0]} to {weeks[-1][0]}. {figures}. Totals: {total_new:,} new, "
        f"{total_left:,} unsubscribed."
    )
    marked = [index for index, (week, _, _) in enumerate(weeks) if week == mark]
    return "".join(
        [
            *_open(width, height, prefix, title, desc),
            f'<g {_FONT} fill="{_TEXT}">',
            *_legend(plot, total_new, total_left),
            *_labels(plot),
            "</g>",
            *_bars(plot),
            *(_mark(plot, marked[0], mark_label) if marked else []),
            "</svg>",
        ]
    )


def _legend(plot: _Plot, total_new: int, total_left: int) -> list[str]:
    """What each colour means, as text, with the totals."""
    out = []
    x = plot.left
    for colour, label in (
        (NEW_COLOUR, f"New subscribers ({total_new:,})"),
        (UNSUBSCRIBED_COLOUR, f"Unsubscribes ({total_left:,})"),
    ):
        out.append(f'<rect x="{_n(x)}" y="5" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{_n(x + 14)}" y="14">{_text(label)}</text>')
        x += 170
    return out


def _labels(plot: _Plot) -> list[str]:
    """The y axis (the largest week each way, and zero) and as many week labels as fit
    under the plot (one per 64 px at most), the last week's always."""
    x = _n(plot.left - 4)
    out = [f'<text x="{x}" y="{_n(plot.zero + 4)}" text-anchor="end">0</text>']
    if plot.up:
        out.append(f'<text x="{x}" y="{_n(plot.top + 8)}" text-anchor="end">+{plot.up:,}</text>')
    if plot.down:
        out.append(
            f'<text x="{x}" y="{_n(plot.bottom)}" text-anchor="end">\u2212{plot.down:,}</text>'
        )
    last = len(plot.weeks) - 1
    every = max(1, math.ceil(len(plot.weeks) / max(1, int((plot.right - plot.left) // 64))))
    labelled = list(range(0, len(plot.weeks), every))
    if labelled[-1] != last:
        if len(labelled) > 1:
            labelled.pop()  # it would overlap the last week's label
        labelled.append(last)
    for index in labelled:
        # The last label ends at the plot's edge, so a long one is never cut off.
        where, anchor = _n(plot.middle(index)), "middle"
        if index == last and last:
            where, anchor = _n(plot.right), "end"
        out.append(
            f'<text x="{where}" y="{_n(plot.height - 6)}" text-anchor="{anchor}">'
            f"{_text(plot.weeks[index][0])}</text>"
        )
    return out


def _bars(plot: _Plot) -> list[str]:
    """A bar up and a bar down per week, each with its own title (a tooltip); then the
    zero line over them."""
    out = []
    bar = max(plot.slot * 0.7, 1.0)
    for index, (week, new, left) in enumerate(plot.weeks):
        x = _n(plot.middle(index) - bar / 2)
        label = _text(f"{week}: {new:,} new, {left:,} unsubscribed")
        for count, y, colour in (
            (new, plot.zero - new * plot.scale, NEW_COLOUR),
            (left, plot.zero, UNSUBSCRIBED_COLOUR),
        ):
            if count:
                box = f'x="{x}" y="{_n(y)}" width="{_n(bar)}" height="{_n(count * plot.scale)}"'
                out.append(f'<rect {box} fill="{colour}"><title>{label}</title></rect>')
    zero = _n(plot.zero)
    out.append(
        f'<line x1="{_n(plot.left)}" y1="{zero}" x2="{_n(plot.right)}" y2="{zero}" '
        f'stroke="{_AXIS}" stroke-width="1"/>'
    )
    return out


def _mark(plot: _Plot, index: int, label: str) -> list[str]:
    """A dashed line through one week's slot, labelled."""
    x = _n(plot.middle(index))
    return [
        f'<line x1="{x}" y1="{_n(plot.top - 5)}" x2="{x}" y2="{_n(plot.bottom)}" '
        f'stroke="{_TEXT}" stroke-width="1" stroke-dasharray="3 3"/>',
        # Above the plot, between the legend and the tallest bar.
        f'<text x="{x}" y="{_n(plot.top - 7)}" text-anchor="middle" fill="{_TEXT}" {_FONT}>'
        f"{_text(label)}</text>",
    ]
