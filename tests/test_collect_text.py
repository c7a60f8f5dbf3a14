"""Source type text: newsroom pages copied as plain text, in three different layouts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from newsletter.collect.base import DATE_LINE, PAGE_DATE, TEXT_DATE, Candidate, Parsed
from newsletter.collect.text import parse_text

FIXTURES = Path(__file__).parent / "fixtures" / "text"
#: A byte-for-byte copy of ../shared/seed/nato-newsroom-2023-06-23.txt, so the tests stand alone.
SEED = FIXTURES / "nato-newsroom-2023-06-23.txt"

Row = tuple[str, dt.date | None, str, str, str]


def rows(parsed: Parsed) -> list[Row]:
    """Each item as (title, published, kind, section, author)."""
    return [(i.title, i.published, i.kind, i.section, i.author) for i in parsed.items]


def by_title(parsed: Parsed, start: str) -> Candidate:
    (item,) = [i for i in parsed.items if i.title.startswith(start)]
    return item


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def june(day: int, year: int = 2023) -> dt.date:
    return dt.date(year, 6, day)


# --- The seed: a NATO newsroom page -------------------------------------------------------------


def row(
    title: str, day: dt.date | None, kind: str = "news", section: str = "", by: str = ""
) -> Row:
    return (title, day, kind, section, by)


FR = "Further reading"
# No story on the page has a date line of its own, so the page's "23 June 2023" dates them
# all, not the event dates in their summaries ("on Thursday (22 June 2023)").
SEED_ROWS = [
    row(
        "Secretary General praises Montenegro's contributions to NATO, key role in Western Balkans",
        june(23),
    ),
    row("NATO Secretary General: our armed forces must be both green and strong", june(23)),
    row("Secretary General praises Germany\u2019s contributions to NATO", june(23)),
    row("NATO Secretary General visits exercise Air Defender in Germany", june(23)),
    row(
        "NATO\u2019s innovation accelerator becomes operational and launches first challenges",
        june(23),
    ),
    row("NATO and the Republic of Korea strengthen cooperation on air safety", june(23)),
    row("Statement by NATO Spokesperson on Kosovo", june(23)),
    row(
        "NATO Deputy Secretary General addresses European Air and Missile Defence Conference",
        june(23),
    ),
    row("Training Ukraine's volunteer army", june(23), "video"),
    # The closing list: plain lines before and after the NATO Review card are further reading.
    row("NATO Secretary General visits exercise Air Defender 2023", june(23), "news", FR),
    row("Minister for Civil Defence of Sweden visits NATO", june(23), "news", FR),
    row(
        "NATO's engagement in Afghanistan, 2003-2021: a planner\u2019s perspective",
        june(23),
        "feature",
        "NATO Review",
        "Diego A. Ruiz Palmer",
    ),
    row("NATO's response to Russia's invasion of Ukraine", june(23), "news", FR),
    row("Top Five Russian Myths Debunked", june(23), "news", FR),
]


def test_seed_gives_exactly_the_distinct_stories_with_dates_kinds_sections_authors() -> None:
    parsed = parse_text(SEED.read_text(encoding="utf-8"), source="seed")
    assert rows(parsed) == SEED_ROWS
    assert {item.dated_by for item in parsed.items} == {PAGE_DATE}
    assert parsed.problems == []


def test_seed_summaries_are_the_story_paragraphs_and_urls_are_absent() -> None:
    parsed = parse_text(SEED.read_text(encoding="utf-8"))
    korea = by_title(parsed, "NATO and the Republic of Korea")
    assert korea.summary == (
        "NATO and the Republic of Korea continue to deepen their long-standing partnership,"
        " by strengthening their cooperation in the domain of air safety."
    )
    assert by_title(parsed, "Secretary General praises Montenegro").summary.startswith(
        "Secretary General Jens Stoltenberg welcomed President Jakov Milatovi\u0107"
    )
    assert by_title(parsed, "Training Ukraine").summary.endswith("across Europe.")
    assert all(item.url is None for item in parsed.items)
    # The closing list has no summaries: the byline is not one, nor the doubled headline.
    assert by_title(parsed, "NATO's engagement in Afghanistan").summary == ""


def test_seed_opening_bullets_are_not_new_stories() -> None:
    parsed = parse_text(SEED.read_text(encoding="utf-8"))
    titles = [item.title for item in parsed.items]
    assert not any(title.startswith("Video") or title.startswith("\u2022") for title in titles)
    assert titles.count("Training Ukraine's volunteer army") == 1


def test_seed_copied_on_windows_with_odd_spaces_parses_the_same() -> None:
    text = SEED.read_text(encoding="utf-8")
    odd = text.replace("\n", "\r\n").replace("Read more", "\u00a0Read  more\t")
    assert rows(parse_text(odd)) == SEED_ROWS


def test_page_date_argument_wins_over_the_page_date_line_and_the_dates_in_summaries() -> None:
    parsed = parse_text(SEED.read_text(encoding="utf-8"), page_date=june(24))
    assert by_title(parsed, "Statement by NATO Spokesperson").published == june(24)
    armed = by_title(parsed, "NATO Secretary General: our armed")  # "on Wednesday (21 June ..."
    assert (armed.published, armed.dated_by) == (june(24), PAGE_DATE)


# --- A university press page: date line above each headline, US dates, no doubled headlines -----


def test_university_page_dates_above_headlines_and_footer_ignored() -> None:
    parsed = parse_text(read("university-press-2024-06-07.txt"))
    assert rows(parsed) == [
        row("Northbridge researchers map microplastics in the Alder River estuary", june(7, 2024)),
        row("University opens 24-hour study commons in renovated library wing", june(5, 2024)),
        # The date line above beats the meeting date in the summary (June 3).
        row("Statement on the Board of Trustees meeting", june(4, 2024)),
        row("Video: Commencement 2024 highlights", june(3, 2024), "video"),
        row(
            "Northbridge chemist named fellow of the Royal Society of Chemistry",
            dt.date(2024, 5, 31),
        ),
    ]
    assert {item.dated_by for item in parsed.items} == {DATE_LINE}
    assert parsed.problems == []


def university_story(first: str, stop: str) -> str:
    """The fixture's lines from ``first`` up to ``stop``: a part of the page, as copied."""
    lines = read("university-press-2024-06-07.txt").splitlines()
    return "\n".join(lines[lines.index(first) : lines.index(stop)]) + "\n"


