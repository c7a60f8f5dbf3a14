"""A million subscribers: import, a full send, and memory flat in the list size.

In a temporary project (the sample config set up as in ``send.py``'s whole-process mode:
relay to Postfix's ``smtp-sink`` on loopback, security none, ``--connections`` connections,
no rate limit, a real secret, an https base_url), with ``--subscribers`` N (default
1,000,000) and a small list of ``--small`` (default 10,000) beside it, each command run as a
fresh child process (``python -c`` running ``newsletter.cli.main``, which at exit writes its
own peak RSS, ``VmHWM``: Linux carries ``ru_maxrss`` across exec, see ``send.max_rss_kib``):

* ``newsletter subscribers import`` of a generated N-row CSV (``email,name``): seconds and
  peak RSS (targets at 1M: under 60 s, under 150 MiB);
* peak RSS of ``send ISSUE --dry-run``, ``subscribers export > /dev/null`` and
  ``subscribers list | cat > /dev/null``, at the small size and at N;
* ``newsletter send issues/2023-W25.toml --yes`` to all N, the issue built beforehand:
  wall time from outside (start-up included; target at 1M: under 10 minutes, measured, not
  extrapolated), rate, peak RSS, and how busy the single-threaded sink was; the same for
  the small list;

then a report with each command's peak RSS at N / at the small size (target <= 1.3).

The generated CSVs and the store as imported are kept in ``--cache-dir`` (default
``~/.cache/newsletter-bench/million``, or ``$NEWSLETTER_BENCH_MILLION_DIR``), so a second
run skips the generation and, unless ``--reimport``, the big import (it reports the
figures recorded when it was measured, marked "cached"). ``--regenerate`` starts afresh.
At 1M the whole run takes about 15 minutes (most of it the send); ``--subscribers 20000``
tries it out in under a minute.

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/million.py [--subscribers 1000000] [--small 10000]
        [--connections 4] [--reimport] [--regenerate] [--skip-send]

Targets are informational: the exit code is 0 either way (2 if the setup fails).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lists  # bench/lists.py, beside this file
import send as bench  # bench/send.py, beside this file

from newsletter.errors import NewsletterError
from newsletter.settings import Settings

CACHE_ENV = "NEWSLETTER_BENCH_MILLION_DIR"
DEFAULT_CACHE = Path.home() / ".cache" / "newsletter-bench" / "million"
ISSUE = Path("issues") / bench.ISSUE.name

TARGET_IMPORT_SECONDS = 60.0
TARGET_IMPORT_MIB = 150.0
TARGET_SEND_SECONDS = 600.0
TARGET_RSS_RATIO = 1.3
#: The targets above are for a list of this size.
TARGET_SIZE = 1_000_000

#: Our CLI in a child that writes its peak RSS (VmHWM, KiB) to $BENCH_RSS_FILE at exit.
_OURS = lists._OURS


@dataclass
class Result:
    """One child run: wall seconds, peak RSS (KiB), and what it printed."""

    seconds: float
    rss_kib: int | None
    output: str = ""
    sink_cpu: float | None = None
    cached: str = ""  # when the figures come from the cache: when they were measured

    @property
    def mib(self) -> str:
        return "n/a" if self.rss_kib is None else f"{self.rss_kib / 1024:.1f} MiB"


def stamp(text: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", flush=True)


def run_ours(
    args: list[str], cwd: Path, *, pipe_to: list[str] | None = None, sink: bench.Sink | None = None
) -> Result:
    """``newsletter ARGS`` in a fresh child (stdout to /dev/null, or into ``pipe_to``)."""
    with tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt", delete=False) as tmp:
        rss_file = Path(tmp.name)
    env = dict(bench.child_env(), BENCH_RSS_FILE=str(rss_file), COLUMNS="120")
    cmd = [sys.executable, "-c", _OURS, *args]
    sink_before = sink.cpu_seconds() if sink else None
    try:
        start = time.perf_counter()
        if pipe_to is None:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
            code, output = proc.returncode, proc.stdout + proc.stderr
        else:
            ours = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert ours.stdout is not None and ours.stderr is not None
            reader = subprocess.Popen(pipe_to, stdin=ours.stdout, stdout=subprocess.DEVNULL)
            ours.stdout.close()  # the reader holds it now
            err = ours.stderr.read().decode(errors="replace")
            reader.wait()
            code, output = ours.wait(), err
        seconds = time.perf_counter() - start
        sink_after = sink.cpu_seconds() if sink else None
        text = rss_file.read_text().strip()
        rss = int(text) if text else None
    finally:
        rss_file.unlink(missing_ok=True)
    if code != 0:
        detail = " | ".join(output.strip().splitlines()[-3:])
        raise bench.BenchError(f"`newsletter {' '.join(args)}` exited {code}: {detail}")
    sink_cpu = None if sink_before is None or sink_after is None else sink_after - sink_before
    return Result(seconds, rss, output, sink_cpu)


def write_csv(path: Path, count: int) -> float:
    """``count`` generated subscribers as ``email,name`` (written aside, then renamed, so
    that an interrupted run never leaves a short file in the cache)."""
    start = time.perf_counter()
    part = path.with_suffix(".part")
    with part.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name"])
        writer.writerows((row[0], row[1]) for row in bench.subscriber_rows(count))
    part.rename(path)
    return time.perf_counter() - start


def ensure_csv(cache: Path, count: int) -> Path:
    path = cache / f"subscribers-{count}.csv"
    if path.is_file():
        stamp(f"CSV of {count:,} rows: reusing {path}")
    else:
        stamp(f"CSV of {count:,} rows: generating {path}")
        seconds = write_csv(path, count)
        stamp(f"  written in {seconds:.1f} s ({path.stat().st_size / 2**20:,.0f} MiB)")
    return path


_IMPORTED = re.compile(r"Imported (\d+)")


def import_list(project: Path, csv_path: Path, count: int) -> Result:
    result = run_ours(["subscribers", "import", str(csv_path)], project)
    match = _IMPORTED.search(result.output)
    imported = int(match[1]) if match else None
    if imported != count:
        raise bench.BenchError(f"the import of {count:,} rows imported {imported}")
    return result


def cached_import(
    settings: Settings, csv_path: Path, count: int, cache: Path, fresh: bool
) -> Result:
    """The big import: measured (and its store kept in the cache), or both from the cache."""
    store, record = cache / f"store-{count}.db", cache / f"import-{count}.json"
    if not fresh and store.is_file() and record.is_file():
        data: dict[str, Any] = json.loads(record.read_text())
        stamp(f"import of {count:,}: reusing the store imported at {data['cached']} (--reimport)")
        shutil.copyfile(store, settings.store_path)
        return Result(**data)
    stamp(f"import of {count:,} rows: newsletter subscribers import")
    result = import_list(settings.root, csv_path, count)
    stamp(f"  {result.seconds:.1f} s, peak RSS {result.mib}; keeping the store in {store}")
    record.unlink(missing_ok=True)
    bench.snapshot(settings.store_path, store)
    now = dt.datetime.now().isoformat(timespec="seconds")
    record.write_text(json.dumps(asdict(result) | {"output": "", "cached": now}))
    return result


@dataclass
class Side:
    """One list size: its project and what was measured on it."""

    count: int
    project: Path
    results: dict[str, Result]


def memory_commands(side: Side) -> None:
    """Peak RSS of the commands that walk the whole list (before any send: the dry run
    then counts everyone)."""
    steps: list[tuple[str, list[str], list[str] | None]] = [
        ("send --dry-run", ["send", str(ISSUE), "--dry-run"], None),
        ("subscribers export > /dev/null", ["subscribers", "export"], None),
        ("subscribers list | cat > /dev/null", ["subscribers", "list"], ["cat"]),
    ]
    for label, args, pipe_to in steps:
        stamp(f"{side.count:,}: {label}")
        result = run_ours(args, side.project, pipe_to=pipe_to)
        side.results[label] = result
        stamp(f"  {result.seconds:.1f} s, peak RSS {result.mib}")


def send_all(side: Side, sink: bench.Sink) -> None:
    stamp(f"{side.count:,}: newsletter send {ISSUE} --yes")
    result = run_ours(["send", str(ISSUE), "--yes"], side.project, sink=sink)
    sent = bench.sent_count(result.output)
    if sent != side.count:
        detail = " | ".join(result.output.strip().splitlines()[-3:])
        raise bench.BenchError(f"the send to {side.count:,} sent {sent}: {detail}")
    if "Built " in result.output:
        print("  WARNING: the send rebuilt the issue inside the clock")
    side.results["send"] = result
    stamp(
        f"  {result.seconds:.1f} s, {bench.rate(side.count, result.seconds):,.0f} msg/s, "
        f"peak RSS {result.mib}"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def report(small: Side, large: Side, connections: int) -> None:
    n = large.count
    print(f"\nreport: {n:,} subscribers (and {small.count:,} beside), {connections} connections, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")  # fmt: skip
    if n != TARGET_SIZE:
        print(f"  (the targets are for {TARGET_SIZE:,} subscribers: verdicts below are for "
              "this smaller list)")  # fmt: skip
    imp = large.results["subscribers import"]
    cached = f" (cached: measured {imp.cached}; --reimport to measure again)" if imp.cached else ""
    print(f"\n  import of {n:,} rows: {imp.seconds:.1f} s, peak RSS {imp.mib}{cached}")
    small_enough = imp.rss_kib is not None and imp.rss_kib / 1024 < TARGET_IMPORT_MIB
    print(f"    target: under {TARGET_IMPORT_SECONDS:.0f} s -> "
          f"{verdict(imp.seconds < TARGET_IMPORT_SECONDS)}; under {TARGET_IMPORT_MIB:.0f} MiB -> "
          f"{verdict(small_enough)}")  # fmt: skip
    if send := large.results.get("send"):
        busy = (
            f", smtp-sink busy {send.sink_cpu / send.seconds:.0%} of the time"
            if send.sink_cpu is not None and send.seconds
            else ""
        )
        print(
            f"\n  send to all {n:,}: {minutes(send.seconds)} ({send.seconds:.1f} s, whole "
            f"process), {bench.rate(n, send.seconds):,.0f} msg/s, peak RSS {send.mib}{busy}"
        )
        print(f"    target: under {TARGET_SEND_SECONDS / 60:.0f} minutes -> "
              f"{verdict(send.seconds < TARGET_SEND_SECONDS)}")  # fmt: skip

    print(f"\n  peak RSS (VmHWM) and seconds, {small.count:,} vs {n:,} subscribers:\n")
    head = (
        f"  {'command':<36}{f'{small.count:,}':>11}{f'{n:,}':>11}{'ratio':>7}"
        f"{'s ' + f'{small.count:,}':>11}{'s ' + f'{n:,}':>13}"
    )
    print(head)
    print(f"  {'-' * (len(head) - 2)}")
    worst = 0.0
    for label, small_result in small.results.items():
        large_result = large.results.get(label)
        if large_result is None:
            continue
        a, b = small_result.rss_kib, large_result.rss_kib
        value = b / a if a and b else 0.0
        worst = max(worst, value)
        print(
            f"  {label:<36}{small_result.mib:>11}{large_result.mib:>11}{value:>7.2f}"
            f"{small_result.seconds:>11.1f}{large_result.seconds:>13.1f}"
            + (" (cached)" if large_result.cached else "")
        )
    print(f"  {'-' * (len(head) - 2)}")
    print(f"  target: every ratio <= {TARGET_RSS_RATIO} -> {verdict(worst <= TARGET_RSS_RATIO)} "
          f"(largest {worst:.2f}; informational)")  # fmt: skip
    print(f"  ({bench.load_average()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--subscribers", type=int, default=TARGET_SIZE, help="the big list (default 1000000)"
    )
    parser.add_argument(
        "--small", type=int, default=10_000, help="the small list for the RSS ratios (10000)"
    )
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections (4)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE),
        help=f"generated CSVs and the imported store (default: ${CACHE_ENV}, else {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--reimport", action="store_true", help="measure the big import again (keep the CSVs)"
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="empty the cache first: new CSVs, new import"
    )
    parser.add_argument("--skip-send", action="store_true", help="no sends (import and RSS only)")
    parser.add_argument(
        "--postfix-dir",
        type=Path,
        default=Path(os.environ.get(bench.POSTFIX_DIR_ENV) or bench.DEFAULT_POSTFIX_DIR),
        help="where send.py unpacks postfix if needed",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.small <= args.subscribers or not 1 <= args.connections <= 64:
        parser.error("need 1 <= --small <= --subscribers, --connections between 1 and 64")
    try:
        return run(args)
    except (bench.BenchError, NewsletterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    cache: Path = args.cache_dir
    if args.regenerate and cache.exists():
        stamp(f"--regenerate: emptying {cache}")
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    bench.precompile()  # as an installed copy has it
    postfix = bench.find_postfix(args.postfix_dir)
    port = bench.free_port()
    stamp(f"million: {args.subscribers:,} and {args.small:,} subscribers, {args.connections} "
          f"connections; smtp-sink on 127.0.0.1:{port}; {bench.load_average()}")  # fmt: skip
    big_csv = ensure_csv(cache, args.subscribers)
    small_csv = ensure_csv(cache, args.small)
    with (
        tempfile.TemporaryDirectory(prefix="newsletter-bench-million-") as tmp,
        bench.smtp_sink(postfix, port) as sink,
    ):
        sides = []
        for count in (args.small, args.subscribers):
            folder = Path(tmp) / str(count)
            settings = bench.make_project(folder, port, args.connections)
            side = Side(count, folder, {})
            if count == args.subscribers:
                side.results["subscribers import"] = cached_import(
                    settings, big_csv, count, cache, args.reimport
                )
            else:
                stamp(f"{count:,}: newsletter subscribers import")
                side.results["subscribers import"] = import_list(folder, small_csv, count)
                stamp(f"  {side.results['subscribers import'].seconds:.1f} s, peak RSS "
                      f"{side.results['subscribers import'].mib}")  # fmt: skip
            memory_commands(side)
            # Built now, so that the timed send finds fresh outputs.
            bench.build(settings, folder / ISSUE)
            sides.append(side)
        if not args.skip_send:
            for side in sides:
                send_all(side, sink)
    report(sides[0], sides[1], args.connections)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    stamp(f"done; children's CPU {usage.ru_utime + usage.ru_stime:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
