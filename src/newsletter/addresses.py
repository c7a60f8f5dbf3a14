"""The rules for a subscriber's address and name, shared by add, import, confirm and send.

Addresses are checked for syntax only (no DNS) by email_validator, and stored in its
normalised ASCII form. An import checks a million of them, and email_validator costs
about 30 µs each, so plain addresses take a fast path (see :func:`_plain_address`) that
gives exactly the same answer; everything else goes through email_validator.
"""

from __future__ import annotations

import functools
import re

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

__all__ = ["NAME_MAX", "clean_name", "first_name_of", "name_problem", "normalise_email"]

#: The longest display name accepted (it goes into the To header of every message).
NAME_MAX = 200
#: The longest address email_validator accepts (RFC 5321 4.5.3.1.3), in ASCII characters.
_ADDRESS_MAX = 254

# Exactly the characters that ``unicodedata.category(c) == "Cc"`` selects (C0, DEL, C1: the
# Unicode stability policy fixes that set), plus the bidi embeddings, overrides and isolates.
# A test compares it with unicodedata over every code point.
_NAME_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# An unquoted ASCII dot-atom before the @-sign (RFC 5322 3.2.3: email_validator's own
# DOT_ATOM_TEXT) and ASCII letters, digits, dots and hyphens after it. Neither part can hold
# a quote, a backslash, an angle bracket, a space, a second @-sign or anything non-ASCII.
_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
_PLAIN = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([A-Za-z0-9.\-]+)")
_MAILBOX_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _validated(address: str) -> str:
    result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    return str(result.ascii_email or result.normalized)


@functools.lru_cache(maxsize=1024)
def _plain_domain(domain: str) -> str | None:
    """The normalised form of a domain, as email_validator gives it, or None to say "ask
    email_validator about the whole address" (it refuses the domain, or the domain has a
    Unicode form: an ``xn--`` label).

    email_validator checks the domain on its own (``validate_email_domain_name`` never sees
    the local part), so asking about ``a@domain`` answers for any valid local part; the
    only rule that joins the two, the total length, is checked by the caller. A domain
    close to 253 characters makes ``a@domain`` too long: None, and the slow path decides.
    A few domains make most of any real list, so a small cache answers nearly every row.
    """
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    if result.domain != result.ascii_domain:
        return None
    return str(result.ascii_domain)


def _plain_address(address: str) -> str | None:
    """The normalised address for a plain ASCII ``local@domain``, or None (not plain).

    What email_validator 2 does with such an address (allow_smtputf8=False, no quoted local
    part, no display name, not strict), step by step: ``split_email`` splits it at the only
    @-sign (no quote, bracket or combining character to consider); the local part matches
    DOT_ATOM_TEXT, so it is returned unchanged (NFC leaves ASCII as it is), except that an
    RFC 2142 mailbox name (``Info``, ``POSTMASTER``) is lowercased; the domain is checked
    and normalised on its own (:func:`_plain_domain`); the result is ``local@ascii_domain``
    and all three of its forms must be at most 254 characters long. A test compares this
    with email_validator on many generated and tricky addresses.
    """
    plain = _PLAIN.fullmatch(address)
    if plain is None or len(address) > _ADDRESS_MAX:
        return None
    local, domain = plain.groups()
    ascii_domain = _plain_domain(domain)
    if ascii_domain is None or len(local) + 1 + len(ascii_domain) > _ADDRESS_MAX:
        return None
    if local.lower() in _MAILBOX_NAMES:
        local = local.lower()
    return f"{local}@{ascii_domain}"


def normalise_email(raw: str) -> str:
    """Check syntax only (no DNS) and return the normalised ASCII address, or raise ValueError."""
    raw = raw.strip()
    if not raw:
        raise ValueError("the email address is empty")
    if "\r" in raw or "\n" in raw:
        raise ValueError("the email address contains a line break")
    plain = _plain_address(raw)
    if plain is not None:
        return plain
    try:
        return _validated(raw)
    except EmailNotValidError as exc:
        raise ValueError(f"{raw!r} is not a valid email address: {exc}") from None


def clean_name(name: str) -> str:
    # A name goes into the To header: a line break there would inject headers.
    return " ".join(name.split())


def first_name_of(name: str) -> str:
    """The first name a full name states, or "".

    Only "Family, Given" says which part is which. "Ada Lovelace" does not: names are not
    always given-then-family (Kim Jong-un, Nguyễn Văn An), so the greeting falls back to
    ``greeting_no_name`` rather than guess.
    """
    family, comma, given = name.partition(",")
    if comma and family.strip() and given.strip() and "," not in given:
        return clean_name(given)
    return ""


def name_problem(name: str) -> str:
    """Why a (cleaned) name cannot be stored, or ""."""
    if len(name) > NAME_MAX:
        # It goes into the To header of every message: a relay refuses overlong lines.
        return f"the name is {len(name)} characters; at most {NAME_MAX}"
    if _NAME_FORBIDDEN.search(name):
        # Escape sequences would reach terminals (`subscribers list`) and mail headers;
        # bidi overrides would make a name read as something else.
        return "the name contains control characters"
    return ""
