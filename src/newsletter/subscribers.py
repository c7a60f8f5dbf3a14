"""Subscribers: adding, importing, listing, unsubscribing, and their signed tokens.

Someone who unsubscribed, bounced or complained is never resubscribed by an import:
their row stays as a suppression record. ``forget`` is the only real deletion.
"""

from __future__ import annotations

import csv
import io
import secrets
import sqlite3
import unicodedata
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from .errors import InputError, NewsletterError
from .pause import checkpoint
from .store import Store, utcnow
from .tokens import verify_token

__all__ = [
    "STATUSES",
    "ImportReport",
    "Subscriber",
    "add",
    "by_token",
    "confirm",
    "delete",
    "get",
    "import_csv",
    "iter_subscribers",
    "normalise_email",
    "unsubscribe_address",
    "unsubscribe_by_token",
]

STATUSES = ("active", "unsubscribed", "bounced", "complained")
#: The longest display name accepted (it goes into the To header of every message).
NAME_MAX = 200
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Column names other tools export (Mailchimp, listmonk, Buttondown, spreadsheets).
_EMAIL_COLUMNS = ("email", "email address", "e-mail", "e-mail address", "mail")
_NAME_COLUMNS = ("name", "full name", "fullname", "display name")
_FIRST_COLUMNS = ("first name", "firstname", "given name")
_LAST_COLUMNS = ("last name", "lastname", "surname", "family name")


class SubscriberError(NewsletterError):
    exit_code = 2


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    created: str
    source: str
    token: str
    #: When and from which client address they confirmed (double opt-in): the consent record.
    consent_at: str = ""
    consent_ip: str = ""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscriber:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def public(self) -> dict[str, Any]:
        """What ``list --json`` and ``export`` show: everything but the token."""
        data = asdict(self)
        del data["token"], data["id"]
        return data


def normalise_email(raw: str) -> str:
    """Check syntax only (no DNS) and return the normalised ASCII address, or raise ValueError."""
    raw = raw.strip()
    if not raw:
        raise ValueError("the email address is empty")
    if any(c in raw for c in "\r\n"):
        raise ValueError("the email address contains a line break")
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{raw!r} is not a valid email address: {exc}") from None
    return str(result.ascii_email or result.normalized)


def _clean_name(name: str) -> str:
    # A name goes into the To header: a line break there would inject headers.
    return " ".join(name.split())


def _name_problem(name: str) -> str:
    """Why a (cleaned) name cannot be stored, or ""."""
    if len(name) > NAME_MAX:
        # It goes into the To header of every message: a relay refuses overlong lines.
        return f"the name is {len(name)} characters; at most {NAME_MAX}"
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        # Escape sequences would reach terminals (`subscribers list`) and mail headers;
        # bidi overrides would make a name read as something else.
        return "the name contains control characters"
    return ""


def _new_token_id() -> str:
    return secrets.token_urlsafe(12)


def _insert(db: sqlite3.Connection, address: str, name: str, source: str, now: str) -> None:
    db.execute(
        "INSERT INTO subscribers (email, name, status, created, updated, source, token) "
        "VALUES (?, ?, 'active', ?, ?, ?, ?)",
        (address, _clean_name(name), now, now, source, _new_token_id()),
    )


def get(store: Store, email: str) -> Subscriber | None:
    row = store.db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return Subscriber.from_row(row) if row else None


def add(store: Store, email: str, name: str = "", source: str = "cli") -> Subscriber:
    """Add one subscriber; refuse an address that is already known, whatever its status."""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    problem = _name_problem(_clean_name(name))
    if problem:
        raise SubscriberError(f"{address}: {problem}")
    existing = get(store, address)
    if existing:
        raise SubscriberError(f"{existing.email} is already a subscriber ({existing.status})")
    with store.transaction() as db:
        _insert(db, address, name, source, utcnow())
    found = get(store, address)
    assert found is not None
    return found


def iter_subscribers(store: Store, status: str | None = None) -> Iterator[Subscriber]:
    query, args = "SELECT * FROM subscribers", []
    if status:
        query, args = query + " WHERE status = ?", [status]
    for row in store.db.execute(query + " ORDER BY id", args):
        yield Subscriber.from_row(row)


def set_status(store: Store, subscriber_id: int, status: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE subscribers SET status = ?, updated = ? WHERE id = ?",
            (status, utcnow(), subscriber_id),
        )


def changed_since(store: Store, since: str) -> list[tuple[int, bool, str]]:
    """(id, still active, updated) of every subscriber changed at or after ``since`` (ISO
    time), oldest change first. One range of the ``subscribers_updated`` index: the cost
    is the number of changes, not the size of the list."""
    rows = store.db.execute(
        "SELECT id, status = 'active', updated FROM subscribers INDEXED BY subscribers_updated "
        "WHERE updated >= ? ORDER BY updated",
        (since,),
    )
    return [(int(row[0]), bool(row[1]), str(row[2])) for row in rows]


