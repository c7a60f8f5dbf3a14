"""Staff accounts, their login sessions and login throttling.

It owns the ``staff`` and ``staff_sessions`` tables. Passwords are kept only
as scrypt hashes, in the store (never in ``config.toml``, which projects commit); a
session cookie's token only as its SHA-256. Failed logins are counted in the throttle
table (``throttle.py``), per client address and per account name, so every web worker
on the store shares the count.

What callers must know:

- A role's rights are read from ``staff`` on every request (:func:`session_user`), so a
  role change applies at once; a new password or a removed account ends its sessions.
- The last admin can be neither removed nor demoted: someone must be able to manage
  accounts from the studio (the CLI can always add another admin first).
- These functions write no audit rows: their callers (the CLI, the studio) know who
  acted and call :func:`newsletter.audit.record`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
import unicodedata
from dataclasses import dataclass

from .. import throttle
from ..errors import NewsletterError
from ..store import Store, utcnow

__all__ = [
    "ACTIONS",
    "NO_AUTH",
    "ROLES",
    "AccountError",
    "LoginRefused",
    "Staff",
    "add_user",
    "allowed",
    "check_name",
    "end_session",
    "find_user",
    "get_user",
    "hash_password",
    "list_users",
    "login",
    "new_session",
    "remove_user",
    "session_user",
    "set_password",
    "set_role",
    "verify_password",
]

ROLES = ("editor", "sender", "admin")

#: Which roles may do what: an editor composes and approves; a sender also sends and
#: manages subscribers; an admin also manages staff accounts.
ACTIONS: dict[str, frozenset[str]] = {
    "compose": frozenset({"editor", "sender", "admin"}),
    "approve": frozenset({"editor", "sender", "admin"}),
    "send": frozenset({"sender", "admin"}),
    "subscribers": frozenset({"sender", "admin"}),
    "accounts": frozenset({"admin"}),
}

NAME_MAX = 64
_NAME = re.compile(rf"[A-Za-z0-9._@-]{{1,{NAME_MAX}}}")
PASSWORD_MIN = 12
#: Longer passwords are refused (and never hashed at login): they only cost work.
PASSWORD_MAX = 1024

#: scrypt's cost: 16 MiB and some 50 ms per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32

#: A session token is 43 characters; anything much longer is not one of ours.
_TOKEN_MAX = 256


class AccountError(NewsletterError):
    """A staff account cannot be added or changed as asked (one line, naming it)."""

    exit_code = 1


class LoginRefused(NewsletterError):
    """Too many failed logins from this address or for this account in the last hour."""

    exit_code = 1


@dataclass(frozen=True)
class Staff:
    id: int
    name: str
    role: str


#: The single user of ``[studio] auth = "none"`` (one person on their own computer).
NO_AUTH = Staff(id=0, name="local", role="admin")


def allowed(role: str, action: str) -> bool:
    """May ``role`` do ``action``? An unknown role may do nothing; an unknown action is a
    programming error (ValueError), so that a misspelt check never passes silently."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    return role in ACTIONS[action]


# -- passwords ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _password_bytes(password: str) -> bytes:
    # NFKC, as NIST SP 800-63B asks: the same password typed in a terminal and in a
    # browser may arrive composed differently ("é" as one code point or two).
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        _password_bytes(password),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=length,
        maxmem=128 * r * (n + p + 2) + 1024 * 1024,
    )


def hash_password(password: str) -> str:
    """``scrypt$16384$8$1$<salt>$<hash>`` (base64): the parameters travel with the hash."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str, password: str) -> bool:
    """Does ``password`` match ``stored``? False, never an error, for a malformed hash."""
    if len(password) > PASSWORD_MAX:
        return False
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(digest_text, validate=True)
    except (ValueError, binascii.Error):
        return False
    # Bounds, so a damaged row costs no more than a few times the usual work.
    if scheme != "scrypt" or not (2 <= n <= 2**20 and n & (n - 1) == 0):
        return False
    if not (1 <= r <= 32 and 1 <= p <= 16 and salt and 16 <= len(expected) <= 64):
        return False
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked against for names with no account, so that a login takes as long either way."""
    return hash_password(secrets.token_urlsafe(16))


