"""`newsletter doctor` against a real DNS server on loopback (dnslib), good and broken zones.

Every lookup goes to that server: a guard on dnspython's UDP and TCP queries refuses and
records any other destination, and each test asserts nothing else was asked.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.query
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnslib import MX, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from newsletter.cli import main
from newsletter.doctor import DoctorReport, Finding, parse_nameserver, run_doctor
from newsletter.errors import ConfigError
from newsletter.settings import DkimSettings, DoctorSettings, Settings, load_settings

DOMAIN = "example.org"
RELAY_IP = "192.0.2.10"
LOOPBACK = "127.0.0.1"

Zone = dict[str, Any]
#: A zone entry whose lookups the server answers with SERVFAIL.
SERVFAIL = "SERVFAIL"


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from ``zone``: a missing name is NXDOMAIN, a missing type an empty answer."""

    def __init__(self) -> None:
        self.zone: Zone = {}

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        records = self.zone.get(name)
        if records == SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, rdata in records:
            if rtype == qtype:
                reply.add_answer(RR(name, getattr(QTYPE, rtype), rdata=rdata, ttl=60))
        return reply


def txt(text: str) -> tuple[str, TXT]:
    """A TXT record, split into strings of 255 characters as DNS requires."""
    return "TXT", TXT([text[i : i + 255] for i in range(0, len(text), 255)])


def dkim_txt(key: Any, k: str = "rsa") -> str:
    public = key.public_key()
    if k == "ed25519":
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- the server, the guard, the keys ------------------------------------------------------------


class LocalDns:
    """dnslib on 127.0.0.1: UDP and TCP on one free port (TCP for truncated answers)."""

    def __init__(self) -> None:
        self.resolver = ZoneResolver()
        logger = DNSLogger(logf=lambda _: None)
        for _ in range(20):
            udp = DNSServer(self.resolver, address=LOOPBACK, port=0, logger=logger)
            self.port = int(udp.server.server_address[1])
            try:
                tcp = DNSServer(self.resolver, LOOPBACK, self.port, tcp=True, logger=logger)
            except OSError:  # the TCP port of that number is taken: try another
                udp.server.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for both UDP and TCP")
        self.servers = [udp, tcp]
        for server in self.servers:
            server.start_thread()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def close(self) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()


