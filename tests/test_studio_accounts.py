"""Staff accounts, sessions, login throttling and the audit log (issue 9, section 6), in a
real SQLite file; and their commands, `newsletter studio user ...` and `newsletter studio audit`."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter import audit
from newsletter.cli import cli, main
from newsletter.store import Store
from newsletter.studio import accounts
from newsletter.studio.accounts import AccountError, LoginRefused, Staff

PASSWORD = "correct horse battery"
OTHER = "another long passphrase"

#: ``newsletter ARGS`` run in a project: (exit code, stdout, stderr).
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# -- passwords ------------------------------------------------------------------------------


def test_hash_round_trip_and_a_wrong_password() -> None:
    stored = accounts.hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$")
    assert len(stored.split("$")) == 6
    assert PASSWORD not in stored
    assert accounts.verify_password(stored, PASSWORD)
    assert not accounts.verify_password(stored, PASSWORD + " ")
    assert not accounts.verify_password(stored, "")


def test_two_hashes_of_one_password_differ_by_their_salt() -> None:
    first, second = accounts.hash_password(PASSWORD), accounts.hash_password(PASSWORD)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert accounts.verify_password(first, PASSWORD) and accounts.verify_password(second, PASSWORD)


def test_a_password_typed_composed_or_decomposed_is_the_same_password() -> None:
    composed = unicodedata.normalize("NFC", "café au lait noir")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert accounts.verify_password(accounts.hash_password(composed), decomposed)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "md5$x$y",
        "scrypt$16384$8$1$!!$!!",
        "scrypt$3$8$1$AAAA$AAAA",
        "scrypt$a$b$c$d$e",
    ],
)
def test_a_malformed_hash_matches_nothing_and_raises_nothing(stored: str) -> None:
    assert not accounts.verify_password(stored, PASSWORD)


# -- roles ----------------------------------------------------------------------------------


def test_what_each_role_may_do() -> None:
    expected = {
        "editor": {"compose", "approve"},
        "sender": {"compose", "approve", "send", "subscribers"},
        "admin": {"compose", "approve", "send", "subscribers", "accounts"},
    }
    assert accounts.ROLES == ("editor", "sender", "admin")
    assert set(accounts.ACTIONS) == {"compose", "approve", "send", "subscribers", "accounts"}
    for role in accounts.ROLES:
        assert {a for a in accounts.ACTIONS if accounts.allowed(role, a)} == expected[role]
    assert not any(accounts.allowed("root", action) for action in accounts.ACTIONS)
    assert not accounts.allowed("", "compose")
    with pytest.raises(ValueError, match="unknown action 'sned'"):
        accounts.allowed("admin", "sned")
    assert Staff(id=0, name="local", role="admin") == accounts.NO_AUTH


def test_cli_role_choices_match_the_library() -> None:
    from newsletter.cli.studio_admin import ROLES

    assert ROLES == accounts.ROLES


# -- accounts -------------------------------------------------------------------------------


def test_add_list_get_and_find(store: Store) -> None:
    ada = accounts.add_user(store, "  ada  ", PASSWORD, "admin")
    bob = accounts.add_user(store, "Bob.Smith@ex-ample_1", PASSWORD, "editor")
    assert ada == Staff(ada.id, "ada", "admin")
    assert accounts.list_users(store) == [ada, bob]
    assert accounts.get_user(store, bob.id) == bob
    assert accounts.get_user(store, 999) is None
    assert accounts.find_user(store, "bob.smith@EX-AMPLE_1") == bob
    assert accounts.find_user(store, "nobody") is None
    row = store.db.execute("SELECT password_hash FROM staff WHERE id = ?", (ada.id,)).fetchone()
    assert row[0].startswith("scrypt$") and PASSWORD not in row[0]


def test_duplicate_names_whatever_their_case(store: Store) -> None:
    accounts.add_user(store, "Ada", PASSWORD, "editor")
    with pytest.raises(AccountError) as exc:
        accounts.add_user(store, "ADA", PASSWORD, "admin")
    assert one_line(exc) == "account 'Ada' already exists"
    assert len(accounts.list_users(store)) == 1


@pytest.mark.parametrize(
    "name", ["", "   ", "ada lovelace", "a" * 65, "a/b", "élise", "ada\nadmin", "<script>"]
)
def test_bad_names_are_refused_in_one_line(store: Store, name: str) -> None:
    with pytest.raises(AccountError) as exc:
        accounts.add_user(store, name, PASSWORD, "editor")
    assert "account name" in one_line(exc)
    assert "letters, digits and . - _ @" in str(exc.value)
    assert accounts.list_users(store) == []


def test_a_64_character_name_is_fine(store: Store) -> None:
    assert accounts.add_user(store, "a" * 64, PASSWORD, "editor").name == "a" * 64


def test_short_password_and_unknown_role(store: Store) -> None:
    with pytest.raises(AccountError) as exc:
        accounts.add_user(store, "ada", "x" * 11, "editor")
    assert one_line(exc) == "account 'ada': the password must be at least 12 characters (it has 11)"
    with pytest.raises(AccountError) as exc:
        accounts.add_user(store, "ada", PASSWORD, "root")
    assert one_line(exc) == "account 'ada': unknown role 'root'; use editor, sender, admin"
    with pytest.raises(AccountError, match="at most 1024"):
        accounts.add_user(store, "ada", "x" * 1025, "editor")
    assert accounts.list_users(store) == []
    assert accounts.add_user(store, "ada", "x" * 12, "editor").name == "ada"


def test_set_password_role_and_unknown_accounts(store: Store) -> None:
    accounts.add_user(store, "ada", PASSWORD, "editor")
    accounts.set_password(store, "ADA", OTHER)
    assert accounts.login(store, "ada", PASSWORD, "192.0.2.1", 10) is None
    assert accounts.login(store, "ada", OTHER, "192.0.2.1", 10) is not None
    accounts.set_role(store, "ada", "sender")
    assert accounts.list_users(store)[0].role == "sender"
    changes: list[Callable[[], None]] = [
        lambda: accounts.set_password(store, "nobody", OTHER),
        lambda: accounts.set_role(store, "nobody", "admin"),
        lambda: accounts.remove_user(store, "nobody"),
    ]
    for change in changes:
        with pytest.raises(AccountError) as exc:
            change()
        assert one_line(exc) == "no staff account named 'nobody'"
    with pytest.raises(AccountError, match="unknown role 'boss'"):
        accounts.set_role(store, "ada", "boss")
    with pytest.raises(AccountError, match="at least 12"):
        accounts.set_password(store, "ada", "short")


def test_the_last_admin_can_be_neither_removed_nor_demoted(store: Store) -> None:
    accounts.add_user(store, "ada", PASSWORD, "admin")
    accounts.add_user(store, "bob", PASSWORD, "editor")
    with pytest.raises(AccountError) as exc:
        accounts.remove_user(store, "ada")
    assert one_line(exc) == "account 'ada' is the last admin; make another admin first"
    with pytest.raises(AccountError, match="last admin"):
        accounts.set_role(store, "ada", "sender")
    accounts.remove_user(store, "bob")  # not an admin: fine
    accounts.add_user(store, "cy", PASSWORD, "admin")
    accounts.set_role(store, "ada", "editor")
    with pytest.raises(AccountError, match="'cy' is the last admin"):
        accounts.remove_user(store, "cy")
    accounts.remove_user(store, "ada")
    assert [s.name for s in accounts.list_users(store)] == ["cy"]


# -- logging in -----------------------------------------------------------------------------


def test_login_success_and_failure(store: Store) -> None:
    ada = accounts.add_user(store, "Ada", PASSWORD, "sender")
    assert accounts.login(store, "ada", PASSWORD, "192.0.2.1", 10) == ada
    assert accounts.login(store, " ADA ", PASSWORD, "192.0.2.1", 10) == ada
    assert accounts.login(store, "ada", OTHER, "192.0.2.1", 10) is None
    assert accounts.login(store, "nobody", PASSWORD, "192.0.2.1", 10) is None
    assert accounts.login(store, "bad name!", PASSWORD, "192.0.2.1", 10) is None
    assert accounts.login(store, "", "", "192.0.2.1", 10) is None


def test_an_unknown_name_costs_the_same_hashing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts.add_user(store, "ada", PASSWORD, "editor")
    checked: list[str] = []
    real = accounts.verify_password

    def counting(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    accounts.login(store, "nobody", PASSWORD, "192.0.2.1", 10)
    accounts.login(store, "bad name!", PASSWORD, "192.0.2.1", 10)
    accounts.login(store, "ada", OTHER, "192.0.2.1", 10)
    assert len(checked) == 3
    assert all(s.startswith("scrypt$16384$8$1$") for s in checked)


def test_failures_from_one_address_lock_it_out_even_with_the_right_password(
    store: Store,
) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    now = time.time()
    for i in range(3):  # different names: only the address is over its limit
        assert accounts.login(store, f"guess{i}", OTHER, "198.51.100.7", 3, now=now) is None
    with pytest.raises(LoginRefused) as exc:
        accounts.login(store, "ada", PASSWORD, "198.51.100.7", 3, now=now + 1)
    assert "too many failed logins" in one_line(exc)
    assert accounts.login(store, "ada", PASSWORD, "198.51.100.8", 3, now=now + 1) == ada
    # An hour later the address may try again.
    assert accounts.login(store, "ada", PASSWORD, "198.51.100.7", 3, now=now + 3601) == ada


def test_failures_for_one_name_lock_it_out_from_every_address(store: Store) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    bob = accounts.add_user(store, "bob", PASSWORD, "editor")
    now = time.time()
    limit = 3 * accounts.NAME_LIMIT_FACTOR  # per name: a multiple of the per-address limit
    for i in range(limit):  # a different address each time: only the name is over its limit
        assert accounts.login(store, "ADA", OTHER, f"203.0.113.{i}", 3, now=now) is None
    with pytest.raises(LoginRefused):
        accounts.login(store, "ada", PASSWORD, "203.0.113.99", 3, now=now + 1)
    assert accounts.login(store, "bob", PASSWORD, "203.0.113.0", 3, now=now + 1) == bob
    assert accounts.login(store, "ada", PASSWORD, "203.0.113.99", 3, now=now + 3601) == ada


def test_a_new_password_lifts_a_lock_out_by_someone_elses_guesses(store: Store) -> None:
    accounts.add_user(store, "ada", PASSWORD, "admin")
    now = time.time()
    for i in range(3 * accounts.NAME_LIMIT_FACTOR):
        accounts.login(store, "ada", OTHER, f"203.0.113.{i}", 3, now=now)
    with pytest.raises(LoginRefused):
        accounts.login(store, "ada", PASSWORD, "192.0.2.50", 3, now=now + 1)
    accounts.set_password(store, "ada", "a brand new password")
    found = accounts.login(store, "ada", "a brand new password", "192.0.2.50", 3, now=now + 2)
    assert found is not None and found.name == "ada"


def test_unknown_names_are_throttled_like_known_ones(store: Store) -> None:
    now = time.time()
    for i in range(2 * accounts.NAME_LIMIT_FACTOR):
        assert accounts.login(store, "ghost", OTHER, f"192.0.2.{i}", 2, now=now) is None
    with pytest.raises(LoginRefused):
        accounts.login(store, "ghost", OTHER, "192.0.2.200", 2, now=now)


def test_successful_logins_do_not_count(store: Store) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    for _ in range(5):  # a whole office behind one address, each morning
        assert accounts.login(store, "ada", PASSWORD, "192.0.2.1", 2) == ada
    assert accounts.login(store, "ada", OTHER, "192.0.2.1", 2) is None
    assert accounts.login(store, "ada", PASSWORD, "192.0.2.1", 2) == ada


# -- sessions -------------------------------------------------------------------------------


def sessions(store: Store) -> int:
    return int(store.db.execute("SELECT count(*) FROM staff_sessions").fetchone()[0])


def test_a_session_until_it_expires_or_ends(store: Store) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    token = accounts.new_session(store, ada, 2.0)
    assert len(token) >= 43
    assert accounts.session_user(store, token) == ada
    assert accounts.session_user(store, token, now=time.time() + 2 * 3600 + 1) is None
    assert accounts.session_user(store, token + "x") is None
    assert accounts.session_user(store, "") is None
    assert accounts.session_user(store, "x" * 10_000) is None
    other = accounts.new_session(store, ada, 2.0)
    assert other != token
    accounts.end_session(store, token)
    assert accounts.session_user(store, token) is None
    assert accounts.session_user(store, other) == ada
    accounts.end_session(store, "not a token")
    accounts.end_session(store, "")


def test_a_role_change_applies_to_open_sessions_at_once(store: Store) -> None:
    accounts.add_user(store, "ada", PASSWORD, "admin")
    bob = accounts.add_user(store, "bob", PASSWORD, "editor")
    token = accounts.new_session(store, bob, 1.0)
    accounts.set_role(store, "bob", "sender")
    assert accounts.session_user(store, token) == Staff(bob.id, "bob", "sender")


def test_expired_sessions_are_pruned(store: Store) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    accounts.new_session(store, ada, 1.0, now=time.time() - 7200)
    assert sessions(store) == 1
    accounts.new_session(store, ada, 1.0)
    assert sessions(store) == 1


def test_removing_an_account_or_setting_its_password_ends_its_sessions(store: Store) -> None:
    accounts.add_user(store, "ada", PASSWORD, "admin")
    bob = accounts.add_user(store, "bob", PASSWORD, "editor")
    cy = accounts.add_user(store, "cy", PASSWORD, "editor")
    bobs = [accounts.new_session(store, bob, 1.0) for _ in range(2)]
    cys = accounts.new_session(store, cy, 1.0)
    accounts.remove_user(store, "bob")
    assert all(accounts.session_user(store, t) is None for t in bobs)
    assert sessions(store) == 1
    accounts.set_password(store, "cy", OTHER)
    assert accounts.session_user(store, cys) is None
    assert sessions(store) == 0


def test_a_session_for_a_removed_account_is_refused(store: Store) -> None:
    with pytest.raises(AccountError, match="no staff account 'ghost'"):
        accounts.new_session(store, Staff(42, "ghost", "admin"), 1.0)


def test_only_a_hash_of_the_token_is_stored(store: Store, tmp_path: Path) -> None:
    ada = accounts.add_user(store, "ada", PASSWORD, "editor")
    token = accounts.new_session(store, ada, 1.0)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("store.db")]
    stored = b"".join(p.read_bytes() for p in files)
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored  # the search works
    assert token.encode() not in stored
    assert PASSWORD.encode() not in stored


# -- the audit log --------------------------------------------------------------------------


def test_audit_newest_first_and_paginated(store: Store) -> None:
    for i in range(25):
        audit.record(store, "ada", "edit", f"2023-W25 change {i}")
    first = audit.entries(store, limit=10)
    assert [e.what for e in first] == [f"2023-W25 change {i}" for i in range(24, 14, -1)]
    assert first[0].who == "ada" and first[0].action == "edit"
    assert first[0].at.endswith("+00:00")
    seen = list(first)
    while page := audit.entries(store, limit=10, before_id=seen[-1].id):
        seen += page
    assert [e.what for e in seen] == [f"2023-W25 change {i}" for i in range(24, -1, -1)]
    assert len(audit.entries(store)) == 25
    with pytest.raises(ValueError):
        audit.entries(store, limit=0)


def test_audit_fields_stay_one_line(store: Store) -> None:
    audit.record(store, "ada\nroot", "send", "Subject\r\nBcc: x\u2028y\x00" + "z" * 2000)
    (entry,) = audit.entries(store)
    assert entry.who == "ada root"
    assert entry.what.startswith("Subject Bcc: x y\ufffd")
    assert len(entry.what) == audit.FIELD_MAX and entry.what.endswith("...")


def test_only_the_accounts_and_audit_modules_touch_their_tables() -> None:
    from tests.table_owners import modules_with

    # store.py creates the tables (migrations); everything else goes through their owner.
    staff = r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:staff|staff_sessions)\b"
    assert modules_with(staff) <= {"studio/accounts.py", "store.py"}
    log = r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+audit\b"
    assert modules_with(log) <= {"audit.py", "store.py"}


# -- the commands ---------------------------------------------------------------------------


@pytest.fixture
def run(project: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``newsletter ARGS`` through cli.main (one-line errors, exit codes), in ``project``."""
    monkeypatch.chdir(project)

    def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
        with CliRunner().isolation(input=input) as (out, err, _):
            code = main(list(args))
        return code, out.getvalue().decode(), err.getvalue().decode()

    return invoke


