"""Shared rules: when two URLs or two headlines are the same, what a date or a web address is.

Collect, the library, draft and the checks all decide "is this the same story?", so they
must decide it the same way; each rule is written here once. Only the standard library is
imported, so that any stage (and the CLI) can use it for free.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

__all__ = [
    "MONTHS",
    "DateMatch",
    "canonical_url",
    "clean_text",
    "clip",
    "find_date",
    "is_tracking",
    "is_web_url",
    "normalise_title",
    "parse_date",
    "web_url",
]

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# --- URLs ---------------------------------------------------------------------------------

# Query parameters that only say where a click came from.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|mkt_tok|igshid|ref_src)$",
    re.IGNORECASE,
)
# The model's rule for a story or image address, which build enforces.
_WEB = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)
_SPACE = re.compile(r"\s")


def is_tracking(name: str) -> bool:
    """Whether a query parameter only says where a click came from."""
    return bool(_TRACKING.match(name))


def is_web_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) address with a host and no whitespace."""
    return bool(_WEB.match(value)) and not _SPACE.search(value)


def web_url(url: str | None, base: str = "") -> str | None:
    """``url`` made absolute against ``base``, or None when the result is no web address.

    Like a browser following the link: tabs and line breaks inside it are dropped and
    spaces encoded, so ``a b.html`` still leads to the page, and ``data:`` or
    ``javascript:`` never counts.
    """
    if not url or not url.strip():
        return None
    cleaned = re.sub(r"[\t\r\n]", "", url.strip()).replace(" ", "%20")
    # Any other control character is percent-encoded, as a browser would send it.
    cleaned = _CONTROL.sub(lambda m: quote(m.group(), safe=""), cleaned)
    try:
        absolute = urljoin(base, cleaned)
        host = urlsplit(absolute).netloc
    except ValueError:  # "http://[::1": a broken link, not a broken source
        return None
    return absolute if host and is_web_url(absolute) else None


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no default port."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port and not (
        (parts.scheme == "http" and parts.port == 80)
        or (parts.scheme == "https" and parts.port == 443)
    ):
        host = f"{host}:{parts.port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k)]
    )
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", query, ""))


# --- Titles and text ----------------------------------------------------------------------


def normalise_title(title: str) -> str:
    """A headline for comparison: case, accents, punctuation and spacing do not count.

    "Café society!" and "CAFE  SOCIETY" are one headline. The library stores this form
    (``items.norm_title``), so changing the rule would split stories already collected.
    """
    text = unicodedata.normalize("NFKD", title).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


# C0 and C1 controls, DEL, lone surrogates (not text: they cannot even be encoded) and the
# Unicode line and paragraph separators. They break TOML, headers and terminals.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# The ones that separate words or lines: a space (or a line break where lines may be kept).
_BREAKS = re.compile("\r\n?|[\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def clean_text(text: str, *, lines: bool = False) -> str:
    """``text`` without control characters, for every field collected from a source.

    Tabs and line breaks (CR, LF, U+0085, U+2028, U+2029...) become a space, or a line break
    when ``lines`` (a summary's paragraphs); every other control character is dropped.
    """
    text = _BREAKS.sub("\n" if lines else " ", text)
    keep = "\n\t" if lines else ""
    if not lines:
        text = text.replace("\t", " ")
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else "", text).strip()


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marked with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-\u2013\u2014") + "…"


# --- Dates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateMatch:
    """A date-shaped string found in a text."""

    #: The characters that matched, e.g. "7 December 2022".
    text: str
    #: None when it only looks like a date ("31 February 2024").
    value: dt.date | None


def _month_pattern(words: set[str]) -> str:
    # Longest first, so "September" is matched whole rather than by backtracking from "sep".
    return "|".join(sorted(words, key=len, reverse=True))


# Listing pages abbreviate freely ("Sept.", "Decem."): any prefix of three letters or more.
_MONTH_NUMBER = {m.lower()[:n]: number for number, m in enumerate(MONTHS, 1)
                 for n in range(3, len(m) + 1)}  # fmt: skip
# Prose is read strictly: "Marc 5, 2024" names a person, not March.
_STRICT_WORDS = {m.lower() for m in MONTHS} | {m[:3].lower() for m in MONTHS} | {"sept"}


def _date_patterns(month: str) -> tuple[re.Pattern[str], ...]:
    day, year = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?", r"(?P<y>\d{4})"
    return (
        # Digit lookarounds, not \b: "2022-12-07T09:30:00Z" has no word boundary after the day.
        re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?!\d)"),
        re.compile(rf"\b{day}\.?\s+(?P<m>{month})\.?,?\s+{year}\b", re.IGNORECASE),
        re.compile(rf"\b(?P<m>{month})\.?\s+{day},?\s+{year}\b", re.IGNORECASE),
        # Day first. Slashed dates are never read: 07/12/2022 is July in one country and
        # December in another.
        re.compile(r"(?<!\d)(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?!\d)"),
    )


_STRICT = _date_patterns(_month_pattern(_STRICT_WORDS))
_LENIENT = _date_patterns(_month_pattern(set(_MONTH_NUMBER)))


def _value(match: re.Match[str]) -> dt.date | None:
    month = match["m"]
    number = int(month) if month.isdigit() else _MONTH_NUMBER[month.lower()]
    try:
        return dt.date(int(match["y"]), number, int(match["d"]))
    except ValueError:
        return None


def find_date(text: str, *, strict: bool = False) -> DateMatch | None:
    """The first date in ``text``: "7 December 2022", "Dec. 7, 2022", "2022-12-07"
    (also as the start of an ISO timestamp) or "07.12.2022"; None when there is none.

    ``strict`` is for copied text, where every line is prose: month names must be whole
    or their usual abbreviation, and the first date-shaped string counts even when it is
    not a real date (its ``value`` is then None, for the caller to report). Otherwise an
    impossible date is passed over for the next real one.
    """
    matches = sorted(
        (m for pattern in (_STRICT if strict else _LENIENT) for m in pattern.finditer(text)),
        key=lambda m: m.start(),
    )
    for match in matches:
        value = _value(match)
        if value is not None or strict:
            return DateMatch(match[0], value)
    return None


def parse_date(text: str, *, strict: bool = False) -> dt.date | None:
    """The value of :func:`find_date`: the first real date in ``text``, or None."""
    found = find_date(text, strict=strict)
    return found.value if found else None
