"""`newsletter studio user ...` (staff accounts) and `newsletter studio audit`.

A thin layer over ``newsletter.studio.accounts``. Passwords are read from a hidden
prompt (or one line of stdin), stored in the store as a scrypt hash, and never printed
nor written to config.toml. Every change is written to the audit log as ``cli:<OS user>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import click

from .output import echo, print_rows, with_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..settings import Settings
    from ..store import Store

F = TypeVar("F", bound="Callable[..., Any]")

#: Kept in step with newsletter.studio.accounts.ROLES (a test checks), so that --help
#: need not import the accounts module.
ROLES = ("editor", "sender", "admin")
AUDIT_COLUMNS = ("when", "who", "action", "what")


def _password_stdin_option(command: F) -> F:
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of stdin instead of prompting (scripts).",
    )(command)


def _read_password(from_stdin: bool) -> str:
    from ..studio.accounts import AccountError

    if not from_stdin:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        assert isinstance(password, str)
        return password
    import sys

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AccountError("--password-stdin: no password on the first line of stdin")
    return password


def _existing_name(store: Store, name: str) -> str:
    """The account's name as stored, or AccountError: checked before asking for a password."""
    from ..studio import accounts

    found = accounts.find_user(store, name)
    if found is None:
        raise accounts.AccountError(f"no staff account named {name.strip()!r}")
    return found.name


@click.group(name="user")
def user_group() -> None:
    """Staff accounts of the studio: add, list, remove, role, password.

    Roles: editor (compose, approve), sender (also send, manage subscribers), admin (also
    manage accounts). Passwords are kept as scrypt hashes in the store, never in config.toml.
    """


@user_group.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="editor: compose, approve; sender: also send, subscribers; admin: also accounts.",
)
@_password_stdin_option
@with_settings
def user_add(name: str, role: str, password_stdin: bool, settings: Settings) -> None:
    """Add a staff account; asks for its password (twice, hidden).

    NAME is 1-64 letters, digits and . - _ @, unique whatever its case. The password has
    at least 12 characters.

    \b
    Examples:
        newsletter studio user add ada --role admin
        printf '%s\\n' "$PASSWORD" | newsletter studio user add bob --role editor --password-stdin
    """
    from .. import audit
    from ..audit import cli_actor
    from ..store import Store
    from ..studio import accounts

    name = accounts.check_name(name)
    with Store(settings.store_path) as store:
        existing = accounts.find_user(store, name)
        if existing is not None:  # said before the password is typed, not after
            raise accounts.AccountError(f"account {existing.name!r} already exists")
        staff = accounts.add_user(store, name, _read_password(password_stdin), role)
        audit.record(store, cli_actor(), "user-add", f"{staff.name} ({staff.role})")
    echo(f"Added {staff.name} ({staff.role})")


@user_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@with_settings
def user_list(as_json: bool, settings: Settings) -> None:
    """List staff accounts and their roles.

    \b
    Example:
        newsletter studio user list --json
    """
    from ..store import Store
    from ..studio import accounts

    with Store(settings.store_path) as store:
        users = accounts.list_users(store)
    rows = ({"name": staff.name, "role": staff.role} for staff in users)
    print_rows(rows, ("name", "role"), as_json=as_json, noun="account")


@user_group.command(name="remove")
@click.argument("name")
@with_settings
def user_remove(name: str, settings: Settings) -> None:
    """Delete a staff account and end its sessions (the last admin stays).

    \b
    Example:
        newsletter studio user remove bob
    """
    from .. import audit
    from ..audit import cli_actor
    from ..store import Store
    from ..studio import accounts

    with Store(settings.store_path) as store:
        name = _existing_name(store, name)
        accounts.remove_user(store, name)
        audit.record(store, cli_actor(), "user-remove", name)
    echo(f"Removed {name}; their sessions are ended")


@user_group.command(name="role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@with_settings
def user_role(name: str, role: str, settings: Settings) -> None:
    """Change a staff account's role (the last admin stays admin); applies at once.

    \b
    Example:
        newsletter studio user role bob sender
    """
    from .. import audit
    from ..audit import cli_actor
    from ..store import Store
    from ..studio import accounts

    with Store(settings.store_path) as store:
        found = accounts.find_user(store, name)
        if found is None:
            raise accounts.AccountError(f"no staff account named {name.strip()!r}")
        accounts.set_role(store, found.name, role)
        audit.record(store, cli_actor(), "user-role", f"{found.name}: {found.role} -> {role}")
    echo(f"{found.name} is now {role}")


@user_group.command(name="password")
@click.argument("name")
@_password_stdin_option
@with_settings
def user_password(name: str, password_stdin: bool, settings: Settings) -> None:
    """Set a staff account's password (asked twice, hidden); ends its sessions.

    \b
    Example:
        newsletter studio user password ada
    """
    from .. import audit
    from ..audit import cli_actor
    from ..store import Store
    from ..studio import accounts

    with Store(settings.store_path) as store:
        name = _existing_name(store, name)
        accounts.set_password(store, name, _read_password(password_stdin))
        audit.record(store, cli_actor(), "password", name)
    echo(f"Changed the password of {name}; their sessions are ended")


@click.command(name="audit")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many entries, newest first.",
)
@click.option(
    "--before",
    "before_id",
    type=int,
    help="Only entries older than this id (the JSON's id): the next page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects (with ids).")
@with_settings
def audit_command(limit: int, before_id: int | None, as_json: bool, settings: Settings) -> None:
    """Show the audit log, newest first: when (UTC), who, action, what.

    Who drafted, approved, tested, sent, imported or removed what, in the studio
    (the account's name) or here (cli:<OS user>).

    \b
    Example:
        newsletter studio audit --limit 20
    """
    from .. import audit
    from ..store import Store

    with Store(settings.store_path) as store:
        entries = audit.entries(store, limit, before_id)
    rows = (
        {"id": e.id, "when": e.at, "who": e.who, "action": e.action, "what": e.what}
        for e in entries
    )
    print_rows(rows, AUDIT_COLUMNS, as_json=as_json, noun="event")