def assert_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_user_commands_and_their_audit_rows(run: Run, project: Path) -> None:
    config = (project / "config.toml").read_bytes()
    code, out, err = run("studio", "user", "add", "ada", "--role", "admin", "--password-stdin",
                         input=PASSWORD + "\n")  # fmt: skip
    assert (code, out.strip()) == (0, "Added ada (admin)"), err
    code, out, err = run("studio", "user", "add", "bob", "--role", "editor", input=f"{OTHER}\n" * 2)
    assert code == 0, err
    assert OTHER not in out + err and PASSWORD not in out + err
    code, out, _ = run("studio", "user", "list", "--json")
    assert json.loads(out) == [{"name": "ada", "role": "admin"}, {"name": "bob", "role": "editor"}]
    assert run("studio", "user", "role", "BOB", "sender")[1].strip() == "bob is now sender"
    code, out, err = run("studio", "user", "password", "bob", "--password-stdin",
                         input="a brand new passphrase\r\n")  # fmt: skip
    assert code == 0 and "a brand new passphrase" not in out + err
    assert run("studio", "user", "remove", "bob")[0] == 0

    with Store(project / "newsletter.db") as store:
        assert accounts.login(store, "ada", PASSWORD, "192.0.2.1", 10) is not None
        assert [s.name for s in accounts.list_users(store)] == ["ada"]
    code, out, _ = run("studio", "audit", "--json")
    entries = json.loads(out)
    who = "cli:" + getpass.getuser()
    assert [(e["who"], e["action"], e["what"]) for e in entries] == [
        (who, "user-remove", "bob"),
        (who, "password", "bob"),
        (who, "user-role", "bob: editor -> sender"),
        (who, "user-add", "bob (editor)"),
        (who, "user-add", "ada (admin)"),
    ]
    code, out, _ = run("studio", "audit", "--limit", "2", "--before", str(entries[0]["id"]))
    assert out.splitlines() == [
        f"{entries[1]['when']}\t{who}\tpassword\tbob",
        f"{entries[2]['when']}\t{who}\tuser-role\tbob: editor -> sender",
    ]
    # Nothing of the passwords outside the store's hashes: not in config.toml, not anywhere.
    assert (project / "config.toml").read_bytes() == config
    assert not (project / "secrets.toml").exists()
    for path in project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and OTHER.encode() not in data, path


