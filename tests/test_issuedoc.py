"""Editing issue files as the studio does: values in place, layout kept, never a broken file."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from newsletter.approval import approval_of
from newsletter.errors import InputError
from newsletter.issuefile import parse, parse_issue
from newsletter.settings import Settings
from newsletter.studio.issuedoc import Conflict, EditError, IssueDoc, StoryRef
from tests.conftest import SAMPLE_ISSUE

SAMPLE = SAMPLE_ISSUE.read_text(encoding="utf-8")
NOW = dt.datetime(2023, 6, 22, 16, 5, 30, 123456, tzinfo=dt.UTC)
SECRET = "issuedoc test secret"

#: A small hand-written issue: a compact layout, comments everywhere, a story with no URL.
COMPACT = """\
# Hand-written, compact on purpose.
number = 7
week = "2023-W25"
date = 2023-06-23
subject = "Compact"  # the inbox line

[lead]
title = "Lead story"
url = "https://example.org/lead"
[[sections]]
title = "News"
[[sections.items]]
title = "First"
url = "https://example.org/first"
[[sections.items]]
# Copied from a printed page: no link yet.
title = "Copied text"
summary = "Typed in from the bulletin."
[[sections]]
title = "More"
[[sections.items]]
title = "Second"
url = "https://example.org/second"
"""


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "edited" / SAMPLE_ISSUE.name
    path.parent.mkdir()
    shutil.copy(SAMPLE_ISSUE, path)
    return path


@pytest.fixture
def compact(tmp_path: Path) -> Path:
    path = tmp_path / "compact.toml"
    path.write_text(COMPACT, encoding="utf-8")
    return path


def by_title(doc: IssueDoc, title: str) -> StoryRef:
    return next(story for story in doc.stories() if story.title.startswith(title))


def changed_lines(before: str, after: str) -> list[str]:
    """The lines removed (-) and added (+), without context."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def comments(text: str) -> list[str]:
    return sorted(line.strip() for line in text.splitlines() if line.strip().startswith("#"))


def assert_builds(text: str, settings: Settings | None = None) -> None:
    parsed = parse(text, "edited.toml", settings)
    assert parsed.refusals == [], [str(r) for r in parsed.refusals]


# -- loading and reading --------------------------------------------------------------------------


