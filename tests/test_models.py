"""The issue model and every validation message a communications officer can meet."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from newsletter.errors import InputError
from newsletter.models import PREHEADER_MAX, Image, Issue, Item, Section, iso_week, week_range


def item(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "Allies meet in Vilnius",
        "url": "https://newsroom.example.org/news/vilnius",
        "summary": "Leaders met.",
        "published": "2023-06-20",
    }
    data.update(overrides)
    return data


def issue(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "newsletter": "Weekly",
        "number": 1,
        "week": "2023-W25",
        "date": "2023-06-23",
        "subject": "This week",
        "sections": [{"title": "News", "items": [item()]}],
    }
    data.update(overrides)
    return data


def error_of(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


def test_valid_issue_lists_items_in_reading_order() -> None:
    lead = item(title="Lead", url="https://newsroom.example.org/lead")
    parsed = Issue.model_validate(issue(lead=lead))
    assert [i.title for i in parsed.items()] == ["Lead", "Allies meet in Vilnius"]
    assert parsed.sections[0].items[0].published == dt.date(2023, 6, 20)


def test_item_id_is_stable_and_derived_from_url_or_title() -> None:
    a = Item.model_validate(item())
    b = Item.model_validate(item(summary="Changed summary"))
    assert a.id == b.id and len(a.id) == 12
    no_url = Item.model_validate(item(url=None))
    assert no_url.id != a.id
    assert Item.model_validate(item(id="custom")).id == "custom"


def test_missing_title() -> None:
    assert "title" in error_of(Item, {"url": "https://x.example.org/"})
    assert "every story needs a headline" in error_of(Item, item(title="   "))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://x.example.org/a", "web address"),
        ("javascript:alert(1)", "web address"),
        ("newsroom.example.org/a", "web address"),
        ("http ://x.example.org/a", "web address"),
        ("https://x.example.org/a b", "spaces"),
    ],
)
def test_non_web_url_is_refused(url: str, says: str) -> None:
    message = error_of(Item, item(url=url))
    assert says in message
    assert url in message


def test_title_with_line_break() -> None:
    assert "one line" in error_of(Item, item(title="Line\nbreak"))


def test_kind_is_one_lowercase_word() -> None:
    assert Item.model_validate(item(kind="Video")).kind == "video"
    assert "one word" in error_of(Item, item(kind="two words"))


def test_call_to_action_follows_kind() -> None:
    assert Item.model_validate(item(kind="video")).action == "Watch"
    assert Item.model_validate(item()).action == "Read more"


def test_image_needs_alt_text() -> None:
    message = error_of(Item, item(image={"url": "images/a.png"}))
    assert "no alt text" in message and "images/a.png" in message
    assert Image(url="images/a.png", alt="A map").alt == "A map"


def test_image_url_is_web_or_relative() -> None:
    assert "web address" in error_of(Image, {"url": "file:///etc/passwd", "alt": "x"})
    assert "//host" in error_of(Image, {"url": "//cdn.example.org/a.png", "alt": "x"})


def test_unknown_field_is_reported_not_dropped() -> None:
    assert "summry" in error_of(Item, item(summry="typo"))


def test_same_story_twice() -> None:
    twice = issue(sections=[{"title": "News", "items": [item(), item(title="Other title")]}])
    message = error_of(Issue, twice)
    assert "appears twice" in message and "same URL" in message


def test_same_story_as_lead_and_in_a_section() -> None:
    assert "appears twice" in error_of(Issue, issue(lead=item()))


def test_empty_issue() -> None:
    assert "no stories" in error_of(Issue, issue(sections=[]))
    assert "no stories" in error_of(Issue, issue(sections=[{"title": "News", "items": []}]))


def test_subject_with_line_break() -> None:
    assert "subject must be on one line" in error_of(
        Issue, issue(subject="Hello\r\nBcc: x@example.org")
    )


def test_empty_subject() -> None:
    assert "subject is empty" in error_of(Issue, issue(subject=" "))


def test_preheader_too_long() -> None:
    message = error_of(Issue, issue(preheader="x" * (PREHEADER_MAX + 1)))
    assert f"{PREHEADER_MAX + 1} characters" in message
    Issue.model_validate(issue(preheader="x" * PREHEADER_MAX))


@pytest.mark.parametrize("week", ["2023-25", "2023-W53", "W25"])
def test_week_must_be_a_real_iso_week(week: str) -> None:
    assert week in error_of(Issue, issue(week=week))


def test_date_must_fall_in_the_week() -> None:
    message = error_of(Issue, issue(date="2023-06-26"))
    assert "2023-W26" in message and "not 2023-W25" in message


def test_iso_week_across_new_year() -> None:
    assert iso_week(dt.date(2021, 1, 3)) == "2020-W53"
    assert iso_week(dt.date(2024, 12, 30)) == "2025-W01"


def test_week_range_is_monday_to_sunday_and_inverts_iso_week() -> None:
    assert week_range("2023-W25") == (dt.date(2023, 6, 19), dt.date(2023, 6, 25))
    assert week_range("2020-W53") == (dt.date(2020, 12, 28), dt.date(2021, 1, 3))
    start, end = week_range("2025-W01")
    assert iso_week(start) == iso_week(end) == "2025-W01"
    for bad in ("2023-25", "2023-W54", "W25", ""):
        with pytest.raises(InputError, match="not an ISO week such as 2023-W25"):
            week_range(bad)


def test_section_title_required() -> None:
    assert "section title is empty" in error_of(Section, {"title": ""})


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x1c", "\x00"])
def test_subject_and_name_refuse_unicode_line_separators(separator: str) -> None:
    code = f"U+{ord(separator):04X}"
    assert code in error_of(Issue, issue(subject=f"Hello{separator}Bcc: x@example.org"))
    assert code in error_of(Issue, issue(newsletter=f"Weekly{separator}News"))
    assert code in error_of(Section, {"title": f"News{separator}More", "items": [item()]})


def test_tab_is_not_a_line_break() -> None:
    assert Issue.model_validate(issue(subject="This\tweek")).subject == "This\tweek"


@pytest.mark.parametrize("week", ["2023-W99", "2023-W00", "2023-W25\n", " 2023-W25", "2023-W5"])
def test_week_range_refuses_weeks_that_do_not_exist_and_stray_characters(week: str) -> None:
    with pytest.raises(InputError, match=r"^--week: not an ISO week such as 2023-W25"):
        week_range(week)
