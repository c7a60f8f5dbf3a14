"""The item library, fetching and drafting, with a real SQLite file and a local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
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
from tests.cli_process import run_newsletter
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
        update={"max_bytes": 1_000_000, "max_redirects": 3, "allow_private": True}
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
            "collect": settings.collect.model_copy(
                update={"max_bytes": 1000, "allow_private": True}
            ),
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
    assert "Secretary General praises Montenegro\u2019s contributions to NATO" in text


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
    settings = settings.model_copy(
        update={"collect": settings.collect.model_copy(update={"allow_private": True})}
    )
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


# --- Issue 11: SSRF, deadlines, bad dates, any exception, control characters, exit codes -----


def test_collect_refuses_internal_addresses_and_every_redirect(
    base: str, settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without [collect] allow_private, loopback and private targets are refused before any
    connection, for the first request and for a redirect; the other sources still run."""
    from tests.local_http import fake_network

    port = int(base.rsplit(":", 1)[1])
    net = fake_network(
        monkeypatch, names={"news.example.test": ["93.184.216.34"]}, routes={"93.184.216.34": port}
    )
    (project / "good.txt").write_text("A headline for the test\n\nA summary on 20 June 2023.\n")
    sources = [
        SourceSettings(name="loopback", type="feed", location=f"{base}/feed"),
        SourceSettings(name="decimal", type="feed", location="http://2130706433/feed"),
        SourceSettings(name="mapped", type="feed", location=f"http://[::ffff:127.0.0.1]:{port}/"),
        SourceSettings(name="redirect", type="feed", location="http://news.example.test/loop"),
        SourceSettings(name="good", type="text", location="good.txt"),
    ]
    before = len(Server.seen)
    report = collect(settings.model_copy(update={"sources": sources}))
    errors = [s.error for s in report.sources]
    hint = "; set [collect] allow_private = true to allow it"
    assert errors[0] == f"{base}/feed: refused: 127.0.0.1 is a loopback address{hint}"
    assert errors[1] == f"http://2130706433/feed: refused: 127.0.0.1 is a loopback address{hint}"
    assert errors[2].endswith(f"refused: ::ffff:7f00:1 is a loopback address{hint}")
    # The public name's server redirects to /loop on itself: a name, so it is followed
    # (checked again) until the limit; then a redirect to loopback is refused.
    assert "more than 5 redirects" in errors[3]
    assert errors[4] == "" and report.sources[4].new == 1
    assert len(Server.seen) == before + 6  # only the public name's requests went out
    assert {c[0] for c in net.connects} == {"93.184.216.34"}


def test_fetch_refuses_a_redirect_into_loopback(
    base: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.netguard import Refused
    from tests.local_http import fake_network

    class Redirector(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{base}/feed")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve(Redirector) as redirector:
        port = int(redirector.rsplit(":", 1)[1])
        fake_network(
            monkeypatch, names={"feeds.example.test": ["93.184.216.34"]},
            routes={"93.184.216.34": port},
        )  # fmt: skip
        before = len(Server.seen)
        with pytest.raises(FetchError) as refused:
            fetch("http://feeds.example.test/rss", settings.collect)
    assert str(refused.value) == (
        f"http://feeds.example.test/rss: redirected to {base}/feed: refused: 127.0.0.1 is a "
        "loopback address; set [collect] allow_private = true to allow it"
    )
    assert len(Server.seen) == before
    assert Refused.__mro__[1].__name__ == "NetError"


class Trickle(BaseHTTPRequestHandler):
    """A 200 whose 200-byte body comes one byte every 0.25 s (50 s in all)."""

    protocol_version = "HTTP/1.1"
    #: True if the whole body went out, False if the client hung up first.
    finished: ClassVar[list[bool]] = []
    done = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "200")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.25)
            self.finished.append(True)
        except OSError:
            self.finished.append(False)
        finally:
            self.done.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_timeout_is_a_total_deadline_per_request(settings: Settings) -> None:
    """[collect] timeout = 1: a server trickling a byte every 0.25 s no longer keeps the
    request alive; it ends with one line, and the server sees the client hang up."""
    one_second = settings.collect.model_copy(update={"timeout": 1.0, "allow_private": True})
    with serve(Trickle) as trickle, pytest.raises(FetchError) as timed_out:
        fetch(f"{trickle}/feed", one_second)
    assert str(timed_out.value) == f"{trickle}/feed: timed out after 1 s"
    # The server's handler ends once a write fails (or after 3 s): it must have failed.
    assert Trickle.done.wait(30)
    assert Trickle.finished == [False]