def test_stories_are_listed_in_reading_order_with_the_models_ids(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    stories = doc.stories()
    issue = parse_issue(SAMPLE, "sample")
    assert [s.key for s in stories] == [item.id for item in issue.items()]
    assert [s.title for s in stories] == [item.title for item in issue.items()]
    lead, first = stories[0], stories[1]
    assert (lead.where, lead.section, lead.index) == ("lead", -1, 0)
    assert (first.where, first.section, first.index) == ("section", 0, 0)
    assert lead.image_url == "images/2023-W25-lead.png" and lead.published == "2023-06-22"
    assert (stories[-1].section, stories[-1].index) == (2, 4)
    assert not any(s.linkless for s in stories)
    assert doc.sections() == ["News", "Video", "Further reading"]
    assert doc.story_keys() == {s.key for s in stories}
    assert doc.version == hashlib.sha256(SAMPLE_ISSUE.read_bytes()).hexdigest()
    assert doc.text == doc.dumps() == SAMPLE


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "issue file not found"),
        (b'subject = "unterminated\n', "not valid TOML"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
    ],
)
def test_load_names_the_file_it_cannot_read(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / "2023-W25.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as caught:
        IssueDoc.load(path)
    assert str(path) in str(caught.value)


def test_a_story_without_a_url_is_flagged(compact: Path) -> None:
    doc = IssueDoc.load(compact)
    copied = by_title(doc, "Copied text")
    assert copied.linkless and copied.url == ""
    assert [s.linkless for s in doc.stories()].count(True) == 1


# -- each edit ------------------------------------------------------------------------------------


def test_editing_one_summary_changes_only_its_line_and_the_status(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    story = by_title(doc, "NATO Secretary General visits exercise Air Defender in Germany")
    doc.edit_story(story.key, summary="A shorter summary, written in the studio.")
    assert changed_lines(SAMPLE, doc.dumps()) == [
        '+status = "draft"',
        '-summary = "NATO Secretary General Jens Stoltenberg met and thanked personnel '
        "participating in exercise Air Defender 2023 together with the German Defence "
        "Minister Boris Pistorius at Air Base Jagel in northern Germany on Tuesday "
        '(20 June 2023)."',
        '+summary = "A shorter summary, written in the studio."',
    ]
    # The status line goes with the issue's own keys, after the date.
    assert 'date = 2023-06-23\nstatus = "draft"\nsubject = ' in doc.dumps()
    assert by_title(doc, "NATO Secretary General visits exercise Air Defender in").summary == (
        "A shorter summary, written in the studio."
    )
    assert sample.read_text(encoding="utf-8") == SAMPLE  # nothing on disk before save()


def test_set_field_subject_preheader_and_a_multi_line_intro(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    doc.set_field("subject", "  A new subject  ")
    doc.set_field("preheader", "A new preheader.")
    intro = 'Dear readers,\r\n\r\nthis week: **DIANA** and a """quoted""" C:\\path.\r\n'
    doc.set_field("intro", intro)
    data = tomllib.loads(doc.dumps())
    assert data["subject"] == "A new subject"
    assert data["preheader"] == "A new preheader."
    assert data["intro"] == 'Dear readers,\n\nthis week: **DIANA** and a """quoted""" C:\\path.\n'
    # Written as the sample writes it: the text opens on the line after the quotes.
    assert 'intro = """\nDear readers,\n\nthis week:' in doc.dumps()
    changed = changed_lines(SAMPLE, doc.dumps())
    assert '+status = "draft"' in changed
    assert len(changed) == 1 + 2 + 2 + 3 + 3  # status, subject, preheader, 3 lines for 3
    doc.set_field("intro", "One line now.")
    assert 'intro = "One line now."\n' in doc.dumps()
    assert_builds(doc.dumps())


def test_set_field_adds_a_missing_field_beside_the_others(compact: Path) -> None:
    doc = IssueDoc.load(compact)
    doc.set_field("preheader", "Added.")
    assert changed_lines(COMPACT, doc.dumps()) == ['+status = "draft"', '+preheader = "Added."']
    assert 'subject = "Compact"  # the inbox line\npreheader = "Added."\n' in doc.dumps()


def test_edit_story_title_summary_and_url(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    story = by_title(doc, "Statement by NATO Spokesperson on Kosovo")
    doc.edit_story(story.key, title="Kosovo: a statement", summary="Short.\n\nTwo paragraphs.")
    edited = by_title(doc, "Kosovo: a statement")
    assert edited.key == story.key  # a story with a URL is keyed on it
    assert edited.summary == "Short.\n\nTwo paragraphs."
    assert "id = " not in doc.dumps()
    doc.edit_story(story.key, url="https://newsroom.example.org/kosovo-statement")
    moved = by_title(doc, "Kosovo: a statement")
    assert moved.key == story.key and moved.url.endswith("/kosovo-statement")
    # The old key is written down, so the story keeps its key and its library item.
    assert f'id = "{story.key}"\ntitle = "Kosovo: a statement"' in doc.dumps()
    doc.edit_story(story.key, summary="")
    assert by_title(doc, "Kosovo: a statement").summary == ""
    assert_builds(doc.dumps())


def test_a_linkless_story_keeps_its_key_when_retitled_and_given_a_url(compact: Path) -> None:
    doc = IssueDoc.load(compact)
    copied = by_title(doc, "Copied text")
    doc.edit_story(copied.key, title="Copied text, retitled")
    assert by_title(doc, "Copied text, retitled").key == copied.key
    doc.edit_story(copied.key, url="https://example.org/bulletin")
    filled = by_title(doc, "Copied text, retitled")
    assert filled.key == copied.key and not filled.linkless
    assert "# Copied from a printed page: no link yet.\n" in doc.dumps()
    assert_builds(doc.dumps())


def test_filling_in_a_url_removes_the_drafts_mark(tmp_path: Path) -> None:
    path = tmp_path / "drafted.toml"
    mark = "# NEEDS A URL: the source gave none; paste the story's web address.\n"
    path.write_text(COMPACT.replace("# Copied from", mark + "# Copied from"), "utf-8")
    doc = IssueDoc.load(path)
    key = by_title(doc, "Copied text").key
    doc.edit_story(key, summary="Still no URL.")
    assert mark in doc.dumps()
    doc.edit_story(key, url="https://example.org/copied")
    assert mark not in doc.dumps()
    assert '[[sections.items]]\n# Copied from a printed page: no link yet.\nid = "' in doc.dumps()


def test_edits_that_change_nothing_change_nothing(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    lead = doc.stories()[0]
    doc.edit_story(lead.key, title=lead.title + "  ", summary=lead.summary, url=lead.url)
    doc.set_field("subject", "Montenegro's role in the Balkans, and DIANA goes live")
    doc.move(doc.stories()[1].key, -1)  # the first story of the first section: stays
    doc.move(doc.stories()[-1].key, +1)  # the last story of the last section: stays
    assert doc.dumps() == SAMPLE


def test_remove_story_and_the_lead(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    keys = [s.key for s in doc.stories()]
    doc.remove_story(keys[3])
    doc.remove_story(keys[0])  # the lead
    assert [s.key for s in doc.stories()] == keys[1:3] + keys[4:]
    assert "[lead]" not in doc.dumps()
    # The last story of a section: the section stays, now empty, for stories to come.
    doc.remove_story(by_title(doc, "Training Ukraine").key)
    assert doc.sections() == ["News", "Video", "Further reading"]
    assert_builds(doc.dumps())


def test_add_story_appends_to_a_section(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    key = doc.add_story(
        {
            "id": "library-item-1",
            "title": "A story from the library",
            "url": "https://newsroom.example.org/news/2023/06/22/new",
            "summary": "Its summary.",
            "published": dt.date(2023, 6, 22),
            "kind": "video",
            "source": "NATO newsroom",
            "image": {"url": "images/2023-W25-video.png", "alt": "A picture"},
        },
        1,
    )
    assert key == "library-item-1"
    added = doc.stories()[-6]
    assert (added.key, added.section, added.index) == (key, 1, 1)
    assert added.published == "2023-06-22" and added.image_url == "images/2023-W25-video.png"
    text = doc.dumps()
    assert '[[sections.items]]\nid = "library-item-1"\ntitle = "A story from the library"\n' in text
    assert 'published = 2023-06-22\nkind = "video"' in text
    assert '\n\n[[sections]]\ntitle = "Further reading"' in text
    linkless = doc.add_story({"title": "Typed in", "url": "", "published": "2023-06-21"}, 2)
    assert doc.stories()[-1].key == linkless and doc.stories()[-1].linkless
    assert_builds(doc.dumps())


def test_add_story_to_an_issue_without_sections(tmp_path: Path) -> None:
    path = tmp_path / "lead-only.toml"
    path.write_text(COMPACT.split("[[sections]]")[0], encoding="utf-8")
    doc = IssueDoc.load(path)
    doc.add_story({"title": "Second story", "url": "https://example.org/2"}, 0)
    assert doc.sections() == ["News"]
    assert doc.dumps().endswith(
        '[lead]\ntitle = "Lead story"\nurl = "https://example.org/lead"\n\n'
        '[[sections]]\ntitle = "News"\n\n[[sections.items]]\ntitle = "Second story"\n'
        'url = "https://example.org/2"\n'
    )
    assert_builds(doc.dumps())


def test_move_within_and_across_sections(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    keys = [s.key for s in doc.stories()]  # lead, 7 news, 1 video, 5 further reading

    def where(key: str) -> tuple[int, int]:
        story = next(s for s in doc.stories() if s.key == key)
        return story.section, story.index

    doc.move(keys[2], -1)
    assert where(keys[2]) == (0, 0) and where(keys[1]) == (0, 1)
    doc.move(keys[2], +2)
    assert where(keys[2]) == (0, 2)
    doc.move(keys[8], 0)
    assert where(keys[8]) == (1, 0)
    doc.move(keys[8], +1)  # past the end of the video section: to the start of the next
    assert where(keys[8]) == (2, 0) and doc.sections()[1] == "Video"
    doc.move(keys[8], -1)  # past the start: to the end of the previous section
    assert where(keys[8]) == (1, 0)
    doc.move(keys[9], -1)
    assert where(keys[9]) == (1, 1)
    doc.move(keys[7], +1)  # the last news story goes to the top of the video section
    assert where(keys[7]) == (1, 0)
    assert_builds(doc.dumps())
    assert comments(doc.dumps()) == comments(SAMPLE)


def test_moving_the_last_story_up_keeps_blank_lines_between_tables(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    last = doc.stories()[-1]
    doc.move(last.key, -1)
    text = doc.dumps()
    assert text.endswith('kind = "feature"\nsource = "NATO newsroom"\n')
    assert "\n\n\n" not in text
    assert text.count("\n\n[[sections.items]]\n") == SAMPLE.count("\n\n[[sections.items]]\n")
    assert_builds(text)


def test_the_lead_moved_down_becomes_the_first_story(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    lead = doc.stories()[0]
    doc.move(lead.key, -1)  # nothing above the lead
    assert doc.stories()[0].where == "lead"
    doc.move(lead.key, +1)
    first = doc.stories()[0]
    assert (first.key, first.where, first.section, first.index) == (lead.key, "section", 0, 0)
    assert "[lead]" not in doc.dumps()
    assert 'image = { url = "images/2023-W25-lead.png"' in doc.dumps()
    assert_builds(doc.dumps())


def test_move_to_section(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    lead, story = doc.stories()[0], doc.stories()[3]
    doc.move_to_section(story.key, 2)
    assert (doc.stories()[-1].key, doc.stories()[-1].section) == (story.key, 2)
    doc.move_to_section(lead.key, 1)
    assert doc.stories()[0].where == "section"
    assert (by_title(doc, lead.title).section, by_title(doc, lead.title).index) == (1, 1)
    with pytest.raises(EditError, match="section: no section 3"):
        doc.move_to_section(story.key, 3)
    assert_builds(doc.dumps())


def test_make_lead_sends_the_old_lead_to_the_top_of_the_first_section(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    old, new = doc.stories()[0], by_title(doc, "Training Ukraine")
    doc.make_lead(new.key)
    stories = doc.stories()
    assert (stories[0].key, stories[0].where) == (new.key, "lead")
    assert (stories[1].key, stories[1].section, stories[1].index) == (old.key, 0, 0)
    assert doc.sections() == ["News", "Video", "Further reading"]
    text = doc.dumps()
    assert text.index("[lead]") < text.index("[[sections]]")
    assert '\n\n[lead]\ntitle = "Training Ukraine' in text
    doc.make_lead(new.key)  # already the lead: nothing to do
    assert doc.dumps() == text
    assert_builds(text)


def test_make_lead_in_an_issue_without_one(compact: Path) -> None:
    doc = IssueDoc.load(compact)
    doc.remove_story(doc.stories()[0].key)
    doc.make_lead(by_title(doc, "Second").key)
    text = doc.dumps()
    assert text.index("[lead]") < text.index("[[sections]]")
    assert doc.stories()[0].title == "Second"
    assert_builds(text)


# -- a sequence of edits, as a week in the studio -------------------------------------------------


def test_a_sequence_of_edits_builds_and_keeps_every_comment(
    sample: Path, settings: Settings
) -> None:
    doc = IssueDoc.load(sample)
    keys = [s.key for s in doc.stories()]
    doc.set_field("intro", "A new intro.\n\nWith **two** paragraphs.")
    doc.remove_story(keys[4])
    doc.move(keys[6], -2)
    doc.make_lead(keys[8])
    doc.edit_story(keys[1], title="Green and strong", summary="Edited in the studio.")
    new = doc.add_story({"title": "Typed in", "url": "", "kind": "news"}, 0)
    doc.edit_story(new, title="Typed in, then retitled")
    doc.edit_story(new, url="https://newsroom.example.org/typed-in")
    doc.move_to_section(keys[-1], 0)
    doc.move(keys[0], +3)
    doc.approve("ada", NOW, SECRET)
    text = doc.dumps()
    assert_builds(text, settings)  # settings: stories without a URL would be refused
    assert comments(text) == comments(SAMPLE)
    assert approval_of(text, [SECRET]).valid
    assert set(doc.story_keys()) == set(keys) - {keys[4]} | {new}
    assert "\n\n\n" not in text and text.endswith('source = "NATO newsroom"\n')
    version = doc.save(doc.version)
    assert sample.read_text(encoding="utf-8") == text
    assert IssueDoc.load(sample).version == version


def test_a_compact_layout_is_kept_where_nothing_moved(compact: Path) -> None:
    doc = IssueDoc.load(compact)
    doc.move(by_title(doc, "Second").key, -1)  # to the end of the first section
    untouched = COMPACT.split('[[sections]]\ntitle = "More"')[0]
    untouched = untouched.replace("date = 2023-06-23\n", 'date = 2023-06-23\nstatus = "draft"\n')
    # Blank lines only where tables now meet for the first time.
    assert doc.dumps() == untouched + (
        "\n"
        "[[sections.items]]\n"
        'title = "Second"\n'
        'url = "https://example.org/second"\n'
        "\n"
        "[[sections]]\n"
        'title = "More"\n'
    )


def test_windows_line_ends_are_kept(sample: Path) -> None:
    sample.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    doc = IssueDoc.load(sample)
    doc.set_field("intro", "One\ntwo")
    doc.move(doc.stories()[-1].key, -1)
    text = doc.dumps()
    assert "\n" not in text.replace("\r\n", "")
    assert tomllib.loads(text)["intro"] == "One\ntwo\n"
    assert_builds(text)


# -- bad edits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "fragments"),
    [
        ("subject", "x" * 201, ("subject", "201 characters")),
        ("subject", "   ", ("subject", "empty")),
        ("subject", "two\nlines", ("subject", "one line")),
        ("subject", "bell\x07", ("subject", "control character")),
        ("preheader", "y" * 151, ("preheader", "151 characters")),
        ("colour", "red", ("colour", "not a field")),
    ],
)
def test_bad_field_values_are_refused_and_nothing_changes(
    sample: Path, name: str, value: str, fragments: tuple[str, ...]
) -> None:
    doc = IssueDoc.load(sample)
    with pytest.raises(EditError) as caught:
        doc.set_field(name, value)
    message = str(caught.value)
    assert message.startswith(fragments[0] + ":"), message
    assert all(fragment in message for fragment in fragments), message
    assert str(sample) not in message and ".toml:" not in message
    assert doc.dumps() == SAMPLE
    assert sample.read_text(encoding="utf-8") == SAMPLE


def test_bad_story_edits_name_the_field(sample: Path, compact: Path) -> None:
    doc = IssueDoc.load(sample)
    key = doc.stories()[2].key
    with pytest.raises(EditError, match=r"item 2 .*, url: must be a web address"):
        doc.edit_story(key, url="newsroom.example.org/no-scheme")
    with pytest.raises(EditError, match=r"title: the title is empty"):
        doc.edit_story(key, title=" ")
    with pytest.raises(EditError, match=r"^story: no story 'nope'"):
        doc.edit_story("nope", title="x")
    with pytest.raises(EditError, match="appears twice"):
        doc.add_story({"title": "Again", "url": doc.stories()[0].url}, 0)
    with pytest.raises(EditError, match=r"^colour: not a story field"):
        doc.add_story({"title": "x", "colour": "red"}, 0)
    with pytest.raises(EditError, match=r"^published: must be a date"):
        doc.add_story({"title": "x", "published": "yesterday"}, 0)
    with pytest.raises(EditError, match=r"image: image .* has no alt text"):
        doc.add_story({"title": "x", "url": "https://e.org/x", "image": {"url": "a.png"}}, 0)
    with pytest.raises(EditError, match=r"^section: no section 9"):
        doc.add_story({"title": "x"}, 9)
    assert doc.dumps() == SAMPLE
    small = IssueDoc.load(compact)
    for story in small.stories()[:-1]:
        small.remove_story(story.key)
    with pytest.raises(EditError, match="the issue has no stories"):
        small.remove_story(small.stories()[0].key)


def test_an_already_broken_file_can_still_be_edited(sample: Path) -> None:
    # A hand edit left a bad image; the studio can still fix other things (and that one).
    alt = 'alt = "Abstract illustration: a play symbol on a field of blue and yellow", '
    sample.write_text(SAMPLE.replace(alt, ""), encoding="utf-8")
    doc = IssueDoc.load(sample)
    doc.set_field("subject", "Still editable")
    assert tomllib.loads(doc.dumps())["subject"] == "Still editable"
    with pytest.raises(EditError, match=r"^subject:"):
        doc.set_field("subject", "")
    with pytest.raises(EditError, match=r"cannot approve: .*has no alt text"):
        doc.approve("ada", NOW, SECRET)


# -- approval -------------------------------------------------------------------------------------


def test_approve_records_who_when_and_the_hash(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    doc.approve("  ada  ", NOW, SECRET)
    text = doc.dumps()
    assert changed_lines(SAMPLE, text)[:3] == [
        '+status = "approved"',
        '+approved_by = "ada"',
        "+approved_at = 2023-06-22T16:05:30Z",
    ]
    assert changed_lines(SAMPLE, text)[3].startswith('+approved_hash = "hmac-sha256:')
    approval = approval_of(text, [SECRET])
    assert approval.valid and approval.by == "ada" and approval.at == "2023-06-22T16:05:30+00:00"
    data = tomllib.loads(text)
    assert data["approved_at"] == dt.datetime(2023, 6, 22, 16, 5, 30, tzinfo=dt.UTC)
    assert parse_issue(text, "approved").status == "approved"
    brussels = dt.timezone(dt.timedelta(hours=2))
    doc.approve("grace", NOW.astimezone(brussels), SECRET)
    assert "approved_at = 2023-06-22T18:05:30+02:00\n" in doc.dumps()
    assert doc.dumps().count("approved_by") == 1
    assert approval_of(doc.dumps(), [SECRET]).by == "grace"
    with pytest.raises(EditError, match=r"^approved_by:"):
        doc.approve(" ", NOW, SECRET)


def test_an_edit_after_approval_returns_the_issue_to_draft(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    doc.approve("ada", NOW, SECRET)
    approved = doc.dumps()
    doc.move(doc.stories()[2].key, -1)
    text = doc.dumps()
    assert 'status = "draft"\nsubject' in text
    assert "approved_" not in text
    assert not approval_of(text, [SECRET]).valid and approval_of(text, [SECRET]).status == "draft"
    # And once more approved: the same four lines, in the same place.
    doc.approve("ada", NOW, SECRET)
    assert changed_lines(approved, doc.dumps())[0].startswith('-approved_hash = "hmac-sha256:')


def test_a_hand_edit_after_approval_undoes_it(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    doc.approve("ada", NOW, SECRET)
    doc.save(doc.version)
    approved = sample.read_text(encoding="utf-8")
    assert approval_of(approved, [SECRET]).valid
    # Comments, blank lines and quoting are not content: the approval holds.
    reformatted = approved.replace("number = 1\n", "# Issue one.\nnumber = 1\n\n").replace(
        'kind = "video"', "kind = 'video'"
    )
    assert approval_of(reformatted, [SECRET]).valid
    # A changed value is: the file still says "approved", but it is not.
    edited = approved.replace("in Berlin on Monday", "in Berlin on Tuesday")
    approval = approval_of(edited, [SECRET])
    assert approval.status == "approved" and not approval.valid and approval.stale


# -- saving ---------------------------------------------------------------------------------------


def test_save_writes_atomically_and_returns_the_new_version(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    loaded = doc.version
    doc.set_field("subject", "Saved")
    version = doc.save(loaded)
    data = sample.read_bytes()
    assert version == doc.version == hashlib.sha256(data).hexdigest() != loaded
    assert doc.text == data.decode() == doc.dumps()
    assert sorted(p.name for p in sample.parent.iterdir()) == [sample.name]  # no temp file
    # Saving again from the new version works; from the old one it is a conflict.
    doc.set_field("subject", "Saved twice")
    with pytest.raises(Conflict):
        doc.save(loaded)
    assert doc.save(version) == hashlib.sha256(sample.read_bytes()).hexdigest()


def test_save_without_changes_leaves_the_file_alone(sample: Path) -> None:
    os.utime(sample, (1_000_000_000, 1_000_000_000))
    doc = IssueDoc.load(sample)
    assert doc.save(doc.version) == doc.version
    assert sample.stat().st_mtime == 1_000_000_000


def test_a_file_changed_on_disk_is_a_conflict_and_is_not_overwritten(sample: Path) -> None:
    doc = IssueDoc.load(sample)
    doc.set_field("subject", "From the studio")
    by_hand = SAMPLE.replace("number = 1", "number = 2")
    sample.write_text(by_hand, encoding="utf-8")
    with pytest.raises(Conflict, match="changed on disk since the page loaded it"):
        doc.save(doc.version)
    assert sample.read_text(encoding="utf-8") == by_hand
    sample.unlink()
    with pytest.raises(Conflict, match="removed"):
        doc.save(doc.version)
    assert not sample.exists()


def test_a_failed_write_leaves_the_file_as_it_was(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = IssueDoc.load(sample)
    doc.set_field("subject", "Never written")

    def refuse(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InputError, match="No space left on device"):
        doc.save(doc.version)
    assert sample.read_text(encoding="utf-8") == SAMPLE
    assert sorted(p.name for p in sample.parent.iterdir()) == [sample.name]


def test_a_comment_above_a_story_travels_with_it(tmp_path: Path) -> None:
    title = "NATO Secretary General visits exercise Air Defender in Germany"
    header = f'[[sections.items]]\ntitle = "{title}"'
    note = "# About Air Defender: check the photo credit."
    path = tmp_path / "2023-W25.toml"
    path.write_text(SAMPLE.replace(header, f"{note}\n{header}"), encoding="utf-8")
    doc = IssueDoc.load(path)
    key = next(s.key for s in doc.stories() if s.title == title)
    doc.move(key, -1)
    moved = doc.dumps()
    assert f"\n\n{note}\n{header}" in moved  # still right above its story, after a blank line
    # Third in reading order (the lead, one story, then it) on disk; second once moved up.
    assert [s.title for s in IssueDoc.load(path).stories()].index(title) == 2
    assert [s.title for s in parse_issue(moved, "moved").items()].index(title) == 1
    doc = IssueDoc.load(path)
    doc.remove_story(key)
    assert note not in doc.dumps()  # a note about a story that left goes with it


NOTES = """number = 1
week = "2023-W25"
date = 2023-06-23
subject = "S"

[[sections]]
title = "News"
# note about A
[[sections.items]]
title = "A"
url = "https://example.org/a"
# note about B
[[sections.items]]
title = "B"
url = "https://example.org/b"
# note about C
[[sections.items]]
title = "C"
url = "https://example.org/c"

[[sections]]
title = "More"

[[sections.items]]
title = "D"
url = "https://example.org/d"
"""


def notes_above(text: str) -> dict[str, str]:
    """Each story's title -> the note written right above its header ("" if none)."""
    found: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("title = ") and lines[i - 1] == "[[sections.items]]":
            note = lines[i - 2] if i >= 2 and lines[i - 2].startswith("#") else ""
            found[line.split('"')[1]] = note
    return found


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize(
    ("change", "order"),
    [
        (lambda d, k: d.remove_story(k["B"]), "ACD"),
        (lambda d, k: d.move(k["B"], 1), "ACBD"),
        (lambda d, k: d.move(k["A"], 1), "BACD"),
        (lambda d, k: d.move(k["C"], 1), "ABCD"),  # first of "More" now
        (lambda d, k: d.move_to_section(k["A"], 1), "BCDA"),
    ],
    ids=["remove-B", "B-down", "A-down-from-the-top", "C-down-into-More", "A-to-More"],
)
def test_every_note_stays_above_its_own_story(
    tmp_path: Path, change: Any, order: str, crlf: bool
) -> None:
    path = tmp_path / "2023-W25.toml"
    path.write_bytes((NOTES.replace("\n", "\r\n") if crlf else NOTES).encode())
    doc = IssueDoc.load(path)
    change(doc, {s.title: s.key for s in doc.stories()})
    text = doc.dumps()
    assert "".join(s.title for s in parse_issue(text, "x").items()) == order
    expected = {"A": "# note about A", "B": "# note about B", "C": "# note about C", "D": ""}
    assert notes_above(text) == {t: expected[t] for t in order}
    assert ("\r\n" in text) is crlf
