"""DKIM: signatures that dkimpy verifies, over-signing, `dkim keygen`, and the warnings.

Every signature is checked with dkimpy's own ``dkim.verify``, given the public key by its
``dnsfunc`` argument (no DNS, no network).
"""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter import load_settings, open_issue
from newsletter.checks import check_issue
from newsletter.cli import main
from newsletter.errors import ConfigError, InputError
from newsletter.mailauth import aligned, auth_warnings, create_key, organisational_domain
from newsletter.render.message import Recipient
from newsletter.render.signing import (
    OVERSIGNED,
    DkimSigner,
    dkim_signer,
    load_private_key,
    relaxed_lines,
)
from newsletter.send import send_issue
from newsletter.send.checked import send_checked
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.subscribers import add
from tests.smtp_servers import SECRET, RecordingHandler, Server, relay_settings

ISSUE = Path("issues/2023-W25.toml")
SELECTOR, DOMAIN = "s2023", "example.org"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey, fmt: Any = serialization.PrivateFormat.TraditionalOpenSSL) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def dns_for(key: rsa.RSAPrivateKey, selector: str = SELECTOR, domain: str = DOMAIN) -> Any:
    """A ``dnsfunc`` for dkim.verify that answers the one TXT record it should ask for."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{selector}._domainkey.{domain}.".encode()
        return record

    return dnsfunc


@pytest.fixture
def signed_settings(
    project: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    (project / "keys").mkdir()
    (project / "keys" / "dkim.pem").write_bytes(pem(key))
    monkeypatch.setenv("NEWSLETTER_DKIM__DOMAIN", DOMAIN)
    monkeypatch.setenv("NEWSLETTER_DKIM__SELECTOR", SELECTOR)
    monkeypatch.setenv("NEWSLETTER_DKIM__KEY_FILE", "keys/dkim.pem")
    return load_settings(project / "config.toml")


def signature_lines(message: bytes) -> list[bytes]:
    """The DKIM-Signature field's lines (it is the first field)."""
    lines = message.split(b"\r\n")
    end = next(i for i in range(1, len(lines)) if not lines[i][:1].isspace())
    return lines[:end]


def h_tag(message: bytes) -> list[str]:
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    match = re.search(r"^DKIM-Signature:.*?\bh=([^;]+);", unfolded, re.M)
    assert match, header
    return [name.strip() for name in match.group(1).split(":")]


# Awkward recipients: long and non-ASCII names (folded To lines), quotes, an empty name.
RECIPIENTS = [
    Recipient("ada@example.org", "Ada Lovelace", "tok-1", 1),
    Recipient("anon@example.com", "", "tok-2", 2),
    Recipient("zofia@example.org", "Zofia Nowak-Żółć", "tok-3", 3),
    Recipient("long@example.net", "Ἀριστοτέλης " * 12 + "the Long-Named", "tok-4", 4),
    Recipient("quote@example.net", 'Dr. "Quoted" O\'Brien, Jr.', "tok-5", 5),
    Recipient("tab@example.net", "Name\twith tab", "tok-6", 6),
]


def test_every_message_verifies_relaxed_and_over_signed(
    signed_settings: Settings, project: Path, key: rsa.RSAPrivateKey
) -> None:
    builder = open_issue(project / ISSUE, signed_settings).message_builder()
    dns = dns_for(key)
    for recipient in RECIPIENTS:
        message = builder.message_bytes(recipient)
        assert message.startswith(b"DKIM-Signature: ")
        assert dkim.verify(message, dnsfunc=dns), recipient
        head = message.split(b"\r\n\r\n", 1)[0]
        assert b"c=relaxed/relaxed" in head and b"a=rsa-sha256" in head
        assert all(len(line) <= 78 for line in signature_lines(message))
        names = h_tag(message)
        for name in OVERSIGNED:
            present = len(re.findall(rb"^" + name + rb":", head, re.M | re.I))
            assert names.count(name.decode()) == present + 1, (name, names)
        assert {"to", "date", "message-id", "feedback-id", "list-id"} <= set(names)