BAD_DATE_RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>https://n.example.org/</link>
<item><title>From the far future</title><link>https://n.example.org/far</link>
<pubDate>Fri, 31 Dec 9999 23:59:59 -1200</pubDate></item>
<item><title>On time</title><link>https://n.example.org/now</link>
<pubDate>Fri, 23 Jun 2023 10:00:00 +0200</pubDate></item>
</channel></rss>"""


def test_an_out_of_range_date_keeps_the_entry_undated_and_the_rest_collected(
    settings: Settings, project: Path
) -> None:
    (project / "far.xml").write_bytes(BAD_DATE_RSS)
    (project / "good.txt").write_text("A headline for the test\n\nA summary on 20 June 2023.\n")
    sources = [
        SourceSettings(name="far", type="feed", location="far.xml"),
        SourceSettings(name="good", type="text", location="good.txt"),
    ]
    report = collect(settings.model_copy(update={"sources": sources}))
    far, good = report.sources
    assert (far.error, far.new, good.error, good.new) == ("", 2, "", 1)
    assert far.problems == [
        "entry 1 ('From the far future'): date 'Fri, 31 Dec 9999 23:59:59 -1200' is out of "
        "range: kept undated"
    ]
    dates = {r["title"]: r["published"] for r in rows(settings, source="far")}
    assert dates["On time"] == "2023-06-23" and dates["From the far future"] != "9999-12-31"


def test_any_exception_in_a_source_is_that_source_s_failure(
    settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter import collect as collect_module

    def broken(source: SourceSettings, content: bytes, url: str) -> object:
        raise KeyError("parser bug\nacross lines")

    monkeypatch.setitem(collect_module.PARSERS, "page", broken)
    (project / "page.html").write_text("<p>x</p>")
    (project / "good.txt").write_text("A headline for the test\n\nA summary on 20 June 2023.\n")
    sources = [
        SourceSettings(name="page", type="page", location="page.html", selectors={"item": "p"}),
        SourceSettings(name="good", type="text", location="good.txt"),
    ]
    report = collect(settings.model_copy(update={"sources": sources}))
    assert report.sources[0].error == "page.html: could not be read ('parser bug\\nacross lines')"
    assert report.sources[1].new == 1


def test_a_json_feed_nested_100000_deep_fails_in_one_line(
    settings: Settings, project: Path
) -> None:
    deep = b'{"version": "https://jsonfeed.org/version/1.1", "items": [' + b"[" * 100_000
    (project / "deep.json").write_bytes(deep + b"]" * 100_000 + b"]}")
    (project / "good.txt").write_text("A headline for the test\n\nA summary on 20 June 2023.\n")
    sources = [
        SourceSettings(name="deep", type="feed", location="deep.json"),
        SourceSettings(name="good", type="text", location="good.txt"),
    ]
    report = collect(settings.model_copy(update={"sources": sources}))
    assert report.sources[0].error == (
        "deep.json: the JSON is nested too deeply to read: nothing imported"
    )
    assert report.sources[1].new == 1


CONTROL_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {
                "title": "Budget\u007f vote\u2028passes\u0000 \u0085today\u009b",
                "url": "https://n.example.org/budget\u007f",
                "date_published": "2023-06-21T10:00:00+00:00",
                "content_text": "First line\u2029second\u0007 line\r\nthird",
                "authors": [{"name": "A.\u001b[31m Writer"}],
                "image": "https://n.example.org/b.jpg",
            }
        ],
    }
).encode()


def test_control_characters_never_reach_the_library_and_draft_writes_valid_toml(
    settings: Settings, project: Path
) -> None:
    import tomllib

    (project / "control.json").write_bytes(CONTROL_FEED)
    sources = [SourceSettings(name="control", type="feed", location="control.json")]
    report = collect(settings.model_copy(update={"sources": sources}))
    assert report.sources[0].new == 1, report.sources[0].error
    [row] = rows(settings, source="control")
    assert row["title"] == "Budget vote passes today"
    assert row["author"] == "A.[31m Writer"
    assert row["url"] == "https://n.example.org/budget%7F"
    for value in row.values():
        if isinstance(value, str):
            assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F
                           or c in "\u2028\u2029" for c in value), value  # fmt: skip
    draft = draft_issue(settings, "2023-W25")
    issue = tomllib.loads(draft.path.read_text(encoding="utf-8"))
    assert issue["subject"] == "Budget vote passes today"


def test_draft_checks_its_toml_before_writing(
    settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter import draft as draft_module

    week_items(settings)
    monkeypatch.setattr(draft_module, "render_draft", lambda draft, number: 'title = "\x7f"\n')
    (project / "issues" / "2023-W25.toml").unlink()
    with pytest.raises(InputError) as refused:
        draft_issue(settings, "2023-W25")
    message = str(refused.value)
    assert "2023-W25.toml: the proposed issue is not valid TOML (" in message
    assert message.endswith("); nothing written") and "\n" not in message
    assert not (project / "issues" / "2023-W25.toml").exists()


@pytest.mark.parametrize(
    ("name", "content", "kind", "extra", "code", "message"),
    [
        ("garbage.bin", bytes(range(256)) * 4, "feed", [], 1, "binary data, not a feed"),
        ("truncated.json", b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"ti',
         "feed", [], 1, "not valid JSON"),
        ("people.csv", b"email,name\na@example.org,Ann\nb@example.org,Bob\n", "feed", [], 1,
         "not a recognisable feed"),
        ("page.html", b"<ul><li>x</li></ul>", "page", [], 2, "a page source needs selectors.item"),
    ],
)  # fmt: skip
def test_import_of_unreadable_input_exits_non_zero_in_one_line(
    project: Path, name: str, content: bytes, kind: str, extra: list[str], code: int, message: str
) -> None:
    (project / name).write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "import", name, "--type", kind, *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_source_for_refuses_an_unknown_selector_key() -> None:
    with pytest.raises(InputError) as refused:
        source_for("https://n.example.org/press/", "page", selectors=["item=li", "titel=h1"])
    assert str(refused.value) == (
        "selector 'titel=h1': unknown key 'titel' (use item, title, link, date, summary, image)"
    )


def test_a_story_copied_alone_stays_in_the_week_of_its_date_line(project: Path) -> None:
    """Issue 12, part 5, from the command line: the study commons story of the university
    fixture (dated June 5, 2024, 2024-W23; its summary says "from Monday, June 10, 2024",
    2024-W24) is listed and drafted in week 23, and `items` says its date line dated it."""
    fixture = Path(__file__).parent / "fixtures" / "text" / "university-press-2024-06-07.txt"
    text = fixture.read_text(encoding="utf-8").splitlines()
    story = text[text.index("June 5, 2024") : text.index("June 4, 2024")]
    (project / "commons.txt").write_text("\n".join(story) + "\n", encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_newsletter(project, *args)

    imported = cli("import", "commons.txt", "--type", "text")
    assert imported.returncode == 0, imported.stderr
    assert "commons: 1 new" in imported.stdout
    (item,) = json.loads(cli("items", "--week", "2024-W23", "--json").stdout)
    assert item["title"] == "University opens 24-hour study commons in renovated library wing"
    assert (item["published"], item["dated_by"]) == ("2024-06-05", "date line")
    assert json.loads(cli("items", "--week", "2024-W24", "--json").stdout) == []
    # Piped: tab-separated, the rule in the last column.
    (piped,) = cli("items", "--source", "commons").stdout.splitlines()
    assert piped.split("\t")[1] == "2024-06-05" and piped.split("\t")[-1] == "date line"
    drafted = cli("draft", "--week", "2024-W23")
    assert drafted.returncode == 0, drafted.stderr
    issue = (project / "issues" / "2024-W23.toml").read_text(encoding="utf-8")
    assert "University opens 24-hour study commons" in issue


def test_items_lists_the_rule_under_the_date_on_a_terminal(
    settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from newsletter.cli import cli

    add(settings, story("Dated by the feed", 20, "https://n.example.org/f", dated_by="feed date"))
    add(settings, Candidate(title="No date on the page", url="https://n.example.org/undated"))
    monkeypatch.chdir(project)
    for module in ("newsletter.cli.collect", "newsletter.cli.output"):
        monkeypatch.setattr(f"{module}.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, ["items"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    dated = next(i for i, line in enumerate(lines) if "2023-06-20" in line)
    # Under the date, in the date's column: no extra column to squeeze the titles.
    assert lines[dated + 1].index("feed date") == lines[dated].index("2023-06-20")
    assert "first seen" in next(line for line in lines if "No date on" in line)
    assert "dated_by" not in lines[0]
