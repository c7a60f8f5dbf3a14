"""The send ledger in a real SQLite file: the lease, the delivery rows, erasure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsletter import ledger, subscribers
from newsletter.errors import InputError
from newsletter.ledger import LedgerError, Pending, Record, _alive
from newsletter.store import Store

WEEK = "2023-W25"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


def people(store: Store, count: int) -> list[int]:
    return [subscribers.add(store, f"user{n}@example.org").id for n in range(count)]


def states(store: Store) -> dict[int, str]:
    rows = store.db.execute("SELECT subscriber_id, state FROM deliveries WHERE issue = ?", (WEEK,))
    return {row[0]: row[1] for row in rows}


# -- the lease ------------------------------------------------------------------------------------


def test_one_live_holder_at_a_time(store: Store) -> None:
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner and owner.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert ledger.lease_holder(store, WEEK) == owner
    # Another run in this very process is told apart by the nonce, and refused.
    assert ledger.acquire_lease(store, WEEK, "Subject", 60) is None
    assert ledger.renew_lease(store, WEEK, owner, 60)
    assert not ledger.renew_lease(store, WEEK, "elsewhere:1:ffff", 60)
    ledger.release_lease(store, WEEK, owner)
    assert ledger.lease_holder(store, WEEK) == ""
    assert not ledger.renew_lease(store, WEEK, owner, 60)
    assert ledger.acquire_lease(store, WEEK, "Subject", 60) is not None


def test_a_lapsed_or_dead_holder_is_taken_over(store: Store) -> None:
    owner = ledger.acquire_lease(store, WEEK, "Subject", -1)  # already lapsed
    assert owner is not None
    second = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert second is not None and second != owner
    with store.transaction() as db:
        dead = f"{socket.gethostname()}:999999999:0a1b2c3d"
        db.execute("UPDATE campaigns SET lease_owner = ?", (dead,))
    assert ledger.acquire_lease(store, WEEK, "Subject", 60) is not None


def test_a_killed_unreaped_lease_holder_counts_as_dead() -> None:
    child = subprocess.Popen(["sleep", "30"])
    owner = f"{socket.gethostname()}:{child.pid}:0a1b"
    try:
        assert _alive(owner)
        child.send_signal(signal.SIGKILL)
        time.sleep(0.2)
        assert not _alive(owner)  # a zombie, as under a container without init
    finally:
        child.wait()
    assert not _alive(owner)
    assert _alive("another-host:1:0a1b")  # other hosts: assume alive until the lease lapses


# -- deliveries -----------------------------------------------------------------------------------


def test_who_is_pending_before_any_row_is_written(store: Store) -> None:
    ids = people(store, 5)
    subscribers.unsubscribe_address(store, "user1@example.org")
    assert ledger.plan(store, WEEK, show=2) == (4, ["user0@example.org", "user2@example.org"], 0)
    assert ledger.acquire_lease(store, WEEK, "Subject", 60)
    # No row per subscriber up front: a send's start costs nothing per subscriber.
    assert states(store) == {}
    assert ledger.counts(store, WEEK) == {"pending": 4}
    # Read in batches smaller than the list, in id order.
    pending = list(ledger.pending_recipients(store, WEEK, batch=3))
    assert [p.subscriber_id for p in pending] == [ids[0], *ids[2:]]
    assert pending[0] == Pending(ids[0], "user0@example.org", "", pending[0].token, "")
    # Someone who leaves during the run is no longer pending.
    subscribers.unsubscribe_address(store, "user4@example.org")
    assert ledger.remaining(store, WEEK) == 3
    assert ledger.counts(store, WEEK) == {"pending": 3}
    # A new subscriber joins a resumed run.
    new = subscribers.add(store, "late@example.org").id
    assert ledger.remaining(store, WEEK) == 4
    assert new in [p.subscriber_id for p in ledger.pending_recipients(store, WEEK)]


def test_rows_an_older_version_wrote_up_front_still_count_as_never_tried(store: Store) -> None:
    # Before schema 5, a send wrote a pending row (attempts 0) for every subscriber first.
    ids = people(store, 3)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO deliveries (issue, subscriber_id, updated) VALUES (?, ?, ?)",
            [(WEEK, i, "2023-06-23T00:00:00+00:00") for i in ids],
        )
    ledger.record(store, WEEK, owner, [Record(ids[0], "sent", "250", 1, "<a>")], 2)
    assert [p.subscriber_id for p in ledger.pending_recipients(store, WEEK)] == ids[1:]
    assert ledger.counts(store, WEEK) == {"sent": 1, "pending": 2}
    assert ledger.plan(store, WEEK) == (2, ["user1@example.org", "user2@example.org"], 1)


def test_settled_subscribers_who_left_count_once(store: Store) -> None:
    ids = people(store, 3)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    ledger.record(
        store, WEEK, owner,
        [Record(ids[0], "sent", "250", 1, "<a>"), Record(ids[1], "failed", "550", 1, "<b>")],
        bounce_after=5,
    )  # fmt: skip
    subscribers.unsubscribe_address(store, "user0@example.org")
    subscribers.unsubscribe_address(store, "user1@example.org")
    # Their rows still count as sent and failed; nobody who left is pending.
    assert ledger.counts(store, WEEK) == {"sent": 1, "failed": 1, "pending": 1}
    subscribers.unsubscribe_address(store, "user2@example.org")
    assert ledger.counts(store, WEEK) == {"sent": 1, "failed": 1}


def test_record_a_batch(store: Store) -> None:
    ids = people(store, 3)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    ledger.record(
        store,
        WEEK,
        owner,
        [
            Record(ids[0], "sent", "250 OK", 1, "<a@example.org>"),
            Record(ids[1], "failed", "550 no such user", 1, "<b@example.org>", bounce=True),
            Record(ids[2], "pending", "451 later", 6, "<c@example.org>"),
        ],
        bounce_after=2,
    )
    assert states(store) == {ids[0]: "sent", ids[1]: "failed", ids[2]: "pending"}
    assert ledger.counts(store, WEEK) == {"sent": 1, "failed": 1, "pending": 1}
    assert ledger.plan(store, WEEK) == (1, ["user2@example.org"], 1)
    # Tries add up over runs; the second bounce marks the subscriber bounced.
    ledger.record(store, WEEK, owner, [Record(ids[2], "pending", "451", 2, "<c>")], 2)
    ledger.record(store, WEEK, owner, [Record(ids[1], "failed", "550", 1, "<b>", True)], 2)
    attempts = store.db.execute(
        "SELECT attempts FROM deliveries WHERE subscriber_id = ?", (ids[2],)
    ).fetchone()[0]
    assert attempts == 8
    assert subscribers.get(store, "user1@example.org").status == "bounced"  # type: ignore[union-attr]


def test_record_refuses_a_run_that_lost_the_lease(store: Store) -> None:
    (only,) = people(store, 1)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    with store.transaction() as db:
        db.execute("UPDATE campaigns SET lease_owner = 'elsewhere:1:ffff'")
    with pytest.raises(LedgerError, match="another run took over the send of 2023-W25"):
        ledger.record(store, WEEK, owner, [Record(only, "sent", "250", 1, "<a>")], 2)
    assert states(store) == {}  # nothing recorded: still pending, never tried
    assert ledger.remaining(store, WEEK) == 1


def test_forget_deletes_the_ledger_rows(store: Store) -> None:
    ids = people(store, 2)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    ledger.record(store, WEEK, owner, [Record(i, "sent", "250", 1, "<m>") for i in ids], 2)
    assert ledger.forget(store, "user0@example.org")
    assert set(states(store)) == {ids[1]}


def test_only_the_ledger_touches_its_tables() -> None:
    from tests.table_owners import modules_with

    sql = r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:campaigns|deliveries)\b"
    # store.py creates the tables (migrations); everything else goes through the ledger.
    assert modules_with(sql) <= {"ledger.py", "store.py"}


def test_never_tried_recipients_come_before_deferred_ones(store: Store) -> None:
    # Issue 11, item 1: a block of greylisted addresses at the start of the list, deferred by
    # an earlier run, must not be tried again before everyone who was never tried.
    ids = people(store, 8)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    deferred = [Record(i, "pending", "451 4.7.1 greylisted", 2, "<m>") for i in ids[:3]]
    ledger.record(store, WEEK, owner, [*deferred, Record(ids[3], "sent", "250", 1, "<m>")], 2)
    with store.transaction() as db:  # deferred by a run that ended before this one
        db.execute("UPDATE deliveries SET updated = '2000-01-01T00:00:00+00:00'")
    order = [p.subscriber_id for p in ledger.pending_recipients(store, WEEK, batch=2)]
    assert order == [*ids[4:], *ids[:3]]


def test_recipients_deferred_by_this_run_wait_for_the_next(store: Store) -> None:
    ids = people(store, 4)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    seen = []
    for pending in ledger.pending_recipients(store, WEEK, batch=1):
        seen.append(pending.subscriber_id)
        # Deferred now, while the run is going: its tries for this run are spent.
        ledger.record(
            store, WEEK, owner, [Record(pending.subscriber_id, "pending", "451", 1, "")], 2
        )
    assert seen == ids


def _plans(store: Store, run: Callable[[], object]) -> dict[str, str]:
    """Every SELECT that ``run`` makes, with SQLite's plan for it."""
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        run()
    finally:
        store.db.set_trace_callback(None)
    selects = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert selects
    return {
        sql: " | ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in selects
    }