def count_bounces(
    db: sqlite3.Connection, subscriber_ids: list[int], bounce_after: int, now: str
) -> None:
    """Count a hard bounce for each id; at ``bounce_after`` an active subscriber is bounced.

    Runs in the caller's transaction, so the count moves with the ledger row it explains.
    """
    db.executemany(
        "UPDATE subscribers SET bounces = bounces + 1, updated = ?, status = CASE "
        "WHEN bounces + 1 >= ? AND status = 'active' THEN 'bounced' ELSE status END "
        "WHERE id = ?",
        [(now, bounce_after, subscriber_id) for subscriber_id in subscriber_ids],
    )


def refuse_header_injection(store: Store) -> None:
    """A line break in a name or address would inject headers: refuse before sending any."""
    row = store.db.execute(
        "SELECT email FROM subscribers WHERE status = 'active' AND "
        "(instr(name, char(10)) OR instr(name, char(13)) OR instr(email, char(10)) "
        "OR instr(email, char(13))) LIMIT 1"
    ).fetchone()
    if row:
        raise InputError(
            f"subscriber {row['email']!r} has a line break in their name or address; "
            "fix it in the store, or `newsletter subscribers remove --forget` and add "
            "them again, before sending"
        )


def _unsubscribe(store: Store, found: Subscriber) -> Subscriber:
    # Idempotent: unsubscribing twice is not an error, and bounced stays bounced.
    if found.status == "active":
        set_status(store, found.id, "unsubscribed")
    return get(store, found.email) or found


def by_token(store: Store, token_id: str) -> Subscriber | None:
    """The subscriber a (verified) token id names."""
    row = store.db.execute("SELECT * FROM subscribers WHERE token = ?", (token_id,)).fetchone()
    return Subscriber.from_row(row) if row else None


def unsubscribe_by_token(store: Store, secrets: str | Sequence[str], token: str) -> Subscriber:
    """Unsubscribe the subscriber a signed token names: the only way the web unsubscribes.

    ``secrets`` are the current secret and any previous ones (links signed before a
    rotation). Raises :class:`SubscriberError` for a forged or unknown token.
    """
    token_id = verify_token(secrets, token)
    if token_id is None:
        raise SubscriberError("invalid unsubscribe token (altered, or signed with another secret)")
    found = by_token(store, token_id)
    if found is None:
        raise SubscriberError("unsubscribe token names no subscriber (forgotten?)")
    return _unsubscribe(store, found)


def unsubscribe_address(store: Store, email: str) -> Subscriber:
    """Unsubscribe by address: staff only (`newsletter subscribers remove`), never the web."""
    try:
        found = get(store, normalise_email(email))
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    if found is None:
        raise SubscriberError(f"{email.strip()}: no such subscriber")
    return _unsubscribe(store, found)


def confirm(store: Store, email: str, name: str, ip: str, source: str) -> Subscriber:
    """Make ``email`` an active subscriber after they proved they own the mailbox.

    The double opt-in's last step (or the resubscribe button): a new address is added, a
    known one (unsubscribed, bounced, complained) is made active again with its bounce
    count reset. Either way the time and client address are recorded as the consent.
    """
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    name = _clean_name(name)
    if _name_problem(name):
        name = ""
    now = utcnow()
    with store.transaction() as db:
        if get(store, address) is None:
            _insert(db, address, name, source, now)
        db.execute(
            "UPDATE subscribers SET status = 'active', bounces = 0, updated = ?, "
            "consent_at = ?, consent_ip = ?, name = CASE WHEN name = '' THEN ? ELSE name END "
            "WHERE email = ?",
            (now, now, ip, name, address),
        )
    found = get(store, address)
    assert found is not None
    return found


def delete(db: sqlite3.Connection, subscriber_id: int) -> None:
    """Delete the subscriber's row, in the caller's transaction.

    An erasure request also deletes their send history: see :func:`newsletter.ledger.forget`.
    """
    db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,))


@dataclass
class ImportReport:
    imported: int = 0
    already: int = 0
    #: One line per skipped row: ``file:line: reason``.
    problems: list[str] = field(default_factory=list)
    #: How many of ``problems`` are invalid rows (not duplicates or suppressed addresses).
    invalid: int = 0


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    for column in header:
        if column.strip().lower() in names:
            return column
    return None


