"""`subscribers import` streams: staged in a TEMP table, moved in short transactions.

The import's speed and peak RSS are measured by hand (bench/lists.py); here: the report
and the store are right across batch boundaries, a file found unreadable at its end
imports nothing, other connections can write while an import runs, an interrupted move
is completed by importing again, and Python's allocations do not grow with the file.
"""

from __future__ import annotations

import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter import subscribers
from newsletter.errors import InputError
from newsletter.store import Store

AT = "An email address must have an @-sign."


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many batches from a few thousand rows: boundaries are where bugs hide."""
    monkeypatch.setattr(subscribers, "MOVE_BATCH", 1_000)
    monkeypatch.setattr(subscribers, "_STAGE_BATCH", 700)


def write_rows(path: Path, rows: list[str], header: str = "email,name") -> Path:
    path.write_text(header + "\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def dump(store: Store) -> list[tuple[object, ...]]:
    return [tuple(row) for row in store.db.execute("SELECT * FROM subscribers ORDER BY id")]


def test_large_file_across_batches(store: Store, tmp_path: Path, small_batches: None) -> None:
    subscribers.add(store, "user3999@example.net", "Already Here")
    subscribers.add(store, "user4500@example.net")
    subscribers.unsubscribe_address(store, "user4500@example.net")
    rows = [f"user{i}@example.net,User {i}" for i in range(5_000)]
    rows[1_234] = "not-an-address,Nobody"  # line 1236
    rows[2_345] = "USER7@example.net,Seven again"  # line 2347 duplicates line 9 (batch 1)
    rows[4_321] = "user4321@example.net,Bad\x1bName"  # line 4323
    rows.insert(3_000, "")  # a blank line: line 3002; every later row moves down one
    path = write_rows(tmp_path / "big.csv", rows)

    report = subscribers.import_csv(store, path)

    assert (report.imported, report.already, report.invalid) == (4_995, 1, 2)
    assert report.skipped == len(report.problems) == 4 and report.unlisted == 0
    assert report.problems[0].startswith(f"{path}:1236: 'not-an-address' is not a valid")
    assert report.problems[1:] == [
        f"{path}:2347: USER7@example.net duplicates line 9; skipped",
        f"{path}:4324: user4321@example.net: the name contains control characters",
        f"{path}:4503: user4500@example.net is unsubscribed; not resubscribed",
    ]
    emails = [row[1] for row in dump(store)]
    assert len(emails) == 4_997 and len({e.lower() for e in emails}) == 4_997
    # New subscribers get ids in the file's order, with the name of their own row.
    new = [row for row in dump(store) if row[6] == "import:big.csv"]
    assert [row[1] for row in new[:3]] == [
        "user0@example.net",
        "user1@example.net",
        "user2@example.net",
    ]
    assert new[-1][1:3] == ("user4999@example.net", "User 4999")
    assert len({row[7] for row in dump(store)}) == 4_997  # every token its own
    assert subscribers.get(store, "user3999@example.net").name == "Already Here"  # type: ignore[union-attr]
    # The staging table is gone with the import.
    assert store.db.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0] == 0


def test_duplicates_are_caught_across_every_boundary(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    rows = [f"u{i}@example.org" for i in range(3_000)]
    # Each repeats a row from an earlier staging commit and an earlier move batch.
    repeats = {700: 1, 1_400: 699, 2_999: 0}
    for at, first in repeats.items():
        rows[at] = f"U{first}@Example.org"
    path = write_rows(tmp_path / "dups.csv", rows, header="email")
    report = subscribers.import_csv(store, path)
    assert report.imported == 3_000 - len(repeats)
    assert report.problems == [
        f"{path}:{at + 2}: U{first}@example.org duplicates line {first + 2}; skipped"
        for at, first in repeats.items()
    ]
    assert report.invalid == 0


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        (
            b'late@example.org,"Never closed\nlast@example.org,Last\n',
            r":20002: .*runs over 2 lines",
        ),
        ("z\u00f6e@example.org,Zo\u00eb\n".encode("latin-1"), r":20002: .*byte 0xf6 at column 2"),
    ],
    ids=["unclosed-quote", "latin-1"],
)
def test_unreadable_end_of_a_big_file_imports_nothing(
    store: Store, tmp_path: Path, small_batches: None, tail: bytes, says: str
) -> None:
    subscribers.add(store, "ada@example.org", "Ada")
    before = dump(store)
    body = "".join(f"user{i}@example.net,User {i}\n" for i in range(20_000))
    path = tmp_path / "list.csv"
    path.write_bytes(b"email,name\n" + body.encode() + tail)  # well past the first 64 KiB
    with pytest.raises(InputError, match=r"list\.csv" + says):
        subscribers.import_csv(store, path)
    assert dump(store) == before
    assert store.db.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0] == 0


def test_other_connections_write_while_an_import_runs(
    store: Store, tmp_path: Path, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection, which would fail at once if the store were locked (busy
    timeout 0), commits while the file is read and again between two move batches."""
    path = write_rows(tmp_path / "list.csv", [f"user{i}@example.net" for i in range(3_500)])
    go, done = threading.Event(), threading.Event()
    outcomes: list[str] = []

    finished = False

    def other_writer() -> None:
        for address in ("while-reading@example.org", "user2500@example.net"):
            go.wait()
            go.clear()
            if finished:
                return
            try:
                with Store(store.path) as other:
                    other.db.execute("PRAGMA busy_timeout = 0")
                    subscribers.add(other, address)
                outcomes.append(f"{address} committed")
            except (sqlite3.Error, subscribers.SubscriberError) as exc:
                outcomes.append(f"{address}: {exc}")
            finally:
                done.set()

    def let_the_other_write() -> None:
        go.set()
        done.wait()
        done.clear()

    read_rows = subscribers.read_rows

    def pausing_read(path: Path) -> Iterator[object]:
        for number, row in enumerate(read_rows(path)):
            if number == 1_500:  # mid-file: staging commits done, more to come
                let_the_other_write()
            yield row

    real_transaction = store.transaction
    batches = 0

    @contextmanager
    def transaction() -> Iterator[sqlite3.Connection]:
        nonlocal batches
        with real_transaction() as db:
            yield db
        batches += 1
        if batches == 1:  # user2500 is in the third batch, not moved yet
            let_the_other_write()

    monkeypatch.setattr(subscribers, "read_rows", pausing_read)
    monkeypatch.setattr(store, "transaction", transaction)
    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        report = subscribers.import_csv(store, path)
    finally:
        finished = True
        go.set()
        thread.join()
    assert outcomes == [
        "while-reading@example.org committed",
        "user2500@example.net committed",
    ]
    assert batches == 4
    assert (report.imported, report.already, report.skipped) == (3_499, 1, 0)
    assert subscribers.get(store, "while-reading@example.org") is not None


