"""Helpers for the bad-input catalogue: a throwaway project, the real CLI, and snapshots.

A template project (the shipped config.toml, the sample issue, static/, a subscriber
CSV, the copied-text example, a feed) is made once per session with the real CLI: its
store holds 20 subscribers and the sample's items, and ``out/2023-W25/`` holds a build.
Each case copies it (a few milliseconds), changes what it needs, snapshots the store's
content and every other file, runs ``python -m newsletter ...`` there, and compares.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WEEK = "2023-W25"
ISSUE = f"issues/{WEEK}.toml"
#: A secret that is not the sample value, so that relay mode gets as far as the relay.
SECRET = "bad-input-catalogue-secret-0123456789abcdef"
#: A safety net only: a case that runs this long has hung, which is itself the failure.
TIMEOUT = 30.0
STORE_FILES = ("newsletter.db", "newsletter.db-wal", "newsletter.db-shm", "newsletter.db-journal")

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One bad input: what to set up, what to run, and what the one error line must say."""

    id: str
    area: str
    argv: Sequence[str]
    #: Fragments the single stderr line must contain (all of them, case-sensitive).
    fragments: Sequence[str]
    setup: Sequence[Setup] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: The exit codes that are right; 2 (a user mistake) unless the case says otherwise.
    exit: frozenset[int] = frozenset({2})
    #: "same": store content and every file unchanged. "other-sources": the other sources
    #: were collected, the failing one added nothing. "none-sent": the ledger may have
    #: pending rows, but nobody is marked sent and every other file is unchanged.
    store: str = "same"
    #: Where the error line is expected: "stderr", or "stdout" for `check`'s report.
    stream: str = "stderr"
    #: Limit the child's address space (bytes), for inputs that would eat the machine.
    memory_limit: int | None = None


# -- setup helpers (each returns a function of the project folder) ------------------------------


def write(rel: str, data: str | bytes) -> Setup:
    def apply(project: Path) -> None:
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return apply


def mkdir(rel: str) -> Setup:
    def apply(project: Path) -> None:
        (project / rel).mkdir(parents=True, exist_ok=True)

    return apply


def remove(rel: str) -> Setup:
    def apply(project: Path) -> None:
        path = project / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return apply


def replace_in(rel: str, old: str, new: str, count: int = 1) -> Setup:
    """Replace text in a project file; fails loudly if ``old`` is not there (a test bug)."""

    def apply(project: Path) -> None:
        path = project / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    return apply


def config(old: str, new: str) -> Setup:
    return replace_in("config.toml", old, new)


def config_key(section: str, line: str) -> Setup:
    """Add ``line`` at the top of ``[section]`` in config.toml."""
    return replace_in("config.toml", f"\n[{section}]\n", f"\n[{section}]\n{line}\n")


def config_append(text: str) -> Setup:
    def apply(project: Path) -> None:
        with (project / "config.toml").open("a", encoding="utf-8") as fh:
            fh.write("\n" + text + "\n")

    return apply


def issue_copy(rel: str, *edits: tuple[str, str]) -> Setup:
    """Write ``rel`` as the sample issue with each (old, new) edit applied."""

    def apply(project: Path) -> None:
        text = (project / ISSUE).read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, f"{old!r} not in the sample issue"
            text = text.replace(old, new, 1)
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text, encoding="utf-8")

    return apply


def theme_override(rel: str, *edits: tuple[str, str]) -> Setup:
    """Copy a built-in theme file into the project's templates/ with edits applied."""

    def apply(project: Path) -> None:
        text = (ROOT / "templates" / rel).read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, f"{old!r} not in templates/{rel}"
            text = text.replace(old, new, 1)
        target = project / "templates" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    return apply


def relay(port: int, security: str = "none") -> Setup:
    """Send through a relay on 127.0.0.1:port, fast to give up."""

    def apply(project: Path) -> None:
        path = project / "config.toml"
        text = path.read_text(encoding="utf-8")
        for old, new in (
            ('mode = "capture"', 'mode = "relay"'),
            ('host = "smtp.example.org"', 'host = "127.0.0.1"'),
            ("port = 587", f"port = {port}"),
            ('security = "starttls"', f'security = "{security}"'),
            ("timeout = 30", "timeout = 5"),
            ("max_attempts = 6", "max_attempts = 1"),
            ("retry_delay = 2", "retry_delay = 0"),
            # These cases are about the relay: the unsigned-send warning would be a second
            # line on stderr (tests/test_dkim.py covers it).
            ("\n[checks.disabled]\n", '\n[checks.disabled]\ndkim = "a test relay"\n'),
        ):
            assert old in text, old
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")

    return apply


# -- the project ----------------------------------------------------------------------------------


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra or {})
    return env


def run_cli(
    project: Path,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    timeout: float = TIMEOUT,
    memory_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-m", "newsletter", *argv],
        cwd=project,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        preexec_fn=limit if memory_limit else None,
        check=False,
    )


def make_template(folder: Path) -> Path:
    """The project every case copies: built, with subscribers and items in its store."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(ROOT / "issues", folder / "issues")
    shutil.copytree(ROOT / "static", folder / "static")
    (folder / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "subscribers.csv", folder / "subscribers.csv")
    shutil.copy(
        ROOT / "examples" / "nato-newsroom-2023-06-23.txt",
        folder / "examples" / "nato-newsroom-2023-06-23.txt",
    )
    (folder / "feeds").mkdir()
    for name in ("rss2.xml", "jsonfeed.json", "garbage.bin", "not-a-feed.html"):
        shutil.copy(FIXTURES / "feeds" / name, folder / "feeds" / name)
    shutil.copy(
        FIXTURES / "pages" / "nato-newsroom-2022-12-07.html", folder / "feeds" / "page.html"
    )
    for argv in (
        ["subscribers", "import", "subscribers.csv"],
        ["collect"],
        ["build", ISSUE],
    ):
        result = run_cli(folder, argv, timeout=120)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return folder


def new_project(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, symlinks=True)
    return target


# -- snapshots ------------------------------------------------------------------------------------


def store_dump(project: Path) -> list[str]:
    """The store's content, table by table (a checkpointed WAL changes bytes, not content)."""
    path = project / "newsletter.db"
    if not path.is_file():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    except sqlite3.DatabaseError as exc:  # a case that planted a non-database there
        return [f"unreadable: {exc}", hashlib.sha256(path.read_bytes()).hexdigest()]
    finally:
        db.close()


def files_digest(project: Path) -> dict[str, str]:
    """Every file and folder of the project, except the store's own files."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(project):
        base = Path(dirpath)
        for name in dirnames:
            path = base / name
            seen[str(path.relative_to(project)) + "/"] = "link" if path.is_symlink() else "dir"
        for name in filenames:
            path = base / name
            rel = str(path.relative_to(project))
            if rel in STORE_FILES:
                continue
            if path.is_symlink() or not path.is_file():
                seen[rel] = "special"
                continue
            seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


@dataclass
class Snapshot:
    store: list[str]
    files: dict[str, str]

    @classmethod
    def take(cls, project: Path) -> Snapshot:
        return cls(store_dump(project), files_digest(project))


def sent_count(project: Path) -> int:
    db = sqlite3.connect(f"file:{project / 'newsletter.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone()
        return int(row[0])
    finally:
        db.close()


def without_ledger(dump: list[str]) -> list[str]:
    """The dump without the ledger's rows (a send may record pending deliveries)."""
    skip = ('INSERT INTO "campaigns"', 'INSERT INTO "deliveries"', 'INSERT INTO "issue_items"')
    return [line for line in dump if not line.startswith(skip)]
