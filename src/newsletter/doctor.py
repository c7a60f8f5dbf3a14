"""`newsletter doctor`: is the From domain's DNS ready for bulk mail?

Looks up, with dnspython, what mailbox providers look up when our mail arrives, and
says for each what is wrong and what to publish instead, in words a communications
person can forward to IT:

- SPF for the Return-Path domain, evaluated by pyspf (the reference implementation of
  RFC 7208) for each of ``[doctor] sending_ips``;
- the DKIM public key at ``<selector>._domainkey.<domain>``, compared with the public
  half of ``[dkim] key_file``;
- the DMARC record of the From domain, its policy, and whether the DKIM ``d=`` and the
  Return-Path domain are aligned with the From domain;
- an MX (or, per RFC 5321, an address) for the Return-Path domain, so bounces come back.

Every lookup goes through one resolver (:mod:`newsletter.resolver`), so ``[doctor]
nameservers`` (or ``--nameserver``) points all of them, pyspf's included, at one server.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import dns.name

from .mailauth import aligned, organisational_domain
from .resolver import Lookups, NoResolver, Unanswered, parse_nameserver, spf_through

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from .settings import Settings

__all__ = [
    "DoctorReport",
    "Finding",
    "NoResolver",
    "Status",
    "parse_nameserver",
    "run_doctor",
]

Status = Literal["pass", "warn", "fail"]

#: An address from TEST-NET-1 (RFC 5737), which never sends mail: evaluating SPF for it
#: walks the whole record, so syntax errors and the lookup limit show, and a record that
#: lets it pass lets anybody pass.
NOBODY = "192.0.2.0"


@dataclass(frozen=True)
class Finding:
    """One verdict: ``message`` says what was found, ``fix`` what to change (empty on pass)."""

    check: str
    status: Status
    message: str
    fix: str = ""


@dataclass
class DoctorReport:
    domain: str
    return_path_domain: str
    #: The DNS servers asked, as ``host:port``, or ``["system resolver (...)"]``.
    nameservers: list[str]
    findings: list[Finding] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status == status)

    @property
    def exit_code(self) -> int:
        # Warnings alone exit 0, so a cron job or CI step fails only on what breaks delivery.
        return 1 if self.count("fail") else 0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


# -- SPF ---------------------------------------------------------------------------------------

_RETRY = "Check that the DNS server answers, then run newsletter doctor again."


def _unchecked(check: str, what: str, problem: object) -> Finding:
    return Finding(check, "fail", f"{what} could not be checked: {problem}.", _RETRY)


def _is_spf(text: str) -> bool:
    """RFC 7208 4.5: ``v=spf1`` alone or followed by a space (``v=spf10`` is not SPF)."""
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def _spf_record(ips: Sequence[str]) -> str:
    terms = [f"ip6:{ip}" if ":" in ip else f"ip4:{ip}" for ip in ips]
    return " ".join(["v=spf1", *(terms or ["ip4:<your relay's address>"]), "-all"])


def _spf_error_fix(domain: str, record: str, problem: str) -> str:
    if "DNS lookups" in problem:
        return (
            f"The SPF record at {domain} needs more than 10 DNS lookups (include:, a, mx, "
            "ptr, exists, redirect=), so receivers treat it as broken. Remove the include:s "
            "of services you no longer use, or replace some by the ip4:/ip6: ranges they "
            "stand for."
        )
    if "Void lookup" in problem:
        return (
            f"The SPF record at {domain} points at names that do not exist: remove those "
            "include:, a: or mx: terms."
        )
    if "Two or more" in problem:
        return f"Keep exactly one TXT record starting with v=spf1 at {domain}: merge them."
    return (
        f"Correct the SPF record at {domain} ({problem}). A valid record looks like: "
        "v=spf1 ip4:192.0.2.10 include:_spf.provider.example -all"
    )


def check_spf(lookups: Lookups, domain: str, sender: str, ips: Sequence[str]) -> list[Finding]:
    """SPF of ``domain`` (the Return-Path's: receivers check that one), for each address."""
    what = f"SPF for {domain}"
    try:
        records = [t for t in lookups.texts(domain) if _is_spf(t)]
    except Unanswered as exc:
        return [_unchecked("spf", what, exc)]
    if not records:
        message = (
            f"{domain} publishes no SPF record, so receivers cannot tell which servers may "
            "send its mail."
        )
        fix = f"Publish this TXT record at {domain}: {_spf_record(ips)}"
        return [Finding("spf", "fail", message, fix)]
    record = records[0]
    findings: list[Finding] = []
    with spf_through(lookups) as spf:
        # NOBODY first: it matches no mechanism, so every term (and lookup) is evaluated.
        for ip in [NOBODY, *ips]:
            result, _code, explanation = spf.query(i=ip, s=sender, h=domain).check()
            if result == "temperror":
                problem = explanation.removeprefix("SPF Temporary Error: ").removeprefix("DNS ")
                return [_unchecked("spf", what, problem)]
            if result == "permerror":
                problem = explanation.removeprefix("SPF Permanent Error: ")
                message = f"The SPF record of {domain} is broken: {problem}. Record: {record!r}"
                return [Finding("spf", "fail", message, _spf_error_fix(domain, record, problem))]
            if ip == NOBODY:
                if result == "pass":
                    message = f"The SPF record of {domain} lets any server send: {record!r}"
                    fix = "End the record with -all (or ~all), never +all, and list only your "
                    fix += "relay's addresses and providers."
                    findings.append(Finding("spf", "warn", message, fix))
            elif result == "pass":
                findings.append(Finding("spf", "pass", f"SPF of {domain} allows {ip} to send."))
            else:
                message = (
                    f"SPF of {domain} does not allow {ip} to send (result: {result}), so "
                    f"receivers may reject or junk its mail. Record: {record!r}"
                )
                fix = (
                    f"Add {'ip6' if ':' in ip else 'ip4'}:{ip} to the SPF record at {domain}, "
                    "before its last term (or the include: your relay provider documents)."
                )
                findings.append(Finding("spf", "fail", message, fix))
    if not ips:
        message = (
            f"{domain} has a well-formed SPF record ({record!r}), but it could only be "
            "checked for presence and syntax: no sending addresses are configured."
        )
        fix = (
            "Ask your relay provider which addresses it sends from, list them in [doctor] "
            "sending_ips, and run newsletter doctor again."
        )
        findings.append(Finding("spf", "warn", message, fix))
    return findings


# -- DKIM --------------------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    """``tag=value; ...`` (DKIM and DMARC records); whitespace inside values dropped."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), "".join(value.split()))
    return tags


def _spki() -> tuple[Any, Any]:
    """How keys are compared: DER SubjectPublicKeyInfo, what an RSA p= holds."""
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def _dkim_record(key: PublicKeyTypes) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_bytes(*_spki())
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _published_key(tags: dict[str, str]) -> PublicKeyTypes:
    """The key in a DKIM record's p= (ValueError when it is not one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        data = base64.b64decode(tags["p"], validate=True)
    except binascii.Error:
        raise ValueError("its p= value is not valid base64") from None
    if tags.get("k", "rsa").lower() == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        return serialization.load_der_public_key(data)
    except ValueError:
        # Some publish the bare PKCS#1 RSAPublicKey, which verifiers accept too.
        body = base64.encodebytes(data).decode()
        pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}-----END RSA PUBLIC KEY-----\n"
        return serialization.load_pem_public_key(pem.encode())


def _our_key(path: Path) -> PublicKeyTypes:
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"[dkim] key_file {path}: cannot read it: {exc.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, password=None).public_key()
    except (ValueError, TypeError):
        raise ValueError(f"[dkim] key_file {path}: not an unencrypted PEM private key") from None


def check_dkim(lookups: Lookups, settings: Settings, from_domain: str) -> list[Finding]:
    dkim = settings.dkim
    if not dkim.domain:
        message = (
            "newsletter does not sign its mail with DKIM ([dkim] domain is empty). Unless "
            "your relay signs it for you, receivers see it unsigned, and Gmail and Yahoo "
            "require DKIM from bulk senders."
        )
        fix = (
            f"Create a key pair (newsletter dkim keygen --selector s1 --domain {from_domain}), "
            "set [dkim] domain, selector and key_file, and publish the TXT record it prints."
        )
        return [Finding("dkim", "warn", message, fix)]
    if not dkim.selector or dkim.key_file is None:
        missing = "selector" if not dkim.selector else "key_file"
        message = f"[dkim] domain is set but [dkim] {missing} is not."
        return [Finding("dkim", "fail", message, f"Set [dkim] {missing} in config.toml.")]
    name = f"{dkim.selector}._domainkey.{dkim.domain}"
    try:
        ours = _our_key(dkim.key_file)
    except ValueError as exc:
        fix = "Set [dkim] key_file to the selector's PEM private key."
        return [Finding("dkim", "fail", f"{exc}.", fix)]
    record = _dkim_record(ours)
    publish = f"Publish this TXT record at {name}: {record}"
    if len(record) > 255:
        # DNS strings hold 255 bytes; a 2048-bit key needs two, which dashboards hide.
        publish += " (in a zone file, as quoted strings of at most 255 characters each)"
    try:
        records = [r for r in lookups.texts(name) if "p" in _tags(r)]
    except Unanswered as exc:
        return [_unchecked("dkim", f"The DKIM key at {name}", exc)]
    if not records:
        message = f"No DKIM key is published at {name}, so receivers cannot verify our signatures."
        return [Finding("dkim", "fail", message, publish)]
    tags = _tags(records[0])
    if not tags["p"]:
        return [Finding("dkim", "fail", f"The DKIM key at {name} is revoked (empty p=).", publish)]
    try:
        published = _published_key(tags)
    except ValueError as exc:
        problem = str(exc) if "p=" in str(exc) else "its p= value is not a public key"
        message = f"The DKIM record at {name} is unusable: {problem}."
        return [Finding("dkim", "fail", message, publish)]
    if published.public_bytes(*_spki()) != ours.public_bytes(*_spki()):
        message = (
            f"The DKIM key published at {name} does not match our private key "
            f"({dkim.key_file}): every signature we make would fail to verify."
        )
        fix = (
            f"{publish} (replacing the old one), or set [dkim] key_file to the private key "
            "that belongs to the published record."
        )
        return [Finding("dkim", "fail", message, fix)]
    return [Finding("dkim", "pass", f"The DKIM key at {name} matches our private key.")]


# -- DMARC and alignment -----------------------------------------------------------------------


def _find_dmarc(lookups: Lookups, domain: str) -> tuple[str, list[str]]:
    """The DMARC records that govern ``domain``: its own, else its nearest parent's."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        name = ".".join(labels[start:])
        records = [t for t in lookups.texts(f"_dmarc.{name}") if t.startswith("v=DMARC1")]
        if records:
            return name, records
    return domain, []


def _dmarc_policy(from_domain: str, owner: str, records: list[str]) -> Finding:
    at = f"_dmarc.{from_domain}"
    where = at if owner == from_domain else f"_dmarc.{owner} (which covers {from_domain})"
    reports = f"rua=mailto:dmarc-reports@{from_domain}"
    if not records:
        message = (
            f"{from_domain} publishes no DMARC record: Gmail and Yahoo require one from "
            "bulk senders."
        )
        fix = (
            f"Publish this TXT record at {at}: v=DMARC1; p=none; {reports} (start with "
            "p=none, read the reports, then move to p=quarantine)."
        )
        return Finding("dmarc", "fail", message, fix)
    if len(records) > 1:
        message = f"{where} has {len(records)} DMARC records, so receivers ignore them all."
        return Finding("dmarc", "fail", message, f"Keep exactly one v=DMARC1 record at {at}.")
    tags = _tags(records[0])
    # A parent's record governs a subdomain with its sp= policy, if it has one.
    policy = tags.get("sp", tags.get("p", "")) if owner != from_domain else tags.get("p", "")
    policy = policy.lower()
    if policy not in ("none", "quarantine", "reject"):
        message = f"The DMARC record at {where} has no valid policy: {records[0]!r}"
        fix = f"Publish this TXT record at {at}: v=DMARC1; p=quarantine; {reports}"
        return Finding("dmarc", "fail", message, fix)
    if policy == "none":
        message = (
            f"The DMARC policy at {where} is p=none: receivers only watch, and mail forged "
            "in your name still reaches inboxes."
        )
        fix = (
            "Once the DMARC reports (rua=) show that all your real mail passes, change the "
            f"policy at {at} to p=quarantine, later p=reject, e.g. v=DMARC1; p=quarantine; "
            + (f"rua={tags['rua']}" if tags.get("rua") else reports)
        )
        return Finding("dmarc", "warn", message, fix)
    return Finding("dmarc", "pass", f"The DMARC policy at {where} is p={policy}.")


def check_dmarc(
    lookups: Lookups, from_domain: str, dkim_domain: str, return_path_domain: str
) -> list[Finding]:
    try:
        owner, records = _find_dmarc(lookups, from_domain)
    except Unanswered as exc:
        findings = [_unchecked("dmarc", f"DMARC for {from_domain}", exc)]
        records = []
    else:
        findings = [_dmarc_policy(from_domain, owner, records)]
    tags = _tags(records[0]) if len(records) == 1 else {}
    return findings + _alignment(tags, from_domain, dkim_domain, return_path_domain)


def _alignment(
    tags: dict[str, str], from_domain: str, dkim_domain: str, return_path_domain: str
) -> list[Finding]:
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    strict = {"s": " (the DMARC record asks for strict alignment: the very same domain)"}
    findings: list[Finding] = []
    dkim_ok = bool(dkim_domain) and aligned(dkim_domain, from_domain, strict=adkim == "s")
    if not dkim_domain:
        message = (
            "newsletter does not sign, so DMARC can only pass on a signature your relay "
            "adds, or on SPF."
        )
        fix = f'Sign with DKIM as {from_domain}: set [dkim] domain = "{from_domain}".'
        findings.append(Finding("dkim-alignment", "warn", message, fix))
    elif dkim_ok:
        message = f"DKIM signs as d={dkim_domain}, aligned with the From domain {from_domain}."
        findings.append(Finding("dkim-alignment", "pass", message))
    else:
        message = (
            f"DKIM signs as d={dkim_domain}, which is not aligned with the From domain "
            f"{from_domain}{strict.get(adkim, '')}: DMARC ignores that signature."
        )
        fix = (
            f"Set [dkim] domain to {from_domain} and publish the selector's key under it "
            "(newsletter doctor prints the record)."
        )
        findings.append(Finding("dkim-alignment", "fail", message, fix))
    if aligned(return_path_domain, from_domain, strict=aspf == "s"):
        message = (
            f"The Return-Path domain {return_path_domain} is aligned with the From domain "
            f"{from_domain}."
        )
        findings.append(Finding("spf-alignment", "pass", message))
        return findings
    message = (
        f"The Return-Path domain {return_path_domain} is not aligned with the From domain "
        f"{from_domain}{strict.get(aspf, '')}, so SPF cannot make DMARC pass"
    )
    message += (
        "; an aligned DKIM signature still can."
        if dkim_ok
        else ", and DKIM does not either: DMARC fails for every message."
    )
    fix = (
        f"Set [smtp] return_path to an address at {from_domain} or a subdomain of it "
        f"(e.g. bounces@{from_domain})."
    )
    findings.append(Finding("spf-alignment", "warn" if dkim_ok else "fail", message, fix))
    return findings


# -- MX for the Return-Path domain -------------------------------------------------------------


def _host(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True)


def check_mx(lookups: Lookups, domain: str) -> list[Finding]:
    fix = (
        f"Publish an MX record for {domain} pointing at the server that receives your "
        f"bounces (e.g. {domain}. MX 10 mx.{organisational_domain(domain)}.), or set [smtp] "
        "return_path to an address at a domain that receives mail."
    )
    addresses: list[Any] = []
    try:
        answer = lookups.resolve(domain, "MX")
        mx = sorted((r.preference, _host(r.exchange)) for r in answer.records)
        if answer.exists and not mx:
            # RFC 5321 5.1: with no MX, mail goes to the domain's own address.
            addresses = lookups.resolve(domain, "A").records
            addresses += lookups.resolve(domain, "AAAA").records
    except Unanswered as exc:
        return [_unchecked("return-path-mx", f"The MX of {domain}", exc)]
    if not answer.exists:
        message = (
            f"The Return-Path domain {domain} does not exist in DNS: bounces cannot come "
            "back, and receivers refuse such mail."
        )
        return [Finding("return-path-mx", "fail", message, fix)]
    if [host for _, host in mx] == ["."]:
        message = (
            f"The Return-Path domain {domain} publishes a null MX (RFC 7505): it receives "
            "no mail, so bounces are lost."
        )
        return [Finding("return-path-mx", "fail", message, fix)]
    if mx:
        hosts = ", ".join(f"{host} (preference {pref})" for pref, host in mx[:3])
        message = f"The Return-Path domain {domain} receives mail at {hosts}."
        return [Finding("return-path-mx", "pass", message)]
    if addresses:
        message = (
            f"The Return-Path domain {domain} has no MX record; bounces go to its address "
            f"{addresses[0].address} (the RFC 5321 fallback), which works only if that "
            "server accepts mail."
        )
        return [Finding("return-path-mx", "warn", message, fix)]
    message = (
        f"The Return-Path domain {domain} has no MX and no address record: bounces cannot "
        "come back, and many receivers refuse mail whose Return-Path cannot receive mail."
    )
    return [Finding("return-path-mx", "fail", message, fix)]


# -- all together ------------------------------------------------------------------------------


def _domain(address: str) -> str:
    return address.rpartition("@")[2].rstrip(".").lower()


def run_doctor(
    settings: Settings,
    *,
    nameservers: Sequence[str] | None = None,
    timeout: float | None = None,
    on_finding: Callable[[Finding], None] | None = None,
) -> DoctorReport:
    """Check the From domain's DNS; ``nameservers`` overrides ``[doctor] nameservers``."""
    servers = [parse_nameserver(n) for n in (nameservers or settings.doctor.nameservers)]
    lookups = Lookups(servers, timeout or settings.doctor.timeout)
    from_domain = _domain(settings.newsletter.from_address)
    sender = settings.envelope_sender
    return_path_domain = _domain(sender)
    report = DoctorReport(from_domain, return_path_domain, lookups.names)
    steps: list[Callable[[], list[Finding]]] = [
        lambda: check_spf(lookups, return_path_domain, sender, settings.doctor.sending_ips),
        lambda: check_dkim(lookups, settings, from_domain),
        lambda: check_dmarc(lookups, from_domain, settings.dkim.domain.lower(), return_path_domain),
        lambda: check_mx(lookups, return_path_domain),
    ]
    for step in steps:
        for finding in step():
            report.findings.append(finding)
            if on_finding:
                on_finding(finding)
    return report
