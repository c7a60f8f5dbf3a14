"""Source type page: the NATO newsroom fixture, a page of our own, dates and navigation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from newsletter.collect.base import Parsed
from newsletter.collect.page import NATO_NEWSROOM_SELECTORS, is_navigation, parse_page
from newsletter.normalise import parse_date

PAGES = Path(__file__).parent / "fixtures" / "pages"
NATO = PAGES / "nato-newsroom-2022-12-07.html"
NATO_URL = "https://www.nato.int/cps/en/natohq/news.htm"
HQ = "https://www.nato.int/cps/en/natohq/"
PICTURES = "https://www.nato.int/nato_static_fl2014/assets/pictures/images_mfu/2022/12/"

NATO_STORIES = [
    ("NATO Secretary General: ''Russia trying to freeze Ukraine conflict''",
     HQ + "news_209981.htm"),
    ("NATO Exercise Cyber Coalition concludes in Estonia",
     "https://act.nato.int/articles/exercise-cyber-coalition-2022-concludes-estonia"),
    ("Secretary General Stoltenberg praises German support to Ukraine, key role in NATO",
     HQ + "news_209931.htm"),
    ("NATO Secretary General thanks Germany for contributions at critical time",
     HQ + "news_209891.htm"),
    ("NATO Deputy Secretary General joins prayers for Ukraine", HQ + "news_209976.htm"),
    ("NATO Foreign Ministers end meetings in Bucharest with focus on China, more support for "
     "partners", HQ + "news_209493.htm"),
    ('NATO Secretary General: "we will not back down" in support for Ukraine',
     HQ + "news_209491.htm"),
]  # fmt: skip


def nato(selectors: dict[str, str] | None = None) -> Parsed:
    return parse_page(NATO.read_bytes(), NATO_URL, selectors or dict(NATO_NEWSROOM_SELECTORS))


def test_nato_newsroom_exact_stories() -> None:
    parsed = nato()
    assert parsed.problems == []
    # The lead, two teasers and four headlines; not "ALL NEWS", not the lead's Audio/Transcript.
    assert [(i.title, i.url) for i in parsed.items] == NATO_STORIES
    lead, teaser1, teaser2, *headlines = parsed.items

    assert lead.published == dt.date(2022, 12, 7)
    assert lead.summary.startswith(
        "NATO Secretary General Jens Stoltenberg on Wednesday (07 December 2022) stressed"
    )
    assert lead.summary.endswith("seeking a peaceful end to the conflict.")
    assert "Audio" not in lead.summary and "Transcript" not in lead.summary

    assert [(i.image_url, i.image_alt) for i in (lead, teaser1, teaser2)] == [
        (PICTURES + "stock/221207-sg-ft_rdax_775x440s.jpg", NATO_STORIES[0][0]),
        (PICTURES + "stock/221201-cc22-4_rdax_375x213s.jpg", NATO_STORIES[1][0]),
        (PICTURES + "01a-trip-sg-berlin/221201a-040_rdax_375x250s.jpg", NATO_STORIES[2][0]),
    ]
    for item in (teaser1, teaser2, *headlines):
        assert item.published is None and item.summary == ""
    assert [i.dated_by for i in parsed.items] == ["date selector"] + [""] * 6
    assert all(h.image_url is None and h.image_alt == "" for h in headlines)


def test_nato_text_input_gives_the_same_result() -> None:
    as_text = parse_page(NATO.read_text(encoding="utf-8"), NATO_URL, NATO_NEWSROOM_SELECTORS)
    assert as_text == nato()


def test_all_news_is_dropped_by_the_heuristic_too() -> None:
    # A looser item selector that does match the "ALL NEWS" entry, and no field selectors:
    # titles and links come from each item's first link.
    parsed = nato({"item": ".hero .box-media--stretched, .hero .teaser, .list-bordered > li"})
    assert [(i.title, i.url) for i in parsed.items] == NATO_STORIES


def test_selectors_that_match_nothing() -> None:
    parsed = parse_page(NATO.read_bytes(), NATO_URL, {"item": "article.story"})
    assert parsed == Parsed(
        error=f"the item selector 'article.story' matched nothing on {NATO_URL}"
    )


def test_bad_selector_configuration() -> None:
    typo = nato({"item": "li[", "titel": "h1"})
    assert typo.problems == [
        "unknown selector 'titel' ignored (known: item, title, link, date, summary, image)",
    ]
    assert typo.error == "the item selector 'li[' is not valid CSS: nothing imported"
    assert nato({"title": "h1"}).error == "no item selector configured: nothing imported"
    parsed = nato({**NATO_NEWSROOM_SELECTORS, "date": "span["})
    assert parsed.problems == ["the date selector 'span[' is not valid CSS: ignored"]
    assert len(parsed.items) == 7


OWN_SELECTORS = {
    "item": "article.story",
    "title": "h2",
    "link": "h2 a[href], a[href]",
    "date": "time, .date",
    "summary": ".lede",
    "image": "img",
}


def test_own_page_relative_urls_lazy_images_and_navigation() -> None:
    page = (PAGES / "relative-lazy.html").read_bytes()
    parsed = parse_page(page, "https://example.org/press/", OWN_SELECTORS)
    assert [(i.title, i.url, i.published) for i in parsed.items] == [
        ("Drone trial over the North Sea", "https://example.org/press/2022/12/drone-trial.html",
         dt.date(2022, 12, 7)),
        ("Annual conference opens", "https://example.org/events/conference.html",
         dt.date(2022, 12, 6)),
        ("Budget approved", "https://example.org/press/2022/12/budget.html",
         dt.date(2022, 12, 5)),
        ("Partner story", "https://partner.example.com/story?id=7", None),
        ("Statement without a page", None, dt.date(2022, 12, 3)),
        ("Heading only in the title attribute",
         "https://example.org/press/2022/12/no-heading.html", None),
    ]  # fmt: skip
    drone, conference, budget, *_rest, no_heading = parsed.items
    # Lazy images: data-src / data-original win over the placeholder src.
    assert (drone.image_url, drone.image_alt) == (
        "https://example.org/media/drone.jpg", "A drone over the sea")  # fmt: skip
    # Protocol-relative, and no alt attribute: the title stands in.
    assert (conference.image_url, conference.image_alt) == (
        "https://cdn.example.org/conf.jpg", "Annual conference opens")  # fmt: skip
    assert budget.image_url == "https://example.org/media/budget.jpg"
    assert no_heading.image_alt == "Heading only in the title attribute"
    # Summaries are text: the script, onclick and javascript: link are gone.
    assert drone.summary == "Engineers tested drones & sensors."
    assert conference.summary == "Lots of whitespace"
    assert parsed.problems == [
        "item 4 ('Partner story'): unparseable date 'sometime soon'",
        "item 5 ('Statement without a page'): no link: kept without a URL",
        "item 7: no title: skipped",
    ]
    # Not taken: the second "Drone trial" (same URL), "SEE ALL" (the page itself),
    # "Older releases" (index.html) and "More news »" (news.htm).


def test_bytes_honour_the_declared_charset() -> None:
    page = '<meta charset="windows-1252"><div class="s"><a href="/a">Café crème</a></div>'
    parsed = parse_page(page.encode("windows-1252"), "https://example.org/", {"item": ".s"})
    assert [i.title for i in parsed.items] == ["Café crème"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07 Dec. 2022", dt.date(2022, 12, 7)),
        ("7 December 2022", dt.date(2022, 12, 7)),
        ("December 7, 2022", dt.date(2022, 12, 7)),
        ("Sept. 30, 2022", dt.date(2022, 9, 30)),
        ("Wednesday, 7th December 2022", dt.date(2022, 12, 7)),
        ("2022-12-07", dt.date(2022, 12, 7)),
        ("2022-12-07T09:30:00+01:00", dt.date(2022, 12, 7)),
        ("07.12.2022", dt.date(2022, 12, 7)),
        ("Published 1 Jan. 2023, 10:00", dt.date(2023, 1, 1)),
        ("12/07/2022", None),  # ambiguous: day or month first
        ("31 Feb 2022", None),
        ("Mayday 3 2022", None),
        ("yesterday", None),
    ],
)
def test_parse_date(text: str, expected: dt.date | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("title", "url", "navigation"),
    [
        ("ALL NEWS", "https://example.org/news/all", True),
        ("More", None, True),
        ("READ MORE", "https://example.org/news/story-1", True),
        ("See all »", None, True),
        ("View all press releases", None, True),
        ("Anything", "https://example.org/press/", True),  # the listing page itself
        ("Older stories", "https://example.org/news.htm", True),
        ("Older stories", "https://example.org/newsroom/", True),
        ("More support for Ukraine", "https://example.org/news/more-support", False),
        ("All Allies agree", "https://example.org/news/allies-agree", False),
        ("Budget", "https://example.org/news.php?id=5", False),
        ("NATO", "https://example.org/news_209981.htm", False),
    ],
)
def test_is_navigation(title: str, url: str | None, navigation: bool) -> None:
    assert is_navigation(title, url, "https://example.org/press/") is navigation
