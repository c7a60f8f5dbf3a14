"""The address fast path gives email_validator's answer; the name rule is unicodedata's."""

from __future__ import annotations

import random
import sys
import unicodedata

import idna
import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter import addresses


def reference(raw: str) -> str:
    """normalise_email as it was before the fast path: email_validator for every address."""
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


def outcome(normalise: object, raw: str) -> str:
    try:
        return "ok: " + normalise(raw)  # type: ignore[operator]
    except ValueError as exc:
        return f"error: {exc}"


ATEXT = "abcXYZ0189_!#$%&'*+-/=?^`{|}~"
LOCAL_TRICKS = ['"', " ", "\\", "<", ">", "@", "(", ")", ",", ";", ":", "[", "]", "é", "\u0301"]
LOCAL_TRICKS += ["\uff20", "ß", "\u200b", "\t", "\x7f", "\x00", "..", "."]
LABEL_CHARS = "abcdefxyzABCXYZ0123456789-"
LABEL_TRICKS = ["_", "é", "ü", "--", "xn--", "\uff21\uff22", "\u3002", ".", " ", "⒈", "\u0131", "ß"]
TLDS = ["com", "ORG", "net", "io", "co.uk", "test", "local", "invalid", "localhost", "onion"]
TLDS += ["arpa", "in-addr.arpa", "123", "x", "xn--p1ai", "xn--80ak6aa92e", "example", "Museum"]
TLDS += ["home.arpa", "xn--", "c0m", "com-", "-com", "ab--cd", "xn--zz"]

TRICKY = [
    "ada@example.org",
    "Ada.Lovelace@Example.ORG",
    "Info@example.com",
    "POSTMASTER@EXAMPLE.COM",
    "postMaster@example.com",
    "Infos@example.com",
    "  spaced@example.com\t",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@-x.com",
    "a@x-.com",
    "a@ab--cd.com",
    "a@xn--abc.com",
    "a@xn--bcher-kva.de",
    "a@XN--BCHER-KVA.DE",
    "a@[1.2.3.4]",
    '"quoted"@example.com',
    '"a b"@example.com',
    "Name <a@example.com>",
    "a@example.com.",
    "a@.example.com",
    "a@example..com",
    "a@example",
    "a@123.456",
    "a@1.2.3.4",
    "a@exa_mple.com",
    "a@localhost",
    "a@mail.local",
    "a@x.onion",
    "a@example.test",
    "a@a.b",
    "a@b@example.com",
    "@example.com",
    "a@",
    "é@example.com",
    "a@exämple.com",
    "a@EXAMPLE.com",
    "user+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "{weird}|=?^`~@example.com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a" * 242 + "@example.com",
    "a" * 243 + "@example.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 49] * 5) + ".com",
    "a@" + ".".join(["b" * 49] * 5) + ".co",
    "ab@" + ".".join(["b" * 61] * 4) + ".c",
    "a@" + ".".join(["b" * 61] * 4) + ".cc",
    "ab@" + ".".join(["c" * 60] * 4) + ".com",
    # 194 ASCII characters, but 452 bytes of UTF-8 once the domain is decoded: refused.
    "a@" + ".".join([idna.alabel("\u4e2d" * 56).decode()] * 3) + ".com",
    # The decoded domain is 247 bytes: fine after "a@", too long after this local part.
    "abcdefghij@" + ".".join([idna.alabel("\u4e2d" * 20).decode()] * 4) + ".com",
    "a@" + idna.alabel("\u4e2d" * 5).decode() + ".com",
]


def generated(count: int, seed: int = 20231201) -> list[str]:
    rand = random.Random(seed)

    def local() -> str:
        parts = []
        for _ in range(rand.choice([1, 1, 1, 2, 3])):
            size = rand.choice([1, 2, 5, 10, 20, 40, 70])
            parts.append("".join(rand.choice(ATEXT) for _ in range(size)))
        text = ".".join(parts)
        if rand.random() < 0.25:
            at = rand.randrange(len(text) + 1)
            text = text[:at] + rand.choice(LOCAL_TRICKS) + text[at:]
        if rand.random() < 0.05:
            text = rand.choice(["info", "Sales", "NOC", "www", "uucp"])
        return text

    def domain() -> str:
        labels = []
        for _ in range(rand.choice([1, 1, 2, 3])):
            size = rand.choice([1, 2, 3, 8, 8, 20, 20, 62, 63, 64])
            label = "".join(rand.choice(LABEL_CHARS) for _ in range(size))
            if rand.random() < 0.15:
                at = rand.randrange(len(label) + 1)
                label = label[:at] + rand.choice(LABEL_TRICKS) + label[at:]
            labels.append(label)
        tld = rand.choice(TLDS if rand.random() < 0.4 else ["com", "ORG", "net", "co.uk"])
        return ".".join([*labels, tld])

    return [f"{local()}@{domain()}" for _ in range(count)]


@pytest.mark.parametrize("batch", ["tricky", "generated"])
def test_fast_path_agrees_with_email_validator(batch: str) -> None:
    cases = TRICKY if batch == "tricky" else generated(20_000)
    fast = 0
    for raw in cases:
        plain = addresses._plain_address(raw.strip())
        if plain is not None:
            fast += 1
            # The fast path only answers for addresses email_validator accepts, and the same.
            assert outcome(reference, raw) == "ok: " + plain, raw
        assert outcome(addresses.normalise_email, raw) == outcome(reference, raw), raw
    # Both kinds are well represented: the test says something about each path.
    assert fast >= len(cases) // 5 and len(cases) - fast >= len(cases) // 5, fast


def test_fast_path_takes_ordinary_addresses() -> None:
    for raw in ("ada@example.org", "Reader.12+news@Example.NET", "info@mail.example.co.uk"):
        assert addresses._plain_address(raw) is not None, raw


def test_name_rule_is_the_control_and_bidi_characters_of_unicodedata() -> None:
    bidi = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        expected = unicodedata.category(char) == "Cc" or char in bidi
        assert bool(addresses._NAME_FORBIDDEN.search(char)) == expected, hex(code)