def test_story_copied_alone_is_dated_by_its_date_line_not_the_date_in_its_summary() -> None:
    # The study commons story (June 5, 2024: 2024-W23) says the commons opens "from Monday,
    # June 10, 2024" (2024-W24). Copied on its own, with no other story to show that date
    # lines sit above headlines on this page, it took June 10 and left week 23's draft.
    text = university_story("June 5, 2024", "June 4, 2024")
    assert "from Monday, June 10, 2024" in text
    (commons,) = parse_text(text).items
    assert commons.title.startswith("University opens 24-hour study commons")
    assert (commons.published, commons.dated_by) == (june(5, 2024), DATE_LINE)
    assert commons.published.isocalendar()[:2] == (2024, 23)
    # With the page's header above it, the same.
    header = university_story("Skip to main content", "June 7, 2024")
    (again,) = parse_text(header + text).items
    assert (again.published, again.dated_by) == (june(5, 2024), DATE_LINE)


def test_date_line_beats_page_date_and_summary_date() -> None:
    text = university_story("June 4, 2024", "Videos")  # the board met "on June 3, 2024"
    (board,) = parse_text(text, page_date=june(7, 2024)).items
    assert (board.published, board.dated_by) == (june(4, 2024), DATE_LINE)
    two = university_story("June 5, 2024", "Videos")
    parsed = parse_text(two, page_date=june(7, 2024))
    assert [(i.published, i.dated_by) for i in parsed.items] == [
        (june(5, 2024), DATE_LINE),
        (june(4, 2024), DATE_LINE),
    ]


def test_story_copied_alone_under_a_page_date_set_apart_takes_the_page_date() -> None:
    # The seed's first story with the page's date line above it, a blank line between: that
    # date is the page's, and it beats "on Thursday (22 June 2023)" in the summary.
    lines = SEED.read_text(encoding="utf-8").splitlines()
    alone = "\n".join(lines[lines.index("23 June 2023") : lines.index("Read more") + 1])
    (montenegro,) = parse_text(alone).items
    assert montenegro.title.startswith("Secretary General praises Montenegro")
    assert (montenegro.published, montenegro.dated_by) == (june(23), PAGE_DATE)
    # Without the page's date, the summary's date is all there is.
    (undated_page,) = parse_text(alone.replace("23 June 2023", "")).items
    assert (undated_page.published, undated_page.dated_by) == (june(22), TEXT_DATE)


def test_university_page_summaries_and_urls() -> None:
    parsed = parse_text(read("university-press-2024-06-07.txt"))
    commons = by_title(parsed, "University opens")
    assert commons.summary.endswith(
        "quiet reading room.\n\nAccess is by student card after 10 p.m."
    )
    fellow = by_title(parsed, "Northbridge chemist")
    assert fellow.url == "https://news.example.org/2024/05/31/kowalczyk-fellow"
    assert "https://" not in fellow.summary
    assert [item.url for item in parsed.items[:4]] == [None] * 4
    # "Videos", a label between two stories, is neither a story nor part of a summary.
    assert by_title(parsed, "Video: Commencement").summary.startswith("Relive the ceremony")
    assert all("Videos" not in item.summary for item in parsed.items)


