"""The item library (newsletter.library) against a real SQLite store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import library
from newsletter.library import NewItem
from newsletter.models import item_id
from newsletter.settings import Settings, SourceSettings
from newsletter.store import Store

SRC = Path(__file__).parents[1] / "src" / "newsletter"
NOW = "2023-06-23T07:00:00+00:00"


def add(store: Store, *items: NewItem, days: int = 3) -> list[str]:
    with store.transaction() as db:
        return [library.add_item(db, item, now=NOW, same_title_days=days) for item in items]


def item(title: str, day: int, url: str | None = None, summary: str = "") -> NewItem:
    return NewItem(title, "desk", url, dt.date(2023, 6, day), summary=summary)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.store_path) as store:
        yield store


def test_urls_are_stored_canonical_and_the_original_kept(store: Store) -> None:
    url = "https://News.Example.org/a?utm_source=rss#top"
    assert add(store, item("Allies meet", 20, url)) == ["new"]
    (row,) = library.list_items(store)
    assert row["url"] == "https://news.example.org/a" and row["original_url"] == url
    assert row["id"] == item_id("https://news.example.org/a", "Allies meet")
    assert row["norm_title"] == "allies meet"
    assert add(store, item("Allies meet", 20, "https://news.example.org/a")) == ["unchanged"]
    assert add(store, item("Allies meet", 20, url, summary="Now with a summary.")) == ["updated"]


def test_the_same_headline_with_other_accents_is_the_same_story(store: Store) -> None:
    add(store, item("Café society opens", 20, "https://n.example.org/cafe"))
    # Copied text (no URL), two days later, no accent: fills in the summary only.
    assert add(store, item("CAFE SOCIETY OPENS!", 22, summary="A new café.")) == ["updated"]
    (row,) = library.list_items(store)
    assert row["title"] == "Café society opens" and row["summary"] == "A new café."
    assert row["published"] == "2023-06-20"


def test_list_items_by_week_and_source(store: Store) -> None:
    add(store, item("Sunday", 25), item("Next Monday", 26), item("Monday", 19))
    add(store, NewItem("Elsewhere", "feed", published=dt.date(2023, 6, 21)))
    assert [r["title"] for r in library.list_items(store, week="2023-W25")] == [
        "Sunday", "Elsewhere", "Monday",
    ]  # fmt: skip
    assert [r["title"] for r in library.list_items(store, source="feed")] == ["Elsewhere"]
    assert library.list_items(store, week="2023-W25", source="nobody") == []


def test_pin_and_unpin(store: Store) -> None:
    add(store, item("Pin me", 20, "https://n.example.org/pin"))
    (row,) = library.list_items(store)
    assert library.pin(store, row["id"]) is True
    assert library.list_items(store)[0]["pinned"] == 1
    assert library.pin(store, row["id"], pinned=False) is True
    assert library.list_items(store)[0]["pinned"] == 0
    assert library.pin(store, "000000000000") is False


def test_items_recorded_for_an_issue_are_not_draftable_for_another(store: Store) -> None:
    add(store, item("Sent last week", 20, "https://n.example.org/a"), item("Fresh", 21))
    sent, fresh = (r["id"] for r in library.list_items(store, week="2023-W25")[::-1])
    with store.transaction() as db:
        library.record_issue_items(db, "2023-W24", [sent])
        library.record_issue_items(db, "2023-W24", [sent])  # a resumed send: no error
        # This week's own issue went out too: redrafting it keeps its stories.
        library.record_issue_items(db, "2023-W25", [fresh])
    titles = [r["title"] for r in library.draftable_items(store, "2023-W25")]
    assert titles == ["Fresh"] and library.count_sent_elsewhere(store, "2023-W25") == 1


def test_record_issue_items_joins_the_callers_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as db:
        library.record_issue_items(db, "2023-W25", ["abc"])
        raise RuntimeError("the send failed before committing")
    assert store.db.execute("SELECT COUNT(*) FROM issue_items").fetchone()[0] == 0


def test_draftable_items_put_pinned_first(store: Store) -> None:
    add(store, item("Old", 19, "https://n.example.org/old"), item("New", 23))
    old = library.list_items(store, week="2023-W25")[-1]
    library.pin(store, old["id"])
    assert [r["title"] for r in library.draftable_items(store, "2023-W25")] == ["Old", "New"]


def test_source_state_belongs_to_the_exact_source(store: Store) -> None:
    feed = SourceSettings(name="feed", type="feed", location="https://n.example.org/rss")
    assert library.read_source_state(store, feed) is None
    library.write_source_state(store, feed, '"v1"', None)
    library.write_source_state(store, feed, '"v2"', "Fri, 23 Jun 2023 07:00:00 GMT")
    state = library.read_source_state(store, feed)
    assert state == library.SourceState('"v2"', "Fri, 23 Jun 2023 07:00:00 GMT")
    moved = feed.model_copy(update={"location": "https://n.example.org/atom"})
    assert library.read_source_state(store, moved) is None


def test_only_the_library_touches_its_tables() -> None:
    from tests.table_owners import modules_with

    sql = r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:items|source_state|issue_items)\b"
    # store.py creates the tables (migrations); everything else goes through the library.
    assert modules_with(sql) <= {"library.py", "store.py"}


# -- which rule dated each item (issue 12, part 5) -----------------------------------------


def test_the_dating_rule_is_stored_and_travels_with_the_date_it_explains(store: Store) -> None:
    url = "https://n.example.org/a"
    feed = NewItem("Allies meet", "feed", url, dt.date(2023, 6, 22), dated_by="feed date")
    assert add(store, feed) == ["new"]
    # Copied text of the same story, dated by its page: the feed's date and label stay.
    copied = NewItem("Allies meet", "desk", published=dt.date(2023, 6, 23), dated_by="page date")
    assert add(store, copied) == ["unchanged"]
    (row,) = library.list_items(store)
    assert (row["published"], row["dated_by"]) == ("2023-06-22", "feed date")
    # The feed itself re-dates the entry: its new date comes with its new rule.
    redated = NewItem("Allies meet", "feed", url, dt.date(2023, 6, 21), dated_by="feed updated")
    assert add(store, redated) == ["updated"]
    (row,) = library.list_items(store)
    assert (row["published"], row["dated_by"]) == ("2023-06-21", "feed updated")
    # An undated item records no rule, whatever the source said.
    add(store, NewItem("Undated", "desk", dated_by="page date"))
    assert [r["dated_by"] for r in library.list_items(store) if r["title"] == "Undated"] == [""]


def test_an_item_from_before_the_rule_was_kept_gets_it_when_seen_again(settings: Settings) -> None:
    import sqlite3

    from newsletter.store import _MIGRATIONS

    # A store at schema 5, holding an item collected then.
    db = sqlite3.connect(settings.store_path, isolation_level=None)
    for script in _MIGRATIONS[:5]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 5")
    db.execute(
        "INSERT INTO items (id, url, original_url, title, norm_title, source, published, "
        "first_seen, last_seen) VALUES ('old1', NULL, NULL, 'Allies meet', 'allies meet', "
        "'desk', '2023-06-22', ?, ?)",
        (NOW, NOW),
    )
    db.close()
    with Store(settings.store_path) as store:
        (row,) = library.list_items(store)
        assert row["dated_by"] == ""  # the migration cannot know it
        same = NewItem("Allies meet", "desk", published=dt.date(2023, 6, 22), dated_by="date line")
        other = NewItem("Allies meet", "desk", published=dt.date(2023, 6, 23), dated_by="page date")
        assert add(store, other) == ["unchanged"]  # another date: not its rule to give
        assert library.list_items(store)[0]["dated_by"] == ""
        assert add(store, same) == ["updated"]
        assert library.list_items(store)[0]["dated_by"] == "date line"
