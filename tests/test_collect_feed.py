"""Source type feed: RSS, Atom and JSON Feed fixtures, hostile HTML, broken and non-feeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from newsletter.collect.base import Candidate, Parsed, html_to_text, summary_text
from newsletter.collect.feed import parse_feed
from newsletter.normalise import clip

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
UTC = dt.UTC


def parse(name: str, base_url: str = "") -> Parsed:
    return parse_feed((FEEDS / name).read_bytes(), base_url)


def by_title(parsed: Parsed) -> dict[str, Candidate]:
    return {item.title: item for item in parsed.items}


def assert_no_markup(parsed: Parsed) -> None:
    """Nothing from the hostile markup survives anywhere in the text fields."""
    for item in parsed.items:
        for text in (item.title, item.summary, item.author, item.image_alt):
            for bad in ("<", ">", "script", "alert", "onclick", "javascript", "evil", "steal"):
                assert bad not in text.lower(), (bad, text)


def test_rss2() -> None:
    parsed = parse("rss2.xml", "https://example.org/feeds/news.xml")
    assert [i.title for i in parsed.items] == [
        "Allies agree new support package",
        "Watch: the exercise in 90 seconds",
        "Link that is not a web page",
        "A long read",
    ]
    assert_no_markup(parsed)
    items = by_title(parsed)

    lead = items["Allies agree new support package"]
    assert lead.url == "https://example.org/news/2022/12/support-package.html"
    # Block tags become spaces; entities are unescaped; the script's content is gone.
    assert lead.summary == "Ministers agreed on a package & more. Second paragraph here."
    # 00:30 in Brussels on the 7th is the 7th, although it is still the 6th in UTC.
    assert lead.published == dt.date(2022, 12, 7)
    assert lead.published_at == dt.datetime(2022, 12, 6, 23, 30, tzinfo=UTC)
    assert lead.updated is None
    assert lead.author == "Jane Doe"
    assert lead.image_url == "https://example.org/images/support.jpg"
    assert lead.image_alt == lead.title
    assert lead.kind == ""

    video = items["Watch: the exercise in 90 seconds"]
    # Relative to the feed's own URL, as a browser would resolve it.
    assert video.url == "https://example.org/feeds/videos/exercise.html"
    assert video.summary == "A short film."
    assert video.kind == "video"
    assert video.published is None and video.published_at is None
    assert video.image_url is None  # a video enclosure is not an image

    assert items["Link that is not a web page"].url is None
    long_read = items["A long read"].summary
    assert len(long_read) <= 600 and long_read.endswith("…")
    assert long_read[:-1] == long_read[:-1].rstrip()  # cut between words

    assert parsed.problems == [
        "entry 3: no title: skipped",
        "entry 4 ('Link that is not a web page'): no usable http(s) link: kept without a URL",
    ]


def test_atom() -> None:
    # No base URL given: the feed's xml:base resolves the relative links.
    parsed = parse("atom.xml")
    assert_no_markup(parsed)
    assert parsed.problems == []
    cyber, updated_only, video = parsed.items

    assert cyber.title == "Cyber exercise concludes"
    assert cyber.url == "https://example.com/blog/posts/cyber-exercise"
    assert cyber.summary == "Teams defended networks."
    assert cyber.published == dt.date(2022, 12, 7)
    assert cyber.published_at == dt.datetime(2022, 12, 7, 8, 0, tzinfo=UTC)
    assert cyber.updated == dt.datetime(2022, 12, 8, 12, 0, tzinfo=UTC)
    assert cyber.author == "Sam Writer"
    assert cyber.image_url == "https://example.com/blog/images/cyber.jpg"
    assert cyber.image_alt == "Cyber exercise concludes"

    # Atom's only mandatory date is <updated>: it stands in for the missing <published>.
    assert updated_only.url == "https://example.com/blog/posts/updated-only"
    assert updated_only.summary == "Content only."
    assert updated_only.published == dt.date(2022, 12, 6)
    assert updated_only.updated == dt.datetime(2022, 12, 7, 4, 30, tzinfo=UTC)
    # `newsletter items` says which of the two dated each entry.
    assert [i.dated_by for i in parsed.items] == ["feed date", "feed updated", ""]

    assert video.kind == "video"
    assert video.published is None and video.updated is None


def test_json_feed() -> None:
    parsed = parse("jsonfeed.json")
    assert_no_markup(parsed)
    assert parsed.problems == ["entry 3: no title: skipped"]
    alpha, beta, gamma = parsed.items

    assert alpha.title == "Alpha launch"
    assert alpha.url == "https://example.net/posts/alpha"  # relative to feed_url
    assert alpha.summary == "We launched & celebrated."
    assert alpha.published == dt.date(2022, 12, 7)
    assert alpha.updated == dt.datetime(2022, 12, 7, 14, 0, tzinfo=UTC)
    assert alpha.author == "Ana Author"
    assert (alpha.image_url, alpha.image_alt) == ("https://example.net/img/alpha.png", alpha.title)

    assert beta.url == "https://video.example.net/watch/beta"  # external_url
    assert beta.kind == "video"
    assert beta.published is None

    assert gamma.summary == "Plain enough"
    assert gamma.published == dt.date(2022, 12, 5)  # date_modified stands in
    assert [i.dated_by for i in parsed.items] == ["feed date", "", "feed updated"]


def test_json_feed_base_url_wins_over_feed_url() -> None:
    parsed = parse("jsonfeed.json", "https://mirror.example.org/feed.json")
    assert parsed.items[0].url == "https://mirror.example.org/posts/alpha"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"hello": "world"}', "the response is JSON but not a JSON Feed: nothing imported"),
        (b"{not json", "the response is not valid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
    ],
)
def test_json_that_is_not_a_usable_feed(content: bytes, error: str) -> None:
    # Unreadable input is an error (the source failed), not a problem line.
    parsed = parse_feed(content, "https://example.org/feed.json")
    assert parsed.items == [] and parsed.problems == []
    assert error in parsed.error and "\n" not in parsed.error


def test_a_json_feed_with_no_items_is_no_failure() -> None:
    parsed = parse_feed(b'{"version": "https://jsonfeed.org/version/1.1", "items": []}')
    assert parsed.problems == ["the JSON Feed has no items: nothing imported"]
    assert parsed.error == ""


def test_older_rss_versions() -> None:
    rdf = parse("rss1.rdf")
    assert [(i.title, i.url, i.published) for i in rdf.items] == [
        ("RDF story", "https://example.org/rdf/one", dt.date(2022, 12, 7))
    ]
    old = parse("rss091.xml")  # ISO-8859-1, as declared
    assert [(i.title, i.summary) for i in old.items] == [("Café opens", "Old & gold")]
    assert rdf.problems == old.problems == []


def test_malformed_feed_imports_usable_entries_and_says_so() -> None:
    parsed = parse("malformed.xml")
    assert [(i.title, i.url) for i in parsed.items] == [
        ("Research & development funding", "https://example.org/news/rd.html"),
        ("Second story", "https://example.org/news/second.html"),
    ]
    assert parsed.items[0].published == dt.date(2022, 12, 7)
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith("feed is malformed (")
    assert parsed.problems[0].endswith("): imported 2 entries anyway")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("not-a-feed.html", "the response is an HTML page, not a feed: nothing imported"),
        ("garbage.bin", "the response is binary data, not a feed: nothing imported"),
    ],
)
def test_non_feeds_import_nothing(name: str, problem: str) -> None:
    assert parse(name, "https://example.org/feed") == Parsed(items=[], error=problem)


def test_empty_and_entryless_feeds() -> None:
    assert parse_feed(b"").error == "the response is empty: no feed to import"
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    assert parse_feed(empty).problems == ["the feed (rss20) has no entries: nothing imported"]
    assert parse_feed(empty).error == ""


def test_content_that_looks_like_a_path_or_url_is_never_opened() -> None:
    # feedparser.parse() on a bare string would read the file or fetch the URL.
    for content in (str(FEEDS / "rss2.xml").encode(), b"https://example.org/feed.xml"):
        parsed = parse_feed(content)
        assert parsed.items == [] and parsed.error


def test_html_to_text_and_clip() -> None:
    assert html_to_text("<p>a<br>b</p><p>c &amp; d</p><style>p{}</style>") == "a b c & d"
    # Escaped markup in the source stays text: it is no longer HTML once unescaped.
    assert html_to_text("1 &lt; 2") == "1 < 2"
    assert clip("short", 10) == "short"
    assert clip("one two three four", 12) == "one two…"
    assert clip("x" * 20, 10) == "x" * 9 + "…"
    assert summary_text("<p>" + "word " * 200 + "</p>").endswith("word…")
    assert len(summary_text("<p>" + "word " * 200 + "</p>")) <= 600


def test_feed_read_from_a_file_resolves_against_its_site_link() -> None:
    # A path is no base for web links: the channel's <link> (https://example.org/) is.
    parsed = parse("rss2.xml", str(FEEDS / "rss2.xml"))
    assert parsed.items[0].url == "https://example.org/news/2022/12/support-package.html"
    assert parsed.items[1].url == "https://example.org/videos/exercise.html"
    assert parsed.items[0].image_url == "https://example.org/images/support.jpg"


def test_unparseable_dates_are_reported() -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item>'
        b"<title>When?</title><link>https://example.org/when</link>"
        b"<pubDate>sometime next week</pubDate></item></channel></rss>"
    )
    parsed = parse_feed(rss)
    assert [(i.title, i.published) for i in parsed.items] == [("When?", None)]
    assert parsed.problems == ["entry 1 ('When?'): unparseable date 'sometime next week'"]
    json_feed = (
        b'{"version": "https://jsonfeed.org/version/1", "items": [{"title": "Then",'
        b' "url": "https://example.org/then", "date_published": "07/12/2022"}]}'
    )
    parsed = parse_feed(json_feed)
    assert parsed.items[0].published is None
    assert parsed.problems == ["entry 1 ('Then'): unparseable date '07/12/2022'"]


def test_entryless_junk_is_a_failure_but_a_quiet_feed_is_not() -> None:
    deep = b'<?xml version="1.0"?><rss version="2.0"><channel>'
    deep += b"<x>" * 100_000 + b"</x>" * 100_000 + b"</channel></rss>"
    assert parse_feed(deep).error == "the feed (rss20) has no entries: nothing imported"
    wrong = b'{"version": "https://jsonfeed.org/version/1.1", "items": "none"}'
    assert parse_feed(wrong).error == "the JSON Feed's items is not a list: nothing imported"
    quiet = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    assert parse_feed(quiet).error == ""