@pytest.mark.parametrize(
    "header",
    [
        b"From: Mallory <mallory@example.net>\r\n",
        b"Subject: Urgent: confirm your password\r\n",
        b"List-Unsubscribe: <https://evil.example.net/u>\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    ],
)
def test_an_added_over_signed_header_breaks_the_signature(
    signed_settings: Settings, project: Path, key: rsa.RSAPrivateKey, header: bytes
) -> None:
    builder = open_issue(project / ISSUE, signed_settings).message_builder()
    message = builder.message_bytes(RECIPIENTS[0])
    dns = dns_for(key)
    assert dkim.verify(message, dnsfunc=dns)
    end = len(b"\r\n".join(signature_lines(message))) + 2
    for forged in (header + message, message[:end] + header + message[end:]):
        assert not dkim.verify(forged, dnsfunc=dns)


def test_an_unsubscribe_header_cannot_be_added_to_a_notice(
    signed_settings: Settings, key: rsa.RSAPrivateKey
) -> None:
    from newsletter.send.notice import notice_bytes

    message = notice_bytes(signed_settings, "ada@example.org", "Confirm", "Click the link.\n")
    dns = dns_for(key)
    assert dkim.verify(message, dnsfunc=dns)
    assert h_tag(message).count("list-unsubscribe") == 1  # absent, signed as empty
    assert not dkim.verify(b"List-Unsubscribe: <https://x.example/u>\r\n" + message, dnsfunc=dns)


def test_relaxed_canonicalisation_survives_refolding(
    signed_settings: Settings, project: Path, key: rsa.RSAPrivateKey
) -> None:
    """Relays may refold headers and pad whitespace; relaxed/relaxed must not care."""
    builder = open_issue(project / ISSUE, signed_settings).message_builder()
    message = builder.message_bytes(RECIPIENTS[3])
    refolded = message.replace(b"\r\nSubject: ", b"\r\nSubject:\r\n \t  ", 1)
    assert refolded != message
    head, body = refolded.split(b"\r\n\r\n", 1)
    body = body.replace(b"\r\n", b"  \r\n", 3)  # trailing spaces on the body's first lines
    assert dkim.verify(head + b"\r\n\r\n" + body, dnsfunc=dns_for(key))
    assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"=", b"+", 1), dnsfunc=dns_for(key))


def _awkward_messages() -> Iterator[bytes]:
    """Hand-made messages: folded headers, long lines, trailing and inner whitespace, tabs,
    bare LF line ends, raw UTF-8, empty and blank-line-only bodies."""
    heads = [
        b"From: A <a@example.org>\r\nTo: b@example.net\r\nSubject: plain\r\n",
        b"From: =?utf-8?b?w4lsw6lvbm9yZQ==?= <a@example.org>\r\nSubject:\r\n folded\r\n"
        b'\tover three\r\n   lines  \r\nTo: "Z\xc3\xb3\xc5\x82\xc4\x87" <z@example.org>\r\n',
        b"from: lower@example.org\r\nSUBJECT:   shouting \t spaces   \r\nX-Long: "
        + b"x" * 900
        + b"\r\n",
        b"From: a@example.org\r\nSubject: s\r\nList-Unsubscribe: <https://e.example/u?t=1>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nTo: t@example.org\r\n",
    ]
    bodies = [
        b"",
        b"\r\n\r\n\r\n",
        b"one line\r\n",
        b"trailing   \r\ninner \t\t tabs\r\n\r\n\r\n",
        b"no final line break",
        b"a" * 5000 + b"\r\n" + b" leading space\r\n\t\r\n",
        "ünïcödé bödy, not encoded\r\n".encode(),
        b"bare\nLF\nline ends\n",
    ]
    for head in heads:
        for body in bodies:
            yield head + b"\r\n" + body
    yield b"From: a@example.org\nSubject: all bare LF\n\nbody\n"


