"""The studio's subscribers and report pages at scale: search, counts, growth, an issue's report.

It builds a store of ``--subscribers`` generated subscribers (default 100,000; one
``executemany``) in a temporary folder: five domains, names from small pools (so a name
matches thousands), 90 % active and the rest unsubscribed, bounced or complained, with
their status changes timed over two years, created over the same two years; and
``--issues`` campaigns (default 3), sent early in those two years (so the report's "who
left since" reads thousands of changes), with one delivery row per subscriber (97 % sent,
1 % refused, 1 % deferred, 1 % never tried). Then it times, in-process on one connection:

* ``subscribers.search``: the first page of everyone, a page near the end, a name that
  many share (first page and a late one), a rare match (one subscriber), no match at all
  (the worst case: the whole table is read), a status only, a status with no match;
* ``subscribers.counts_by_status``, ``growth_by_week`` over 26 weeks and over two years;
* ``ledger.issue_report`` and ``ledger.past_issues`` (every campaign's totals);

each as the median and p90 of ``--runs`` calls after two warm-ups, with its ratio to a
reference measured in the same run on the same connection: ``SELECT count(*) FROM
subscribers`` (SQLite counting the list in its smallest index); a primary-key look-up is
printed too. Target (informational): every call under 50 ms at 100,000 subscribers.

Run it by hand from the project root (not part of the test suite)::

    .venv/bin/python bench/subscriber_search.py [--subscribers 100000] [--runs 20] [--issues 3]

The exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from newsletter import ledger, subscribers
from newsletter.store import Store

TARGET_MS = 50.0
_DOMAINS = ("example.org", "example.net", "mail.example.com", "lists.example.co.uk", "ex.io")
_FIRST = ("Ada", "Grace", "José", "Zoë", "Ünal", "Li", "Mary", "Tom", "Ann", "Olu", "Kemal")
_LAST = ("Lovelace", "Hopper", "García", "Müller", "Smith", "Jones", "Okafor", "Nguyen", "Ivanova")


def _stamp(day: dt.datetime) -> str:
    return day.isoformat(timespec="seconds")


def build(path: Path, count: int, issues: int, today: dt.date) -> None:
    """The store: subscribers, their timed status changes, and ``issues`` sent campaigns."""
    rng = random.Random(20231202)
    start = dt.datetime.combine(today, dt.time(), dt.UTC) - dt.timedelta(weeks=104)
    span = 104 * 7 * 86_400
    people, changes = [], []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        created = start + dt.timedelta(seconds=span * i // count)
        roll = rng.random()
        status = (
            "active" if roll < 0.90 else "unsubscribed" if roll < 0.96
            else "bounced" if roll < 0.99 else "complained"
        )  # fmt: skip
        people.append((
            f"{first.lower()}.{last.lower()}{i}@{_DOMAINS[i % 5]}", f"{first} {last}", first,
            status, _stamp(created), _stamp(created), "bench", f"token{i:012d}",
        ))  # fmt: skip
        if status != "active":
            left = created + (dt.datetime.now(dt.UTC) - created) * rng.random()
            changes.append((i + 1, status, left.strftime("%Y-%m-%dT%H:%M:%SZ")))
    with Store(path) as store, store.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (email, name, first_name, status, created, updated, "
            "source, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            people,
        )
        db.executemany("INSERT INTO status_changes (subscriber_id, status, at) VALUES (?, ?, ?)",
                       changes)  # fmt: skip
    with Store(path) as store:
        for number in range(issues):
            issue = f"2023-W{10 + number:02d}"
            owner = ledger.acquire_lease(store, issue, f"Issue {number}", 60)
            assert owner
            # Sent near the start of the two years: every later status change is "since".
            sent = _stamp(start + dt.timedelta(weeks=1 + number))
            with store.transaction() as db:
                db.execute("UPDATE campaigns SET created = ? WHERE issue = ?", (sent, issue))
            rows = []
            for subscriber_id in range(1, count + 1):
                roll = subscriber_id % 100
                if roll == 99:
                    continue  # never tried
                state = "failed" if roll == 98 else "pending" if roll == 97 else "sent"
                rows.append((issue, subscriber_id, state, 1, "250 OK", "<m>", _stamp(start)))
            with store.transaction() as db:
                db.executemany(
                    "INSERT INTO deliveries (issue, subscriber_id, state, attempts, reply, "
                    "message_id, updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            # What the end of a real run records (the last issue's run "died": counted).
            if number < issues - 1:
                ledger.record_totals(store, issue, owner, delivered=True)
            ledger.release_lease(store, issue, owner)


def timed(call: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median and p90 seconds of ``runs`` calls (after two warm-ups), and the last result."""
    result = call()
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))], result