@pytest.fixture(scope="module")
def local_dns() -> Iterator[LocalDns]:
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse, and record, any DNS query to an address other than 127.0.0.1."""
    asked: list[str] = []

    def guard(real: Callable[..., Any]) -> Callable[..., Any]:
        def query(q: Any, where: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(where)
            if where != LOOPBACK:
                raise OSError(f"test tried to reach {where}")
            return real(q, where, *args, **kwargs)

        return query

    monkeypatch.setattr(dns.query, "udp", guard(dns.query.udp))
    monkeypatch.setattr(dns.query, "tcp", guard(dns.query.tcp))
    yield asked
    assert set(asked) <= {LOOPBACK}, asked


@pytest.fixture(scope="module")
def our_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def good_zone(key: Any) -> Zone:
    return {
        DOMAIN: [
            txt(f"v=spf1 ip4:{RELAY_IP} include:_spf.provider.example -all"),
            txt("google-site-verification=unrelated"),
            ("MX", MX("mx.example.org", 10)),
        ],
        "_spf.provider.example": [txt("v=spf1 ip4:198.51.100.0/24 -all")],
        "mx.example.org": [("A", A("192.0.2.25"))],
        "s1._domainkey.example.org": [txt(dkim_txt(key))],
        "_dmarc.example.org": [txt("v=DMARC1; p=reject; rua=mailto:dmarc@example.org")],
    }


@pytest.fixture
def zone(local_dns: LocalDns, our_key: rsa.RSAPrivateKey) -> Zone:
    """The served zone, good to begin with; a test breaks what it tests."""
    local_dns.resolver.zone = good_zone(our_key)
    return local_dns.resolver.zone


@pytest.fixture
def doctor_settings(
    settings: Settings, project: Path, local_dns: LocalDns, our_key: rsa.RSAPrivateKey
) -> Settings:
    (project / "dkim.pem").write_bytes(pem(our_key))
    settings.dkim = DkimSettings(domain=DOMAIN, selector="s1", key_file=project / "dkim.pem")
    settings.doctor = DoctorSettings(
        sending_ips=[RELAY_IP], nameservers=[local_dns.address], timeout=2
    )
    return settings


def by_check(report: DoctorReport, check: str) -> list[Finding]:
    found = [f for f in report.findings if f.check == check]
    assert found, f"no {check} finding in {report.findings}"
    return found


def one(report: DoctorReport, check: str) -> Finding:
    (finding,) = by_check(report, check)
    return finding


def statuses(report: DoctorReport) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


# -- the good domain ----------------------------------------------------------------------------


def test_a_well_configured_domain_passes(
    zone: Zone, doctor_settings: Settings, local_dns: LocalDns, loopback_only: list[str]
) -> None:
    report = run_doctor(doctor_settings)
    assert [f.status for f in report.findings] == ["pass"] * len(report.findings), report
    assert set(statuses(report)) == {
        "spf", "dkim", "dmarc", "dkim-alignment", "spf-alignment", "return-path-mx"
    }  # fmt: skip
    assert report.exit_code == 0
    assert report.nameservers == [local_dns.address]
    assert loopback_only and set(loopback_only) == {LOOPBACK}
    assert "allows 192.0.2.10" in one(report, "spf").message
    assert "mx.example.org (preference 10)" in one(report, "return-path-mx").message
    assert all(f.fix == "" for f in report.findings)


def test_spf_passes_through_an_include(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.doctor.sending_ips = ["198.51.100.7", "2001:db8::7"]
    zone[DOMAIN][0] = txt("v=spf1 include:_spf.provider.example ip6:2001:db8::/32 -all")
    report = run_doctor(doctor_settings)
    assert [f.status for f in by_check(report, "spf")] == ["pass", "pass"]


def test_pyspf_gets_its_own_resolver_back(zone: Zone, doctor_settings: Settings) -> None:
    import spf

    before = spf.DNSLookup
    run_doctor(doctor_settings)
    assert spf.DNSLookup is before


def test_the_command_line_nameserver_wins_over_the_config(
    zone: Zone, doctor_settings: Settings, local_dns: LocalDns
) -> None:
    doctor_settings.doctor.nameservers = ["192.0.2.53"]  # never asked: the guard would say
    report = run_doctor(doctor_settings, nameservers=[local_dns.address])
    assert report.nameservers == [local_dns.address]
    assert report.exit_code == 0


# -- SPF ------------------------------------------------------------------------------------------


def test_no_spf_record(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN] = [r for r in zone[DOMAIN] if r[0] != "TXT"]
    finding = one(run_doctor(doctor_settings), "spf")
    assert finding.status == "fail"
    assert "publishes no SPF record" in finding.message
    assert finding.fix == "Publish this TXT record at example.org: v=spf1 ip4:192.0.2.10 -all"


@pytest.mark.parametrize("ending", ["-all", "~all", "?all"])
def test_spf_that_does_not_allow_the_relay(
    zone: Zone, doctor_settings: Settings, ending: str
) -> None:
    zone[DOMAIN][0] = txt(f"v=spf1 ip4:198.51.100.7 {ending}")
    report = run_doctor(doctor_settings)
    finding = one(report, "spf")
    assert finding.status == "fail"
    assert "does not allow 192.0.2.10 to send" in finding.message
    assert "Add ip4:192.0.2.10 to the SPF record at example.org" in finding.fix
    assert report.exit_code == 1


def test_spf_with_too_many_lookups(zone: Zone, doctor_settings: Settings) -> None:
    includes = " ".join(f"include:n{n}.example.org" for n in range(11))
    zone[DOMAIN][0] = txt(f"v=spf1 {includes} ip4:{RELAY_IP} -all")
    for n in range(11):
        zone[f"n{n}.example.org"] = [txt(f"v=spf1 ip4:198.51.100.{n} -all")]
    finding = one(run_doctor(doctor_settings), "spf")
    assert finding.status == "fail"
    assert "Too many DNS lookups" in finding.message
    assert "more than 10 DNS lookups" in finding.fix


def test_spf_with_a_syntax_error(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN][0] = txt(f"v=spf1 ip4:{RELAY_IP} moo -all")
    finding = one(run_doctor(doctor_settings), "spf")
    assert finding.status == "fail"
    assert "moo" in finding.message
    assert finding.fix.startswith("Correct the SPF record at example.org")


def test_a_record_that_only_looks_like_spf_is_none(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN][0] = txt(f"v=spf10 ip4:{RELAY_IP} -all")
    assert "publishes no SPF record" in one(run_doctor(doctor_settings), "spf").message


def test_two_spf_records(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN].append(txt("v=spf1 -all"))
    finding = one(run_doctor(doctor_settings), "spf")
    assert finding.status == "fail"
    assert "Keep exactly one TXT record starting with v=spf1" in finding.fix


def test_spf_that_lets_anybody_send_is_a_warning(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN][0] = txt("v=spf1 +all")
    spf = by_check(run_doctor(doctor_settings), "spf")
    assert [f.status for f in spf] == ["warn", "pass"]
    assert "lets any server send" in spf[0].message
    assert "-all" in spf[0].fix


def test_without_sending_ips_spf_is_only_checked_for_syntax(
    zone: Zone, doctor_settings: Settings
) -> None:
    doctor_settings.doctor.sending_ips = []
    report = run_doctor(doctor_settings)
    finding = one(report, "spf")
    assert finding.status == "warn"
    assert "only be checked for presence and syntax" in finding.message
    assert "[doctor] sending_ips" in finding.fix
    assert report.exit_code == 0  # warnings alone


def test_spf_is_checked_on_the_return_path_domain(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.smtp.return_path = "bounces@news.example.org"
    zone["news.example.org"] = [("MX", MX("mx.example.org", 10))]  # no SPF there
    report = run_doctor(doctor_settings)
    assert report.return_path_domain == "news.example.org"
    finding = one(report, "spf")
    assert finding.status == "fail"
    assert "Publish this TXT record at news.example.org" in finding.fix
    assert one(report, "spf-alignment").status == "pass"  # relaxed: same organisation


# -- DKIM -----------------------------------------------------------------------------------------


def test_missing_dkim_key(
    zone: Zone, doctor_settings: Settings, our_key: rsa.RSAPrivateKey
) -> None:
    del zone["s1._domainkey.example.org"]
    finding = one(run_doctor(doctor_settings), "dkim")
    assert finding.status == "fail"
    assert "No DKIM key is published at s1._domainkey.example.org" in finding.message
    record = dkim_txt(our_key)
    assert finding.fix.startswith(f"Publish this TXT record at s1._domainkey.example.org: {record}")
    assert "quoted strings of at most 255 characters" in finding.fix  # 2048 bits: 392 characters


def test_dkim_key_that_does_not_match_ours(
    zone: Zone, doctor_settings: Settings, our_key: rsa.RSAPrivateKey, other_key: Any
) -> None:
    zone["s1._domainkey.example.org"] = [txt(dkim_txt(other_key))]
    finding = one(run_doctor(doctor_settings), "dkim")
    assert finding.status == "fail"
    assert "does not match our private key" in finding.message
    assert dkim_txt(our_key) in finding.fix
    assert "or set [dkim] key_file" in finding.fix


def test_revoked_and_garbled_dkim_keys(zone: Zone, doctor_settings: Settings) -> None:
    zone["s1._domainkey.example.org"] = [txt("v=DKIM1; p=")]
    assert "revoked" in one(run_doctor(doctor_settings), "dkim").message
    zone["s1._domainkey.example.org"] = [txt("v=DKIM1; p=not*base64")]
    assert "not valid base64" in one(run_doctor(doctor_settings), "dkim").message
    zone["s1._domainkey.example.org"] = [txt("v=DKIM1; p=" + base64.b64encode(b"x" * 40).decode())]
    assert "not a public key" in one(run_doctor(doctor_settings), "dkim").message


def test_an_ed25519_key_and_a_pkcs1_record_match(
    zone: Zone, doctor_settings: Settings, project: Path, our_key: rsa.RSAPrivateKey
) -> None:
    pkcs1 = our_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    zone["s1._domainkey.example.org"] = [txt("p=" + base64.b64encode(pkcs1).decode())]
    assert one(run_doctor(doctor_settings), "dkim").status == "pass"

    key = ed25519.Ed25519PrivateKey.generate()
    (project / "dkim.pem").write_bytes(pem(key))
    zone["s1._domainkey.example.org"] = [txt(dkim_txt(key, "ed25519"))]
    assert one(run_doctor(doctor_settings), "dkim").status == "pass"


def test_dkim_key_file_that_is_not_a_key(
    zone: Zone, doctor_settings: Settings, project: Path
) -> None:
    (project / "dkim.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    finding = one(run_doctor(doctor_settings), "dkim")
    assert finding.status == "fail"
    assert "not an unencrypted PEM private key" in finding.message
    assert "dkim.pem" in finding.message


def test_no_dkim_configured_is_a_warning(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.dkim = DkimSettings()
    report = run_doctor(doctor_settings)
    assert one(report, "dkim").status == "warn"
    assert "newsletter dkim keygen --selector s1 --domain example.org" in one(report, "dkim").fix
    assert one(report, "dkim-alignment").status == "warn"
    assert report.exit_code == 0


# -- DMARC and alignment --------------------------------------------------------------------------


def test_no_dmarc_record(zone: Zone, doctor_settings: Settings) -> None:
    del zone["_dmarc.example.org"]
    report = run_doctor(doctor_settings)
    finding = one(report, "dmarc")
    assert finding.status == "fail"
    assert "publishes no DMARC record" in finding.message
    assert "Publish this TXT record at _dmarc.example.org: v=DMARC1; p=none;" in finding.fix
    assert report.exit_code == 1


def test_dmarc_p_none_is_a_warning_with_the_fix(zone: Zone, doctor_settings: Settings) -> None:
    zone["_dmarc.example.org"] = [txt("v=DMARC1; p=none; rua=mailto:reports@example.org")]
    report = run_doctor(doctor_settings)
    finding = one(report, "dmarc")
    assert finding.status == "warn"
    assert "p=none" in finding.message
    assert "p=quarantine" in finding.fix and "rua=mailto:reports@example.org" in finding.fix
    assert report.exit_code == 0


def test_dmarc_without_a_valid_policy(zone: Zone, doctor_settings: Settings) -> None:
    zone["_dmarc.example.org"] = [txt("v=DMARC1; p=maybe")]
    finding = one(run_doctor(doctor_settings), "dmarc")
    assert finding.status == "fail"
    assert "no valid policy" in finding.message


def test_dmarc_of_a_subdomain_comes_from_its_parent(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.newsletter.from_address = "news@news.example.org"
    zone["news.example.org"] = [
        txt(f"v=spf1 ip4:{RELAY_IP} -all"),
        ("MX", MX("mx.example.org", 10)),
    ]
    zone["_dmarc.example.org"] = [txt("v=DMARC1; p=reject; sp=none")]
    report = run_doctor(doctor_settings)
    finding = one(report, "dmarc")
    assert finding.status == "warn"  # sp=none governs the subdomain
    assert "_dmarc.example.org (which covers news.example.org)" in finding.message
    assert one(report, "dkim-alignment").status == "pass"  # d=example.org, relaxed


def test_misaligned_dkim_domain(
    zone: Zone, doctor_settings: Settings, our_key: rsa.RSAPrivateKey
) -> None:
    doctor_settings.dkim.domain = "esp.example.net"
    zone["s1._domainkey.esp.example.net"] = [txt(dkim_txt(our_key))]
    report = run_doctor(doctor_settings)
    assert one(report, "dkim").status == "pass"  # the key is right, the domain is not
    finding = one(report, "dkim-alignment")
    assert finding.status == "fail"
    assert "d=esp.example.net, which is not aligned with the From domain example.org" in (
        finding.message
    )
    assert "Set [dkim] domain to example.org" in finding.fix
    assert report.exit_code == 1


def test_strict_dkim_alignment_wants_the_same_domain(
    zone: Zone, doctor_settings: Settings, our_key: rsa.RSAPrivateKey
) -> None:
    doctor_settings.dkim.domain = "mail.example.org"
    zone["s1._domainkey.mail.example.org"] = [txt(dkim_txt(our_key))]
    zone["_dmarc.example.org"] = [txt("v=DMARC1; p=reject; adkim=s")]
    finding = one(run_doctor(doctor_settings), "dkim-alignment")
    assert finding.status == "fail"
    assert "strict alignment" in finding.message


def test_misaligned_return_path(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.smtp.return_path = "bounces@bounces.example.net"
    zone["bounces.example.net"] = [txt(f"v=spf1 ip4:{RELAY_IP} -all"), ("MX", MX("mx.example.net"))]
    report = run_doctor(doctor_settings)
    finding = one(report, "spf-alignment")
    assert finding.status == "warn"  # DKIM is aligned, so DMARC can still pass
    assert "bounces.example.net is not aligned" in finding.message
    assert "Set [smtp] return_path to an address at example.org" in finding.fix

    doctor_settings.dkim = DkimSettings()
    assert one(run_doctor(doctor_settings), "spf-alignment").status == "fail"


# -- MX for the Return-Path domain ----------------------------------------------------------------


def test_no_mx_for_the_return_path_domain(zone: Zone, doctor_settings: Settings) -> None:
    doctor_settings.smtp.return_path = "bounces@bounces.example.org"
    zone["bounces.example.org"] = [txt(f"v=spf1 ip4:{RELAY_IP} -all")]
    report = run_doctor(doctor_settings)
    finding = one(report, "return-path-mx")
    assert finding.status == "fail"
    assert "bounces.example.org has no MX and no address record" in finding.message
    assert "Publish an MX record for bounces.example.org" in finding.fix
    assert report.exit_code == 1


def test_an_address_record_is_the_mx_fallback(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN] = [r for r in zone[DOMAIN] if r[0] != "MX"] + [("A", A("192.0.2.80"))]
    finding = one(run_doctor(doctor_settings), "return-path-mx")
    assert finding.status == "warn"
    assert "192.0.2.80" in finding.message and "RFC 5321" in finding.message


def test_null_mx_and_missing_domain(zone: Zone, doctor_settings: Settings) -> None:
    zone[DOMAIN] = [r for r in zone[DOMAIN] if r[0] != "MX"] + [("MX", MX(".", 0))]
    finding = one(run_doctor(doctor_settings), "return-path-mx")
    assert finding.status == "fail" and "null MX" in finding.message

    doctor_settings.smtp.return_path = "bounces@gone.example.org"
    finding = one(run_doctor(doctor_settings), "return-path-mx")
    assert finding.status == "fail" and "does not exist in DNS" in finding.message


# -- DNS that does not answer ---------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP socket on loopback that reads nothing and answers nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOOPBACK, 0))
        yield int(sink.getsockname()[1])


def test_dns_that_times_out(doctor_settings: Settings, silent_port: int) -> None:
    started = time.monotonic()
    report = run_doctor(doctor_settings, nameservers=[f"{LOOPBACK}:{silent_port}"], timeout=0.5)
    elapsed = time.monotonic() - started
    assert report.exit_code == 1
    assert {f.status for f in report.findings if "alignment" not in f.check} == {"fail"}
    spf = one(report, "spf")
    assert f"DNS did not answer: no reply from 127.0.0.1:{silent_port} within 0.5 s" in (
        spf.message
    )
    assert "Check that the DNS server answers" in spf.fix
    # Once silent, later lookups say so at once instead of each waiting out the timeout.
    assert elapsed < 5, elapsed
    assert "could not be checked" in one(report, "return-path-mx").message


def test_dns_that_fails(zone: Zone, doctor_settings: Settings, local_dns: LocalDns) -> None:
    zone["_dmarc.example.org"] = SERVFAIL
    report = run_doctor(doctor_settings)
    finding = one(report, "dmarc")
    assert finding.status == "fail"
    assert f"could not answer TXT _dmarc.example.org: {local_dns.address} failed" in (
        finding.message
    )
    assert one(report, "spf").status == "pass"  # one failing name does not silence the rest


def test_a_machine_without_a_resolver_is_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_configuration(self: Any, filename: Any = None) -> None:
        raise dns.resolver.NoResolverConfiguration("no nameservers")

    # Empty [doctor] nameservers: the system's resolver, whose configuration is missing.
    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", no_configuration)
    assert main(["doctor", "--config", str(project / "config.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no DNS resolver configured" in err[0], err
    assert "--nameserver" in err[0]


# -- settings and the nameserver syntax -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        (" 192.0.2.53:53 ", ("192.0.2.53", 53)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
    ],
)
def test_nameserver_syntax(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ns.example.org:53", "not an IP address"),
        ("127.0.0.1:0", "port"),
        ("127.0.0.1:70000", "port"),
        ("127.0.0.1:abc", "port"),
        ("127.0.0.1:\uff15\uff13", "port"),  # full-width digits
        ("[::1", "not an IP address"),
        ("[::1]x53", "not an IP address"),
        ("", "not an IP address"),
    ],
)
def test_bad_nameserver_syntax(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_nameserver(text)


def write_doctor_config(project: Path, body: str) -> Path:
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    start = text.index("[doctor]\n")
    end = text.index("\n[", start + 1)
    config.write_text(text[:start] + "[doctor]\n" + body + text[end:], encoding="utf-8")
    return config


def test_settings_refuse_bad_doctor_keys(project: Path) -> None:
    config = write_doctor_config(project, 'sending_ips = ["192.0.2.300"]\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[doctor\] sending_ips: .*192.0.2.300"):
        load_settings(config)
    config = write_doctor_config(project, 'nameservers = ["dns.example.org"]\n')
    with pytest.raises(ConfigError, match=r"\[doctor\] nameservers: .*dns.example.org"):
        load_settings(config)
    config = write_doctor_config(project, 'sending_ips = ["2001:DB8::1"]\ntimeout = 0.5\n')
    assert load_settings(config).doctor.sending_ips == ["2001:db8::1"]


# -- the command line ----------------------------------------------------------------------------


def run_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "doctor", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def cli_project(project: Path, local_dns: LocalDns, our_key: rsa.RSAPrivateKey) -> Path:
    (project / "dkim.pem").write_bytes(pem(our_key))
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('domain = ""', f'domain = "{DOMAIN}"', 1)
    text = text.replace('selector = ""', 'selector = "s1"\nkey_file = "dkim.pem"', 1)
    config.write_text(text, encoding="utf-8")
    write_doctor_config(
        project,
        f'sending_ips = ["{RELAY_IP}"]\nnameservers = ["{local_dns.address}"]\ntimeout = 2\n',
    )
    return project


def test_cli_good_domain_exits_0(zone: Zone, cli_project: Path, local_dns: LocalDns) -> None:
    result = run_cli(cli_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "Checking the DNS of example.org" in result.stdout
    assert "pass  spf: SPF of example.org allows 192.0.2.10 to send." in result.stdout
    assert f"0 failures, 0 warnings, 6 passed (asked {local_dns.address})" in result.stdout


def test_cli_failure_exits_1_with_the_fix(zone: Zone, cli_project: Path) -> None:
    del zone["_dmarc.example.org"]
    result = run_cli(cli_project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "fail  dmarc: example.org publishes no DMARC record" in result.stdout
    assert "      fix: Publish this TXT record at _dmarc.example.org" in result.stdout
    assert "1 failure, 0 warnings" in result.stdout


def test_cli_warnings_alone_exit_0(zone: Zone, cli_project: Path) -> None:
    zone["_dmarc.example.org"] = [txt("v=DMARC1; p=none")]
    result = run_cli(cli_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warn  dmarc:" in result.stdout
    assert "0 failures, 1 warning, 5 passed" in result.stdout


def test_cli_json(zone: Zone, cli_project: Path, local_dns: LocalDns) -> None:
    zone[DOMAIN][0] = txt("v=spf1 ip4:198.51.100.7 -all")
    result = run_cli(cli_project, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["domain"] == DOMAIN and report["exit_code"] == 1
    assert report["nameservers"] == [local_dns.address]
    spf = [f for f in report["findings"] if f["check"] == "spf"]
    assert spf[0]["status"] == "fail" and "ip4:192.0.2.10" in spf[0]["fix"]


def test_cli_dns_timeout_is_a_clear_line(cli_project: Path, silent_port: int) -> None:
    write_doctor_config(cli_project, f'sending_ips = ["{RELAY_IP}"]\ntimeout = 0.5\n')
    result = run_cli(cli_project, "--nameserver", f"{LOOPBACK}:{silent_port}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"DNS did not answer: no reply from 127.0.0.1:{silent_port} within 0.5 s" in (
        result.stdout
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--nameserver", "dns.example.org"), ("--nameserver", "dns.example.org")),
        (("--nameserver", "127.0.0.1:99999"), ("--nameserver", "port")),
        (("--nameserver",), ("--nameserver",)),
    ],
)
def test_cli_bad_option_is_one_line(
    cli_project: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    result = run_cli(cli_project, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_help_names_the_exit_codes(cli_project: Path) -> None:
    result = run_cli(cli_project, "--help")
    assert result.returncode == 0
    assert "warnings alone still exit 0" in " ".join(result.stdout.split())