def test_signer_agrees_with_dkimpy_on_awkward_messages(key: rsa.RSAPrivateKey) -> None:
    signer = DkimSigner(DOMAIN, SELECTOR, key)
    dns = dns_for(key)
    private = pem(key)
    for message in _awkward_messages():
        signed = signer(message)
        assert dkim.verify(signed, dnsfunc=dns), message[:80]
        # The same body hash as dkimpy's own relaxed signer computes.
        theirs = dkim.sign(
            message, SELECTOR.encode(), DOMAIN.encode(), private,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=[b"from"],
        )  # fmt: skip
        bh = re.compile(rb"bh=([^;]+);")
        ours_bh = bh.search(signed.replace(b"\r\n ", b""))
        theirs_bh = bh.search(theirs.replace(b"\r\n ", b""))
        assert ours_bh and theirs_bh and ours_bh.group(1) == theirs_bh.group(1), message[:80]


def test_the_per_run_path_signs_as_the_general_one(key: rsa.RSAPrivateKey) -> None:
    """The builder's path (fixed fields hashed once per run, the body hashed piece by
    piece) against the general one on the same message: both verify, with the same body
    hash and the same h= list; and it steps aside when a field name repeats."""
    signer = DkimSigner(DOMAIN, SELECTOR, key)
    fixed_block = (
        b"From: News <news@example.org>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n"
        b"List-Id: News <news.example.org>\r\nX-Not-Signed: yes\r\n"
    )
    own = b"Date: Fri, 23 Jun 2023 09:00:00 +0000\r\nTo:  Ada   Lovelace\r\n <ada@example.org>\r\n"
    body = [b"first  piece \r\n", b"second\r\n", b"--end--\r\n"]
    message = fixed_block + own + b"\r\n" + b"".join(body)
    fixed = signer.fixed(fixed_block)
    assert fixed is not None
    fast = signer.header_for(fixed, own, [relaxed_lines(piece) for piece in body])
    assert fast is not None
    general = signer.header(message)
    dns = dns_for(key)
    assert dkim.verify(fast + message, dnsfunc=dns)
    assert dkim.verify(general + message, dnsfunc=dns)
    oversigned = [name.decode() for name in OVERSIGNED]
    assert h_tag(fast + message) == ["from", "subject", "list-id", "date", "to", *oversigned]
    assert sorted(h_tag(fast + message)) == sorted(h_tag(general + message))
    bh = re.compile(rb"bh=([^;]+);")
    assert bh.findall(fast.replace(b"\r\n ", b"")) == bh.findall(general.replace(b"\r\n ", b""))
    assert all(len(line) <= 78 for line in fast.split(b"\r\n"))
    # A repeated or shared name: the caller must take the general path.
    assert signer.fixed(fixed_block + b"From: Other <o@example.org>\r\n") is None
    assert signer.header_for(fixed, b"Subject: again\r\n", body) is None


@pytest.mark.parametrize(
    "value",
    [b"", b"plain", b"two  spaces", b"tab\there", b"end \r\nnext", b"x \t \r\n", b" lead"],
)
def test_relaxed_lines_skips_only_what_it_would_not_change(value: bytes) -> None:
    rules = dkim.canonicalization
    assert relaxed_lines(value) == rules.compress_whitespace(rules.strip_trailing_whitespace(value))


def test_the_key_is_read_once_per_run(signed_settings: Settings, project: Path) -> None:
    signer = dkim_signer(signed_settings)
    assert signer is not None
    (project / "keys" / "dkim.pem").unlink()
    assert signer(b"From: a@example.org\r\n\r\nbody\r\n").startswith(b"DKIM-Signature:")


def test_pkcs8_keys_sign_too(key: rsa.RSAPrivateKey) -> None:
    loaded = load_private_key(pem(key, serialization.PrivateFormat.PKCS8), "[dkim] key_file k")
    message = DkimSigner(DOMAIN, SELECTOR, loaded)(b"From: a@example.org\r\n\r\nhi\r\n")
    assert dkim.verify(message, dnsfunc=dns_for(key))


