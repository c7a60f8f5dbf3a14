"""DNS for `newsletter doctor`: one dnspython resolver that every lookup goes through.

The nameservers are configurable (``[doctor] nameservers``, ``--nameserver``), so tests
point it at a DNS server on loopback; each lookup has a timeout, and after one goes
unanswered the rest fail at once. pyspf, which would otherwise ask the system's resolver
(with a call dnspython deprecates), is routed through the same resolver.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from .errors import NewsletterError
from .settings import parse_nameserver

__all__ = ["Answer", "Lookups", "NoResolver", "Unanswered", "parse_nameserver", "spf_through"]


class NoResolver(NewsletterError):
    """No nameserver given, and this machine has no resolver configured."""

    exit_code = 2


class Unanswered(Exception):
    """DNS gave no usable answer (timeout, SERVFAIL, refused): the check could not be made."""


@dataclass(frozen=True)
class Answer:
    exists: bool  # False for NXDOMAIN
    records: list[Any]


class Lookups:
    """One resolver for every lookup; once it has timed out, later lookups fail at once."""

    def __init__(self, nameservers: Sequence[tuple[str, int]], timeout: float) -> None:
        if nameservers:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers
            ]
            self.names = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nameservers]
        else:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise NoResolver(
                    "doctor: this machine has no DNS resolver configured (/etc/resolv.conf): "
                    "set [doctor] nameservers or pass --nameserver HOST:PORT"
                ) from None
            servers = ", ".join(str(ns) for ns in self.resolver.nameservers)
            self.names = [f"system resolver ({servers})"]
        self.timeout = timeout
        self.resolver.timeout = self.resolver.lifetime = timeout
        self.silent = ""

    def resolve(self, name: str, rdtype: str) -> Answer:
        if self.silent:
            raise Unanswered(self.silent)
        asked = f"{rdtype} {name}"
        try:
            qname = dns.name.from_text(name)
            answer = self.resolver.resolve(qname, dns.rdatatype.from_text(rdtype), search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(False, [])
        except dns.resolver.NoAnswer:
            return Answer(True, [])
        except dns.exception.Timeout:
            # A server that does not answer once will not answer the next lookup either:
            # say so once instead of waiting out every timeout.
            self.silent = (
                f"DNS did not answer: no reply from {', '.join(self.names)} within "
                f"{self.timeout:g} s (asking for {asked})"
            )
            raise Unanswered(self.silent) from None
        except dns.resolver.NoNameservers:
            raise Unanswered(
                f"DNS could not answer {asked}: {', '.join(self.names)} failed or refused"
            ) from None
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
            raise Unanswered(f"{name!r} is not a valid DNS name") from None
        except dns.exception.DNSException as exc:
            raise Unanswered(f"DNS lookup of {asked} failed: {exc}") from None
        return Answer(True, list(answer))

    def texts(self, name: str) -> list[str]:
        """TXT records of ``name``, each one string (its character-strings joined)."""
        records = self.resolve(name, "TXT").records
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]


#: pyspf reads its DNS through the module-level ``spf.DNSLookup`` (its own tests swap it
#: the same way); the lock keeps two doctors in one process from swapping it at once.
_SPF_LOCK = threading.Lock()


def import_spf() -> Any:
    with warnings.catch_warnings():
        # pyspf 2.0.14 has invalid escapes in docstrings; Python warns when it compiles
        # the module without a cached .pyc. Harmless, and not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        import spf
    return spf


@contextlib.contextmanager
def spf_through(lookups: Lookups) -> Iterator[Any]:
    """pyspf, asking our resolver (its own would ask the system's, with a deprecated call)."""
    spf = import_spf()

    def lookup(name: str, qtype: str, *_: Any) -> list[tuple[tuple[str, str], Any]]:
        try:
            records = lookups.resolve(name, qtype).records
        except Unanswered as exc:
            raise spf.TempError(str(exc)) from None
        key = (name, qtype)
        if qtype in ("A", "AAAA"):
            return [(key, r.address) for r in records]
        if qtype == "MX":
            return [(key, (r.preference, r.exchange.to_text())) for r in records]
        if qtype == "PTR":
            return [(key, r.target.to_text(True)) for r in records]
        return [(key, tuple(r.strings)) for r in records]  # TXT, SPF

    with _SPF_LOCK:
        saved = spf.DNSLookup
        spf.DNSLookup = lookup
        try:
            yield spf
        finally:
            spf.DNSLookup = saved
