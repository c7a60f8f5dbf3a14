"""The item library, fetching and drafting, with a real SQLite file and a local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from newsletter import library, load_issue
from newsletter.collect import PARSERS, Candidate, add_candidates, collect, source_for
from newsletter.collect.fetch import FetchError, fetch
from newsletter.draft import draft_issue
from newsletter.errors import InputError
from newsletter.library import list_items
from newsletter.models import item_id
from newsletter.normalise import canonical_url
from newsletter.settings import Settings, SourceSettings
from newsletter.store import Store
from tests.local_http import serve

SOURCE = SourceSettings(name="desk", type="text", location="x.txt")


def add(
    settings: Settings, *candidates: Candidate, source: SourceSettings = SOURCE
) -> dict[str, int]:
    with Store(settings.store_path) as store:
        report = add_candidates(store, settings, source, list(candidates))
    return {"new": report.new, "updated": report.updated, "unchanged": report.unchanged}


def rows(settings: Settings, **filters: str) -> list[dict[str, object]]:
    with Store(settings.store_path) as store:
        return [dict(r) for r in list_items(store, **filters)]  # type: ignore[arg-type]


def story(title: str, day: int, url: str | None = None, **more: object) -> Candidate:
    return Candidate(title=title, url=url, published=dt.date(2023, 6, day), **more)  # type: ignore[arg-type]


def test_canonical_url() -> None:
    assert (
        canonical_url("HTTPS://News.Example.ORG:443/a/b?utm_source=x&id=3&fbclid=y#top")
        == "https://news.example.org/a/b?id=3"
    )
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x") == "http://example.org:8080/x"


def test_same_url_or_same_title_within_days_is_one_story(settings: Settings) -> None:
    first = story("Allies meet in Vilnius", 20, "https://news.example.org/vilnius?utm_medium=rss")
    assert add(settings, first) == {"new": 1, "updated": 0, "unchanged": 0}
    # The same story again: nothing new, nothing changed.
    assert add(settings, first) == {"new": 0, "updated": 0, "unchanged": 1}
    # From another source, tracking parameters and fragment differ: the same item.
    other = story(
        "Allies meet in Vilnius", 20, "https://NEWS.example.org/vilnius#x", summary="New."
    )
    assert add(settings, other, source=SOURCE.model_copy(update={"name": "feed"})) == {
        "new": 0, "updated": 1, "unchanged": 0,
    }  # fmt: skip
    # Copied text without a URL, two days later, same headline modulo case and punctuation:
    # the same story; it only fills in what is missing, and nothing is.
    assert add(settings, story("ALLIES MEET IN VILNIUS!", 22)) == {
        "new": 0,
        "updated": 0,
        "unchanged": 1,
    }
    # The same headline a month later is a different story.
    later = Candidate(title="Allies meet in Vilnius", published=dt.date(2023, 7, 30))
    assert add(settings, later)["new"] == 1
    items = rows(settings)
    assert len(items) == 2
    june = next(i for i in items if str(i["published"]).startswith("2023-06"))
    assert june["url"] == "https://news.example.org/vilnius" and june["summary"] == "New."
    assert june["id"] == item_id("https://news.example.org/vilnius", "Allies meet in Vilnius")


def test_a_source_is_one_transaction(settings: Settings) -> None:
    add(settings, story("Kept", 20))

    class Boom(Candidate):
        @property  # type: ignore[override]
        def title(self) -> str:
            raise RuntimeError("parser bug half way")

    with pytest.raises(RuntimeError):
        add(settings, story("Would be new", 21), Boom.__new__(Boom))  # type: ignore[arg-type]
    assert [r["title"] for r in rows(settings)] == ["Kept"]


def test_items_by_week(settings: Settings) -> None:
    add(settings, story("Sunday", 25), story("Next Monday", 26), story("Monday", 19))
    assert [r["title"] for r in rows(settings, week="2023-W25")] == ["Sunday", "Monday"]
    with pytest.raises(InputError, match="not an ISO week"):
        rows(settings, week="2023-25")


def test_time_zone_decides_the_week(settings: Settings) -> None:
    late = dt.datetime(2023, 6, 25, 22, 30, tzinfo=dt.UTC)  # Monday 00:30 in Brussels
    brussels = settings.model_copy(
        update={"draft": settings.draft.model_copy(update={"timezone": "Europe/Brussels"})}
    )
    add(brussels, Candidate(title="Late on Sunday", published_at=late))
    assert rows(brussels, week="2023-W26")[0]["published"] == "2023-06-26"
    add(settings, Candidate(title="Late on Sunday, UTC desk", published_at=late))
    assert [r["title"] for r in rows(settings, week="2023-W25")] == ["Late on Sunday, UTC desk"]


class Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        if self.path == "/feed":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"<rss>...</rss>"
            self.send_response(200)
            self.send_header("ETag", '"v1"')
        elif self.path == "/huge":
            body = b"x" * 2_000_000
            self.send_response(200)
        elif self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", "/loop")
            body = b""
        else:
            body = b"not here"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve(Server) as url:
        yield url


def test_fetch_conditional_get_limits_and_user_agent(base: str, settings: Settings) -> None:
    collect_settings = settings.collect.model_copy(
        update={"max_bytes": 1_000_000, "max_redirects": 3}
    )
    first = fetch(f"{base}/feed", collect_settings)
    assert first.content == b"<rss>...</rss>" and first.etag == '"v1"'
    assert Server.seen[-1]["User-Agent"].startswith("newsletter-collect/")
    again = fetch(f"{base}/feed", collect_settings, etag=first.etag)
    assert again.content is None  # 304: nothing to parse
    with pytest.raises(FetchError, match="over the 1000000 limit"):
        fetch(f"{base}/huge", collect_settings)
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(f"{base}/loop", collect_settings)
    with pytest.raises(FetchError, match="answered 404"):
        fetch(f"{base}/missing", collect_settings)


def test_a_failing_source_does_not_stop_the_others(
    base: str, settings: Settings, project: Path
) -> None:
    (project / "desk.txt").write_text("irrelevant")
    sources = [
        SourceSettings(name="gone", type="feed", location=f"{base}/missing"),
        SourceSettings(name="huge", type="feed", location=f"{base}/huge"),
    ]
    limited = settings.model_copy(
        update={
            "sources": sources,
            "collect": settings.collect.model_copy(update={"max_bytes": 1000}),
        }
    )
    report = collect(limited)
    assert [s.source for s in report.sources] == ["gone", "huge"]
    assert (
        report.failed == 2
        and "404" in report.sources[0].error
        and "limit" in report.sources[1].error
    )


def week_items(settings: Settings) -> None:
    add(
        settings,
        story(
            "Lead with picture",
            22,
            "https://n.example.org/lead",
            image_url="https://n.example.org/a.jpg",
            image_alt="A",
        ),
        story("Older news", 19, "https://n.example.org/old"),
        story("Newer news", 21, "https://n.example.org/new"),
        story("A video", 20, "https://n.example.org/video", kind="video"),
        story("Review piece", 23, None, kind="feature", section="NATO Review", author="A. Writer"),
        story("Out of week", 26, "https://n.example.org/late"),
    )


def test_draft_groups_by_kind_and_writes_an_issue_file(settings: Settings, project: Path) -> None:
    week_items(settings)
    draft = draft_issue(settings, "2023-W25")
    # The sample issue file exists: the draft goes beside it.
    assert draft.beside and draft.path == settings.issues_dir / "2023-W25.new.toml"
    (project / "issues" / "2023-W25.toml").unlink()
    draft = draft_issue(settings, "2023-W25")
    assert not draft.beside and draft.without_url == 1
    text = draft.path.read_text()
    assert "# NEEDS A URL" in text
    assert draft.lead is not None and draft.lead["title"] == "Lead with picture"
    assert [(t, [r["title"] for r in items]) for t, items in draft.sections] == [
        ("News", ["Newer news", "Older news"]),
        ("Video", ["A video"]),
        ("Further reading", ["Review piece"]),
    ]
    # The draft is a valid issue file once the missing URL is given...
    with pytest.raises(InputError, match="no URL"):
        load_issue(draft.path, settings)
    draft.path.write_text(text.replace('url = ""', 'url = "https://n.example.org/review"'))
    issue = load_issue(draft.path, settings)
    assert issue.subject == "Lead with picture" and issue.week == "2023-W25"
    assert issue.sections[2].items[0].author == "A. Writer"


def test_draft_limits_pins_and_never_overwrites(settings: Settings, project: Path) -> None:
    (project / "issues" / "2023-W25.toml").unlink()
    add(
        settings, *(story(f"News {n}", 19 + n % 5, f"https://n.example.org/{n}") for n in range(12))
    )
    news = settings.draft.sections[0].model_copy(update={"limit": 3})
    limited = settings.model_copy(
        update={"draft": settings.draft.model_copy(update={"sections": [news], "lead": False})}
    )
    with Store(settings.store_path) as store:
        assert library.pin(store, item_id("https://n.example.org/5", ""))  # the oldest day
    draft = draft_issue(limited, "2023-W25")
    titles = [r["title"] for r in draft.sections[0][1]]
    assert titles[0] == "News 5" and len(titles) == 3
    assert sum("is full (3)" in s for s in draft.skipped) == 9
    edited = draft.path.read_text().replace('intro = ""', 'intro = "Our edits."')
    draft.path.write_text(edited)
    again = draft_issue(limited, "2023-W25")
    assert again.beside and again.path.name == "2023-W25.new.toml"
    assert draft.path.read_text() == edited


def test_draft_never_retakes_items_sent_in_an_earlier_issue(settings: Settings) -> None:
    week_items(settings)
    with Store(settings.store_path) as store, store.transaction() as db:
        library.record_issue_items(db, "2023-W24", [item_id("https://n.example.org/new", "")])
    draft = draft_issue(settings, "2023-W25")
    titles = [r["title"] for _, items in draft.sections for r in items]
    assert "Newer news" not in titles and "Older news" in titles
    assert "1 items of the week went out in an earlier issue" in draft.skipped


def test_items_json_and_draft_from_the_cli(settings: Settings, project: Path) -> None:
    week_items(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    run = [sys.executable, "-m", "newsletter"]
    listed = subprocess.run(
        [*run, "items", "--week", "2023-W25", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert len(items) == 5
    assert {
        "id",
        "title",
        "url",
        "summary",
        "published",
        "kind",
        "section",
        "author",
        "source",
    } <= set(items[0])
    assert items[0]["published"] == "2023-06-23"
    drafted = subprocess.run(
        [*run, "draft", "--week", "2023-W25"], cwd=project, env=env, capture_output=True, text=True
    )
    assert drafted.returncode == 0
    assert (
        "2023-W25.toml exists and may hold edits: wrote the draft to issues/2023-W25.new.toml"
        in drafted.stdout
    )
    assert "1 stories have no URL" in drafted.stderr
    empty = subprocess.run(
        [*run, "draft", "--week", "2020-W01"], cwd=project, env=env, capture_output=True, text=True
    )
    assert empty.returncode == 2 and "no items published in 2020-W01" in empty.stderr


def test_newcomer_flow_feed_page_text_items_draft_build(project: Path) -> None:
    """The README's flow: sources from a feed file and the NATO page, the seed text,
    items of the week, a draft, and a build of the draft."""
    from newsletter.collect.page import NATO_NEWSROOM_SELECTORS

    fixtures = Path(__file__).parent / "fixtures"
    root = Path(__file__).parents[1]
    selectors = (
        "{ "
        + ", ".join(f"{k} = {json.dumps(v)}" for k, v in NATO_NEWSROOM_SELECTORS.items())
        + " }"
    )
    # The README and config.toml show the same selector set.
    assert selectors in (root / "README.md").read_text()
    assert selectors in (root / "config.toml").read_text()
    config = project / "config.toml"
    config.write_text(
        config.read_text().replace('location = "examples/', f'location = "{root}/examples/')
        + f"""
