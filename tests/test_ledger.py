"""The send ledger in a real SQLite file: the lease, the delivery rows, erasure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import ledger, subscribers
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


def test_rows_for_active_subscribers_and_who_is_pending(store: Store) -> None:
    ids = people(store, 5)
    subscribers.unsubscribe_address(store, "user1@example.org")
    assert ledger.plan(store, WEEK, show=2) == (4, ["user0@example.org", "user2@example.org"], 0)
    assert ledger.acquire_lease(store, WEEK, "Subject", 60)
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
    assert set(states(store)) == set(ids) - {ids[1]}
    assert ledger.counts(store, WEEK) == {"pending": 4}
    # Read in batches smaller than the list, in id order.
    pending = list(ledger.pending_recipients(store, WEEK, batch=3))
    assert [p.subscriber_id for p in pending] == [ids[0], *ids[2:]]
    assert pending[0] == Pending(ids[0], "user0@example.org", "", pending[0].token)
    # Someone who leaves after the rows were written is no longer pending.
    subscribers.unsubscribe_address(store, "user4@example.org")
    assert ledger.remaining(store, WEEK) == 3
    assert ledger.counts(store, WEEK) == {"pending": 3}
    # A new subscriber joins a resumed run; existing rows are left alone.
    new = subscribers.add(store, "late@example.org").id
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
    assert ledger.remaining(store, WEEK) == 4 and new in states(store)


def test_record_a_batch(store: Store) -> None:
    ids = people(store, 3)
    owner = ledger.acquire_lease(store, WEEK, "Subject", 60)
    assert owner
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
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
        ledger.add_recipients(db, WEEK)
        db.execute("UPDATE campaigns SET lease_owner = 'elsewhere:1:ffff'")
    with pytest.raises(LedgerError, match="another run took over the send of 2023-W25"):
        ledger.record(store, WEEK, owner, [Record(only, "sent", "250", 1, "<a>")], 2)
    assert states(store) == {only: "pending"}


def test_forget_deletes_the_ledger_rows(store: Store) -> None:
    ids = people(store, 2)
    assert ledger.acquire_lease(store, WEEK, "Subject", 60)
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
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
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
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
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
    seen = []
    for pending in ledger.pending_recipients(store, WEEK, batch=1):
        seen.append(pending.subscriber_id)
        # Deferred now, while the run is going: its tries for this run are spent.
        ledger.record(
            store, WEEK, owner, [Record(pending.subscriber_id, "pending", "451", 1, "")], 2
        )
    assert seen == ids


def test_pending_batches_read_one_index_range_without_sorting(store: Store) -> None:
    people(store, 5)
    assert ledger.acquire_lease(store, WEEK, "Subject", 60)
    with store.transaction() as db:
        ledger.add_recipients(db, WEEK)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        list(ledger.pending_recipients(store, WEEK, batch=2))
    finally:
        store.db.set_trace_callback(None)
    selects = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert selects
    for sql in selects:
        plan = " | ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "TEMP B-TREE" not in plan, plan
        assert "USING INDEX deliveries_pending (issue=? AND state=? AND subscriber_id>?)" in plan


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