# --- A charity news page: headline, "Published ... · Podcast" line, blog list with bylines ------


def test_charity_page_meta_lines_listen_markers_and_blog_block() -> None:
    parsed = parse_text(read("charity-news-2024-03-14.txt"), page_date=dt.date(2024, 3, 14))
    blog = "More from our blog"
    day = dt.date(2024, 3, 14)
    assert rows(parsed) == [
        # A top-story bullet that matches no later story, but reads as a headline.
        row("Harbour Run 2024 registration now open", day),
        row("Winter appeal reaches 10,000 hot meals", dt.date(2024, 3, 12)),
        row("How a seed bank kept a valley farming", dt.date(2024, 3, 3), "audio"),
        row("Our annual impact report for 2023", dt.date(2024, 2, 28)),
        row("Volunteer drivers wanted for the Saltmarsh food run", day),
        row('Why we stopped counting "beneficiaries"', day, "feature", blog, "Amara Okafor"),
        row(
            "Five things we learned running a mobile clinic",
            day,
            "feature",
            blog,
            "Jonas van der Berg",
        ),
        row("A day at the Harbourlight food hub", day, "feature", blog, "Priya Natarajan"),
    ]
    assert parsed.problems == []
    dated = [item.dated_by for item in parsed.items]
    assert dated == [PAGE_DATE, DATE_LINE, DATE_LINE, DATE_LINE] + [PAGE_DATE] * 4
    report = by_title(parsed, "Our annual impact report")
    assert report.url == "https://www.example.org/impact/2023"
    assert report.summary.startswith("Last year we reached 41,000 people")
    assert "Published" not in by_title(parsed, "How a seed bank").summary


def test_charity_page_without_page_date_reports_undated_items() -> None:
    parsed = parse_text(read("charity-news-2024-03-14.txt"), source="harbourlight")
    drivers = by_title(parsed, "Volunteer drivers")
    assert (drivers.published, drivers.dated_by) == (None, "")
    assert parsed.problems == ["harbourlight: no page date found: 5 item(s) left undated"]


# --- Bad input and smaller shapes ---------------------------------------------------------------


def test_empty_and_garbage_text_give_no_items_and_a_problem() -> None:
    garbage = (
        "%%%% 1234 ####\n\x00\x01\x02\n\nlorem ipsum dolor sit amet, consectetur adipiscing.\n"
    )
    for text in ("", "   \n\n\t\n", garbage):
        parsed = parse_text(text, source="junk")
        assert parsed.items == [] and parsed.problems == []
        assert parsed.error == "junk: no recognisable stories in the text"


def test_impossible_date_is_reported_when_it_is_the_only_date_of_the_story() -> None:
    text = (
        "Harbour festival moves to March\n\n"
        "The festival planned for 31 February 2024 will now take place on the first weekend of"
        " March, the organisers said.\n\nRead more\n"
    )
    parsed = parse_text(text)
    assert rows(parsed) == [("Harbour festival moves to March", None, "news", "", "")]
    assert parsed.problems[0] == (
        "line 3: '31 February 2024' is not a valid date;"
        " 'Harbour festival moves to March' is left undated"
    )
    # With a page date the summary's date is not read, so there is nothing to report.
    parsed = parse_text(text, page_date=dt.date(2024, 2, 20))
    assert rows(parsed) == [
        ("Harbour festival moves to March", dt.date(2024, 2, 20), "news", "", "")
    ]
    assert parsed.problems == []


def test_impossible_date_line_is_reported_and_the_story_takes_the_page_date() -> None:
    text = (
        "Harbour festival moves to March\n30 February 2024\n"
        "The festival will now take place on Saturday, 2 March 2024, the organisers said.\n"
        "Read more\n"
    )
    parsed = parse_text(text, page_date=dt.date(2024, 2, 20), source="desk")
    assert [(i.published, i.dated_by) for i in parsed.items] == [(dt.date(2024, 2, 20), PAGE_DATE)]
    assert parsed.problems == [
        "desk: line 2: '30 February 2024' is not a valid date;"
        " 'Harbour festival moves to March' takes the page date"
    ]
    parsed = parse_text(text, source="desk")
    assert [(i.published, i.dated_by) for i in parsed.items] == [(dt.date(2024, 3, 2), TEXT_DATE)]
    assert parsed.problems[0].endswith("takes the date in its text")


