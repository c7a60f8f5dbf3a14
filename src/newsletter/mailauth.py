"""Sender authentication as the bulk-sender rules see it: DKIM keys, alignment, readiness.

``newsletter dkim keygen`` makes a key and the DNS record to publish; the ``dkim`` check
(and with it `send` and `weekly`, before they ask) warns about a relay send that we do
not sign, and about a ``d=`` domain that DMARC would not count for the From address.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .settings import DNS_NAME, Settings

__all__ = [
    "AuthWarning",
    "DnsRecord",
    "KeyPair",
    "aligned",
    "auth_warnings",
    "create_key",
    "dns_record",
    "generate_key",
    "organisational_domain",
    "write_key",
]

#: Second-level labels under which countries' registries sell names (co.uk, com.au,
#: ac.jp...). Without the Public Suffix List, a name ending in one of these and a
#: two-letter country code keeps three labels as its organisational domain.
_REGISTRY_LABELS = frozenset(
    {"ac", "co", "com", "edu", "go", "gob", "gov", "gv", "ltd", "ne", "net", "or", "org", "plc"}
)
#: Zone files hold at most 255 characters per quoted string (RFC 1035 3.3.14).
_TXT_CHUNK = 255


def organisational_domain(domain: str) -> str:
    """The registered part of ``domain``, approximately (DMARC, RFC 7489 3.2).

    The last two labels (``news.example.org`` -> ``example.org``), or three under a
    country's second-level registry (``news.example.co.uk`` -> ``example.co.uk``). This is
    a simplification of the Public Suffix List, which this tool does not ship: it errs
    towards a warning, never towards silence, for names the rule does not know.
    """
    labels = domain.lower().rstrip(".").split(".")
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _REGISTRY_LABELS:
        keep = 3
    return ".".join(labels[-keep:])


def aligned(domain: str, from_domain: str, *, strict: bool = False) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): relaxed, the same organisational domain
    (or the same name); ``strict`` (a DMARC record's ``adkim=s`` / ``aspf=s``), the same
    name only."""
    a, b = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return a == b or (not strict and organisational_domain(a) == organisational_domain(b))


@dataclass(frozen=True)
class AuthWarning:
    message: str
    where: str
    value: str
    fix: str


def auth_warnings(settings: Settings) -> list[AuthWarning]:
    """What the bulk-sender rules would hold against these settings (warnings, not errors).

    An unsigned relay send counts only in relay mode (the capture never leaves this
    machine); a misaligned ``d=`` is a mistake in any mode.
    """
    from_domain = settings.newsletter.from_address.rsplit("@", 1)[1].lower()
    dkim = settings.dkim
    found = []
    if not dkim.domain and settings.smtp.mode == "relay":
        found.append(
            AuthWarning(
                "a relay send is not DKIM-signed by newsletter ([dkim] is empty): unless your "
                f"relay signs for {from_domain}, Gmail and Yahoo reject or junk bulk mail",
                "[dkim] domain",
                "",
                f"run `newsletter dkim keygen --selector s1 --domain {from_domain}` and set "
                "[dkim], or turn this check off with the reason that your relay signs",
            )
        )
    if dkim.domain and not aligned(dkim.domain, from_domain):
        found.append(
            AuthWarning(
                f"DKIM signs as d={dkim.domain}, which is not aligned with the From domain "
                f"{from_domain}: DMARC does not count the signature",
                "[dkim] domain",
                dkim.domain,
                f"sign as {from_domain} (or a subdomain of {organisational_domain(from_domain)})",
            )
        )
    return found


@dataclass(frozen=True)
class DnsRecord:
    """The TXT record that publishes a DKIM public key."""

    name: str
    value: str

    def zone_value(self) -> str:
        """The value as a zone file writes it: quoted strings of at most 255 characters."""
        chunks = [self.value[i : i + _TXT_CHUNK] for i in range(0, len(self.value), _TXT_CHUNK)]
        return " ".join(f'"{chunk}"' for chunk in chunks)


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    #: The public key as DER SubjectPublicKeyInfo, what p= carries (base64).
    public_der: bytes


def generate_key(bits: int = 2048) -> KeyPair:
    """A new RSA key for DKIM (PKCS#1 PEM, which OpenDKIM and dkimpy read as well)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return KeyPair(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def dns_record(selector: str, domain: str, public_der: bytes) -> DnsRecord:
    return DnsRecord(
        f"{selector}._domainkey.{domain}",
        "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii"),
    )


def write_key(path: Path, pem: bytes, *, force: bool = False) -> None:
    """Write ``pem`` to ``path`` with mode 0600, whole or not at all.

    The key is on disk under a temporary name, already 0600, before it gets its name, so
    no reader ever sees it half written or readable by others. Without ``force`` an
    existing file is never replaced, not even by a race: the name is taken with link(2).
    """
    where = str(path)
    if path.is_dir():
        raise InputError("is a folder; give a file name for the key", where)
    if path.exists() and not force:
        raise InputError("exists; pass --force to replace it (the old key stops working)", where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", where) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise InputError("exists; pass --force to replace it (the old key stops working)",
                         where) from None  # fmt: skip
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", where) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def create_key(
    path: Path, selector: str, domain: str, *, bits: int = 2048, force: bool = False
) -> DnsRecord:
    """``newsletter dkim keygen``: write a new private key to ``path`` (0600) and return the
    TXT record that publishes its public half."""
    for what, value in (("--selector", selector), ("--domain", domain)):
        if not DNS_NAME.fullmatch(value):
            raise InputError(f"{value!r} is not a DNS name (letters, digits, hyphens, dots)", what)
    if path.exists() and not force:
        # Said before the key is made: generating a 4096-bit one takes seconds.
        raise InputError("exists; pass --force to replace it (the old key stops working)",
                         str(path))  # fmt: skip
    pair = generate_key(bits)
    write_key(path, pair.private_pem, force=force)
    return dns_record(selector.lower(), domain.lower(), pair.public_der)
