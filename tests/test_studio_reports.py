"""The studio's report and subscribers data, on a real SQLite store; and the growth chart.

No timings here: ``bench/subscriber_search.py`` measures search, counts and growth at
100,000 subscribers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from newsletter import ledger, subscribers
from newsletter.ledger import Record
from newsletter.store import Store
from newsletter.studio import reports
from newsletter.studio.chart import growth_svg
from newsletter.subscribers import SubscriberError, WeekGrowth

WEEK = "2023-W25"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


def people(store: Store, count: int, prefix: str = "user") -> list[int]:
    return [subscribers.add(store, f"{prefix}{n}@example.org").id for n in range(count)]


def set_created(store: Store, subscriber_id: int, when: str) -> None:
    with store.transaction() as db:
        db.execute("UPDATE subscribers SET created = ? WHERE id = ?", (when, subscriber_id))


def change_status(store: Store, subscriber_id: int, status: str, at: str | None = None) -> None:
    """A status change through the library; ``at`` backdates the change the trigger logged."""
    subscribers.set_status(store, subscriber_id, status)
    if at is not None:
        with store.transaction() as db:
            db.execute(
                "UPDATE status_changes SET at = ? WHERE seq = (SELECT max(seq) FROM "
                "status_changes WHERE subscriber_id = ?)",
                (at, subscriber_id),
            )


# -- counts by status ----------------------------------------------------------------------------


def test_counts_by_status_lists_every_status(store: Store) -> None:
    assert subscribers.counts_by_status(store) == {
        "active": 0, "unsubscribed": 0, "bounced": 0, "complained": 0,
    }  # fmt: skip
    ids = people(store, 5)
    subscribers.unsubscribe_address(store, "user0@example.org")
    subscribers.set_status(store, ids[1], "bounced")
    assert subscribers.counts_by_status(store) == {
        "active": 3, "unsubscribed": 1, "bounced": 1, "complained": 0,
    }  # fmt: skip
    assert list(subscribers.counts_by_status(store)) == list(subscribers.STATUSES)


# -- search ---------------------------------------------------------------------------------------


@pytest.fixture
def directory(store: Store) -> dict[str, int]:
    """A small list with awkward names and addresses: address -> id."""
    rows = [
        ("ada@example.org", "Ada Lovelace"),
        ("GRACE.hopper@Navy.example", "Grace Hopper"),
        ("snake_case@example.org", "Under Score"),
        ("snakexcase@example.org", "No Underscore"),
        ("percent@example.org", "100% Sure"),
        ("hundred@example.org", "1000 Sure"),
        ("back@example.org", "Back\\slash"),
        ("jose@example.org", "José Núñez"),
        ("lovelace.fan@example.net", "A Fan"),
    ]
    added = [subscribers.add(store, email, name) for email, name in rows]
    return {found.email: found.id for found in added}


def emails(found: list[subscribers.Subscriber]) -> list[str]:
    return [s.email for s in found]


def test_search_matches_address_or_name_in_any_ascii_case(
    store: Store, directory: dict[str, int]
) -> None:
    assert emails(subscribers.search(store, "lovelace")) == [
        "ada@example.org",  # by name
        "lovelace.fan@example.net",  # by address
    ]
    assert emails(subscribers.search(store, "  LOVELACE ")) == emails(
        subscribers.search(store, "lovelace")
    )
    # Addresses keep the case they were typed in (their domain lowered); any case finds them.
    assert emails(subscribers.search(store, "grace.HOPPER@navy")) == ["GRACE.hopper@navy.example"]
    assert emails(subscribers.search(store, "josé")) == ["jose@example.org"]
    assert emails(subscribers.search(store, "nobody-has-this")) == []
    assert len(subscribers.search(store, "")) == len(directory)


def test_search_treats_like_wildcards_literally(store: Store, directory: dict[str, int]) -> None:
    assert emails(subscribers.search(store, "snake_case")) == ["snake_case@example.org"]
    assert emails(subscribers.search(store, "100%")) == ["percent@example.org"]
    assert emails(subscribers.search(store, "%")) == ["percent@example.org"]
    assert emails(subscribers.search(store, "_")) == ["snake_case@example.org"]
    assert emails(subscribers.search(store, "k\\s")) == ["back@example.org"]
    assert emails(subscribers.search(store, "\\")) == ["back@example.org"]
    assert emails(subscribers.search(store, "'; DROP TABLE subscribers; --")) == []
    assert len(subscribers.search(store)) == len(directory)


def test_search_filters_by_status(store: Store, directory: dict[str, int]) -> None:
    subscribers.unsubscribe_address(store, "ada@example.org")
    subscribers.set_status(store, directory["lovelace.fan@example.net"], "complained")
    assert emails(subscribers.search(store, "lovelace", "unsubscribed")) == ["ada@example.org"]
    assert emails(subscribers.search(store, "lovelace", "complained")) == [
        "lovelace.fan@example.net"
    ]
    assert emails(subscribers.search(store, "lovelace", "active")) == []
    assert emails(subscribers.search(store, status="unsubscribed")) == ["ada@example.org"]
    assert len(subscribers.search(store, status="active")) == len(directory) - 2
    with pytest.raises(SubscriberError, match="unknown status 'gone'"):
        subscribers.search(store, status="gone")


def test_search_pages_by_id_without_overlap_or_gap(store: Store) -> None:
    ids = people(store, 23)
    people(store, 5, prefix="other")
    for some in ids[::4]:
        subscribers.set_status(store, some, "unsubscribed")
    for status, expected in ((None, ids), ("active", [i for i in ids if i not in ids[::4]])):
        seen: list[int] = []
        after = 0
        while page := subscribers.search(store, "user", status, after_id=after, limit=4):
            assert len(page) <= 4
            seen += [s.id for s in page]
            after = page[-1].id
        assert seen == expected  # in id order, each once
    # A page starts right after the id it is given, wherever that id is.
    assert [s.id for s in subscribers.search(store, "user", after_id=ids[5], limit=3)] == ids[6:9]


def test_search_refuses_bad_pages_and_overlong_text(store: Store) -> None:
    with pytest.raises(SubscriberError, match="page size 0"):
        subscribers.search(store, limit=0)
    with pytest.raises(SubscriberError, match="page size 1001"):
        subscribers.search(store, limit=1001)
    with pytest.raises(SubscriberError, match="too long"):
        subscribers.search(store, "x" * (subscribers.SEARCH_MAX + 1))
    assert subscribers.search(store, "x" * subscribers.SEARCH_MAX) == []
    assert subscribers.search(store, after_id=-5) == []


def test_what_a_page_gets_holds_no_token(store: Store, directory: dict[str, int]) -> None:
    for found in subscribers.search(store):
        shown = found.public()
        assert found.token and "token" not in shown
        assert found.token not in repr(shown)
    found = subscribers.by_id(store, directory["ada@example.org"])
    assert found is not None and found.email == "ada@example.org"
    assert subscribers.by_id(store, 10_000) is None


# -- growth by week -------------------------------------------------------------------------------


def test_growth_by_week_follows_iso_weeks_across_years(store: Store) -> None:
    # 2020 has 53 ISO weeks: 2021-01-03 (a Sunday) is still 2020-W53, 2021-01-04 is 2021-W01.
    created = {
        "a": "2020-12-27T23:59:59+00:00",  # Sunday of 2020-W52
        "b": "2020-12-28T00:00:00+00:00",  # Monday of 2020-W53
        "c": "2021-01-03T23:59:59+00:00",  # Sunday of 2020-W53
        "d": "2021-01-04T00:00:00+00:00",  # 2021-W01
        "e": "2021-01-20T12:00:00+00:00",  # 2021-W03 (2021-W02 stays empty)
    }
    ids = {}
    for name, when in created.items():
        ids[name] = subscribers.add(store, f"{name}@example.org").id
        set_created(store, ids[name], when)
    change_status(store, ids["a"], "unsubscribed", "2021-01-03T23:59:59Z")  # 2020-W53
    change_status(store, ids["b"], "unsubscribed", "2021-01-04T00:00:00Z")  # 2021-W01
    change_status(store, ids["c"], "unsubscribed", "")  # before schema 8: no time, not counted
    # A returning subscriber counts as confirmed in the week they came back.
    change_status(store, ids["a"], "active", "2021-01-05T08:00:00Z")  # 2021-W01

    rows = subscribers.growth_by_week(store, dt.date(2020, 12, 30), dt.date(2021, 1, 21))
    assert rows == [
        WeekGrowth("2020-W53", 2, 1),
        WeekGrowth("2021-W01", 2, 1),
        WeekGrowth("2021-W02", 0, 0),
        WeekGrowth("2021-W03", 1, 0),
    ]
    # Days inside the first and last weeks stand for their whole weeks.
    assert subscribers.growth_by_week(store, dt.date(2021, 1, 3), dt.date(2021, 1, 3)) == [
        WeekGrowth("2020-W53", 2, 1)
    ]
    assert subscribers.growth_by_week(store, dt.date(2021, 2, 1), dt.date(2021, 1, 1)) == []
    # 2021-12-31 (a Friday) and 2022-01-02 are in 2021-W52; 2022-01-03 starts 2022-W01.
    weeks = subscribers.growth_by_week(store, dt.date(2021, 12, 31), dt.date(2022, 1, 3))
    assert [w.week for w in weeks] == ["2021-W52", "2022-W01"]


def test_growth_runs_to_this_week_by_default(store: Store) -> None:
    people(store, 2)
    today = dt.datetime.now(dt.UTC).date()
    rows = subscribers.growth_by_week(store, today - dt.timedelta(weeks=3))
    assert len(rows) == 4
    year, week, _ = today.isocalendar()
    assert rows[-1] == WeekGrowth(f"{year}-W{week:02d}", 2, 0)


# -- an issue's report ----------------------------------------------------------------------------


def hand_built_send(store: Store) -> list[int]:
    """Ten subscribers, one send of WEEK, and what happened after it.

    ids 0-4 sent; 5 refused at RCPT (bounced); 6 refused otherwise; 7 deferred; 8, 9 never
    tried. Then: 0 and 1 unsubscribe, 2 complains, 8 (never sent to) unsubscribes, and 3
    unsubscribed before the send (a change backdated to before the campaign began).
    """
    ids = people(store, 10)
    owner = ledger.acquire_lease(store, WEEK, "Our week", 60)
    assert owner
    ledger.record(
        store, WEEK, owner,
        [
            *(Record(i, "sent", "250 OK", 1, f"<{i}@x>") for i in ids[:5]),
            Record(ids[5], "failed", "relay answered RCPT TO with 550 no such user", 1, "<5@x>",
                   bounce=True),
            Record(ids[6], "failed", "cannot build the message: bad name", 0, "<6@x>"),
            Record(ids[7], "pending", "relay answered RCPT TO with 451 greylisted", 1, "<7@x>"),
        ],
        bounce_after=1,
    )  # fmt: skip
    for who in (0, 1):
        subscribers.unsubscribe_address(store, f"user{who}@example.org")
    subscribers.set_status(store, ids[2], "complained")
    subscribers.unsubscribe_address(store, "user8@example.org")
    change_status(store, ids[3], "unsubscribed", "2001-01-01T00:00:00Z")
    return ids


def test_issue_report_figures(store: Store) -> None:
    hand_built_send(store)
    stats = ledger.issue_report(store, WEEK)
    assert stats is not None
    assert (stats.issue, stats.subject, stats.sending) == (WEEK, "Our week", True)
    assert (stats.sent, stats.failed, stats.deferred) == (5, 2, 1)
    # Active and never tried: user9 only (user8 left; user7 is deferred, counted apart).
    assert stats.pending == 1
    assert stats.pending + stats.deferred == ledger.remaining(store, WEEK)
    assert (stats.bounced, stats.unsubscribed, stats.complained) == (1, 2, 1)
    assert stats.started and stats.last_delivery >= stats.started[:19]
    assert ledger.issue_report(store, "2023-W26") is None


def test_issue_report_counts_a_recipient_once_and_only_after_the_send(store: Store) -> None:
    ids = hand_built_send(store)
    # user0 comes back and leaves again: still one subscriber who unsubscribed.
    subscribers.confirm(store, "user0@example.org", "", "127.0.0.1", "web")
    subscribers.unsubscribe_address(store, "user0@example.org")
    # Bounced later by another issue: a recipient of this one whose address bounced since.
    subscribers.set_status(store, ids[4], "bounced")
    stats = ledger.issue_report(store, WEEK)
    assert stats is not None
    assert (stats.unsubscribed, stats.bounced, stats.complained) == (2, 2, 1)


def test_past_issues_newest_first_with_totals(store: Store) -> None:
    ids = hand_built_send(store)
    assert ledger.past_issues(store) == [
        ledger.PastIssue(WEEK, "Our week", ledger.past_issues(store)[0].started, "", 5, 2)
    ]
    owner = ledger.acquire_lease(store, "2023-W26", "Next week", 60)
    assert owner
    ledger.record(store, "2023-W26", owner, [Record(ids[9], "sent", "250", 1, "<n>")], 2)
    ledger.acquire_lease(store, "2023-W24", "Started, nothing sent", 60)
    listed = ledger.past_issues(store)
    assert [(p.issue, p.sent, p.failed) for p in listed] == [
        ("2023-W26", 1, 0), (WEEK, 5, 2), ("2023-W24", 0, 0),
    ]  # fmt: skip
    assert [p.issue for p in ledger.past_issues(store, limit=1)] == ["2023-W26"]
    # The public archive lists only what reached someone.
    assert [s.issue for s in ledger.sent_issues(store)] == ["2023-W26", WEEK]


def test_report_page_marks_the_send_and_its_growth(store: Store) -> None:
    hand_built_send(store)
    today = dt.datetime.now(dt.UTC).date()
    report = reports.issue_report(store, WEEK, today=today)
    assert report is not None
    year, week, _ = today.isocalendar()
    assert report.sent_week == f"{year}-W{week:02d}"
    assert report.finished == ""  # the lease is still held: the send is running
    assert report.settled == 7
    # Eight weeks before the send's week, then this week.
    assert len(report.growth.weeks) == 9
    assert report.growth.confirmed == 10 and report.growth.unsubscribed == 3
    assert report.growth.net == 7
    svg = etree.fromstring(report.growth.svg.encode())
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "sent" in texts
    owner = ledger.lease_holder(store, WEEK)
    ledger.release_lease(store, WEEK, owner)
    done = reports.issue_report(store, WEEK, today=today)
    assert done is not None and done.finished == done.stats.last_delivery != ""
    assert reports.issue_report(store, "2023-W01") is None


def test_an_old_issue_shows_the_year_after_its_send(store: Store) -> None:
    hand_built_send(store)
    long_after = dt.datetime.now(dt.UTC).date() + dt.timedelta(weeks=200)
    report = reports.issue_report(store, WEEK, today=long_after)
    assert report is not None
    assert len(report.growth.weeks) == reports.WEEKS_SHOWN
    assert report.growth.weeks[reports.WEEKS_BEFORE_SEND].week == report.sent_week


# -- the chart ------------------------------------------------------------------------------------


def test_chart_is_well_formed_accessible_svg_with_the_figures() -> None:
    rows = [WeekGrowth("2022-W52", 12, 3), WeekGrowth("2023-W01", 0, 0), ("2023-W02", 1234, 56)]
    markup = growth_svg(rows, mark="2023-W01")
    svg = etree.fromstring(markup.encode())
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    for figure in (
        "2022-W52: 12 new, 3 unsubscribed",
        "2023-W01: 0 new, 0 unsubscribed",
        "2023-W02: 1,234 new, 56 unsubscribed",
        "Totals: 1,246 new, 59 unsubscribed",
    ):
        assert figure in (desc.text or "")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "New subscribers (1,246)" in texts and "Unsubscribes (59)" in texts  # the legend
    assert "2022-W52" in texts and "2023-W02" in texts and "sent" in texts
    # A bar up and a bar down per week with figures (legend swatches aside), each titled.
    bars = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 4
    heights = sorted(float(r.get("height", "0")) for r in bars)
    assert heights[-1] > heights[0] > 0


def test_chart_escapes_every_text_it_draws() -> None:
    hostile = "</desc><script>alert(1)</script>&amp;\"'<b x='1'>\x01\ufffe"
    markup = growth_svg(
        [(hostile, 1, 2), ("2023-W02", 3, 0)],
        title=f"Growth {hostile}",
        mark=hostile,
        mark_label=hostile,
        id_prefix='x" onload="alert(1)',
    )
    svg = etree.fromstring(markup.encode())  # well-formed despite it all
    assert not [e for e in svg.iter() if etree.QName(e).localname in ("script", "b")]
    assert all(not name.startswith("on") for e in svg.iter() for name in e.attrib)
    readable = hostile.replace("\x01", "").replace("\ufffe", "")
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and f"{readable}: 1 new, 2 unsubscribed" in (desc.text or "")
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text == f"Growth {readable}"
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts.count(readable) == 2  # the week's label and the mark's
    assert svg.get("aria-labelledby") == "xonloadalert1-title xonloadalert1-desc"


def test_chart_without_data_says_so() -> None:
    svg = etree.fromstring(growth_svg([]).encode())
    assert svg.get("role") == "img"
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["No data yet"]
    # Quiet weeks are data: zeros, drawn with no bars.
    quiet = etree.fromstring(growth_svg([("2023-W01", 0, 0)] * 3).encode())
    assert not [r for r in quiet.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_two_charts_on_one_page_keep_their_ids_apart() -> None:
    first = etree.fromstring(growth_svg([("2023-W01", 1, 0)]).encode())
    second = etree.fromstring(growth_svg([("2023-W01", 1, 0)], id_prefix="report").encode())
    ids = {e.get("id") for tree in (first, second) for e in tree.iter() if e.get("id")}
    assert len(ids) == 4


def test_chart_needs_no_inline_style_or_script() -> None:
    # The studio's CSP (style-src 'self', script-src 'self') would refuse both.
    svg = etree.fromstring(growth_svg([("2023-W01", 4, 1), ("2023-W02", 2, 3)]).encode())
    assert svg.get("class") == "growth-chart"
    for element in svg.iter():
        assert etree.QName(element).localname not in ("style", "script", "foreignObject")
        assert "style" not in element.attrib


def test_past_issues_read_the_totals_a_run_recorded_and_count_when_they_do_not_hold(
    store: Store,
) -> None:
    ids = hand_built_send(store)
    ledger.record_totals(store, WEEK, ledger.lease_holder(store, WEEK), delivered=True)
    store.db.execute("DELETE FROM deliveries WHERE issue = ?", (WEEK,))  # only totals left
    store.db.commit()
    assert [(p.sent, p.failed) for p in ledger.past_issues(store)] == [(5, 2)]
    # A new run (or one that died) makes them count again, from the deliveries.
    ledger.release_lease(store, WEEK, ledger.lease_holder(store, WEEK))
    owner = ledger.acquire_lease(store, WEEK, "Our week", 60)
    assert owner
    ledger.record(store, WEEK, owner, [Record(ids[9], "sent", "250", 1, "<9@x>")], 2)
    assert [(p.sent, p.failed) for p in ledger.past_issues(store)] == [(1, 0)]
    # A run that lost its lease to another records nothing: the other one will.
    ledger.record_totals(store, WEEK, "another-host:1:old", delivered=True)
    assert store.db.execute("SELECT sent FROM campaigns").fetchone()[0] is None
    ledger.record_totals(store, WEEK, owner, delivered=True)
    assert [(p.sent, p.failed) for p in ledger.past_issues(store)] == [(1, 0)]
    finished = store.db.execute("SELECT finished FROM campaigns").fetchone()[0]
    ledger.record_totals(store, WEEK, owner, delivered=False)  # a rerun that sent nothing
    assert store.db.execute("SELECT finished FROM campaigns").fetchone()[0] == finished
    # An erasure request takes the forgotten subscriber out of the figures.
    assert ledger.forget(store, "user9@example.org")
    assert [(p.sent, p.failed) for p in ledger.past_issues(store)] == [(0, 0)]


def test_a_send_records_its_totals_and_finish_time(tmp_path: Path) -> None:
    import shutil

    from newsletter import open_issue
    from newsletter.send import send_issue
    from newsletter.settings import load_settings
    from tests.conftest import ROOT, SAMPLE_ISSUE, STATIC

    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    (tmp_path / "issues").mkdir()
    shutil.copy(SAMPLE_ISSUE, tmp_path / "issues")
    shutil.copytree(STATIC, tmp_path / "static")
    settings = load_settings(tmp_path / "config.toml")
    with Store(settings.store_path) as db:
        people(db, 3)
    report = send_issue(open_issue(tmp_path / "issues" / SAMPLE_ISSUE.name, settings), settings)
    assert report.sent == 3
    with Store(settings.store_path) as db:
        row = db.db.execute("SELECT sent, failed, finished FROM campaigns").fetchone()
    assert (row["sent"], row["failed"]) == (3, 0) and row["finished"]