def test_user_errors_are_one_line(run: Run) -> None:
    add = ("studio", "user", "add")
    stdin = "--password-stdin"
    assert run(*add, "ada", "--role", "admin", stdin, input=PASSWORD + "\n")[0] == 0
    assert_error(run(*add, "bob", "--role", "editor", stdin, input="short\n"),
                 "'bob': the password must be at least 12 characters")  # fmt: skip
    assert_error(run(*add, "bob", "--role", "root", stdin, input=PASSWORD + "\n"),
                 "'root' is not one of 'editor', 'sender', 'admin'")  # fmt: skip
    assert_error(run(*add, "ADA", "--role", "editor", stdin, input=PASSWORD + "\n"),
                 "account 'ada' already exists")  # fmt: skip
    assert_error(run(*add, "bob smith", "--role", "editor", stdin, input=PASSWORD + "\n"),
                 "account name 'bob smith'")  # fmt: skip
    assert_error(run(*add, "bob", "--role", "editor", stdin, input=""), "no password")
    assert_error(run(*add, "bob"), "Missing option '--role'")
    assert_error(run("studio", "user", "remove", "nobody"), "no staff account named 'nobody'")
    assert_error(run("studio", "user", "role", "nobody", "admin"), "no staff account")
    assert_error(run("studio", "user", "password", "nobody", stdin, input=PASSWORD + "\n"),
                 "no staff account named 'nobody'")  # fmt: skip
    assert_error(run("studio", "user", "remove", "ada"), "'ada' is the last admin")
    assert_error(run("studio", "user", "role", "ada", "editor"), "'ada' is the last admin")
    assert_error(run("studio", "audit", "--limit", "0"), "--limit")


