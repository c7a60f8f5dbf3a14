"""The audit log: who did what to which issue, subscriber or account, and when.

It owns the ``audit`` table. The studio records its staff's actions under their account
names; the command line records its own under ``cli:<OS user>`` (:func:`cli_actor`), so
`newsletter studio audit` and the studio's page show both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .store import Store, utcnow

__all__ = ["FIELD_MAX", "AuditEntry", "cli_actor", "entries", "record", "record_cli"]

#: Each field (who, action, what) is cut to this many characters.
FIELD_MAX = 1000


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    who: str
    action: str
    what: str


def _one_line(text: str) -> str:
    # str.split() also splits on \r, \v, \f, \x1c-\x1f, \x85, U+2028 and U+2029.
    line = " ".join(text.split())
    line = "".join(c if c.isprintable() else "\ufffd" for c in line)
    return line if len(line) <= FIELD_MAX else line[: FIELD_MAX - 3] + "..."


def record(store: Store, who: str, action: str, what: str = "") -> None:
    """Record that ``who`` did ``action`` to ``what`` now (UTC). Each field is kept to
    one line, so the log reads and greps one entry per line."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO audit (at, who, action, what) VALUES (?, ?, ?, ?)",
            (utcnow(), _one_line(who), _one_line(action), _one_line(what)),
        )


def entries(store: Store, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries, newest first; for the next page pass the last
    entry's id as ``before_id`` (keyset pagination: as fast on the last page as the first)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if before_id is None:
        rows = store.db.execute(
            "SELECT id, at, who, action, what FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
    else:
        rows = store.db.execute(
            "SELECT id, at, who, action, what FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id, limit),
        )
    return [AuditEntry(r["id"], r["at"], r["who"], r["action"], r["what"]) for r in rows]


def cli_actor() -> str:
    """Who the log names for a command: ``cli:`` and the OS user."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (OSError, KeyError)
        user = ""
    return f"cli:{user or 'unknown'}"


def record_cli(store_path: Path, action: str, what: str = "") -> None:
    """:func:`record` for a command, in its own connection to the store at ``store_path``."""
    with Store(store_path) as store:
        record(store, cli_actor(), action, what)
