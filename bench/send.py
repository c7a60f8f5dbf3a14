"""Benchmark of sending one issue over SMTP, with Postfix's smtp-source as the reference.

What it measures, against Postfix's ``smtp-sink`` (a fast SMTP server that accepts and
discards every message) on a free loopback port:

* ours: ``send_issue`` in-process (``issues/2023-W25.toml``, relay mode, security none,
  ``--connections`` connections (default 4), no rate limit, no reconnects) to
  ``--subscribers`` generated subscribers (default 20,000) in a fresh SQLite store of a
  temporary project folder, imported with ``import_csv``. The issue is built before the
  clock starts; the wall clock covers everything else ``send_issue`` does (lease, ledger
  rows, composing each message, SMTP, ledger updates, the report file).
* the size of one composed message (``MessageBuilder.message_bytes`` + dot-stuffing), in bytes;
* the reference: ``smtp-source -d -s CONNECTIONS -m SUBSCRIBERS -l SIZE`` (Postfix's C load
  generator, same number of sessions kept open, a payload of our message's size) against
  the same sink, timed from outside, and the ratio ours / smtp-source (target >= 0.6);
* memory: peak RSS (``VmHWM``; see :func:`max_rss_kib` for why not ``ru_maxrss``) of a
  fresh child process (this script with ``--rss-child N``) that creates a store of N
  subscribers, builds the issue and sends it, for N = 1,000 and 100,000, and their ratio
  (target <= 1.3);
* if the rate target is missed, a profiled send (cProfile in every thread) and its top costs.

``smtp-sink`` and ``smtp-source`` are taken from PATH (or ``/usr/sbin``); failing that, the
Debian package ``postfix`` is downloaded with ``apt-get download`` and unpacked (not
installed: no daemon, no configuration) into ``~/.cache/newsletter-bench/postfix``
(``--postfix-dir`` or ``$NEWSLETTER_BENCH_POSTFIX_DIR`` to change it).

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/send.py [--subscribers 20000] [--connections 4] [--skip-rss]

The targets are informational: the exit code is 0 either way (2 if the tools are missing
or the setup fails).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import datetime as dt
import io
import json
import os
import pstats
import pwd
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from newsletter.errors import NewsletterError
from newsletter.render import LoadedIssue, build_issue, open_issue
from newsletter.render.message import Recipient
from newsletter.send import SendReport, send_issue
from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from newsletter.subscribers import import_csv

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.toml"
ISSUE = ROOT / "issues" / "2023-W25.toml"

TARGET_RATIO = 0.6
TARGET_RSS_RATIO = 1.3
RSS_SIZES = (1_000, 100_000)
POSTFIX_DIR_ENV = "NEWSLETTER_BENCH_POSTFIX_DIR"
DEFAULT_POSTFIX_DIR = Path.home() / ".cache" / "newsletter-bench" / "postfix"
SENDER = "from@example.org"
RECIPIENT = "to@example.org"

# A little variety in the To header and greeting: ASCII and non-ASCII names, some unknown.
FIRST_NAMES = ("Anna", "Jonas", "Marie", "Luca", "Zoë", "José", "Ingrid", "Kwame", "Mei", "Olga")
LAST_NAMES = ("Peeters", "Novak", "García", "Smith", "Dubois", "Kowalski", "Østergaard", "Rossi")


class BenchError(Exception):
    """A setup problem: printed as one line, exit code 2."""


@dataclass(frozen=True)
class Postfix:
    sink: Path
    source: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Sink:
    """The running smtp-sink."""

    proc: subprocess.Popen[str]

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the sink has used so far (Linux ``/proc``), if known."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measure:
    """One timed run: wall clock, the client's CPU and the sink's CPU, in seconds."""

    seconds: float
    cpu: float
    sink_cpu: float | None


@contextlib.contextmanager
def measure(sink: Sink, who: int, out: list[Measure]) -> Iterator[None]:
    """Time the block; ``who`` is ``resource.RUSAGE_SELF`` or ``RUSAGE_CHILDREN``."""
    before, sink_before = resource.getrusage(who), sink.cpu_seconds()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    after, sink_after = resource.getrusage(who), sink.cpu_seconds()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    sink_cpu = None if sink_before is None or sink_after is None else sink_after - sink_before
    out.append(Measure(seconds, cpu, sink_cpu))


# -- Postfix's tools ---------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    print(f"  $ {' '.join(cmd)}")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def _unpack_postfix(target: Path) -> None:
    """``apt-get download postfix`` and ``dpkg-deb -x`` it into ``target`` (not installed)."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise BenchError(f"smtp-sink/smtp-source not found, and `{tool}` is not on PATH")
    print(f"postfix: smtp-sink/smtp-source not found; unpacking Debian's postfix into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="postfix-", dir=target.parent) as tmp:
        work = Path(tmp)
        proc = _run(["apt-get", "download", "postfix"], cwd=work)
        if proc.returncode != 0 and os.geteuid() == 0:
            # A fresh machine has no package lists yet.
            _run(["apt-get", "update"])
            proc = _run(["apt-get", "download", "postfix"], cwd=work)
        debs = sorted(work.glob("postfix_*.deb"))
        if proc.returncode != 0 or not debs:
            detail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise BenchError(f"`apt-get download postfix` failed ({proc.returncode}): {detail}")
        tree = work / "tree"
        proc = _run(["dpkg-deb", "-x", str(debs[-1]), str(tree)])
        if proc.returncode != 0:
            raise BenchError(f"`dpkg-deb -x {debs[-1].name}` failed: {proc.stderr.strip()}")
        if target.exists():
            shutil.rmtree(target)
        tree.rename(target)


def find_postfix(cache: Path) -> Postfix:
    """smtp-sink and smtp-source from PATH or /usr/sbin, else unpacked into ``cache``."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])
    sink, source = shutil.which("smtp-sink", path=search), shutil.which("smtp-source", path=search)
    if sink and source:
        return Postfix(Path(sink), Path(source), dict(os.environ))
    sbin, lib = cache / "usr" / "sbin", cache / "usr" / "lib" / "postfix"
    if not ((sbin / "smtp-sink").is_file() and (sbin / "smtp-source").is_file()):
        _unpack_postfix(cache)
    if not ((sbin / "smtp-sink").is_file() and (sbin / "smtp-source").is_file()):
        raise BenchError(f"the postfix package unpacked into {cache} has no smtp-sink/smtp-source")
    env = dict(os.environ)
    # The tools link against Postfix's own shared libraries, shipped in the same package.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
    return Postfix(sbin / "smtp-sink", sbin / "smtp-source", env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def smtp_sink(postfix: Postfix, port: int) -> Iterator[Sink]:
    """``smtp-sink 127.0.0.1:PORT 1000`` (``-u nobody`` as root, which it requires)."""
    cmd = [str(postfix.sink)]
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("nobody").pw_name
        except KeyError:
            raise BenchError("smtp-sink refuses to run as root without -u USER, and there "
                             "is no user 'nobody'") from None  # fmt: skip
        cmd += ["-u", user]
    # No -c: its running counters only cost time, and nobody reads them here.
    cmd += [f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(
        cmd, env=postfix.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().strip() if proc.stderr else ""
                raise BenchError(f"`{' '.join(cmd)}` exited {proc.returncode}: {err}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"smtp-sink did not listen on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield Sink(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def bench_source(
    postfix: Postfix, sink: Sink, port: int, sessions: int, count: int, size: int
) -> Measure:
    """smtp-source sending ``count`` messages of ``size`` payload bytes."""
    cmd = [
        str(postfix.source),
        "-d",  # keep each session open for its next message, as our sender does
        "-s", str(sessions), "-m", str(count), "-l", str(size),
        "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}",
    ]  # fmt: skip
    print(f"  $ smtp-source {' '.join(cmd[1:])}")
    measured: list[Measure] = []
    with measure(sink, resource.RUSAGE_CHILDREN, measured):
        proc = subprocess.run(cmd, env=postfix.env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        detail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
        raise BenchError(f"smtp-source exited {proc.returncode}: {detail}")
    return measured[0]


# -- our side ----------------------------------------------------------------------------------


def _name(i: int) -> str:
    if i % 10 == 0:
        return ""  # the greeting without a name
    return f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[i // 10 % len(LAST_NAMES)]}"


def subscriber_rows(count: int) -> Iterator[tuple[str, str, str, str, str, str, str]]:
    """Rows for ``subscribers``, generated lazily so that memory stays flat."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for i in range(1, count + 1):
        email = f"user{i:05d}@example.org"
        yield (email, _name(i), "active", now, now, "bench", secrets.token_urlsafe(12))


def insert_subscribers(settings: Settings, count: int) -> None:
    """One ``executemany`` in one transaction: fast, and flat in memory."""
    with Store(settings.store_path) as store, store.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (email, name, status, created, updated, source, token) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            subscriber_rows(count),
        )