[[sources]]
name = "feed"
type = "feed"
location = "{fixtures}/feeds/rss2.xml"

[[sources]]
name = "nato-page"
type = "page"
location = "{fixtures}/pages/nato-newsroom-2022-12-07.html"
selectors = {selectors}
"""
    )
    (project / "issues" / "2023-W25.toml").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    run = [sys.executable, "-m", "newsletter"]

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run, *args], cwd=project, env={**env, **extra}, capture_output=True, text=True
        )

    first = cli("collect")
    assert first.returncode == 0, first.stderr
    assert "nato-newsroom-text: 14 new" in first.stdout and "nato-page: 7 new" in first.stdout
    again = cli("collect")
    assert "nato-newsroom-text: 0 new, 0 updated, 14 unchanged" in again.stdout
    assert "nato-page: 0 new, 0 updated, 7 unchanged" in again.stdout
    week = json.loads(cli("items", "--week", "2023-W25", "--json").stdout)
    assert len(week) == 14 and {i["source"] for i in week} == {"nato-newsroom-text"}
    page = json.loads(cli("items", "--source", "nato-page", "--json").stdout)
    assert len(page) == 7 and all(i["url"].startswith("https://") for i in page)
    assert cli("draft", "--week", "2023-W25").returncode == 0
    refused = cli("build", "issues/2023-W25.toml")
    assert refused.returncode == 2 and "the story has no URL" in refused.stderr
    built = cli("build", "issues/2023-W25.toml", NEWSLETTER_BUILD__ALLOW_LINKLESS_ITEMS="true")
    assert built.returncode == 0, built.stderr
    text = (project / "out" / "2023-W25" / "email.txt").read_text()
    assert "Secretary General praises Montenegro's contributions to NATO" in text


def test_two_urls_under_one_headline_stay_two_stories(settings: Settings) -> None:
    a = story("Weekly briefing", 20, "https://a.example.org/briefing")
    b = story("Weekly briefing", 20, "https://b.example.org/briefing")
    feed_b = SOURCE.model_copy(update={"name": "b"})
    assert add(settings, a)["new"] == 1 and add(settings, b, source=feed_b)["new"] == 1
    # Collecting both again changes nothing: neither overwrites the other.
    assert add(settings, a) == {"new": 0, "updated": 0, "unchanged": 1}
    assert add(settings, b, source=feed_b) == {"new": 0, "updated": 0, "unchanged": 1}
    assert {r["url"] for r in rows(settings)} == {a.url, b.url}


def test_a_recurring_headline_without_url_gets_its_own_id(settings: Settings) -> None:
    add(settings, story("Weekly briefing", 5))
    add(settings, story("Weekly briefing", 26))  # three weeks later: another story
    assert len({r["id"] for r in rows(settings)}) == 2


def test_undated_items_count_from_the_day_they_were_first_seen(settings: Settings) -> None:
    add(settings, Candidate(title="No date on the page", url="https://n.example.org/undated"))
    this_week = dt.date.today().isocalendar()
    week = f"{this_week[0]}-W{this_week[1]:02d}"
    assert [r["title"] for r in rows(settings, week=week)] == ["No date on the page"]


def test_bad_sources_are_reported_and_the_rest_collected(settings: Settings, project: Path) -> None:
    (project / "good.txt").write_text(
        "A headline for the test\n\nA summary of it on 20 June 2023.\n\nRead more\n"
    )
    sources = [
        SourceSettings(name="bad-url", type="feed", location="http://x:abc/feed"),
        SourceSettings(name="ftp", type="feed", location="ftp://example.org/feed"),
        SourceSettings(name="missing", type="text", location="missing.txt"),
        SourceSettings(name="good", type="text", location="good.txt"),
    ]
    report = collect(settings.model_copy(update={"sources": sources}))
    assert [bool(s.error) for s in report.sources] == [True, True, True, False]
    assert report.sources[3].new == 1
    with pytest.raises(ValueError, match=r"a page source needs selectors\.item"):
        SourceSettings(name="p", type="page", location="x.html")


def test_conditional_get_state_is_kept_only_after_a_successful_import(
    base: str, settings: Settings
) -> None:
    from newsletter.collect import collect_source

    source = SourceSettings(name="etag", type="feed", location=f"{base}/feed")
    with Store(settings.store_path) as store:
        first = collect_source(source, settings, store)
        # "<rss>...</rss>" has no entries: nothing stored, so no validators remembered.
        assert first.new == 0 and first.problems and not first.not_modified
        again = collect_source(source, settings, store)
        assert not again.not_modified
        assert store.db.execute("SELECT COUNT(*) FROM source_state").fetchone()[0] == 0


def test_one_parser_per_source_type() -> None:
    # The registry and the settings' source types are the same list.
    assert set(PARSERS) == {"feed", "page", "text"}
    assert set(PARSERS) == set(SourceSettings.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]


def test_source_for_a_one_off_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"copied/desk-2023-06-23\.txt: no such file"):
        source_for("copied/desk-2023-06-23.txt", "text")
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "desk-2023-06-23.txt").write_text("NATO\n", encoding="utf-8")
    text = source_for("copied/desk-2023-06-23.txt", "text")
    assert (text.name, text.type) == ("desk-2023-06-23", "text")
    assert text.location == str(tmp_path / "copied" / "desk-2023-06-23.txt")
    feed = source_for("https://news.example.org:8443/feed.xml", "feed", name="newsroom")
    assert (feed.name, feed.location) == ("newsroom", "https://news.example.org:8443/feed.xml")
    assert source_for("https://news.example.org/feed.xml", "feed").name == "news.example.org"
    page = source_for(
        "https://n.example.org/press/", "page", selectors=["item=li.news", "date = time.d=x"]
    )
    assert page.selectors == {"item": "li.news", "date": " time.d=x"}


@pytest.mark.parametrize(
    ("kind", "selectors", "message"),
    [
        ("page", ["li.news"], "selector 'li.news': write KEY=CSS"),
        ("page", ["=li.news"], "selector '=li.news': write KEY=CSS"),
        ("feed", ["item=li"], "only --type page uses them, not --type feed"),
        ("page", [], "a page source needs selectors.item"),
        ("page", ["title=h2"], "a page source needs selectors.item"),
        ("rss", [], "type 'rss': not a source type (use feed, page, text)"),
    ],
)
def test_source_for_refuses_bad_input_in_one_line(
    kind: str, selectors: list[str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        source_for("https://n.example.org/press/", kind, selectors=selectors)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InputError, match="location is empty"):
        source_for(" ", "feed")