def test_pending_batches_read_one_index_range_without_sorting(store: Store) -> None:
    ids = people(store, 6)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    deferred = [Record(i, "pending", "451", 1, "<m>") for i in ids[:2]]
    ledger.record(store, WEEK, owner, deferred, 2)
    with store.transaction() as db:  # deferred by an earlier run
        db.execute("UPDATE deliveries SET updated = '2000-01-01T00:00:00+00:00'")
    plans = _plans(store, lambda: list(ledger.pending_recipients(store, WEEK, batch=2)))
    ranges = {
        "SEARCH s USING INDEX subscribers_status (status=? AND rowid>?)",
        "SEARCH d USING INDEX deliveries_pending (issue=? AND state=? AND subscriber_id>?)",
    }
    for plan in plans.values():
        assert "TEMP B-TREE" not in plan, plan
        assert any(plan.startswith(r) for r in ranges), plan
    assert {plan.split(" (")[0] for plan in plans.values()} == {r.split(" (")[0] for r in ranges}


def test_a_sends_once_per_run_questions_never_walk_the_list(store: Store) -> None:
    """Issue 13: what a send asks once per run (the plan, the counts, the line-break check,
    the problems for the report) reads indexes and the rows the issue has settled, never
    every subscriber, so the first 20,000 of a long list start as fast as a short list."""
    ids = people(store, 6)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    ledger.record(
        store, WEEK, owner,
        [Record(ids[0], "sent", "250", 1, "<a>"), Record(ids[1], "failed", "550", 1, "<b>"),
         Record(ids[2], "pending", "451", 1, "<c>")],
        bounce_after=5,
    )  # fmt: skip

    def once_per_run() -> None:
        subscribers.refuse_header_injection(store)
        ledger.plan(store, WEEK)
        ledger.counts(store, WEEK)
        list(ledger.refusals(store, WEEK))

    for sql, plan in _plans(store, once_per_run).items():
        assert "TEMP B-TREE" not in plan, (sql, plan)
        for step in plan.split(" | "):
            # SCAN is a walk over a whole table or index: only the partial index of the
            # rows with a line break (normally empty) may be walked.
            if step.startswith("SCAN"):
                assert step == "SCAN subscribers USING INDEX subscribers_line_break", (sql, plan)