def import_subscribers(settings: Settings, folder: Path, count: int) -> float:
    """Through ``import_csv``, as a user would; returns its seconds."""
    path = folder / "subscribers.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name"])
        writer.writerows((row[0], row[1]) for row in subscriber_rows(count))
    start = time.perf_counter()
    with Store(settings.store_path) as store:
        report = import_csv(store, path)
    seconds = time.perf_counter() - start
    if report.imported != count:
        raise BenchError(f"import_csv imported {report.imported} of {count}: {report.problems[:3]}")
    return seconds


def make_project(folder: Path, port: int, connections: int) -> Settings:
    """A project folder with the sample config and issue, set up to relay to the sink."""
    (folder / "issues").mkdir(parents=True)
    shutil.copy2(CONFIG, folder / "config.toml")
    shutil.copy2(ISSUE, folder / "issues" / ISSUE.name)
    settings = load_settings(folder / "config.toml")
    smtp = settings.smtp.model_copy(
        update={
            "mode": "relay",
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": "",
            "connections": connections,
            "rate": 0.0,
            "messages_per_connection": 10_000_000,
        }
    )
    security = settings.security.model_copy(
        update={"secret": SecretStr("bench-" + secrets.token_urlsafe(32))}
    )
    return settings.model_copy(update={"smtp": smtp, "security": security})