def _size(result: object) -> str:
    if isinstance(result, list | dict):
        return f"{len(result):,} rows"
    return "1 report" if result is not None else "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="timed calls per case")
    parser.add_argument("--issues", type=int, default=3, help="campaigns with a full ledger")
    args = parser.parse_args()
    count, today = args.subscribers, dt.datetime.now(dt.UTC).date()

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        path = Path(tmp) / "newsletter.db"
        began = time.perf_counter()
        build(path, count, args.issues, today)
        print(f"store of {count:,} subscribers and {args.issues} campaigns made in "
              f"{time.perf_counter() - began:.1f} s\n")  # fmt: skip
        with Store(path) as store:
            db = store.db
            late = count * 9 // 10
            rare = f"{count * 7 // 10 + 3}@"  # one subscriber's number, then their domain
            cases: list[tuple[str, Callable[[], object]]] = [
                ("search: first page, no text", lambda: subscribers.search(store)),
                ("search: page at 90 %", lambda: subscribers.search(store, after_id=late)),
                ("search: a common name", lambda: subscribers.search(store, "lovelace")),
                ("search: a common name at 90 %",
                 lambda: subscribers.search(store, "Lovelace", after_id=late)),
                ("search: a rare match", lambda: subscribers.search(store, rare)),
                ("search: no match", lambda: subscribers.search(store, "zzqqxx")),
                ("search: status only (complained)",
                 lambda: subscribers.search(store, status="complained")),
                ("search: status active, no match",
                 lambda: subscribers.search(store, "zzqqxx", "active")),
                ("search: status complained, no match",
                 lambda: subscribers.search(store, "zzqqxx", "complained")),
                ("counts_by_status", lambda: subscribers.counts_by_status(store)),
                ("growth_by_week, 26 weeks", lambda: subscribers.growth_by_week(
                    store, today - dt.timedelta(weeks=25), today)),
                ("growth_by_week, 2 years", lambda: subscribers.growth_by_week(
                    store, today - dt.timedelta(weeks=104), today)),
                ("ledger.issue_report", lambda: ledger.issue_report(store, "2023-W10")),
                (f"ledger.past_issues ({args.issues} campaigns)",
                 lambda: ledger.past_issues(store)),
            ]  # fmt: skip
            ref, ref_p90, _ = timed(
                lambda: db.execute("SELECT count(*) FROM subscribers").fetchall(), args.runs
            )
            pk, _, _ = timed(
                lambda: db.execute("SELECT * FROM subscribers WHERE id = ?", (late,)).fetchall(),
                args.runs,
            )
            print(f"{count:,} subscribers; median and p90 of {args.runs} calls; reference: "
                  f"SELECT count(*) FROM subscribers {ref * 1000:.2f} ms (p90 "
                  f"{ref_p90 * 1000:.2f}); a primary-key look-up {pk * 1e6:.0f} µs\n")  # fmt: skip
            print(f"{'call':40} {'median':>9} {'p90':>9} {'x ref':>7}  {'result':>12}  target")
            missed = 0
            for label, call in cases:
                median, p90, result = timed(call, args.runs)
                verdict = "met" if median * 1000 < TARGET_MS else "MISSED"
                missed += verdict == "MISSED"
                print(f"{label:40} {median * 1000:7.2f}ms {p90 * 1000:7.2f}ms "
                      f"{median / ref:7.1f}  {_size(result):>12}  {verdict}")  # fmt: skip
            print(f"\ntarget: every call under {TARGET_MS:.0f} ms at {count:,}: "
                  f"{'met' if not missed else f'MISSED by {missed}'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