def test_the_line_break_check_still_finds_an_offender(store: Store) -> None:
    people(store, 3)
    with store.transaction() as db:  # as a store written by hand, or by an older version
        db.execute("UPDATE subscribers SET name = 'Eve\r\nBcc: x@example.net' WHERE id = 2")
    with pytest.raises(InputError, match=r"'user1@example\.org' has a line break"):
        subscribers.refuse_header_injection(store)
    subscribers.unsubscribe_address(store, "user1@example.org")
    subscribers.refuse_header_injection(store)  # only active subscribers are sent to


def test_the_unsubscribe_watch_reads_only_what_changed(store: Store) -> None:
    """The send's status watch looks twice a second: the changes numbered after its last
    look, one range of the table's key, never a scan of the list."""
    ids = people(store, 5)
    start = subscribers.last_change(store)
    assert subscribers.changes_after(store, start) == []
    subscribers.unsubscribe_address(store, "user1@example.org")
    subscribers.unsubscribe_address(store, "user1@example.org")  # no change: not counted
    subscribers.confirm(store, "user1@example.org", "", "127.0.0.1", "web")
    with store.transaction() as db:
        subscribers.count_bounces(db, [ids[3]], 1, "2026-01-01T00:00:00+00:00")
    changes = subscribers.changes_after(store, start)
    assert [(i, active) for _, i, active in changes] == [
        (ids[1], False), (ids[1], True), (ids[3], False)
    ]  # fmt: skip
    assert subscribers.changes_after(store, changes[-1][0]) == []
    sql = "SELECT seq, subscriber_id, status = 'active' FROM status_changes WHERE seq > ?"
    plan = " | ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", (0,)))
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