def build(settings: Settings, issue_path: Path) -> LoadedIssue:
    """Build the issue's outputs now, so that ``send_issue`` finds them fresh."""
    loaded = open_issue(issue_path, settings)
    build_issue(loaded)
    return loaded


@dataclass(frozen=True)
class Composition:
    size: int
    wire_seconds: float


def composition(loaded: LoadedIssue, runs: int = 500) -> Composition:
    """One message's size on the wire (composed, dot-stuffed), and the seconds per message
    of ``MessageBuilder.wire``, which is what the sender calls (one thread, no SMTP)."""
    builder = loaded.message_builder()
    recipients = [
        Recipient(f"user{i:05d}@example.org", _name(i), secrets.token_urlsafe(12), i)
        for i in range(1, runs + 1)
    ]
    start = time.perf_counter()
    messages = [builder.wire(r) for r in recipients]
    end = time.perf_counter()
    return Composition(len(messages[0]), (end - start) / runs)


def describe(report: SendReport, expected: int) -> str:
    if report.sent == expected and report.ok:
        return ""
    return (
        f"WARNING: sent {report.sent} of {expected} (failed {report.failed}, deferred "
        f"{report.deferred}, remaining {report.remaining}) {report.stopped}"
    ).strip()


# -- memory ------------------------------------------------------------------------------------


def max_rss_kib() -> int:
    """This process's peak RSS in KiB.

    On Linux ``ru_maxrss`` survives ``execve``: a child spawned by a big parent starts with
    the parent's peak. ``VmHWM`` in ``/proc/self/status`` belongs to the process's own memory
    map, so it starts afresh at exec; ``ru_maxrss`` is the fallback elsewhere.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextlib.contextmanager
def built_project(
    name: str, port: int, connections: int, count: int
) -> Iterator[tuple[Settings, Path]]:
    """A temporary project with ``count`` subscribers and the sample issue already built."""
    with tempfile.TemporaryDirectory(prefix=f"newsletter-bench-{name}-") as tmp:
        folder = Path(tmp)
        settings = make_project(folder, port, connections)
        insert_subscribers(settings, count)
        issue_path = folder / "issues" / ISSUE.name
        build(settings, issue_path)
        yield settings, issue_path


def rss_child(count: int, port: int, connections: int) -> int:
    """In a fresh process: store of ``count`` subscribers, build, send; print peak RSS."""
    with built_project("rss", port, connections, count) as (settings, issue_path):
        before = max_rss_kib()
        start = time.perf_counter()
        report = send_issue(open_issue(issue_path, settings), settings)
        seconds = time.perf_counter() - start
        result = {
            "subscribers": count,
            "sent": report.sent,
            "seconds": seconds,
            "rss_before_send_kib": before,
            "rss_kib": max_rss_kib(),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "warning": describe(report, count),
        }
    print(json.dumps(result))
    return 0


def run_rss_child(count: int, port: int, connections: int) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--rss-child", str(count),
        "--port", str(port), "--connections", str(connections),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        detail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise BenchError(f"the --rss-child {count} process exited {proc.returncode}: {detail}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


# -- profile -----------------------------------------------------------------------------------


@contextlib.contextmanager
def profile_all_threads() -> Iterator[list[cProfile.Profile]]:
    """cProfile in the calling thread and in every thread started meanwhile."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original: Callable[[threading.Thread], None] = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original(thread)
        finally:
            profile.disable()

    main = cProfile.Profile()
    profiles.append(main)
    threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.Thread.run = original  # type: ignore[method-assign,assignment]


