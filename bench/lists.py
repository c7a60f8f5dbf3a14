"""Benchmark of the list commands on a large store, against plain SQLite readers.

For a fresh store of ``--subscribers`` generated subscribers (default 200,000; created
with one ``executemany``, a couple of seconds) and a small one (1,000), it runs each
command in a fresh child process and prints its wall time and peak RSS:

* ``subscribers list`` on a terminal (a pty from ``script -qc``; the table shows the
  first 1,000 rows and counts the rest), target: under 10 s for 200k;
* ``subscribers list`` piped (tab-separated, every row), ``list --json``, ``export``
  and ``export --json``, to /dev/null;
* the references, measured in the same run on the same table: ``python -c`` iterating
  a sqlite3 cursor into ``csv.writer`` (same interpreter start-up, no newsletter code),
  and the ``sqlite3`` shell's own ``-csv`` output (time only: its RSS is not Python's);

then the ratios ours / the Python reference for time and for peak RSS, and each
command's peak RSS at 200k / at 1k, which must stay near 1 (memory flat in the list
size). Peak RSS is ``VmHWM`` read by the child itself at exit (Linux carries
``ru_maxrss`` across exec, so a parent's figure for its child would include the parent).

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/lists.py [--subscribers 200000] [--runs 3]

Targets are informational: the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

#: Run in the child: at exit, write this process's peak RSS (VmHWM, KiB) to $BENCH_RSS_FILE.
_REPORT_RSS = """
import atexit, os, sys
def _rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["BENCH_RSS_FILE"], "w") as out:
                    out.write(line.split()[1])
atexit.register(_rss)
"""

_OURS = _REPORT_RSS + "from newsletter.cli import main\nsys.exit(main(sys.argv[1:]))\n"

_REFERENCE = (
    _REPORT_RSS
    + """
import csv, sqlite3
db = sqlite3.connect(sys.argv[1])
writer = csv.writer(sys.stdout)
writer.writerow(["email", "name", "status", "created", "source"])
writer.writerows(db.execute(
    "SELECT email, name, status, created, source FROM subscribers ORDER BY id"))
"""
)


def make_project(folder: Path, count: int) -> Path:
    """A project folder with the shipped config and a store of ``count`` subscribers."""
    from newsletter.store import Store

    folder.mkdir(parents=True)
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    store_path = folder / "newsletter.db"
    with Store(store_path):
        pass  # creates the tables
    now = "2023-06-23T07:00:00+00:00"
    db = sqlite3.connect(store_path)
    with db:
        db.executemany(
            "INSERT INTO subscribers (email, name, status, created, updated, source, token) "
            "VALUES (?, ?, ?, ?, ?, 'bench', ?)",
            (
                (
                    f"reader{i}@example.org",
                    f"Reader Número {i}",
                    "active" if i % 10 else "unsubscribed",
                    now,
                    now,
                    f"token{i:012d}",
                )
                for i in range(count)
            ),
        )
    db.close()
    return store_path


def run(argv: list[str], cwd: Path, rss_file: Path | None) -> tuple[float, int | None]:
    """Wall time of one run (stdout to /dev/null) and the child's peak RSS in KiB."""
    env = dict(os.environ, BENCH_RSS_FILE=str(rss_file or os.devnull), COLUMNS="120")
    if rss_file:
        rss_file.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    rss = int(rss_file.read_text()) if rss_file and rss_file.exists() else None
    return seconds, rss


def measure(
    argv: list[str], cwd: Path, rss_file: Path | None, runs: int
) -> tuple[float, int | None]:
    results = [run(argv, cwd, rss_file) for _ in range(runs)]
    rss = [r for _, r in results if r is not None]
    return statistics.median(s for s, _ in results), max(rss) if rss else None


def commands(project: Path) -> dict[str, list[str]]:
    ours = [PYTHON, "-c", _OURS]
    on_pty = " ".join(shlex.quote(a) for a in [*ours, "subscribers", "list"])
    table: dict[str, list[str]] = {
        "list (terminal)": ["script", "-qec", on_pty, os.devnull],
        "list (piped)": [*ours, "subscribers", "list"],
        "list --json": [*ours, "subscribers", "list", "--json"],
        "export": [*ours, "subscribers", "export"],
        "export --json": [*ours, "subscribers", "export", "--json"],
        "reference: python cursor -> csv": [
            PYTHON,
            "-c",
            _REFERENCE,
            str(project / "newsletter.db"),
        ],
    }
    if shutil.which("sqlite3"):
        query = "SELECT email, name, status, created, source FROM subscribers ORDER BY id"
        table["reference: sqlite3 -csv"] = [
            "sqlite3",
            "-csv",
            str(project / "newsletter.db"),
            query,
        ]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median time)")
    args = parser.parse_args()
    if not shutil.which("script"):
        print("`script` (util-linux) is needed for the terminal run", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-lists-") as tmp:
        folder = Path(tmp)
        rss_file = folder / "rss"
        figures: dict[int, dict[str, tuple[float, int | None]]] = {}
        for count in (args.small, args.subscribers):
            started = time.perf_counter()
            project = folder / f"p{count}"
            make_project(project, count)
            print(f"store of {count:,} subscribers made in {time.perf_counter() - started:.1f} s")
            figures[count] = {}
            for name, argv in commands(project).items():
                uses_rss = not name.startswith("reference: sqlite3")
                figures[count][name] = measure(
                    argv, project, rss_file if uses_rss else None, args.runs
                )

    big, small = figures[args.subscribers], figures[args.small]
    ref_time, ref_rss = big["reference: python cursor -> csv"]
    print(f"\n{args.subscribers:,} subscribers, median of {args.runs} runs")
    print(f"{'command':34} {'time':>8} {'x ref':>6} {'peak RSS':>10} {'x ref':>6} {'/ 1k':>6}")
    for name, (seconds, rss) in big.items():
        small_rss = small[name][1]
        rss_text = f"{rss / 1024:7.1f} MB" if rss else f"{'-':>10}"
        rss_ratio = f"{rss / ref_rss:6.2f}" if rss and ref_rss else f"{'-':>6}"
        flat = f"{rss / small_rss:6.2f}" if rss and small_rss else f"{'-':>6}"
        print(f"{name:34} {seconds:7.2f}s {seconds / ref_time:6.2f} {rss_text} {rss_ratio} {flat}")
    terminal = big["list (terminal)"][0]
    verdict = "met" if terminal < 10 else "MISSED"
    print(
        f"\ntarget: list on a terminal under 10 s for {args.subscribers:,}: "
        f"{terminal:.1f} s, {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