def test_mismatched_prompts_ask_again(run: Run) -> None:
    code, out, err = run("studio", "user", "add", "ada", "--role", "editor",
                         input=f"{PASSWORD}\n{OTHER}\n{OTHER}\n{OTHER}\n")  # fmt: skip
    assert code == 0, err
    assert "do not match" in out + err
    assert PASSWORD not in out + err and OTHER not in out + err


def test_audit_names_an_unknown_os_user(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    run("studio", "user", "add", "ada", "--role", "admin", "--password-stdin", input=PASSWORD)
    out = run("studio", "audit")[1]
    assert out.split("\t")[1:] == ["cli:unknown", "user-add", "ada (admin)\n"]


def test_registered_as_newsletter_studio_user_and_audit() -> None:
    from newsletter.cli.studio_admin import audit_command, user_group

    context = click.Context(cli)
    studio = cli.get_command(context, "studio")
    assert isinstance(studio, click.Group)
    assert studio.get_command(context, "user") is user_group
    assert studio.get_command(context, "audit") is audit_command


def test_as_a_user_runs_it(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}

    def newsletter(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", "studio", *args],
            cwd=project, env=env, input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    added = newsletter("user", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    short = newsletter("user", "add", "bob", "--role", "editor", "--password-stdin", stdin="x\n")
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1, short.stderr
    audit = newsletter("audit")
    assert audit.returncode == 0 and "\tuser-add\tada (admin)" in audit.stdout