def test_unusable_keys_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^\[dkim\] key_file k: not a PEM private key$"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnope\n", "[dkim] key_file k")


def test_signed_send_through_a_real_smtp_server(
    signed_settings: Settings,
    project: Path,
    key: rsa.RSAPrivateKey,
    start_smtp_server: Callable[..., Server],
) -> None:
    server = start_smtp_server(RecordingHandler())
    settings = relay_settings(signed_settings, server)
    with Store(settings.store_path) as store:
        for recipient in RECIPIENTS[:3]:
            add(store, recipient.email, recipient.name)
    assert send_issue(open_issue(project / ISSUE, settings), settings).sent == 3
    dns = dns_for(key)
    for received in server.handler.messages:
        assert dkim.verify(received.content, dnsfunc=dns)


# -- dkim keygen ---------------------------------------------------------------------------


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *argv], cwd=cwd, env=env, capture_output=True,
        text=True,
    )  # fmt: skip


def test_keygen_writes_a_private_key_and_prints_the_record(project: Path) -> None:
    result = run_cli(
        "dkim", "keygen", "--selector", "s1", "--domain", "example.org", "--out", "keys/s1.pem",
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = project / "keys" / "s1.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    private = path.read_bytes()
    assert private.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    # The secret never reaches the terminal. (The PEM's first lines hold the modulus, which
    # the public record shares; its last lines hold only private numbers.)
    printed = result.stdout + result.stderr
    assert "PRIVATE KEY" not in printed
    for line in private.decode().splitlines()[-6:-1]:
        assert line not in printed
    out = result.stdout
    assert "name:  s1._domainkey.example.org\n" in out
    value_line = next(line for line in out.splitlines() if line.startswith("  value: "))
    strings = re.findall(r'"([^"]*)"', value_line)
    assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)  # 2048 bits: ~400 chars
    record = "".join(strings)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    assert 'key_file = "keys/s1.pem"' in out and 'domain = "example.org"' in out
    assert 'selector = "s1"' in out

    # The printed record and config lines are all a signed send needs.
    key = load_private_key(private, "k")
    message = DkimSigner("example.org", "s1", key)(b"From: a@example.org\r\n\r\nhello\r\n")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.org."
        return record.encode()

    assert dkim.verify(message, dnsfunc=dns)


def test_keygen_never_overwrites_without_force(tmp_path: Path) -> None:
    path = tmp_path / "s1.pem"
    path.write_bytes(b"the key in use\n")
    with pytest.raises(InputError, match="--force"):
        create_key(path, "s1", "example.org")
    assert path.read_bytes() == b"the key in use\n"
    record = create_key(path, "s1", "example.org", bits=1024, force=True)
    assert path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record.name == "s1._domainkey.example.org"
    assert [p.name for p in tmp_path.iterdir()] == ["s1.pem"]  # no temp file left


