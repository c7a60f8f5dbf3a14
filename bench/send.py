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
  the same sink, timed from outside, and the ratio ours / smtp-source (target >= 0.8);
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
import re
import resource
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
STATIC = ROOT / "static"

TARGET_RATIO = 0.8
TARGET_RSS_RATIO = 1.3
RSS_SIZES = (1_000, 100_000)
TABLE_SIZES = (1_000, 10_000, 100_000)
#: The issue's rate target holds at these list sizes, with this many connections.
TABLE_TARGET_SIZES = (10_000, 100_000)
TABLE_TARGET_CONNECTIONS = 4
TARGET_INDEPENDENCE = 0.9
INDEPENDENCE_SIZES = (20_000, 200_000)
DKIM_DOMAIN = "example.org"  # the From address's domain
#: A DKIM-signed send must reach this rate (whole process, 2-core machine): the email issue.
TARGET_SIGNED_RATE = 1_000
DKIM_SELECTOR = "bench"
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
    postfix: Postfix, sink: Sink, port: int, sessions: int, count: int, size: int,
    *, quiet: bool = False,
) -> Measure:  # fmt: skip
    """smtp-source sending ``count`` messages of ``size`` payload bytes, timed from outside."""
    cmd = [
        str(postfix.source),
        "-d",  # keep each session open for its next message, as our sender does
        "-s", str(sessions), "-m", str(count), "-l", str(size),
        "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}",
    ]  # fmt: skip
    if not quiet:
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


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, for the values written here)."""
    return json.dumps(value)


def set_toml(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` (a TOML literal) in ``[section]``: the key's line replaced, or a new
    line under the section's header; the section is appended if missing."""
    lines = text.splitlines()
    header = f"[{section}]"
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        lines += ["", header]
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            lines[i] = f"{key} = {value}"
            break
    else:
        lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def write_config(
    folder: Path, port: int, connections: int, *, dkim_key: Path | None = None,
    name: str = "config.toml", secret: str | None = None,
) -> Path:  # fmt: skip
    """The sample config, set up to relay to the sink: security none, no rate limit, no
    reconnects, a real secret and an https base_url (relay mode refuses the sample secret
    and http), and with ``dkim_key`` DKIM signing as example.org (the From domain)."""
    text = CONFIG.read_text(encoding="utf-8")
    values: list[tuple[str, str, str]] = [
        ("newsletter", "base_url", toml_string("https://newsletter.example.org/")),
        ("smtp", "mode", toml_string("relay")),
        ("smtp", "host", toml_string("127.0.0.1")),
        ("smtp", "port", str(port)),
        ("smtp", "security", toml_string("none")),
        ("smtp", "username", toml_string("")),
        ("smtp", "connections", str(connections)),
        ("smtp", "rate", "0"),
        ("smtp", "messages_per_connection", "10000000"),
        ("security", "secret", toml_string(secret or "bench-" + secrets.token_urlsafe(32))),
    ]
    if dkim_key is not None:
        values += [
            ("dkim", "domain", toml_string(DKIM_DOMAIN)),
            ("dkim", "selector", toml_string(DKIM_SELECTOR)),
            ("dkim", "key_file", toml_string(str(dkim_key))),
        ]
    for section, key, value in values:
        text = set_toml(text, section, key, value)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def make_project(folder: Path, port: int, connections: int) -> Settings:
    """A project folder with the sample issue, its pictures (the pre-send checks of
    `newsletter send` look for them) and a config set up to relay to the sink."""
    (folder / "issues").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ISSUE, folder / "issues" / ISSUE.name)
    shutil.copytree(STATIC, folder / "static", dirs_exist_ok=True)
    settings = load_settings(write_config(folder, port, connections))
    smtp = settings.smtp
    if (smtp.mode, smtp.host, smtp.port, smtp.connections) != (
        "relay", "127.0.0.1", port, connections,
    ):  # fmt: skip
        raise BenchError(
            f"the bench config says {smtp.mode} {smtp.host}:{smtp.port}, {smtp.connections} "
            "connections: is a NEWSLETTER_SMTP__* variable set in the environment?"
        )
    return settings


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


# -- whole process: --table, --independence ---------------------------------------------------


def precompile() -> None:
    """Write the package's bytecode now, as pip does when it installs a wheel.

    Run from a checkout with PYTHONDONTWRITEBYTECODE set (some machines set it), every
    child would compile every module of ours from source at each start, which no
    installed copy does: that would be counted as our start-up.
    """
    import compileall

    import newsletter

    compileall.compile_dir(str(Path(newsletter.__file__).parent), quiet=1)


