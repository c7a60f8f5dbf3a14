"""The list commands stream: memory stays flat in the list size, and a terminal table is cut.

Speed is measured by hand in bench/lists.py; here only allocations are counted
(tracemalloc), which does not depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tracemalloc
from pathlib import Path

import pytest

from newsletter.cli import cli, output
from newsletter.store import Store


def fill_store(project: Path, count: int) -> None:
    path = project / "newsletter.db"
    path.unlink(missing_ok=True)
    with Store(path):
        pass
    now = "2023-06-23T07:00:00+00:00"
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO subscribers (email, name, status, created, updated, source, token) "
            "VALUES (?, ?, 'active', ?, ?, 'test', ?)",
            ((f"reader{i}@example.org", f"Reader {i}", now, now, f"t{i}") for i in range(count)),
        )
    db.close()


def peak_bytes(project: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Peak Python allocations of one command run in-process, its output going to /dev/null."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        monkeypatch.setattr(sys, "stdout", sink)
        tracemalloc.start()
        try:
            cli.main(
                args=[*args, "--config", str(project / "config.toml")],
                prog_name="newsletter",
                standalone_mode=False,
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            monkeypatch.undo()


@pytest.mark.parametrize(
    ("args", "terminal"),
    [
        (["subscribers", "list"], True),
        (["subscribers", "list"], False),
        (["subscribers", "list", "--json"], False),
        (["subscribers", "export"], False),
        (["subscribers", "export", "--json"], False),
    ],
    ids=["list-terminal", "list-piped", "list-json", "export", "export-json"],
)
def test_memory_is_flat_in_the_list_size(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], terminal: bool
) -> None:
    peaks = []
    for count in (1_500, 15_000):
        fill_store(project, count)
        if terminal:
            monkeypatch.setattr(output, "is_terminal", lambda: True)
        peaks.append(peak_bytes(project, args, monkeypatch))
    # Holding the rows would cost several hundred bytes each: 13,500 more rows, megabytes.
    assert peaks[1] - peaks[0] < 400_000, peaks


def test_terminal_table_shows_the_first_rows_and_says_how_to_get_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    monkeypatch.setattr(output, "TABLE_LIMIT", 5)
    rows = ({"email": f"r{i}@example.org"} for i in range(12))
    assert output.print_rows(rows, ["email"], noun="subscriber", more="`export`") == 12
    out = capsys.readouterr().out
    assert "r4@example.org" in out and "r5@example.org" not in out
    assert "12 subscribers" in out
    assert "showing the first 5; `export` gives all 12" in out


def test_json_output_is_a_valid_list_at_any_length(capsys: pytest.CaptureFixture[str]) -> None:
    for count in (0, 1, 3):
        output.print_rows(({"n": i} for i in range(count)), ["n"], as_json=True)
        assert json.loads(capsys.readouterr().out) == [{"n": i} for i in range(count)]


def test_export_rows_are_the_public_fields(project: Path) -> None:
    from newsletter import subscribers
    from newsletter.subscribers import EXPORT_COLUMNS

    with Store(project / "newsletter.db") as store:
        added = subscribers.add(store, "ada@example.org", "Ada")
    # export shows every public field, the consent record included.
    assert list(added.public()) == list(EXPORT_COLUMNS)
