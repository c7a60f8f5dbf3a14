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

It also measures ``subscribers import`` of generated CSV files of 10,000 and 100,000 rows
(and 1,000,000 with ``--million``) into a fresh store, each in a fresh child process, and
prints seconds, peak RSS and the largest / smallest peak RSS (memory flat in the file
size: target at most 1.3; 1M rows: under 60 s and 150 MiB). ``--import-only`` skips the
list commands.

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/lists.py [--subscribers 200000] [--runs 3] [--million] [--import-only]

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


def run(
    argv: list[str],
    cwd: Path,
    rss_file: Path | None,
    ok: tuple[int, ...] = (0,),
    stderr: int | None = None,
) -> tuple[float, int | None]:
    """Wall time of one run (stdout to /dev/null) and the child's peak RSS in KiB."""
    env = dict(os.environ, BENCH_RSS_FILE=str(rss_file or os.devnull), COLUMNS="120")
    if rss_file:
        rss_file.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    seconds = time.perf_counter() - started
    if proc.returncode not in ok:
        raise SystemExit(f"{argv[3:] or argv} exited {proc.returncode}")
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


# -- subscribers import ---------------------------------------------------------------------------

IMPORT_SIZES = (10_000, 100_000)
MILLION = 1_000_000
_DOMAINS = ("example.org", "Example.NET", "mail.example.com", "lists.example.co.uk", "example.io")


def make_import_csv(path: Path, count: int) -> tuple[int, int, int]:
    """A Mailchimp-like CSV of ``count`` data rows: mostly valid, mixed-case addresses over a
    few domains, one invalid row and one duplicate in every 1,000. Returns the expected
    (imported, invalid, duplicates)."""
    invalid = duplicates = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Email Address,First Name,Last Name\n")
        for i in range(count):
            if i % 1000 == 999:
                invalid += 1
                out.write(f"reader{i}.example.org,Not An,Address\n")
            elif i % 1000 == 499:
                duplicates += 1
                out.write(f"Reader.{i - 1}+news@{_DOMAINS[(i - 1) % 5]},Again,Twice\n")
            else:
                out.write(f"reader.{i}+news@{_DOMAINS[i % 5]},Reader,Número {i}\n")
    return count - invalid - duplicates, invalid, duplicates


def import_figures(folder: Path, sizes: list[int], rss_file: Path) -> dict[int, tuple[float, int]]:
    """``subscribers import`` of each size into a fresh store: seconds and peak RSS (KiB)."""
    figures: dict[int, tuple[float, int]] = {}
    for count in sizes:
        project = folder / f"import{count}"
        project.mkdir()
        shutil.copy(ROOT / "config.toml", project / "config.toml")
        csv_path = project / "people.csv"
        imported, invalid, _ = make_import_csv(csv_path, count)
        size = csv_path.stat().st_size
        argv = [PYTHON, "-c", _OURS, "subscribers", "import", "people.csv"]
        ok = (1,) if invalid else (0,)  # exit code 1: some rows were invalid
        seconds, rss = run(argv, project, rss_file, ok, stderr=subprocess.DEVNULL)
        db = sqlite3.connect(project / "newsletter.db")
        stored = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        db.close()
        if stored != imported:
            raise SystemExit(f"import of {count:,} rows stored {stored:,}, expected {imported:,}")
        print(
            f"import {count:>9,} rows ({size / 2**20:5.1f} MiB CSV): {seconds:6.2f} s, "
            f"peak RSS {(rss or 0) / 1024:6.1f} MiB",
            flush=True,
        )
        figures[count] = (seconds, rss or 0)
        shutil.rmtree(project)
    return figures


def print_import_summary(figures: dict[int, tuple[float, int]]) -> None:
    small, big = min(figures), max(figures)
    print(f"\n{'subscribers import':18} {'seconds':>8} {'rows/s':>9} {'peak RSS':>10}")
    for count, (seconds, rss) in sorted(figures.items()):
        print(f"{count:>18,} {seconds:8.2f} {count / seconds:9,.0f} {rss / 1024:6.1f} MiB")
    ratio = figures[big][1] / figures[small][1]
    verdict = "met" if ratio <= 1.3 else "MISSED"
    print(f"peak RSS {big:,} / {small:,} rows: {ratio:.2f} (target <= 1.3: {verdict})")
    if MILLION in figures:
        seconds, rss = figures[MILLION]
        met = "met" if seconds < 60 and rss < 150 * 1024 else "MISSED"
        print(f"1M rows: {seconds:.1f} s, {rss / 1024:.1f} MiB (target < 60 s, < 150 MiB: {met})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median time)")
    parser.add_argument("--million", action="store_true", help="also import 1,000,000 rows")
    parser.add_argument("--import-only", action="store_true", help="skip the list commands")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        sizes = [*IMPORT_SIZES, MILLION] if args.million else list(IMPORT_SIZES)
        print_import_summary(import_figures(Path(tmp), sizes, Path(tmp) / "rss"))
    if args.import_only:
        return 0
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