def test_interrupted_move_is_completed_by_importing_again(
    store: Store, tmp_path: Path, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_rows(tmp_path / "list.csv", [f"user{i}@example.net" for i in range(3_500)])
    real_move = subscribers._move
    moves = 0

    def interrupted(*args: object) -> None:
        nonlocal moves
        moves += 1
        if moves == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third batch
        real_move(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(subscribers, "_move", interrupted)
    with pytest.raises(KeyboardInterrupt):
        subscribers.import_csv(store, path)
    assert len(dump(store)) == 2_000  # two whole batches, nothing of the third
    monkeypatch.setattr(subscribers, "_move", real_move)
    again = subscribers.import_csv(store, path)
    assert (again.imported, again.already, again.skipped) == (1_500, 2_000, 0)
    assert [row[1] for row in dump(store)] == [f"user{i}@example.net" for i in range(3_500)]


@pytest.mark.parametrize("sql", ["_KNOWN_SQL", "_MOVE_SQL"])
def test_a_move_batch_looks_up_each_row_and_never_scans_the_list(store: Store, sql: str) -> None:
    statement = getattr(subscribers, sql)
    store.db.execute(subscribers._CREATE_STAGING)
    try:
        params = (0, 1) if statement.count("?") == 2 else ("now", "now", "s", 0, 1)
        plan = " | ".join(
            row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + statement, params)
        )
    finally:
        store.db.execute("DROP TABLE temp.import_staging")
    assert "SEARCH s USING INTEGER PRIMARY KEY" in plan, plan
    # An INSERT's plan lists the foreign-key look-up of child rows (deliveries), which
    # SQLite runs only while a constraint is already violated: never here.
    ours = plan.replace("SCAN deliveries USING COVERING INDEX deliveries_pending", "")
    assert "SCAN" not in ours and "TEMP B-TREE" not in ours, plan


def test_problems_are_listed_up_to_a_limit_and_counted_beyond(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.cli import cli

    monkeypatch.setattr(subscribers, "PROBLEMS_LISTED", 5)
    rows = [f"bad{i}-at-example.org" for i in range(20)] + ["ok@example.org"]
    write_rows(project / "bad.csv", rows, header="email")
    result = CliRunner().invoke(
        cli,
        [
            "subscribers",
            "import",
            str(project / "bad.csv"),
            "--config",
            str(project / "config.toml"),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 6
    assert lines[0].endswith("bad.csv:2: 'bad0-at-example.org' is not a valid email address: " + AT)
    assert lines[-1] == "... and 15 more skipped rows"
    assert result.stdout == "Imported 1, already subscribed 0, skipped 20\n"


def test_small_file_output_is_unchanged(project: Path) -> None:
    from newsletter.cli import cli

    write_rows(project / "few.csv", ["ada@example.org", "nope", "ADA@example.org"], header="email")
    result = CliRunner().invoke(
        cli,
        [
            "subscribers",
            "import",
            str(project / "few.csv"),
            "--config",
            str(project / "config.toml"),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{project / 'few.csv'}:3: 'nope' is not a valid email address: {AT}",
        f"{project / 'few.csv'}:4: ADA@example.org duplicates line 2; skipped",
    ]
    assert result.stdout == "Imported 1, already subscribed 0, skipped 2\n"


def test_python_memory_does_not_grow_with_the_file(store: Store, tmp_path: Path) -> None:
    peaks = []
    for count in (1_500, 15_000):
        rows = [f"reader{i}@example.org,Reader {i}" for i in range(count)]
        rows += [f"bad{i}-at-example.org,Bad" for i in range(count // 10)]
        path = write_rows(tmp_path / f"list{count}.csv", rows)
        store.db.execute("DELETE FROM subscribers")
        tracemalloc.start()
        try:
            report = subscribers.import_csv(store, path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.imported == count
    # Holding the rows would cost a few hundred bytes each: 13,500 more rows, megabytes.
    assert peaks[1] - peaks[0] < 400_000, peaks


def test_token_ids_look_like_token_urlsafe() -> None:
    tokens = subscribers._token_ids()
    drawn = [next(tokens) for _ in range(3_000)]  # across three draws from the OS
    model = subscribers._new_token_id()
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert all(len(t) == len(model) == 16 and set(t) <= alphabet for t in drawn)
    assert len(set(drawn)) == len(drawn)


def test_first_names_survive_export_and_import(project: Path, tmp_path: Path) -> None:
    from newsletter.cli import cli

    config = ["--config", str(project / "config.toml")]
    with Store(project / "newsletter.db") as store:
        subscribers.add(store, "ada@example.org", "Ada Lovelace", first_name="Ada")
        subscribers.add(store, "alan@example.org", "Turing, Alan")
        subscribers.add(store, "kim@example.org", "Kim Jong")
    exported = CliRunner().invoke(cli, ["subscribers", "export", *config])
    assert exported.exit_code == 0, exported.output
    (tmp_path / "backup.csv").write_text(exported.stdout, encoding="utf-8")
    with Store(tmp_path / "other.db") as other:
        report = subscribers.import_csv(other, tmp_path / "backup.csv")
        assert report.imported == 3
        names = {s.email: s.first_name for s in subscribers.iter_subscribers(other)}
    assert names == {"ada@example.org": "Ada", "alan@example.org": "Alan", "kim@example.org": ""}