def test_keygen_default_path_and_help(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert main(["dkim", "keygen", "--selector", "S1", "--domain", "News.Example.org",
                 "--bits", "1024"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert (project / "dkim-S1.pem").is_file()
    assert "s1._domainkey.news.example.org" in out
    assert main(["dkim", "keygen", "--help"]) == 0
    assert "newsletter dkim keygen --selector s1" in capsys.readouterr().out


# -- the warnings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "organisational"),
    [
        ("example.org", "example.org"),
        ("news.example.org", "example.org"),
        ("a.b.example.org.", "example.org"),
        ("example.co.uk", "example.co.uk"),
        ("mail.example.co.uk", "example.co.uk"),
        ("mail.example.com.au", "example.com.au"),
        ("mail.example.de", "example.de"),
    ],
)
def test_organisational_domain(domain: str, organisational: str) -> None:
    assert organisational_domain(domain) == organisational


@pytest.mark.parametrize(
    ("d", "from_domain", "ok"),
    [
        ("example.org", "example.org", True),
        ("mail.example.org", "example.org", True),
        ("example.org", "news.example.org", True),
        ("bounce.example.org", "news.example.org", True),
        ("EXAMPLE.ORG", "example.org", True),
        ("esp-mailer.example.net", "example.org", False),
        ("example.org.evil.example", "example.org", False),
        ("other.co.uk", "example.co.uk", False),
    ],
)
def test_relaxed_alignment(d: str, from_domain: str, ok: bool) -> None:
    assert aligned(d, from_domain) is ok


def test_warnings_depend_on_mode_and_domain(settings: Settings) -> None:
    assert auth_warnings(settings) == []  # capture mode, no [dkim]: nothing leaves the machine
    relay = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"mode": "relay"})})
    (unsigned,) = auth_warnings(relay)
    assert "not DKIM-signed" in unsigned.message and unsigned.where == "[dkim] domain"
    assert "dkim keygen" in unsigned.fix
    for mode in (settings, relay):
        other = mode.model_copy(
            update={"dkim": mode.dkim.model_copy(update={"domain": "mailer.example.net"})}
        )
        (misaligned,) = auth_warnings(other)
        assert "not aligned with the From domain example.org" in misaligned.message
    aligned_settings = relay.model_copy(
        update={"dkim": relay.dkim.model_copy(update={"domain": "news.example.org"})}
    )
    assert auth_warnings(aligned_settings) == []


def test_check_reports_the_unsigned_relay_send(settings: Settings, project: Path) -> None:
    relay = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"mode": "relay"})})
    report = check_issue(open_issue(project / ISSUE, relay))
    (finding,) = [f for f in report.findings if f.check == "dkim"]
    assert finding.severity == "warning" and report.exit_code >= 1
    assert report.announced() == [finding]
    quiet = check_issue(open_issue(project / ISSUE, settings))
    assert not [f for f in quiet.findings if f.check == "dkim"]


def test_send_warns_before_it_asks(
    settings: Settings, project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    relay = relay_settings(settings, server)
    with Store(relay.store_path) as store:
        add(store, "ada@example.org", "Ada")
    events: list[str] = []

    def on_checks(report: Any) -> None:
        events.extend(f"warning {f.check}" for f in report.announced())

    def confirm(count: int) -> None:
        events.append(f"confirm {count}")
        raise KeyboardInterrupt  # the person says no

    with pytest.raises(KeyboardInterrupt):
        send_checked(open_issue(project / ISSUE, relay), relay, on_checks=on_checks,
                     confirm=confirm)  # fmt: skip
    assert events == ["warning dkim", "confirm 1"]
    assert server.handler.messages == []


def test_send_and_weekly_print_the_warning(
    project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    text = (project / "config.toml").read_text()
    for old, new in (
        ('mode = "capture"', 'mode = "relay"'),
        ('host = "smtp.example.org"', 'host = "127.0.0.1"'),
        ("port = 587", f"port = {server.port}"),
        ('security = "starttls"', 'security = "none"'),
        ('secret = "sample-secret-change-me"', f'secret = "{SECRET}"'),
    ):
        assert old in text
        text = text.replace(old, new, 1)
    (project / "config.toml").write_text(text)
    warned = "warning: dkim: a relay send is not DKIM-signed by newsletter"
    for command in (("send", str(ISSUE), "--yes"), ("weekly", "--week", "2023-W25")):
        # A new subscriber each time: with nobody left to send to, nothing is checked.
        added = run_cli("subscribers", "add", f"{command[0]}@example.org", cwd=project)
        assert added.returncode == 0, added.stderr
        result = run_cli(*command, cwd=project)
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(warned) and len(result.stderr.splitlines()) == 1
    # Turned off with a reason (the relay signs): the send says the check is off, no warning.
    (project / "config.toml").write_text(
        text.replace("\n[checks.disabled]\n", '\n[checks.disabled]\ndkim = "the relay signs"\n')
    )
    assert run_cli("subscribers", "add", "off@example.org", cwd=project).returncode == 0
    quiet = run_cli("send", str(ISSUE), "--yes", cwd=project)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "check dkim is off: the relay signs" in quiet.stdout
    assert len(server.handler.messages) == 3
