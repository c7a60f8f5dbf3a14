"""Subscribers in a real SQLite file: import, add, remove, tokens, unsubscribe."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from newsletter import ledger, subscribers, tokens
from newsletter.errors import InputError, NewsletterError
from newsletter.store import SCHEMA_VERSION, Store, StoreError

SECRET = "test-secret"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store.db") as opened:
        yield opened  # type: ignore[misc]


def write_csv(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_store_is_wal_versioned_and_reopens(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as first:
        assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert first.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        subscribers.add(first, "a@example.org")
    with Store(tmp_path / "s.db") as again:
        assert [s.email for s in subscribers.iter_subscribers(again)] == ["a@example.org"]


def test_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer newsletter"):
        Store(tmp_path / "s.db")


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "s.db")


def test_import_reports_bad_and_duplicate_rows_and_imports_the_rest(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "email,name\n"
        "ada@example.org,Ada\n"
        "not-an-address,Bob\n"
        "ADA@example.org,Ada again\n"
        ",Nobody\n"
        "grace@example.org,Grace\n",
    )
    report = subscribers.import_csv(store, path)
    assert report.imported == 2 and report.invalid == 2
    assert any(p.startswith(f"{path}:3: ") and "not-an-address" in p for p in report.problems)
    assert f"{path}:4: ADA@example.org duplicates line 2; skipped" in report.problems
    assert any(p.startswith(f"{path}:5: ") and "empty" in p for p in report.problems)
    emails = [(s.email, s.name, s.status) for s in subscribers.iter_subscribers(store)]
    assert emails == [
        ("ada@example.org", "Ada", "active"),
        ("grace@example.org", "Grace", "active"),
    ]


def test_import_never_resubscribes(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "email\nada@example.org\ngrace@example.org\n")
    subscribers.import_csv(store, path)
    subscribers.unsubscribe_address(store, "ada@example.org")
    again = subscribers.import_csv(store, path)
    assert again.imported == 0 and again.already == 1
    assert f"{path}:2: ada@example.org is unsubscribed; not resubscribed" in again.problems
    assert subscribers.get(store, "ada@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_import_mailchimp_style_columns(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "\ufeffEmail Address,First Name,Last Name\nada@example.org,Ada,Lovelace\n"
    )
    assert subscribers.import_csv(store, path).imported == 1
    assert subscribers.get(store, "ada@example.org").name == "Ada Lovelace"  # type: ignore[union-attr]


def test_import_without_email_column(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "address,name\nada@example.org,Ada\n")
    with pytest.raises(
        InputError, match=r"list\.csv:1: no 'email' column \(found: address, name\)"
    ):
        subscribers.import_csv(store, path)


def test_email_is_unique_case_insensitively(store: Store) -> None:
    subscribers.add(store, "Ada@Example.org")
    with pytest.raises(NewsletterError, match="already a subscriber"):
        subscribers.add(store, "ada@example.org")


def test_name_line_breaks_are_flattened(store: Store) -> None:
    added = subscribers.add(store, "eve@example.org", "Eve\r\nBcc: victim@example.org")
    assert added.name == "Eve Bcc: victim@example.org"


def test_tokens_cannot_be_forged_or_moved(store: Store) -> None:
    ada = subscribers.add(store, "ada@example.org")
    grace = subscribers.add(store, "grace@example.org")
    token = tokens.sign_token(SECRET, ada.token)
    assert tokens.verify_token(SECRET, token) == ada.token
    assert tokens.verify_token("other-secret", token) is None
    # Grace's id with Ada's signature: refused.
    moved = grace.token + "." + token.split(".", 1)[1]
    assert tokens.verify_token(SECRET, moved) is None
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (moved, altered, "", "garbage", ada.token):
        with pytest.raises(NewsletterError, match="invalid unsubscribe token"):
            subscribers.unsubscribe_by_token(store, SECRET, bad)
    assert subscribers.get(store, "grace@example.org").status == "active"  # type: ignore[union-attr]
    assert subscribers.unsubscribe_by_token(store, SECRET, token).status == "unsubscribed"
    # Idempotent.
    assert subscribers.unsubscribe_by_token(store, SECRET, token).status == "unsubscribed"


def test_forget_deletes_the_row(store: Store) -> None:
    subscribers.add(store, "ada@example.org")
    assert ledger.forget(store, "ada@example.org")
    assert subscribers.get(store, "ada@example.org") is None
    assert not ledger.forget(store, "ada@example.org")


def test_non_ascii_token_is_refused_cleanly(store: Store) -> None:
    with pytest.raises(NewsletterError, match="invalid unsubscribe token"):
        subscribers.unsubscribe_by_token(store, SECRET, "é.x")


def test_binary_csv_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xff\xfe\x00e\x00m\x00a\x00i\x00l")
    with pytest.raises(InputError, match=r"list\.csv:\d+: not a readable CSV file"):
        subscribers.import_csv(store, path)


def test_unusable_store_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "file" / "store.db")


def test_only_the_subscribers_module_writes_its_table() -> None:
    from tests.table_owners import SRC, modules_with

    writers = r"\b(?:INTO|UPDATE|DELETE FROM|TABLE)\s+subscribers\b|FROM subscribers WHERE"
    # store.py creates it; the ledger only joins it (who is pending) and inserts rows
    # for active subscribers into its own table.
    assert modules_with(writers) <= {"subscribers.py", "store.py", "ledger.py"}
    ledger = (SRC / "ledger.py").read_text(encoding="utf-8")
    assert not re.search(r"\b(?:UPDATE|DELETE FROM|INSERT INTO)\s+subscribers\b", ledger)


def test_unbalanced_quote_imports_nothing_and_names_the_line(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"user{i}@example.net,User {i}\n" for i in range(300))
    path = write_csv(tmp_path, f'email,name\nbad@example.net,"Broken quote\n{rows}')
    with pytest.raises(InputError, match=r"list\.csv:2: .*quoted field runs over 301 lines"):
        subscribers.import_csv(store, path)
    assert list(subscribers.iter_subscribers(store)) == []


def test_quote_closed_lines_later_is_refused_too(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, 'email,name\nada@example.org,Ada\nbad@example.net,"Broken\nc@x.org,C\n"\n'
    )
    with pytest.raises(InputError, match=r"list\.csv:3: .*runs over 3 lines"):
        subscribers.import_csv(store, path)
    assert list(subscribers.iter_subscribers(store)) == []


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            "email,name\nzoe@example.org,Jos\u00e9\n".encode("latin-1"),
            r":2: .*byte 0xe9 at column 20",
        ),
        ("email,name\nzoe@example.org,Zoe\n".encode("utf-16"), r":1: .*byte 0xff, a UTF-16"),
        ("email,name\nzoe@example.org,Zoe\n".encode("utf-16-le"), r":1: .*byte 0x00"),
        (b"", r":1: the file is empty"),
        (b"\n\n", r":1: the file is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", r":1: .*byte 0x00 \(a binary file"),
    ],
    ids=["latin-1", "utf-16", "utf-16-no-bom", "empty", "blank", "binary"],
)
def test_unreadable_csv_is_one_clear_error(
    store: Store, tmp_path: Path, data: bytes, says: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"list\.csv" + says) as caught:
        subscribers.import_csv(store, path)
    assert "\n" not in str(caught.value)
    assert list(subscribers.iter_subscribers(store)) == []


def test_utf8_bom_and_blank_lines_are_fine(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("\ufeffemail,name\nzoe@example.org,Zo\u00eb\n\n".encode())
    assert subscribers.import_csv(store, path).imported == 1
    assert subscribers.get(store, "zoe@example.org").name == "Zo\u00eb"  # type: ignore[union-attr]


def test_overlong_name_is_an_invalid_row(store: Store, tmp_path: Path) -> None:
    long_name = "a" * (subscribers.NAME_MAX + 1)
    path = write_csv(tmp_path, f"email,name\nlong@example.org,{long_name}\nok@example.org,Ok\n")
    report = subscribers.import_csv(store, path)
    assert report.imported == 1 and report.invalid == 1
    assert report.problems == [
        f"{path}:2: long@example.org: the name is 201 characters; at most 200"
    ]