def test_other_languages_iso_and_dotted_dates_and_marker_links() -> None:
    text = (
        "Actualit\u00e9s\n\n"
        "Le conseil adopte le budget 2024\n"
        "Le conseil municipal a adopt\u00e9 le budget le 2024-01-30 apr\u00e8s un d\u00e9bat.\n"
        "Lire la suite \u2192\n\n"
        "Stadtrat beschlie\u00dft neuen Radweg\n"
        "Der Stadtrat hat am 29.01.2024 den neuen Radweg am Fluss beschlossen.\n"
        "Weiterlesen https://city.example.org/radweg\n\n"
        "El ayuntamiento presenta su podcast\n"
        "Escucha el primer episodio sobre la historia del puerto de la ciudad.\n"
        "Escuchar\n"
    )
    # No page date: the dates in the summaries are all there is.
    parsed = parse_text(text)
    assert rows(parsed) == [
        ("Le conseil adopte le budget 2024", dt.date(2024, 1, 30), "news", "", ""),
        ("Stadtrat beschlie\u00dft neuen Radweg", dt.date(2024, 1, 29), "news", "", ""),
        ("El ayuntamiento presenta su podcast", None, "audio", "", ""),
    ]
    assert [item.dated_by for item in parsed.items] == [TEXT_DATE, TEXT_DATE, ""]
    assert parsed.items[1].url == "https://city.example.org/radweg"


def test_same_story_twice_is_taken_once_and_reported() -> None:
    story = "Council approves new cycle lanes\n\nThe council voted for four new lanes today.\n"
    parsed = parse_text(f"{story}Read more\n\n{story}READ MORE\n", page_date=june(1, 2024))
    assert [item.title for item in parsed.items] == ["Council approves new cycle lanes"]
    assert len(parsed.problems) == 1 and "seen above" in parsed.problems[0]


def test_unmatched_bullet_that_is_no_headline_is_skipped_and_reported() -> None:
    text = (
        "\u2022 ok\n\u2022 Video - Harbour lights at night\n\n"
        "Harbour lights at night\nA short film about the harbour after dark, shot by volunteers.\n"
        "Watch\n"
    )
    parsed = parse_text(text, page_date=june(1, 2024))
    assert rows(parsed) == [("Harbour lights at night", june(1, 2024), "video", "", "")]
    assert parsed.problems == ["line 1: skipped bullet 'ok': not a headline"]


def test_byline_under_a_story_headline_is_its_author() -> None:
    text = (
        "Why we moved our office\nBy Jane Doe\n"
        "We moved to a smaller office on 3 April 2024 to save energy and money.\nRead more \u00bb\n"
    )
    parsed = parse_text(text)
    assert rows(parsed) == [row("Why we moved our office", dt.date(2024, 4, 3), by="Jane Doe")]
    assert parsed.items[0].dated_by == TEXT_DATE  # no date line, no page date


def test_text_without_markers_is_read_as_a_list_of_headlines() -> None:
    text = (
        "Latest news\n\nCouncil approves new cycle lanes\n"
        "Library extends opening hours this summer\n\n\u00a9 2024 Example City Council\n"
    )
    parsed = parse_text(text, page_date=june(1, 2024))
    assert rows(parsed) == [
        row("Council approves new cycle lanes", june(1, 2024), "news", "Latest news"),
        row("Library extends opening hours this summer", june(1, 2024), "news", "Latest news"),
    ]


# --- Rules shared with the other sources (newsletter.normalise) ---------------------------------


def test_iso_timestamps_are_dates_in_copied_text_too() -> None:
    # Before the shared date parser, a copied text read "2022-12-07" but not the timestamp a
    # CMS prints, and the story fell back to the page date; page sources always read it.
    text = (
        "Allies agree on new air defence plan\n"
        "2022-12-07T09:30:00Z\n"
        "Defence ministers agreed a plan to strengthen air defence across the Alliance.\n"
        "Read more\n\n"
        "Ministers meet partners in Bucharest\n"
        "Posted 2022-11-30T16:05:00+02:00\n"
        "Foreign ministers met partners from the region to discuss support for Ukraine.\n"
        "Read more\n"
    )
    parsed = parse_text(text, page_date=dt.date(2022, 12, 1))
    assert [(i.title, i.published) for i in parsed.items] == [
        ("Allies agree on new air defence plan", dt.date(2022, 12, 7)),
        ("Ministers meet partners in Bucharest", dt.date(2022, 11, 30)),
    ]
    assert parsed.problems == []


def test_headlines_differing_only_in_accents_are_one_story() -> None:
    # One title rule everywhere: the library and the duplicate-story check already folded
    # accents, so the copied-text reader now agrees that these are the same story.
    text = (
        "Caf\u00e9 society opens its doors\n\n"
        "The new community caf\u00e9 welcomes its first guests.\nRead more\n\n"
        "Cafe society opens its doors\n\nThe new community cafe welcomes its first guests.\n"
        "Read more\n"
    )
    parsed = parse_text(text, page_date=june(1, 2024))
    assert [item.title for item in parsed.items] == ["Caf\u00e9 society opens its doors"]
    assert len(parsed.problems) == 1 and "seen above" in parsed.problems[0]