def _check_password(name: str, password: str) -> None:
    length = len(unicodedata.normalize("NFKC", password))
    if length < PASSWORD_MIN:
        raise AccountError(
            f"account {_shown(name)}: the password must be at least {PASSWORD_MIN} characters"
            f" (it has {length})"
        )
    if length > PASSWORD_MAX:
        raise AccountError(
            f"account {_shown(name)}: the password must be at most {PASSWORD_MAX} characters"
        )


# -- accounts -------------------------------------------------------------------------------


def _shown(name: str) -> str:
    """A name as an error message quotes it: one line, never a screenful."""
    return repr(name if len(name) <= NAME_MAX + 10 else name[:NAME_MAX] + "...")


def check_name(name: str) -> str:
    """The name, stripped, or AccountError when it is not 1-64 of A-Z a-z 0-9 . - _ @."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise AccountError(
            f"account name {_shown(name)}: use 1-{NAME_MAX} letters, digits and . - _ @ (no spaces)"
        )
    return name


def _check_role(name: str, role: str) -> None:
    if role not in ROLES:
        raise AccountError(
            f"account {_shown(name)}: unknown role {_shown(role)}; use {', '.join(ROLES)}"
        )


def _staff(row: sqlite3.Row) -> Staff:
    return Staff(id=row["id"], name=row["name"], role=row["role"])


def _row(db: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT id, name, role, password_hash FROM staff WHERE name = ?", (name.strip(),)
    ).fetchone()
    return row


def _existing(db: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = _row(db, name)
    if row is None:
        raise AccountError(f"no staff account named {_shown(name.strip())}")
    return row


def _other_admins(db: sqlite3.Connection, staff_id: int) -> int:
    (count,) = db.execute(
        "SELECT count(*) FROM staff WHERE role = 'admin' AND id != ?", (staff_id,)
    ).fetchone()
    return int(count)


def add_user(store: Store, name: str, password: str, role: str) -> Staff:
    """Add an account. Names are unique whatever their case ("Ada" and "ada" are one)."""
    name = check_name(name)
    _check_role(name, role)
    _check_password(name, password)
    password_hash = hash_password(password)  # before the write lock, not inside it
    now = utcnow()
    with store.transaction() as db:
        existing = _row(db, name)
        if existing is not None:
            raise AccountError(f"account {existing['name']!r} already exists")
        cursor = db.execute(
            "INSERT INTO staff (name, role, password_hash, created, updated)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, role, password_hash, now, now),
        )
        assert cursor.lastrowid is not None
        return Staff(id=cursor.lastrowid, name=name, role=role)


def set_password(store: Store, name: str, password: str) -> None:
    """Give an account a new password, and end its sessions (a reset after a leak must
    lock the old sessions out; the studio logs its user in again)."""
    _check_password(name.strip(), password)
    password_hash = hash_password(password)
    with store.transaction() as db:
        row = _existing(db, name)
        db.execute(
            "UPDATE staff SET password_hash = ?, updated = ? WHERE id = ?",
            (password_hash, utcnow(), row["id"]),
        )
        db.execute("DELETE FROM staff_sessions WHERE staff_id = ?", (row["id"],))
    # A new password is the way out of a lock-out by someone else's guesses.
    throttle.clear(store, _throttle_keys(name, "")[1])


def set_role(store: Store, name: str, role: str) -> None:
    """Change an account's role; the last admin cannot be demoted."""
    _check_role(name.strip(), role)
    with store.transaction() as db:
        row = _existing(db, name)
        if row["role"] == "admin" and role != "admin" and not _other_admins(db, row["id"]):
            raise AccountError(
                f"account {row['name']!r} is the last admin; make another admin first"
            )
        db.execute(
            "UPDATE staff SET role = ?, updated = ? WHERE id = ?", (role, utcnow(), row["id"])
        )


def remove_user(store: Store, name: str) -> None:
    """Delete an account and its sessions; the last admin cannot be removed."""
    with store.transaction() as db:
        row = _existing(db, name)
        if row["role"] == "admin" and not _other_admins(db, row["id"]):
            raise AccountError(
                f"account {row['name']!r} is the last admin; make another admin first"
            )
        # The sessions go too (ON DELETE CASCADE); said here so it does not rest on a pragma.
        db.execute("DELETE FROM staff_sessions WHERE staff_id = ?", (row["id"],))
        db.execute("DELETE FROM staff WHERE id = ?", (row["id"],))


