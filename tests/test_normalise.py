"""The shared rules: one answer to "same URL?", "same headline?", "a date?", "a web address?"."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.normalise import (
    MONTHS,
    DateMatch,
    canonical_url,
    clip,
    find_date,
    is_tracking,
    is_web_url,
    normalise_title,
    parse_date,
    web_url,
)

SRC = Path(__file__).parents[1] / "src" / "newsletter"


def test_canonical_url_drops_what_does_not_name_the_page() -> None:
    assert (
        canonical_url("HTTPS://News.Example.ORG:443/a/b?utm_source=x&id=3&fbclid=y#top")
        == "https://news.example.org/a/b?id=3"
    )
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x") == "http://example.org:8080/x"


@pytest.mark.parametrize(
    ("name", "tracking"),
    [("utm_source", True), ("UTM_Campaign", True), ("fbclid", True), ("mc_eid", True),
     ("id", False), ("utm", False), ("page", False)],
)  # fmt: skip
def test_is_tracking(name: str, tracking: bool) -> None:
    assert is_tracking(name) is tracking


@pytest.mark.parametrize(
    ("value", "web"),
    [
        ("https://example.org/a", True),
        ("HTTP://EXAMPLE.ORG", True),
        ("http://x:abc/feed", True),  # a host is there; fetching it is another matter
        ("www.example.org/x", False),
        ("https:///path", False),
        ("ftp://example.org/x", False),
        ("javascript:alert(1)", False),
        ("https://example.org/a b", False),
        ("", False),
    ],
)
def test_is_web_url_is_the_models_rule(value: str, web: bool) -> None:
    from pydantic import ValidationError

    from newsletter.models import Item

    assert is_web_url(value) is web
    # The predicate and the model (which build enforces) agree.
    if value:
        try:
            Item(title="A story", url=value)
        except ValidationError:
            accepted = False
        else:
            accepted = True
        assert accepted is web


def test_web_url_resolves_like_a_browser() -> None:
    assert web_url("/a", "https://example.org/news/") == "https://example.org/a"
    assert web_url("b.html", "https://example.org/news/") == "https://example.org/news/b.html"
    assert web_url("https://other.example/x", "") == "https://other.example/x"
    # A browser encodes a space and drops line breaks inside an href.
    assert web_url(" a b.html ", "https://example.org/") == "https://example.org/a%20b.html"
    assert web_url("/a\n/b", "https://example.org/") == "https://example.org/a/b"
    for bad in (None, "", "  ", "data:image/gif;base64,R0l", "javascript:x()", "mailto:a@b"):
        assert web_url(bad, "https://example.org/") is None
    assert web_url("relative.html", "") is None  # nothing to resolve it against
    assert web_url("http://[::1", "") is None  # a broken link, not a crash


def test_titles_fold_case_accents_punctuation_and_spacing() -> None:
    assert normalise_title("Café society") == "cafe society"
    assert normalise_title("CAFÉ  SOCIETY!") == normalise_title("Cafe society")
    assert (
        normalise_title("NATO\u2019s summit") == normalise_title("NATO's summit") == "nato s summit"
    )
    assert normalise_title("Straße") == "strasse"
    assert normalise_title("\ufb01nal \u2013 word") == "final word"  # ligature, en dash


def test_clip_cuts_at_a_word_boundary() -> None:
    assert clip("short", 10) == "short"
    assert clip("one two three four", 12) == "one two…"
    assert clip("one two, three", 10) == "one two…"  # no dangling comma
    assert clip("x" * 20, 10) == "x" * 9 + "…"
    assert len(clip("word " * 100, 150)) <= 150


def test_one_month_table() -> None:
    assert len(MONTHS) == 12 and MONTHS[0] == "January" and MONTHS[11] == "December"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07 Dec. 2022", dt.date(2022, 12, 7)),
        ("December 7, 2022", dt.date(2022, 12, 7)),
        ("Sept. 30, 2022", dt.date(2022, 9, 30)),
        ("Wednesday, 7th December 2022", dt.date(2022, 12, 7)),
        ("2022-12-07", dt.date(2022, 12, 7)),
        ("2022-12-07T09:30:00Z", dt.date(2022, 12, 7)),
        ("2022-12-07T23:30:00-05:00", dt.date(2022, 12, 7)),  # the day as written
        ("07.12.2022", dt.date(2022, 12, 7)),
        ("on Thursday (22 June 2023)", dt.date(2023, 6, 22)),
        ("12/07/2022", None),  # ambiguous: day or month first
        ("Mayday 3 2022", None),
        ("yesterday", None),
    ],
)
def test_parse_date_reads_the_same_formats_in_both_modes(
    text: str, expected: dt.date | None
) -> None:
    assert parse_date(text) == expected
    assert parse_date(text, strict=True) == expected


def test_the_first_date_in_the_text_wins() -> None:
    assert parse_date("7 December 2022, updated 2022-12-08") == dt.date(2022, 12, 7)
    assert parse_date("2022-12-08, first published 7 December 2022") == dt.date(2022, 12, 8)


def test_strict_mode_reports_impossible_dates_and_wants_real_month_names() -> None:
    # Copied text: an impossible date is named, not passed over for a later one.
    assert find_date("31 February 2024, then 2 March 2024", strict=True) == DateMatch(
        "31 February 2024", None
    )
    assert find_date("31 February 2024, then 2 March 2024") == DateMatch(
        "2 March 2024", dt.date(2024, 3, 2)
    )
    # Listing pages abbreviate month names freely; prose spells them out.
    assert parse_date("7 Decem. 2022") == dt.date(2022, 12, 7)
    assert parse_date("7 Decem. 2022", strict=True) is None
    assert find_date("Published 2022-12-07T09:30:00Z", strict=True) == DateMatch(
        "2022-12-07", dt.date(2022, 12, 7)
    )


def test_normalise_imports_only_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse((SRC / "normalise.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "normalise imports nothing of the package"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_checks_stand_on_the_shared_rules_not_on_collect_draft_or_send() -> None:
    code = (
        "import sys, newsletter.checks; newsletter.checks._load_check_modules(); "
        "print(' '.join(m for m in sys.modules "
        "if m.startswith(('newsletter.collect', 'newsletter.draft', 'newsletter.library',"
        " 'newsletter.send', 'newsletter.ledger'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
