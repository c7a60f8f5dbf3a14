"""Issue files: hand-edited TOML, with errors naming the file, line, story and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter import InputError, Settings, load_issue, parse_issue
from tests.conftest import SAMPLE_ISSUE

HEAD = 'number = 1\nweek = "2023-W25"\ndate = 2023-06-23\nsubject = "Hi"\n'

TWO_SECTIONS = (
    HEAD
    + """
[lead]
title = "Lead"
url = "https://a.example.org/lead"

[[sections]]
title = "News"

[[sections.items]]
title = "One"
url = "https://a.example.org/1"

[[sections]]
title = "More"

[[sections.items]]
title = "Two"
url = "https://a.example.org/2"

[[sections.items]]
title = "Three"
url = "https://a.example.org/3"
"""
)


def fails(text: str, settings: Settings | None = None) -> str:
    with pytest.raises(InputError) as info:
        parse_issue(text, "issues/2023-W25.toml", settings)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


def test_sample_issue_has_every_story_of_the_seed(settings: Settings) -> None:
    issue = load_issue(SAMPLE_ISSUE, settings)
    assert issue.week == "2023-W25" and issue.newsletter == settings.newsletter.name
    assert [s.title for s in issue.sections] == ["News", "Video", "Further reading"]
    assert len(issue.items()) == 14
    assert all(
        item.url and item.url.startswith("https://newsroom.example.org/") for item in issue.items()
    )
    review = issue.sections[2].items[0]
    assert review.author == "Diego A. Ruiz Palmer" and review.kind == "feature"
    assert issue.sections[1].items[0].kind == "video"


def test_error_names_line_section_item_and_field() -> None:
    text = TWO_SECTIONS.replace("https://a.example.org/3", "ftp://a.example.org/3")
    message = fails(text)
    line = text.splitlines().index('url = "ftp://a.example.org/3"') + 1
    assert message.startswith(
        f"issues/2023-W25.toml:{line}: section 2 'More', item 2 'Three', url:"
    )
    assert "https://" in message


def test_error_in_lead_image() -> None:
    text = TWO_SECTIONS.replace(
        'url = "https://a.example.org/lead"',
        'url = "https://a.example.org/lead"\nimage = { url = "a.png" }',
    )
    message = fails(text)
    line = text.splitlines().index('image = { url = "a.png" }') + 1
    assert message.startswith(f"issues/2023-W25.toml:{line}: lead story 'Lead', image:")
    assert "alt text" in message


def test_misspelt_key_is_named_before_the_missing_one() -> None:
    message = fails(TWO_SECTIONS.replace('title = "Two"', 'titel = "Two"'))
    assert "section 2 'More', item 1, titel: is not a known key" in message


def test_missing_field_points_at_its_table() -> None:
    text = TWO_SECTIONS.replace('title = "One"\n', "")
    message = fails(text)
    line = text.splitlines().index("[[sections.items]]") + 1
    assert message.startswith(
        f"issues/2023-W25.toml:{line}: section 1 'News', item 1, title: is missing"
    )


def test_top_level_field() -> None:
    message = fails(TWO_SECTIONS.replace('subject = "Hi"', 'subject = ""'))
    assert message.startswith("issues/2023-W25.toml:4: subject:")


def test_toml_syntax_error_gives_line() -> None:
    assert "line 2" in fails('number = 1\nweek = "2023-W25\n')


def test_story_without_url_is_refused_unless_allowed(settings: Settings) -> None:
    text = TWO_SECTIONS.replace('url = "https://a.example.org/2"\n', "")
    message = fails(text, settings)
    assert "section 2 'More', item 1 'Two', url: the story has no URL" in message
    assert "allow_linkless_items" in message
    allowing = settings.model_copy(
        update={"build": settings.build.model_copy(update={"allow_linkless_items": True})}
    )
    assert parse_issue(text, "x.toml", allowing).sections[1].items[0].url is None


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="issue file not found"):
        load_issue(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        load_issue(binary)


def test_deep_nesting_is_one_line_naming_the_line() -> None:
    text = HEAD + "extra = " + "[" * 5000 + "]" * 5000 + "\n"
    message = fails(text)
    assert message.startswith("issues/2023-W25.toml:5: ")
    assert "nested too deeply" in message