def print_stats(profiles: list[cProfile.Profile], order: str, top: int, title: str) -> None:
    first, *rest = profiles
    out = io.StringIO()
    stats = pstats.Stats(first, stream=out)
    for profile in rest:
        stats.add(profile)
    stats.strip_dirs().sort_stats(order).print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), len(lines))
    print(f"\n  {title}:")
    for line in lines[start:]:
        if line.strip():
            print(f"  {line}")


def profile_send(port: int, connections: int, count: int, top: int) -> None:
    """Send under cProfile (wall clock, every thread) and print the top costs.

    Blocking calls (``recv_into``, lock ``acquire``, ``sendall``) are time spent waiting,
    summed over the threads; for everything else, own time is close to CPU time.
    """
    with built_project("prof", port, connections, count) as (settings, issue_path):
        start = time.perf_counter()
        with profile_all_threads() as profiles:
            report = send_issue(open_issue(issue_path, settings), settings)
        seconds = time.perf_counter() - start
    print(
        f"  {report.sent:,} messages in {seconds:.2f} s under cProfile "
        f"({rate(report.sent, seconds):,.0f}/s), {len(profiles)} threads; times are summed "
        "over threads,\n  and blocking calls (recv_into, acquire, sendall) are waits"
    )
    print_stats(profiles, "tottime", top, f"top {top} by own time")
    print_stats(profiles, "cumulative", top, f"top {top} by cumulative time")