def list_users(store: Store) -> list[Staff]:
    rows = store.db.execute("SELECT id, name, role FROM staff ORDER BY name COLLATE NOCASE")
    return [_staff(row) for row in rows]


def get_user(store: Store, staff_id: int) -> Staff | None:
    row = store.db.execute("SELECT id, name, role FROM staff WHERE id = ?", (staff_id,)).fetchone()
    return None if row is None else _staff(row)


def find_user(store: Store, name: str) -> Staff | None:
    """The account of that name (any case), or None."""
    row = _row(store.db, name)
    return None if row is None else _staff(row)


# -- logging in -----------------------------------------------------------------------------

_HOUR = 3600.0
#: Failed logins for one account name may reach this many times the per-address limit.
NAME_LIMIT_FACTOR = 5


def _throttle_keys(name: str, client_ip: str) -> tuple[str, str]:
    # A name longer than any account's is cut: it names no account either way.
    return f"login-ip:{client_ip}", f"login-name:{name.strip().lower()[: NAME_MAX + 1]}"


def login(
    store: Store,
    name: str,
    password: str,
    client_ip: str,
    per_hour: int,
    *,
    now: float | None = None,
) -> Staff | None:
    """The account if ``name`` and ``password`` match, else None.

    Refused (LoginRefused) before the password is looked at once ``per_hour`` failed
    logins came from ``client_ip``, or were for ``name``, in the last hour: guessing is
    slowed both from one address and against one account. Only failures count, so a
    whole office behind one address can log in every morning. An unknown name costs the
    same hashing as a known one, so timing does not tell which names exist.
    """
    now = time.time() if now is None else now
    keys = _throttle_keys(name, client_ip)
    # Against one account the limit is higher: guesses from many addresses must not
    # lock its owner out for long (and a new password lifts it: set_password).
    limits = (per_hour, per_hour * NAME_LIMIT_FACTOR)
    if any(throttle.count(store, k, _HOUR, now) >= n for k, n in zip(keys, limits, strict=True)):
        raise LoginRefused(
            "too many failed logins from this address or for this account; try again later"
        )
    row = _row(store.db, name) if _NAME.fullmatch(name.strip()) else None
    stored = row["password_hash"] if row is not None else _dummy_hash()
    if verify_password(stored, password) and row is not None:
        return _staff(row)
    for key, limit in zip(keys, limits, strict=True):
        throttle.allow(store, key, limit, _HOUR, now=now)
    return None


# -- sessions -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_session(store: Store, staff: Staff, hours: float, *, now: float | None = None) -> str:
    """A new session for ``staff``, lasting ``hours``: the token for the cookie. Only its
    SHA-256 is stored, so a copy of the store lets nobody in. Expired sessions are pruned."""
    if not hours > 0:
        raise ValueError(f"a session must last more than 0 hours, not {hours}")
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with store.transaction() as db:
        db.execute("DELETE FROM staff_sessions WHERE expires <= ?", (now,))
        try:
            db.execute(
                "INSERT INTO staff_sessions (token_hash, staff_id, created, expires)"
                " VALUES (?, ?, ?, ?)",
                (_token_hash(token), staff.id, utcnow(), now + hours * _HOUR),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"no staff account {staff.name!r} (id {staff.id})") from None
    return token


def session_user(store: Store, token: str, *, now: float | None = None) -> Staff | None:
    """The account a session token belongs to, with its current role; None for an empty,
    unknown or expired token. The lookup is by the token's hash, so its time says nothing
    about how much of a guess matched."""
    if not token or len(token) > _TOKEN_MAX:
        return None
    now = time.time() if now is None else now
    row = store.db.execute(
        "SELECT staff.id, staff.name, staff.role FROM staff_sessions"
        " JOIN staff ON staff.id = staff_sessions.staff_id"
        " WHERE staff_sessions.token_hash = ? AND staff_sessions.expires > ?",
        (_token_hash(token), now),
    ).fetchone()
    return None if row is None else _staff(row)


def end_session(store: Store, token: str) -> None:
    """Log out: forget the session (nothing happens for an unknown token)."""
    if token and len(token) <= _TOKEN_MAX:
        with store.transaction() as db:
            db.execute("DELETE FROM staff_sessions WHERE token_hash = ?", (_token_hash(token),))