def _not_utf8(path: Path) -> InputError:
    """Where the first byte that is not UTF-8 is: line, column and the byte itself."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InputError(
                    f"not a readable CSV file: byte 0x{line[exc.start]:02x} at column "
                    f"{exc.start + 1} is not UTF-8 (Latin-1 or Windows-1252?); "
                    "save it as CSV UTF-8 and import again",
                    f"{path}:{number}",
                )
    return InputError("not a readable CSV file: not UTF-8", f"{path}:1")  # pragma: no cover


def _check_encoding(path: Path, head: bytes) -> None:
    """Refuse what is not UTF-8 text before reading a row: nothing is half imported."""
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise InputError(
            "the file is empty: expected a header line such as 'email,name'", f"{path}:1"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"not a readable CSV file: it starts with byte 0x{head[0]:02x}, a UTF-16 "
            "byte-order mark; save it as CSV UTF-8 and import again",
            f"{path}:1",
        )
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            "not a readable CSV file: byte 0x00 (a binary file, or UTF-16 without a "
            "byte-order mark); save it as CSV UTF-8 and import again",
            f"{path}:{line}",
        )


def _spans_lines(path: Path, start: int, end: int) -> InputError:
    return InputError(
        f"not a readable CSV file: a quoted field runs over {end - start + 1} lines "
        "(a quote that is never closed?); fix the quote and import again",
        f"{path}:{start}",
    )


def _csv_lines(path: Path) -> Generator[tuple[int, list[str]], None, None]:
    """(first line, fields) of each record; one that cannot be parsed stops the import.

    A quote opened and never closed makes the csv module swallow every following line
    into one field, so a record over several lines is refused with the line where it
    starts (so is a field over the csv module's limit).
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        _check_encoding(path, handle.read(64 * 1024))
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        start = 1
        try:
            for fields in reader:
                if reader.line_num > start:
                    raise _spans_lines(path, start, reader.line_num)
                yield start, fields
                start = reader.line_num + 1
        except csv.Error as exc:
            if reader.line_num > start:
                raise _spans_lines(path, start, reader.line_num) from None
            raise InputError(f"not a readable CSV file: {exc}", f"{path}:{start}") from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _read_rows(path: Path, report: ImportReport) -> list[tuple[int, str, str]]:
    """Valid (line, address, name) rows of a CSV; problems go to ``report``.

    The whole file is read before anything is imported: a file that is not UTF-8 CSV
    (UTF-16, Latin-1, binary, empty, a quote never closed) raises :class:`InputError`.
    """
    records = _csv_lines(path)
    try:
        return _valid_rows(path, records, report)
    finally:
        records.close()


def _valid_rows(
    path: Path, records: Iterator[tuple[int, list[str]]], report: ImportReport
) -> list[tuple[int, str, str]]:
    header: list[str] = []
    for _, header in records:
        if any(cell.strip() for cell in header):
            break
    email_col = _column(header, _EMAIL_COLUMNS)
    if email_col is None:
        found = ", ".join(header) or "nothing"
        raise InputError(f"no 'email' column (found: {found})", f"{path}:1")
    index = {column: number for number, column in reversed(list(enumerate(header)))}
    name_col = _column(header, _NAME_COLUMNS)
    first_col, last_col = _column(header, _FIRST_COLUMNS), _column(header, _LAST_COLUMNS)

    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for line, fields in records:
        if not any(cell.strip() for cell in fields):
            continue  # a blank line

        def cell(column: str | None, fields: list[str] = fields) -> str:
            at = index.get(column) if column is not None else None
            return fields[at] if at is not None and at < len(fields) else ""

        name = cell(name_col) if name_col else f"{cell(first_col)} {cell(last_col)}"
        try:
            address = normalise_email(cell(email_col))
        except ValueError as exc:
            report.problems.append(f"{path}:{line}: {exc}")
            report.invalid += 1
            continue
        problem = _name_problem(_clean_name(name))
        if problem:
            report.problems.append(f"{path}:{line}: {address}: {problem}")
            report.invalid += 1
            continue
        key = address.lower()
        if key in seen:
            report.problems.append(f"{path}:{line}: {address} duplicates line {seen[key]}; skipped")
            continue
        seen[key] = line
        rows.append((line, address, name))
    return rows


def import_csv(store: Store, path: Path, source: str | None = None) -> ImportReport:
    """Import ``email`` (and ``name``) columns; one transaction for the whole file.

    Rows are read and validated first, so the write lock is held only for the inserts.
    """
    report = ImportReport()
    rows = _read_rows(path, report)
    now, source = utcnow(), source or f"import:{path.name}"
    checkpoint("import")
    with store.transaction() as db:
        for line, address, name in rows:
            existing = db.execute(
                "SELECT status FROM subscribers WHERE email = ?", (address,)
            ).fetchone()
            if existing is None:
                _insert(db, address, name, source, now)
                report.imported += 1
            elif existing["status"] == "active":
                report.already += 1
            else:
                report.problems.append(
                    f"{path}:{line}: {address} is {existing['status']}; not resubscribed"
                )
    return report