# -- main --------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def per_message(seconds: float | None, count: int) -> str:
    return "n/a" if seconds is None or not count else f"{seconds / count * 1e6:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--subscribers", type=int, default=20_000, help="messages per run (default 20000)"
    )
    parser.add_argument(
        "--connections", type=int, default=4, help="SMTP connections / sessions (default 4)"
    )
    parser.add_argument("--skip-rss", action="store_true", help="skip the peak-RSS children")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profiled sends: only when the rate target is missed (default), always, never",
    )
    parser.add_argument(
        "--profile-subscribers",
        type=int,
        default=5_000,
        help="messages in each profiled send (default 5000)",
    )
    parser.add_argument(
        "--postfix-dir",
        type=Path,
        default=Path(os.environ.get(POSTFIX_DIR_ENV) or DEFAULT_POSTFIX_DIR),
        help=f"where to unpack postfix if needed (default: ${POSTFIX_DIR_ENV}, "
        f"else {DEFAULT_POSTFIX_DIR})",
    )
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.profile_subscribers < 1 or not 1 <= args.connections <= 64:
        parser.error("--subscribers must be >= 1, --connections between 1 and 64")
    if args.rss_child:
        return rss_child(args.rss_child, args.port, args.connections)

    try:
        postfix = find_postfix(args.postfix_dir)
        port = free_port()
        with smtp_sink(postfix, port) as sink:
            return run(args, postfix, sink, port)
    except (BenchError, NewsletterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, postfix: Postfix, sink: Sink, port: int) -> int:
    n, connections = args.subscribers, args.connections
    print(f"newsletter send benchmark: {ISSUE.relative_to(ROOT)}, Python {sys.version.split()[0]}")
    print(f"peer: {postfix.sink} on 127.0.0.1:{port}; {os.cpu_count()} CPUs\n")

    measured: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-send-") as tmp:
        folder = Path(tmp)
        settings = make_project(folder, port, connections)
        issue_path = folder / "issues" / ISSUE.name
        imported = import_subscribers(settings, folder, n)
        # Built now, so that send_issue finds fresh outputs and the clock measures sending.
        sample = composition(build(settings, issue_path))
        with measure(sink, resource.RUSAGE_SELF, measured):
            report = send_issue(open_issue(issue_path, settings), settings)
    ours = measured[0]
    size = sample.size
    print(f"  message size: {size:,} bytes (one composed message, dot-stuffed)")
    wire_us = sample.wire_seconds * 1e6
    print(f"  per message, one thread, no SMTP: MessageBuilder.wire {wire_us:.0f} µs")
    print(f"  import_csv of {n:,} subscribers: {imported:.2f} s\n")
    print("  reference:")
    ref = bench_source(postfix, sink, port, connections, n, size)
    ours_rate, ref_rate = rate(report.sent, ours.seconds), rate(n, ref.seconds)
    ratio = ours_rate / ref_rate if ref_rate else 0.0

    print(f"\n  {'':<30}{'sent':>8}{'seconds':>9}{'msg/s':>8}{'client CPU':>12}{'sink CPU':>10}")
    print(f"  {'':<30}{'':>8}{'':>9}{'':>8}{'µs/msg':>12}{'µs/msg':>10}")
    print(f"  {'-' * 77}")
    for label, sent, m in (
        (f"ours: send_issue, {connections} conn.", report.sent, ours),
        (f"smtp-source -d -s {connections}", n, ref),
    ):
        print(
            f"  {label:<30}{sent:>8,}{m.seconds:>9.2f}{rate(sent, m.seconds):>8,.0f}"
            f"{per_message(m.cpu, sent):>12}{per_message(m.sink_cpu, sent):>10}"
        )
    print(f"  {'-' * 77}")
    print(f"  send_issue's own report: {report.seconds:.2f} s, {report.rate:,.0f}/s")
    print(
        "  (smtp-source does not pipeline: 4 round trips per message, ours 2; its payload is\n"
        "  our message's size, plus a few short headers of its own)"
    )
    if warning := describe(report, n):
        print(f"  {warning}")
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(
        f"\ntarget: ours / smtp-source >= {TARGET_RATIO} -> {verdict} ({ratio:.2f}; informational)"
    )

    if not args.skip_rss:
        print("\nmemory: peak RSS of a fresh process that creates the store, builds and sends")
        rows = [run_rss_child(count, port, connections) for count in RSS_SIZES]
        print(
            f"\n  {'subscribers':>12}{'sent':>10}{'msg/s':>8}{'before send':>14}"
            f"{'peak RSS':>12}{'ru_maxrss':>14}"
        )
        print(f"  {'-' * 70}")
        for row in rows:
            print(
                f"  {row['subscribers']:>12,}{row['sent']:>10,}"
                f"{rate(row['sent'], row['seconds']):>8,.0f}"
                f"{row['rss_before_send_kib'] / 1024:>10.1f} MiB{row['rss_kib'] / 1024:>8.1f} MiB"
                f"{row['ru_maxrss_kib'] / 1024:>10.1f} MiB"
            )
            if row["warning"]:
                print(f"  {row['warning']}")
        print(f"  {'-' * 70}")
        print("  (ru_maxrss includes the parent's peak: Linux carries it across exec)")
        small, large = rows[0]["rss_kib"], rows[-1]["rss_kib"]
        rss_ratio = large / small if small else 0.0
        verdict = "PASS" if rss_ratio <= TARGET_RSS_RATIO else "MISS"
        print(
            f"\ntarget: peak RSS {RSS_SIZES[-1]:,} / {RSS_SIZES[0]:,} <= {TARGET_RSS_RATIO} -> "
            f"{verdict} ({rss_ratio:.2f}; informational)"
        )

    if args.profile == "always" or (args.profile == "auto" and ratio < TARGET_RATIO):
        print(f"\nprofile: send_issue to {args.profile_subscribers:,} subscribers under cProfile")
        profile_send(port, connections, args.profile_subscribers, top=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