def newsletter_command() -> list[str]:
    """The venv's ``newsletter`` console script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "newsletter"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "newsletter"]


def child_env() -> dict[str, str]:
    """This environment without ``NEWSLETTER_*`` overrides: only the config file counts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}


_SENT = re.compile(r": sent (\d+), failed (\d+), deferred (\d+), remaining (\d+) \(")


def sent_count(output: str) -> int | None:
    """``sent N`` from the summary line of ``newsletter send``."""
    match = _SENT.search(output)
    return int(match[1]) if match else None


def last_lines(text: str, count: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-count:])


def _openssl_key(path: Path) -> None:
    if shutil.which("openssl") is None:
        raise BenchError("--dkim needs the cryptography package or openssl")
    cmd = ["openssl", "genrsa", "-out", str(path), "2048"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"openssl genrsa exited {proc.returncode}: {last_lines(proc.stderr)}")


def make_dkim_key(folder: Path) -> tuple[Path, str]:
    """A fresh 2048-bit RSA key (PEM) for the signed runs, and what made it."""
    path = folder / "dkim.pem"
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        _openssl_key(path)
        return path, "openssl genrsa 2048"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path, "the cryptography package, RSA 2048"


def snapshot(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite file (the backup API: no -wal file to carry along)."""
    target.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


@dataclass(frozen=True)
class CliProject:
    """A temporary project for whole-process sends: N subscribers, the issue built, and a
    copy of the store from before any send, restored before each run."""

    folder: Path
    settings: Settings
    issue: Path
    pristine: Path
    size: int  # one composed message, dot-stuffed
    config: Path
    dkim_config: Path | None

    def reset(self) -> None:
        store = self.settings.store_path
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.pristine, store)


@contextlib.contextmanager
def cli_project(
    name: str, port: int, connections: int, count: int, dkim_key: Path | None = None
) -> Iterator[CliProject]:
    with tempfile.TemporaryDirectory(prefix=f"newsletter-bench-{name}-") as tmp:
        folder = Path(tmp)
        settings = make_project(folder, port, connections)
        config = folder / "config.toml"
        dkim_config = None
        if dkim_key is not None:
            secret = settings.security.secret.get_secret_value()
            dkim_config = write_config(
                folder, port, connections, dkim_key=dkim_key, name="config-dkim.toml",
                secret=secret,
            )  # fmt: skip
            load_settings(dkim_config)  # refuse a bad [dkim] now, not in the timed child
        insert_subscribers(settings, count)
        pristine = folder / "pristine.db"
        snapshot(settings.store_path, pristine)
        issue_path = folder / "issues" / ISSUE.name
        sample = composition(build(settings, issue_path), runs=50)
        yield CliProject(
            folder, settings, issue_path.relative_to(folder), pristine, sample.size, config,
            dkim_config,
        )  # fmt: skip


def run_cli_send(
    project: CliProject, sink: Sink, expected: int, *, limit: int | None = None,
    signed: bool = False,
) -> Measure:  # fmt: skip
    """``newsletter send ISSUE --yes`` as a child process on a fresh copy of the store,
    timed from outside (interpreter start-up, imports, checks, lease, ledger, SMTP)."""
    project.reset()
    config = project.dkim_config if signed else project.config
    assert config is not None
    cmd = [*newsletter_command(), "send", str(project.issue), "--yes", "--config", str(config)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    measured: list[Measure] = []
    with measure(sink, resource.RUSAGE_CHILDREN, measured):
        proc = subprocess.run(
            cmd, cwd=project.folder, env=child_env(), capture_output=True, text=True,
            timeout=4 * 3600,
        )  # fmt: skip
    sent = sent_count(proc.stdout)
    if proc.returncode != 0 or sent != expected:
        raise BenchError(
            f"`newsletter send` exited {proc.returncode}, sent {sent} of {expected}: "
            f"{last_lines(proc.stdout + proc.stderr)}"
        )
    if "Built " in proc.stdout:
        print("  WARNING: the send rebuilt the issue (its outputs looked stale) inside the clock")
    return measured[0]


@dataclass
class Runs:
    """Repeated measurements of one thing: ``count`` messages each."""

    count: int
    runs: list[Measure] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [rate(self.count, m.seconds) for m in self.runs]

    def rate(self) -> float:
        return statistics.median(self.rates()) if self.runs else 0.0

    def spread(self) -> str:
        rates = self.rates()
        return f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""

    def cpu_us(self) -> str:
        return per_message(statistics.median(m.cpu for m in self.runs), self.count)

    def sink_us(self) -> str:
        sink = [m.sink_cpu for m in self.runs if m.sink_cpu is not None]
        return per_message(statistics.median(sink), self.count) if sink else "n/a"

    def sink_busy(self) -> str:
        """The sink's CPU over the wall clock: near 100 %, the single-threaded sink is the
        ceiling."""
        busy = [m.sink_cpu / m.seconds for m in self.runs if m.sink_cpu is not None and m.seconds]
        return f"{statistics.median(busy):.0%}" if busy else "n/a"


def load_average() -> str:
    """The machine's load: another job on a shared machine skews every figure here."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average now {one:.2f}, {five:.2f}, {fifteen:.2f} over 1, 5, 15 min"


def ratio(ours: float, reference: float) -> float:
    return ours / reference if reference else 0.0


def paired(runs: int, first: Callable[[], None], second: Callable[[], None]) -> None:
    """``runs`` pairs in ABBA order (first, second, second, first, ...): a drift in the
    machine's load over the run then weighs on both sides alike."""
    for i in range(runs):
        for step in (first, second) if i % 2 == 0 else (second, first):
            step()


def show(label: str, m: Measure, count: int) -> None:
    print(f"    {label:<34}{m.seconds:>8.2f} s{rate(count, m.seconds):>8,.0f}/s")


def run_table(args: argparse.Namespace, postfix: Postfix, sink: Sink, port: int) -> int:
    connections, n_runs = args.connections, args.runs
    precompile()
    print(
        f"newsletter send, whole process vs smtp-source: {ISSUE.relative_to(ROOT)}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(f"peer: {postfix.sink} on 127.0.0.1:{port}")
    print(f"ours: {' '.join(newsletter_command())} send ISSUE --yes (relay, security none, rate 0)")
    print(f"before: {load_average()}")
    print(
        f"{n_runs} pair{'s' * (n_runs > 1)} of runs per size in ABBA order (ours, smtp-source, "
        "smtp-source, ours, ...); medians\n"
    )
    rows: list[tuple[int, Runs, Runs, Runs | None, int]] = []
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-key-") as keys:
        key = None
        if args.dkim:
            key, how = make_dkim_key(Path(keys))
            what = f"the first {args.dkim_limit:,} of the list" if args.dkim_limit else "all"
            print(f"DKIM: d={DKIM_DOMAIN} s={DKIM_SELECTOR}, key from {how}; one signed run "
                  f"after each pair, sending {what} (--dkim-limit)\n")  # fmt: skip
        for n in args.sizes:
            with cli_project(f"table-{n}", port, connections, n, key) as project:
                print(f"  {n:,} subscribers, {connections} connections, "
                      f"{project.size:,}-byte messages:")  # fmt: skip
                ours, ref = Runs(n), Runs(n)
                signed = Runs(min(n, args.dkim_limit or n)) if key else None
                for i in range(n_runs):
                    # ABBA: a drift in the machine's load weighs on both sides alike.
                    for who in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
                        if who == "ours":
                            ours.runs.append(run_cli_send(project, sink, n))
                            show("ours: newsletter send", ours.runs[-1], n)
                        else:
                            ref.runs.append(bench_source(
                                postfix, sink, port, connections, n, project.size, quiet=True
                            ))  # fmt: skip
                            show(f"smtp-source -d -s {connections}", ref.runs[-1], n)
                    if signed is not None:
                        limit = signed.count if signed.count < n else None
                        signed.runs.append(
                            run_cli_send(project, sink, signed.count, limit=limit, signed=True)
                        )
                        show(f"ours, DKIM-signed, {signed.count:,} msgs", signed.runs[-1],
                             signed.count)  # fmt: skip
                rows.append((n, ours, ref, signed, project.size))

    print_table(rows, connections, n_runs)
    return 0


def print_table(
    rows: list[tuple[int, Runs, Runs, Runs | None, int]], connections: int, n_runs: int
) -> None:
    signed_cols = any(signed for _, _, _, signed, _ in rows)
    head = f"  {'subscribers':>11} | {'connections':>11} | {'ours msg/s':>10} | "
    head += f"{'smtp-source msg/s':>17} | {'ratio':>5}"
    if signed_cols:
        head += f" | {'signed msg/s':>12} | {'signed ratio':>12}"
    print(f"\nmedians of {n_runs} run{'s' * (n_runs > 1)} each:\n")
    print(head)
    print(f"  {'-' * (len(head) - 2)}")
    for n, ours, ref, signed, _ in rows:
        line = f"  {n:>11,} | {connections:>11} | {ours.rate():>10,.0f} | {ref.rate():>17,.0f} | "
        line += f"{ratio(ours.rate(), ref.rate()):>5.2f}"
        if signed is not None:
            line += f" | {signed.rate():>12,.0f} | {ratio(signed.rate(), ref.rate()):>12.2f}"
        print(line)

    print("\ndetails (medians; CPU per message: getrusage of the children, the sink's /proc):")
    print(
        f"  {'subscribers':>11}  {'':<12}{'msg/s range':>14}{'CPU µs/msg':>12}"
        f"{'sink µs/msg':>13}{'sink busy':>11}"
    )
    for n, ours, ref, signed, _ in rows:
        runs = [("ours", ours), ("smtp-source", ref)]
        if signed is not None:
            runs.append(("ours signed", signed))
        for i, (label, r) in enumerate(runs):
            print(
                f"  {f'{n:,}' if i == 0 else '':>11}  {label:<12}{r.spread():>14}{r.cpu_us():>12}"
                f"{r.sink_us():>13}{r.sink_busy():>11}"
            )
    size = rows[0][4] if rows else 0
    print(
        f"  (message {size:,} bytes; smtp-source sends a payload of that size with -d, no\n"
        "  pipelining; 'sink busy' is the sink's CPU / wall clock: near 100 % means the\n"
        "  single-threaded smtp-sink is the ceiling)"
    )
    if signed_cols:
        counts = sorted({signed.count for _, _, _, signed, _ in rows if signed is not None})
        print(
            "  (signed runs send the first "
            f"{' / '.join(f'{c:,}' for c in counts)} messages of the list: --dkim-limit)"
        )
    print(f"  ({load_average()})")

    print(
        f"\ntarget: ours / smtp-source >= {TARGET_RATIO} at "
        f"{' and '.join(f'{n:,}' for n in TABLE_TARGET_SIZES)} subscribers, "
        f"{TABLE_TARGET_CONNECTIONS} connections, whole process (informational)"
    )
    if connections != TABLE_TARGET_CONNECTIONS:
        print(f"  (this run used {connections} connections: the target is for "
              f"{TABLE_TARGET_CONNECTIONS})")  # fmt: skip
    measured = {n: ratio(ours.rate(), ref.rate()) for n, ours, ref, _, _ in rows}
    for n in TABLE_TARGET_SIZES:
        if n in measured:
            verdict = "PASS" if measured[n] >= TARGET_RATIO else "MISS"
            print(f"  {n:>9,}: {measured[n]:.2f} -> {verdict}")
        else:
            print(f"  {n:>9,}: not measured (--sizes)")
    if signed_cols:
        print(f"target: DKIM-signed >= {TARGET_SIGNED_RATE:,} msg/s, whole process (informational)")
        for n, ours, _, signed, _ in rows:
            if signed is None:
                continue
            signed_rate = signed.rate()
            verdict = "PASS" if signed_rate >= TARGET_SIGNED_RATE else "MISS"
            print(
                f"  {n:>9,}: signed {signed_rate:,.0f} msg/s = "
                f"{signed_rate / TARGET_SIGNED_RATE:.2f} x target, "
                f"{ratio(signed_rate, ours.rate()):.2f} x unsigned ({ours.rate():,.0f}) "
                f"-> {verdict}"
            )


def run_independence(args: argparse.Namespace, postfix: Postfix, sink: Sink, port: int) -> int:
    count, whole = args.independence_sizes
    connections, n_runs = args.connections, args.runs
    precompile()
    print(
        f"\nlist-size independence: the first {count:,} of a {whole:,}-subscriber list "
        f"(send --limit {count}) vs all of a {count:,}-subscriber list; {connections} "
        f"connections, whole process, {n_runs} pair{'s' * (n_runs > 1)} in ABBA order, medians\n"
    )
    with (
        cli_project(f"long-{whole}", port, connections, whole) as long_list,
        cli_project(f"short-{count}", port, connections, count) as short_list,
    ):
        limited, full = Runs(count), Runs(count)

        def run_limited() -> None:
            limited.runs.append(run_cli_send(long_list, sink, count, limit=count))
            show(f"first {count:,} of {whole:,} (--limit)", limited.runs[-1], count)

        def run_full() -> None:
            full.runs.append(run_cli_send(short_list, sink, count))
            show(f"all of {count:,}", full.runs[-1], count)

        paired(n_runs, run_limited, run_full)

    value = ratio(limited.rate(), full.rate())
    print(f"\n  {'':<34}{'msg/s':>8}{'range':>16}{'CPU µs/msg':>12}{'sink busy':>11}")
    for label, r in ((f"first {count:,} of {whole:,}", limited), (f"all of {count:,}", full)):
        print(f"  {label:<34}{r.rate():>8,.0f}{r.spread():>16}{r.cpu_us():>12}{r.sink_busy():>11}")
    print(f"  ({load_average()})")
    verdict = "PASS" if value >= TARGET_INDEPENDENCE else "MISS"
    print(
        f"\ntarget: rate(first {count:,} of {whole:,}) / rate(all of {count:,}) >= "
        f"{TARGET_INDEPENDENCE} -> {verdict} ({value:.2f}; informational)"
    )
    return 0


# -- profile -----------------------------------------------------------------------------------


@dataclass
class ThreadProfile:
    """One thread's cProfile, and its CPU and wall seconds while profiled."""

    name: str
    profile: cProfile.Profile
    cpu: float = 0.0
    wall: float = 0.0


@contextlib.contextmanager
def _timed(entry: ThreadProfile) -> Iterator[None]:
    cpu, wall = time.thread_time(), time.perf_counter()
    entry.profile.enable()
    try:
        yield
    finally:
        entry.profile.disable()
        entry.cpu, entry.wall = time.thread_time() - cpu, time.perf_counter() - wall


@contextlib.contextmanager
def profile_all_threads() -> Iterator[list[ThreadProfile]]:
    """cProfile in the calling thread and in every thread started meanwhile.

    It wraps ``Thread._bootstrap_inner``, which calls ``run()`` in the new thread, rather
    than ``Thread.run``: threads that override ``run`` (the ledger writer, the status
    watch) would escape a patched ``Thread.run``. Each entry also records its thread's
    CPU time (``time.thread_time``) and wall time while profiled.
    """
    profiles: list[ThreadProfile] = []
    lock = threading.Lock()
    original: Callable[[threading.Thread], None] = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def profiled_run(thread: threading.Thread) -> None:
        entry = ThreadProfile(thread.name, cProfile.Profile())
        with lock:
            profiles.append(entry)
        with _timed(entry):
            original(thread)

    main = ThreadProfile(threading.current_thread().name, cProfile.Profile())
    profiles.append(main)
    threading.Thread._bootstrap_inner = profiled_run  # type: ignore[attr-defined]
    try:
        with _timed(main):
            yield profiles
    finally:
        threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]


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


def thread_group(name: str) -> str:
    """Threads that do the same job, under one name: ``smtp-1`` .. ``smtp-4`` -> ``smtp-*``,
    ``Thread-3 (_renew)`` -> ``_renew``."""
    name = re.sub(r"^Thread-\d+ \((.*)\)$", r"\1", name)
    return re.sub(r"-\d+$", "-*", name)


def grouped(profiles: list[ThreadProfile]) -> dict[str, list[ThreadProfile]]:
    groups: dict[str, list[ThreadProfile]] = {}
    for entry in profiles:
        groups.setdefault(thread_group(entry.name), []).append(entry)
    return groups


def print_thread_summary(profiles: list[ThreadProfile], sent: int) -> None:
    """CPU and wall seconds per thread group (CPU includes cProfile's own overhead)."""
    print(f"\n  {'thread':<22}{'threads':>8}{'CPU s':>9}{'CPU µs/msg':>12}{'alive s':>10}")
    print(f"  {'-' * 61}")
    for name, entries in grouped(profiles).items():
        cpu = sum(e.cpu for e in entries)
        wall = max(e.wall for e in entries)
        print(f"  {name:<22}{len(entries):>8}{cpu:>9.2f}{per_message(cpu, sent):>12}{wall:>10.2f}")
    total = sum(e.cpu for e in profiles)
    print(f"  {'-' * 61}")
    print(f"  {'all':<22}{len(profiles):>8}{total:>9.2f}{per_message(total, sent):>12}")


def profile_send(
    port: int, connections: int, count: int, top: int, *, per_thread: bool = False
) -> None:
    """Send under cProfile (wall clock, every thread) and print the top costs.

    Blocking calls (``recv_into``, lock ``acquire``, ``sendall``) are time spent waiting,
    summed over the threads; for everything else, own time is close to CPU time. With
    ``per_thread``, also the top costs of each thread group (main, ledger, smtp-*, ...).
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
    print_thread_summary(profiles, report.sent)
    everything = [entry.profile for entry in profiles]
    print_stats(everything, "tottime", top, f"all threads: top {top} by own time")
    print_stats(everything, "cumulative", top, f"all threads: top {top} by cumulative time")
    if per_thread:
        for name, entries in grouped(profiles).items():
            cpu = sum(e.cpu for e in entries)
            print_stats(
                [e.profile for e in entries],
                "tottime",
                top,
                f"thread {name} ({len(entries)} thread{'s' * (len(entries) > 1)}, "
                f"CPU {cpu:.2f} s): top {top} by own time",
            )


# -- main --------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def per_message(seconds: float | None, count: int) -> str:
    return "n/a" if seconds is None or not count else f"{seconds / count * 1e6:,.0f}"


def sizes_arg(text: str) -> tuple[int, ...]:
    """``1000,10k,1M`` -> (1000, 10000, 1000000)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        try:
            value = int(float(part[:-1] if scale > 1 else part) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size: {part!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"sizes must be >= 1: {part!r}")
        sizes.append(value)
    return tuple(sizes)


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
        "--profile-threads",
        action="store_true",
        help="also print each thread's top costs (main, ledger, smtp-*, ...); implies a "
        "profiled send unless --profile never",
    )
    parser.add_argument(
        "--profile-top", type=int, default=20, help="rows in each profile listing (default 20)"
    )
    modes = parser.add_argument_group(
        "whole process (the issue's targets): `newsletter send` as a child process"
    )
    modes.add_argument(
        "--table",
        action="store_true",
        help="ours vs smtp-source for each of --sizes, start-up included",
    )
    modes.add_argument(
        "--sizes",
        type=sizes_arg,
        default=TABLE_SIZES,
        help="list sizes for --table, comma-separated (default 1000,10000,100000)",
    )
    modes.add_argument(
        "--dkim",
        action="store_true",
        help="--table also sends DKIM-signed (a fresh 2048-bit RSA key) and reports that rate "
        f"against its target (>= {TARGET_SIGNED_RATE:,} msg/s)",
    )
    modes.add_argument(
        "--dkim-limit",
        type=int,
        default=5_000,
        help="messages per signed run (send --limit; default 5000, 0: the whole list): "
        "signing is slow enough that a 100k signed run would take most of an hour",
    )
    modes.add_argument(
        "--independence",
        action="store_true",
        help="rate of the first SEND of a LIST-subscriber list vs all of a SEND-subscriber list",
    )
    modes.add_argument(
        "--independence-sizes",
        type=sizes_arg,
        default=INDEPENDENCE_SIZES,
        metavar="SEND,LIST",
        help="for --independence (default 20000,200000)",
    )
    modes.add_argument(
        "--runs", type=int, default=3, help="pairs of runs per measurement (default 3)"
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
    if args.runs < 1 or args.profile_top < 1 or args.dkim_limit < 0:
        parser.error("--runs and --profile-top must be >= 1, --dkim-limit >= 0")
    if len(args.independence_sizes) != 2 or not (
        args.independence_sizes[0] <= args.independence_sizes[1]
    ):
        parser.error("--independence-sizes takes SEND,LIST with SEND <= LIST")
    if args.rss_child:
        return rss_child(args.rss_child, args.port, args.connections)

    try:
        postfix = find_postfix(args.postfix_dir)
        port = free_port()
        with smtp_sink(postfix, port) as sink:
            if not (args.table or args.independence):
                return run(args, postfix, sink, port)
            if args.table:
                run_table(args, postfix, sink, port)
            if args.independence:
                run_independence(args, postfix, sink, port)
            return 0
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

    wanted = args.profile == "always" or (args.profile == "auto" and ratio < TARGET_RATIO)
    if wanted or (args.profile_threads and args.profile != "never"):
        print(f"\nprofile: send_issue to {args.profile_subscribers:,} subscribers under cProfile")
        profile_send(
            port, connections, args.profile_subscribers, args.profile_top,
            per_thread=args.profile_threads,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
