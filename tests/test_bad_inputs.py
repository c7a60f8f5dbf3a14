"""The bad-input catalogue: every mistake a user (or an attacker) can make, one per case.

Each case runs the real command line in a subprocess on a fresh copy of a small project
(see tests/bad_input_project.py) and asserts what the README promises for a mistake:

- a non-zero exit code (2 for a user mistake, unless the case says why another is right);
- at most one line on stderr, naming the file, line, key or field at fault;
- no traceback anywhere;
- nothing changed: the store's content and every file of the project (outputs, issues).

Add a case for each new class of bad input; keep each one a distinct failure mode. The
interrupt tests at the end stop each stage with SIGINT at the test-only pause point
(``NEWSLETTER_TEST_PAUSE``), so they never race a timer.
"""

from __future__ import annotations

import codecs
import mailbox
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.bad_input_project import (
    ISSUE,
    SECRET,
    TIMEOUT,
    WEEK,
    Case,
    Snapshot,
    clean_env,
    config,
    config_append,
    config_key,
    issue_copy,
    make_template,
    mkdir,
    new_project,
    relay,
    remove,
    replace_in,
    run_cli,
    sent_count,
    theme_override,
    without_ledger,
    write,
)
from tests.local_http import serve

BAD = "issues/bad.toml"
BUILD_BAD = ("build", BAD)
BUILD = ("build", ISSUE)
CONF_TEXT = (Path(__file__).resolve().parents[1] / "config.toml").read_text(encoding="utf-8")
ISSUE_TEXT = (Path(__file__).resolve().parents[1] / ISSUE).read_text(encoding="utf-8")
SUBJECT = 'subject = "Montenegro\'s role in the Balkans, and DIANA goes live"'
ITEM_TITLE = 'title = "NATO Secretary General: our armed forces must be both green and strong"'
ITEM_URL = 'url = "https://newsroom.example.org/news/2023/06/21/armed-forces-green-and-strong"'
ITEM_SUMMARY = 'summary = "Speaking on a high-level'
LEAD_IMAGE = 'image = { url = "images/2023-W25-lead.png", alt = "Abstract illustration in NATO blue: a compass rose over overlapping circles", width = 600 }'  # noqa: E501
SOURCE_FAILED = frozenset({1, 2})  # a one-off import of a bad source: "failed", exit non-zero


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: A loopback port nobody listens on: the relay that is not there.
DEAD_PORT = _free_port()
RELAY_ENV = {"NEWSLETTER_SECURITY__SECRET": SECRET}


def _nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def _csv(rows: str) -> str:
    return "email,name\n" + rows


UNBALANCED_CSV = _csv(
    'bad@example.net,"Broken quote\n' + "".join(f"row{n}@example.net,Row {n}\n" for n in range(300))
)
SOURCE_TEXT = 'type = "text"\nlocation = "examples/nato-newsroom-2023-06-23.txt"'
DEEP_JSON_FEED = (
    '{"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": '
    + _nested(100_000)
    + "}"
)


def _key_pem(*, encrypted: bool) -> bytes:
    """A private key that is not what DKIM signs with: an EC key, or any key encrypted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    encryption = (
        serialization.BestAvailableEncryption(b"passphrase")
        if encrypted
        else serialization.NoEncryption()
    )
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


#: [dkim] switched on with keys/dkim.pem (each case writes that file itself).
DKIM_ON = [
    config('domain = ""', 'domain = "example.org"'),
    config('selector = ""', 'selector = "news"\nkey_file = "keys/dkim.pem"'),
]
KEYGEN = ("dkim", "keygen", "--selector", "s1", "--domain", "example.org")


def _table_key(section: str, key: str, value: str) -> Callable[[Path], None]:
    """Set ``key = value`` in config.toml's [section], whether or not the file has the table."""

    def apply(project: Path) -> None:
        path = project / "config.toml"
        text = path.read_text(encoding="utf-8")
        head, found, rest = text.partition(f"\n[{section}]\n")
        if not found:
            config_append(f"[{section}]\n{key} = {value}")(project)
            return
        body, next_table, tail = rest.partition("\n[")
        body = re.sub(rf"(?m)^{key}\s*=.*\n?", "", body)
        path.write_text(f"{head}{found}{key} = {value}\n{body}{next_table}{tail}", encoding="utf-8")

    return apply


def _source(name: str, kind: str, location: str, extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\ntype = "{kind}"\nlocation = "{location}"\n{extra}'


CASES: list[Case] = [
    # -- config.toml: the file itself ----------------------------------------------------------
    Case("config-missing", "config", ("build", ISSUE, "--config", "nope.toml"), ("nope.toml",)),
    Case(
        "config-is-a-folder",
        "config",
        ("build", ISSUE, "--config", "conf.d"),
        ("conf.d",),
        setup=[mkdir("conf.d")],
    ),
    Case(
        "config-binary",
        "config",
        BUILD,
        ("config.toml",),
        setup=[write("config.toml", b"\x00\xff\xfe\x89PNG\r\n\x1a\n" + bytes(range(256)))],
    ),
    Case(
        "config-utf16",
        "config",
        BUILD,
        ("config.toml",),
        setup=[write("config.toml", CONF_TEXT.encode("utf-16"))],
    ),
    Case(
        "config-latin1",
        "config",
        BUILD,
        ("config.toml", "UTF-8"),
        setup=[write("config.toml", CONF_TEXT.encode("latin-1"))],
    ),
    Case(
        "config-utf8-bom",
        "config",
        BUILD,
        ("config.toml",),
        setup=[write("config.toml", codecs.BOM_UTF8 + CONF_TEXT.encode())],
    ),
    Case(
        "config-toml-syntax",
        "config",
        BUILD,
        ("config.toml", "line"),
        setup=[config('name = "NATO Newsroom Weekly"', 'name = "NATO Newsroom Weekly')],
    ),
    Case(
        "config-empty",
        "config",
        BUILD,
        ("config.toml", "newsletter"),
        setup=[write("config.toml", "")],
    ),
    Case(
        "config-nested-5000",
        "config",
        BUILD,
        ("config.toml",),
        setup=[config_append("[extra]\ndeep = " + _nested(5000))],
    ),
    Case(
        "config-duplicate-table",
        "config",
        BUILD,
        ("config.toml", "smtp"),
        setup=[config_append("[smtp]\nport = 25")],
    ),
    Case(
        "config-unknown-top-key",
        "config",
        BUILD,
        ("colour",),
        setup=[replace_in("config.toml", "[newsletter]", 'colour = "red"\n\n[newsletter]')],
    ),
    Case(
        "config-unknown-section",
        "config",
        BUILD,
        ("smpt",),
        setup=[config_append("[smpt]\nhost = 'x'")],
    ),
    # -- config.toml: an unknown key in every section --------------------------------------------
    *[
        Case(
            f"config-unknown-key-{section.replace('.', '-')}",
            "config",
            BUILD,
            (key,),
            setup=[config_key(section, f"{key} = 1")],
        )
        for section, key in (
            ("newsletter", "nmae"),
            ("paths", "output_folder"),
            ("build", "allow_linkless"),
            ("store", "file"),
            ("smtp", "hostname"),
            ("security", "secrett"),
            ("subscribe", "per_ip_per_hr"),
            ("web", "trusted_proxie"),
            ("dkim", "private_key"),
            ("doctor", "sending_ip"),
            ("checks", "allowed_host"),
            ("collect", "timout"),
            ("draft", "time_zone"),
            ("checks.severity", "subject-lenght"),
        )
    ],
    Case(
        "config-unknown-key-sources",
        "config",
        BUILD,
        ("locaton",),
        setup=[config('type = "text"', 'type = "text"\nlocaton = "x"')],
    ),
    Case(
        "config-unknown-key-draft-sections",
        "config",
        BUILD,
        ("limt",),
        setup=[config("limit = 8", "limit = 8\nlimt = 9")],
    ),
    # -- config.toml: a wrong type or value in every section -------------------------------------
    Case(
        "config-name-not-string",
        "config",
        BUILD,
        ("name",),
        setup=[config('name = "NATO Newsroom Weekly"', "name = 5")],
    ),
    Case(
        "config-name-u2028",
        "config",
        BUILD,
        ("name",),
        setup=[config('name = "NATO Newsroom Weekly"', 'name = "NATO\\u2028Newsroom"')],
    ),
    Case(
        "config-name-nel",
        "config",
        BUILD,
        ("name",),
        setup=[config('name = "NATO Newsroom Weekly"', 'name = "NATO\\u0085Bcc: x@evil.test"')],
    ),
    Case(
        "config-name-empty",
        "config",
        BUILD,
        ("name",),
        setup=[config('name = "NATO Newsroom Weekly"', 'name = "  "')],
    ),
    Case(
        "config-from-address-invalid",
        "config",
        BUILD,
        ("from_address",),
        setup=[config('from_address = "newsletter@example.org"', 'from_address = "newsletter"')],
    ),
    Case(
        "config-reply-to-header-injection",
        "config",
        BUILD,
        ("reply_to",),
        setup=[
            config(
                'reply_to = "press@example.org"',
                'reply_to = "press@example.org\\r\\nBcc: x@evil.test"',
            )
        ],
    ),
    Case(
        "config-base-url-crlf-env",
        "config",
        BUILD,
        ("base_url",),
        env={"NEWSLETTER_NEWSLETTER__BASE_URL": "https://n.example.org/\r\nBcc: x@evil.test"},
    ),
    Case(
        "config-base-url-relative",
        "config",
        BUILD,
        ("base_url",),
        setup=[config('base_url = "https://newsletter.example.org/"', 'base_url = "newsletter/"')],
    ),
    Case(
        "config-base-url-javascript",
        "config",
        BUILD,
        ("base_url",),
        setup=[
            config(
                'base_url = "https://newsletter.example.org/"', 'base_url = "javascript:alert(1)//"'
            )
        ],
    ),
    Case(
        "config-base-url-query",
        "config",
        BUILD,
        ("base_url",),
        setup=[
            config(
                'base_url = "https://newsletter.example.org/"',
                'base_url = "https://newsletter.example.org/?x=1"',
            )
        ],
    ),
    Case(
        "config-base-url-u2029",
        "config",
        BUILD,
        ("base_url",),
        setup=[
            config(
                'base_url = "https://newsletter.example.org/"',
                'base_url = "https://newsletter.example.org/\\u2029x"',
            )
        ],
    ),
    Case(
        "config-postal-address-multiline",
        "config",
        BUILD,
        ("postal_address",),
        setup=[
            config(
                'postal_address = "Example Organisation',
                'postal_address = "Line one\\nExample Organisation',
            )
        ],
    ),
    Case(
        "config-greeting-without-name",
        "config",
        BUILD,
        ("greeting",),
        setup=[config('greeting = "Hello {first_name},"', 'greeting = "Hello {nom},"')],
    ),
    Case(
        "config-theme-colour-not-hex",
        "config",
        BUILD,
        ("[theme] brand",),
        setup=[config_append('[theme]\nbrand = "navy"')],
    ),
    Case(
        "config-theme-colour-css-injection",
        "config",
        BUILD,
        ("[theme] accent",),
        setup=[config_append('[theme]\naccent = "#000; } body { display:none"')],
    ),
    Case(
        "config-theme-font-css-injection",
        "config",
        BUILD,
        ("[theme] font",),
        setup=[config_append('[theme]\nfont = "Arial; } .nl-body { display:none"')],
    ),
    Case(
        "config-theme-logo-without-alt",
        "config",
        BUILD,
        ("[theme] logo_alt",),
        setup=[config_append('[theme]\nlogo = "images/logo.png"')],
    ),
    Case(
        "config-theme-logo-outside-static",
        "config",
        BUILD,
        ("[theme] logo",),
        setup=[config_append('[theme]\nlogo = "../../etc/passwd"\nlogo_alt = "x"')],
    ),
    Case(
        "config-theme-logo-too-wide",
        "config",
        BUILD,
        ("[theme] logo_width",),
        setup=[config_append('[theme]\nlogo = "images/l.png"\nlogo_alt = "x"\nlogo_width = 2000')],
    ),
    Case(
        "config-theme-unknown-key",
        "config",
        BUILD,
        ("[theme] color",),
        setup=[config_append('[theme]\ncolor = "#000000"')],
    ),
    Case(
        "config-unsubscribe-mailto-invalid",
        "config",
        BUILD,
        ("unsubscribe_mailto",),
        setup=[config_key("newsletter", 'unsubscribe_mailto = "not an address"')],
    ),
    Case(
        "config-language-control-char",
        "config",
        BUILD,
        ("language",),
        setup=[config('language = "en"', 'language = "en\\u0000"')],
    ),
    Case(
        "config-paths-wrong-type",
        "config",
        BUILD,
        ("output_dir",),
        setup=[config('output_dir = "out"', "output_dir = [1, 2]")],
    ),
    Case(
        "config-build-not-bool",
        "config",
        BUILD,
        ("allow_linkless_items",),
        setup=[config("allow_linkless_items = false", 'allow_linkless_items = "maybe"')],
    ),
    Case(
        "config-store-wrong-type",
        "config",
        BUILD,
        ("path",),
        setup=[config('path = "newsletter.db"', "path = {}")],
    ),
    Case(
        "config-smtp-port-not-number",
        "config",
        BUILD,
        ("port",),
        setup=[config("port = 587", 'port = "587x"')],
    ),
    Case(
        "config-smtp-port-out-of-range",
        "config",
        BUILD,
        ("port",),
        setup=[config("port = 587", "port = 70000")],
    ),
    Case(
        "config-smtp-connections-zero",
        "config",
        BUILD,
        ("connections",),
        setup=[config("connections = 4", "connections = 0")],
    ),
    Case(
        "config-smtp-timeout-negative",
        "config",
        BUILD,
        ("timeout",),
        setup=[config("timeout = 30", "timeout = -1")],
    ),
    Case(
        "config-smtp-mode-unknown",
        "config",
        BUILD,
        ("mode",),
        setup=[config('mode = "capture"', 'mode = "carrier-pigeon"')],
    ),
    Case(
        "config-smtp-security-unknown",
        "config",
        BUILD,
        ("security",),
        setup=[config('security = "starttls"', 'security = "ssl"')],
    ),
    Case(
        "config-security-secret-not-string",
        "config",
        BUILD,
        ("secret",),
        setup=[config('secret = "sample-secret-change-me"', "secret = 42")],
    ),
    Case(
        "config-security-previous-secrets-not-a-list",
        "config",
        BUILD,
        ("[security] previous_secrets",),
        setup=[config_key("security", 'previous_secrets = "x"')],
    ),
    Case(
        "config-subscribe-confirm-hours-zero",
        "config",
        BUILD,
        ("[subscribe] confirm_hours",),
        setup=[config("confirm_hours = 48", "confirm_hours = 0")],
    ),
    Case(
        "config-web-trusted-proxy-not-an-ip",
        "config",
        BUILD,
        ("[web] trusted_proxies", "not-an-ip"),
        setup=[config("trusted_proxies = []", 'trusted_proxies = ["not-an-ip"]')],
    ),
    Case(
        "config-doctor-sending-ip-not-an-ip",
        "config",
        ("doctor",),
        ("[doctor] sending_ips", "192.0.2.300"),
        setup=[config("sending_ips = []", 'sending_ips = ["192.0.2.300"]')],
    ),
    Case(
        "config-doctor-nameserver-not-an-ip",
        "config",
        ("doctor",),
        ("[doctor] nameservers", "dns.example.org:53"),
        setup=[config("nameservers = []", 'nameservers = ["dns.example.org:53"]')],
    ),
    Case(
        "config-doctor-nameserver-bad-port",
        "config",
        ("doctor",),
        ("[doctor] nameservers", "127.0.0.1:0", "port"),
        setup=[config("nameservers = []", 'nameservers = ["127.0.0.1:0"]')],
    ),
    Case(
        "config-doctor-timeout-zero",
        "config",
        ("doctor",),
        ("[doctor] timeout",),
        setup=[config("timeout = 5\n", "timeout = 0\n")],
    ),
    Case(
        "config-dkim-domain-wrong-type",
        "config",
        BUILD,
        ("domain",),
        setup=[config('domain = ""', "domain = true")],
    ),
    Case(
        "config-dkim-domain-line-break",
        "config",
        BUILD,
        ("[dkim] domain", "DNS name"),
        setup=[config('domain = ""', r'domain = "example.org\r\nBcc: victim@example.net"')],
    ),
    Case(
        "config-dkim-domain-underscore",
        "config",
        BUILD,
        ("[dkim] domain",),
        setup=[config('domain = ""', 'domain = "bad_domain.example.org"')],
    ),
    Case(
        "config-dkim-selector-space",
        "config",
        BUILD,
        ("[dkim] selector",),
        setup=[config('selector = ""', 'selector = "s1; d=evil.example"')],
    ),
    Case(
        "config-smtp-return-path-not-an-address",
        "config",
        BUILD,
        ("[smtp] return_path",),
        setup=[config_key("smtp", 'return_path = "bounces-at-example.org"')],
    ),
    Case(
        "config-smtp-return-path-line-break",
        "config",
        BUILD,
        ("[smtp] return_path", "control characters"),
        setup=[
            config_key("smtp", r'return_path = "bounces@example.org\r\nBcc: victim@example.net"')
        ],
    ),
    Case(
        "config-smtp-return-path-two-addresses",
        "config",
        BUILD,
        ("[smtp] return_path",),
        setup=[config_key("smtp", 'return_path = "a@example.org, b@example.org"')],
    ),
    Case(
        "config-smtp-return-path-wrong-type",
        "config",
        BUILD,
        ("return_path",),
        setup=[config_key("smtp", "return_path = ['bounces@example.org']")],
    ),
    Case(
        "env-smtp-return-path-line-break",
        "config",
        BUILD,
        ("[smtp] return_path",),
        env={"NEWSLETTER_SMTP__RETURN_PATH": "bounces@example.org\nBcc: victim@example.net"},
    ),
    Case(
        "config-checks-hosts-not-list",
        "config",
        BUILD,
        ("allowed_hosts",),
        setup=[config('allowed_hosts = ["*.example.org"]', 'allowed_hosts = "*.example.org"')],
    ),
    Case(
        "config-checks-severity-unknown-level",
        "config",
        BUILD,
        ("subject-length",),
        setup=[config_key("checks.severity", 'subject-length = "fatal"')],
    ),
    Case(
        "config-collect-timeout-word",
        "config",
        BUILD,
        ("timeout",),
        setup=[config("timeout = 20", 'timeout = "soon"')],
    ),
    Case(
        "config-collect-max-bytes-zero",
        "config",
        BUILD,
        ("max_bytes",),
        setup=[config("max_bytes = 5000000", "max_bytes = 0")],
    ),
    Case(
        "config-draft-timezone-unknown",
        "config",
        BUILD,
        ("timezone",),
        setup=[config('timezone = "UTC"', 'timezone = "Mars/Olympus_Mons"')],
    ),
    # -- config.toml: the schedule and the studio ----------------------------------------------
    Case(
        "config-weekly-send-at-not-a-time",
        "config",
        ("weekly", "--week", WEEK),
        ("config.toml", "[weekly] send_at", "Friday at nine"),
        setup=[_table_key("weekly", "send_at", '"Friday at nine"')],
    ),
    Case(
        "config-weekly-timezone-unknown",
        "config",
        ("weekly", "--week", WEEK),
        ("config.toml", "[weekly] timezone", "Mars/Olympus_Mons"),
        setup=[_table_key("weekly", "timezone", '"Mars/Olympus_Mons"')],
    ),
    Case(
        "config-studio-auth-unknown",
        "config",
        BUILD,
        ("config.toml", "[studio] auth"),
        setup=[_table_key("studio", "auth", '"password"')],
    ),
    Case(
        "config-studio-test-address-invalid",
        "config",
        BUILD,
        ("config.toml", "[studio] test_addresses"),
        setup=[_table_key("studio", "test_addresses", '["not-an-address"]')],
    ),
    Case(
        "config-draft-section-limit-zero",
        "config",
        BUILD,
        ("limit",),
        setup=[config("limit = 8", "limit = 0")],
    ),
    Case(
        "config-sources-not-a-list",
        "config",
        BUILD,
        ("sources",),
        setup=[config("[[sources]]", "[sources]")],
    ),
    Case(
        "config-source-type-unknown",
        "config",
        BUILD,
        ("type",),
        setup=[config('type = "text"', 'type = "podcast"')],
    ),
    Case(
        "config-source-page-without-selectors",
        "config",
        BUILD,
        ("selectors",),
        setup=[config('type = "text"', 'type = "page"')],
    ),
    Case(
        "config-source-missing-location",
        "config",
        BUILD,
        ("location",),
        setup=[config('location = "examples/nato-newsroom-2023-06-23.txt"', "")],
    ),
    # -- environment and secrets.toml ------------------------------------------------------------
    Case("env-port-not-number", "config", BUILD, ("port",), env={"NEWSLETTER_SMTP__PORT": "abc"}),
    Case("env-misspelt-key", "config", BUILD, ("prot",), env={"NEWSLETTER_SMTP__PROT": "25"}),
    Case(
        "env-list-not-json",
        "config",
        BUILD,
        ("allowed_hosts",),
        env={"NEWSLETTER_CHECKS__ALLOWED_HOSTS": "*.example.org"},
    ),
    Case(
        "secrets-toml-syntax",
        "config",
        BUILD,
        ("secrets.toml",),
        setup=[write("secrets.toml", '[security]\nsecret = "unterminated\n')],
    ),
    Case(
        "secrets-toml-unknown-key",
        "config",
        BUILD,
        ("secrets.toml", "secert"),
        setup=[write("secrets.toml", '[security]\nsecert = "x"\n')],
    ),
    Case(
        "secrets-toml-binary",
        "config",
        BUILD,
        ("secrets.toml",),
        setup=[write("secrets.toml", b"\xff\xfe\x00\x00garbage")],
    ),
    # -- paths that are files, folders, missing or unwritable -------------------------------------
    Case(
        "output-dir-is-a-file",
        "paths",
        BUILD,
        ("out",),
        setup=[config('output_dir = "out"', 'output_dir = "config.toml"')],
    ),
    Case(
        "build-out-is-a-file",
        "paths",
        ("build", ISSUE, "--out", "subscribers.csv"),
        ("subscribers.csv",),
    ),
    Case("build-out-under-proc", "paths", ("build", ISSUE, "--out", "/proc/x"), ("/proc/x",)),
    Case(
        "build-out-under-a-file",
        "paths",
        ("build", ISSUE, "--out", "config.toml/out"),
        ("config.toml",),
    ),
    Case(
        "send-output-dir-is-a-file",
        "paths",
        ("send", ISSUE, "--yes"),
        ("out",),
        setup=[remove("out"), write("out", "not a folder")],
    ),
    Case(
        "templates-dir-is-a-file",
        "templates",
        BUILD,
        ("templates",),
        setup=[write("templates", "not a folder")],
    ),
    Case(
        "store-is-a-folder",
        "paths",
        ("subscribers", "list"),
        ("store.d",),
        setup=[mkdir("store.d"), config('path = "newsletter.db"', 'path = "store.d"')],
    ),
    Case(
        "store-under-a-file",
        "paths",
        ("subscribers", "list"),
        ("config.toml",),
        setup=[config('path = "newsletter.db"', 'path = "config.toml/newsletter.db"')],
    ),
    Case(
        "store-not-a-database",
        "paths",
        ("subscribers", "list"),
        ("junk.db",),
        setup=[
            write("junk.db", b"this is not SQLite" * 100),
            config('path = "newsletter.db"', 'path = "junk.db"'),
        ],
    ),
    Case(
        "capture-dir-under-a-file",
        "paths",
        ("send", ISSUE, "--yes"),
        ("capture_dir",),
        setup=[config('capture_dir = "out/mail"', 'capture_dir = "config.toml/mail"')],
        store="none-sent",
    ),
    Case(
        "capture-dir-is-a-file",
        "paths",
        ("send", ISSUE, "--yes"),
        ("capture_dir",),
        setup=[
            write("maildir-file", "not a folder"),
            config('capture_dir = "out/mail"', 'capture_dir = "maildir-file"'),
        ],
        store="none-sent",
    ),
    Case(
        "send-report-is-a-folder",
        "paths",
        ("send", ISSUE, "--yes"),
        ("send-report.json",),
        setup=[mkdir("out/2023-W25/send-report.json")],
        store="none-sent",
    ),
    Case(
        "ca-file-missing",
        "paths",
        ("send", ISSUE, "--yes"),
        ("ca_file",),
        setup=[relay(DEAD_PORT, "starttls"), config_key("smtp", 'ca_file = "ca/none.pem"')],
        env=RELAY_ENV,
    ),
    Case(
        "dkim-key-file-missing",
        "paths",
        ("send", ISSUE, "--yes"),
        ("key_file",),
        setup=[
            config('domain = ""', 'domain = "example.org"'),
            config('selector = ""', 'selector = "news"\nkey_file = "keys/none.pem"'),
        ],
    ),
    Case(
        "dkim-key-file-not-pem",
        "paths",
        ("send", ISSUE, "--yes"),
        ("key_file",),
        setup=[
            write("keys/dkim.pem", "-----BEGIN PRIVATE KEY-----\nnope\n"),
            config('domain = ""', 'domain = "example.org"'),
            config('selector = ""', 'selector = "news"\nkey_file = "keys/dkim.pem"'),
        ],
    ),
    Case(
        "dkim-key-file-encrypted",
        "paths",
        ("send", ISSUE, "--yes"),
        ("key_file", "encrypted"),
        setup=[write("keys/dkim.pem", _key_pem(encrypted=True)), *DKIM_ON],
    ),
    Case(
        "dkim-key-file-not-rsa",
        "paths",
        ("send", ISSUE, "--yes"),
        ("key_file", "not an RSA key"),
        setup=[write("keys/dkim.pem", _key_pem(encrypted=False)), *DKIM_ON],
    ),
    Case(
        "dkim-key-file-is-a-folder",
        "paths",
        ("send", ISSUE, "--yes"),
        ("key_file",),
        setup=[mkdir("keys/dkim.pem"), *DKIM_ON],
    ),
    Case(
        "issues-dir-missing-weekly",
        "paths",
        ("weekly", "--week", WEEK),
        ("2023-W25",),
        setup=[config('issues_dir = "issues"', 'issues_dir = "no-such-folder"')],
    ),
    # -- SMTP: a relay that is not there, a port held by something else, a sample secret ----------
    Case(
        "relay-not-listening",
        "smtp",
        ("send", ISSUE, "--yes"),
        ("relay",),
        setup=[relay(DEAD_PORT)],
        env=RELAY_ENV,
        exit=frozenset({1}),
        store="none-sent",
    ),
    Case(
        "relay-test-copy-not-listening",
        "smtp",
        ("send", ISSUE, "--test", "me@example.org"),
        ("relay",),
        setup=[relay(DEAD_PORT)],
        env=RELAY_ENV,
        exit=frozenset({1}),
    ),
    Case(
        "relay-port-held-by-http-server",
        "smtp",
        ("send", ISSUE, "--yes"),
        ("relay",),
        setup=[relay(0), config("timeout = 5", "timeout = 1")],
        env=RELAY_ENV,
        exit=frozenset({1}),
        store="none-sent",
    ),
    Case(
        "relay-with-sample-secret",
        "smtp",
        ("send", ISSUE, "--yes"),
        ("secret",),
        setup=[relay(DEAD_PORT)],
    ),
    Case(
        "relay-tls-to-plain-port",
        "smtp",
        ("send", ISSUE, "--yes"),
        ("127.0.0.1", "TLS"),
        setup=[relay(0, "tls"), config("timeout = 5", "timeout = 1")],
        env=RELAY_ENV,
        exit=frozenset({1}),
        store="none-sent",
    ),
    # -- issue files ----------------------------------------------------------------------------
    Case("issue-missing", "issue", ("build", "issues/2023-W99.toml"), ("issues/2023-W99.toml",)),
    Case("issue-is-a-folder", "issue", ("build", "issues"), ("issues",)),
    Case("issue-empty-path", "issue", ("build", ""), (".: ",)),
    Case("issue-binary", "issue", BUILD_BAD, (BAD,), setup=[write(BAD, bytes(range(256)) * 4)]),
    Case(
        "issue-utf16", "issue", BUILD_BAD, (BAD,), setup=[write(BAD, ISSUE_TEXT.encode("utf-16"))]
    ),
    Case(
        "issue-latin1",
        "issue",
        BUILD_BAD,
        (BAD, "UTF-8"),
        setup=[
            write(
                BAD,
                ISSUE_TEXT.replace("DIANA goes live", "Café DIANA").encode("latin-1", "replace"),
            )
        ],
    ),
    Case(
        "issue-utf8-bom",
        "issue",
        BUILD_BAD,
        (BAD,),
        setup=[write(BAD, codecs.BOM_UTF8 + ISSUE_TEXT.encode())],
    ),
    Case("issue-empty-file", "issue", BUILD_BAD, (BAD,), setup=[write(BAD, "")]),
    Case(
        "issue-toml-syntax",
        "issue",
        BUILD_BAD,
        (BAD, "line"),
        setup=[issue_copy(BAD, (SUBJECT, SUBJECT[:-1]))],
    ),
    Case(
        "issue-nested-5000",
        "issue",
        BUILD_BAD,
        (BAD,),
        setup=[issue_copy(BAD, ("number = 1", "deep = " + _nested(5000) + "\nnumber = 1"))],
    ),
    Case(
        "issue-unknown-top-key",
        "issue",
        BUILD_BAD,
        (BAD, "colour"),
        setup=[issue_copy(BAD, ("number = 1", 'number = 1\ncolour = "red"'))],
    ),
    Case(
        "issue-unknown-item-key",
        "issue",
        BUILD_BAD,
        (BAD, "titel"),
        setup=[issue_copy(BAD, (ITEM_TITLE, ITEM_TITLE.replace("title", "titel")))],
    ),
    Case(
        "issue-number-not-int",
        "issue",
        BUILD_BAD,
        (BAD, "number"),
        setup=[issue_copy(BAD, ("number = 1", 'number = "one"'))],
    ),
    Case(
        "issue-number-negative",
        "issue",
        BUILD_BAD,
        (BAD, "number"),
        setup=[issue_copy(BAD, ("number = 1", "number = -3"))],
    ),
    Case(
        "issue-week-does-not-exist",
        "issue",
        BUILD_BAD,
        (BAD, "week"),
        setup=[issue_copy(BAD, ('week = "2023-W25"', 'week = "2023-W99"'))],
    ),
    Case(
        "issue-date-outside-week",
        "issue",
        BUILD_BAD,
        (BAD, "date"),
        setup=[issue_copy(BAD, ("date = 2023-06-23", "date = 2023-07-23"))],
    ),
    Case(
        "issue-date-is-text",
        "issue",
        BUILD_BAD,
        (BAD, "date"),
        setup=[issue_copy(BAD, ("date = 2023-06-23", 'date = "next Friday"'))],
    ),
    Case(
        "issue-subject-u2028",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, 'subject = "Montenegro\\u2028Bcc: x@evil.test"'))],
    ),
    Case(
        "issue-subject-nel",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, 'subject = "Montenegro\\u0085DIANA"'))],
    ),
    Case(
        "issue-subject-crlf",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, 'subject = "Montenegro\\r\\nBcc: x@evil.test"'))],
    ),
    Case(
        "issue-subject-nul",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, 'subject = "Montenegro\\u0000DIANA"'))],
    ),
    Case(
        "issue-subject-empty",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, 'subject = ""'))],
    ),
    Case(
        "issue-subject-too-long",
        "issue",
        BUILD_BAD,
        (BAD, "subject"),
        setup=[issue_copy(BAD, (SUBJECT, f'subject = "{"Long " * 400}"'))],
    ),
    Case(
        "issue-preheader-too-long",
        "issue",
        BUILD_BAD,
        (BAD, "preheader"),
        setup=[issue_copy(BAD, ('preheader = "', 'preheader = "' + "x" * 160))],
    ),
    Case(
        "issue-newsletter-name-u2029",
        "issue",
        BUILD_BAD,
        (BAD, "newsletter"),
        setup=[issue_copy(BAD, ("number = 1", 'newsletter = "NATO\\u2029Weekly"\nnumber = 1'))],
    ),
    Case(
        "issue-title-u2028",
        "issue",
        BUILD_BAD,
        (BAD, "title"),
        setup=[issue_copy(BAD, (ITEM_TITLE, 'title = "Green\\u2028and strong"'))],
    ),
    Case(
        "issue-title-control-char",
        "issue",
        BUILD_BAD,
        (BAD, "title"),
        setup=[issue_copy(BAD, (ITEM_TITLE, 'title = "Green\\u001b[2Jand strong"'))],
    ),
    Case(
        "issue-title-missing",
        "issue",
        BUILD_BAD,
        (BAD, "title"),
        setup=[issue_copy(BAD, (ITEM_TITLE + "\n", ""))],
    ),
    Case(
        "issue-url-javascript",
        "issue",
        BUILD_BAD,
        (BAD, "url"),
        setup=[issue_copy(BAD, (ITEM_URL, 'url = "javascript:alert(1)"'))],
    ),
    Case(
        "issue-url-with-space",
        "issue",
        BUILD_BAD,
        (BAD, "url"),
        setup=[issue_copy(BAD, (ITEM_URL, 'url = "https://newsroom.example.org/a b"'))],
    ),
    Case(
        "issue-url-empty-drafted",
        "issue",
        BUILD_BAD,
        (BAD, "url"),
        setup=[issue_copy(BAD, (ITEM_URL, 'url = ""  # NEEDS A URL'))],
    ),
    Case(
        "issue-url-not-string",
        "issue",
        BUILD_BAD,
        (BAD, "url"),
        setup=[issue_copy(BAD, (ITEM_URL, "url = 42"))],
    ),
    Case(
        "issue-duplicate-story",
        "issue",
        BUILD_BAD,
        (BAD,),
        setup=[
            issue_copy(
                BAD,
                (
                    ITEM_URL,
                    'url = "https://newsroom.example.org/news/2023/06/22/montenegro-contributions-western-balkans"',
                ),
            )
        ],
    ),
    Case(
        "issue-no-stories",
        "issue",
        BUILD_BAD,
        (BAD, "stor"),
        setup=[
            write(
                BAD,
                'number = 1\nweek = "2023-W25"\ndate = 2023-06-23\n'
                'subject = "Nothing"\npreheader = "Nothing this week at all."\n',
            )
        ],
    ),
    Case(
        "issue-image-without-alt",
        "issue",
        BUILD_BAD,
        (BAD, "alt"),
        setup=[
            issue_copy(
                BAD,
                (LEAD_IMAGE, 'image = { url = "images/2023-W25-lead.png", alt = "", width = 600 }'),
            )
        ],
    ),
    Case(
        "issue-image-protocol-relative",
        "issue",
        BUILD_BAD,
        (BAD, "image"),
        setup=[
            issue_copy(
                BAD,
                (
                    LEAD_IMAGE,
                    'image = { url = "//evil.test/x.png", alt = "A picture", width = 600 }',
                ),
            )
        ],
    ),
    Case(
        "issue-image-width-text",
        "issue",
        BUILD_BAD,
        (BAD, "width"),
        setup=[
            issue_copy(
                BAD,
                (
                    LEAD_IMAGE,
                    'image = { url = "images/2023-W25-lead.png", alt = "A picture", '
                    'width = "600px" }',
                ),
            )
        ],
    ),
    Case(
        "issue-image-parent-path",
        "issue",
        ("check", BAD),
        ("image",),
        stream="stdout",
        setup=[
            issue_copy(
                BAD,
                (LEAD_IMAGE, 'image = { url = "../config.toml", alt = "A picture", width = 600 }'),
            )
        ],
    ),
    Case(
        "issue-image-missing-local-file",
        "issue",
        ("check", BAD),
        ("image-missing", "nope.png"),
        stream="stdout",
        setup=[
            issue_copy(
                BAD,
                (LEAD_IMAGE, 'image = { url = "images/nope.png", alt = "A picture", width = 600 }'),
            )
        ],
    ),
    Case(
        "send-refuses-check-errors",
        "issue",
        ("send", BAD, "--yes"),
        ("check",),
        setup=[
            issue_copy(
                BAD,
                (LEAD_IMAGE, 'image = { url = "images/nope.png", alt = "A picture", width = 600 }'),
            )
        ],
    ),
    Case(
        "issue-kind-two-words",
        "issue",
        BUILD_BAD,
        (BAD, "kind"),
        setup=[issue_copy(BAD, ('kind = "news"', 'kind = "breaking news"'))],
    ),
    Case(
        "issue-sections-not-a-list",
        "issue",
        BUILD_BAD,
        (BAD, "sections"),
        setup=[
            write(
                BAD,
                'number = 1\nweek = "2023-W25"\ndate = 2023-06-23\nsubject = "S"\n'
                'preheader = "A preheader that says something."\nsections = "News"\n'
                '[lead]\ntitle = "T"\nurl = "https://newsroom.example.org/t"\n',
            )
        ],
    ),
    Case(
        "issue-section-title-empty",
        "issue",
        BUILD_BAD,
        (BAD, "title"),
        setup=[issue_copy(BAD, ('[[sections]]\ntitle = "News"', '[[sections]]\ntitle = " "'))],
    ),
    Case(
        "issue-published-is-text",
        "issue",
        BUILD_BAD,
        (BAD, "published"),
        setup=[issue_copy(BAD, ("published = 2023-06-22", 'published = "yesterday"'))],
    ),
    Case(
        "check-json-bad-issue",
        "issue",
        ("check", BAD, "--json"),
        ('"issue-file"', "colour"),
        stream="stdout",
        setup=[issue_copy(BAD, ("number = 1", 'number = 1\ncolour = "red"'))],
    ),
    # -- subscriber CSVs ------------------------------------------------------------------------
    Case("csv-missing", "csv", ("subscribers", "import", "people.csv"), ("people.csv",)),
    Case(
        "csv-is-a-folder",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv",),
        setup=[mkdir("people.csv")],
    ),
    Case(
        "csv-empty",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv", "email"),
        setup=[write("people.csv", "")],
    ),
    Case(
        "csv-binary",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv",),
        setup=[write("people.csv", b"email,name\n" + bytes(range(256)) * 8)],
    ),
    Case(
        "csv-utf16",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv",),
        setup=[write("people.csv", _csv("zoe@example.net,Zoë\n").encode("utf-16"))],
    ),
    Case(
        "csv-latin1",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:",),
        setup=[write("people.csv", _csv("zoe@example.net,Zoë\n").encode("latin-1"))],
    ),
    Case(
        "csv-unbalanced-quote",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2",),
        setup=[write("people.csv", UNBALANCED_CSV)],
    ),
    Case(
        "csv-no-email-column",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv", "email"),
        setup=[write("people.csv", "mail_address,name\na@example.net,A\n")],
    ),
    Case(
        "csv-semicolons",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv", "email"),
        setup=[write("people.csv", "email;name\na@example.net;A\n")],
    ),
    Case(
        "csv-name-990-chars",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2", "name"),
        exit=frozenset({1, 2}),
        setup=[write("people.csv", _csv(f"a@example.net,{'x' * 990}\n"))],
    ),
    Case(
        "csv-field-over-csv-limit",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2",),
        setup=[write("people.csv", _csv(f'a@example.net,"{"y" * 200_000}"\n'))],
    ),
    Case(
        "csv-address-header-injection",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2",),
        exit=frozenset({1, 2}),
        setup=[write("people.csv", _csv('"a@example.net\nBcc: x@evil.test",A\n'))],
    ),
    Case(
        "csv-only-invalid-row",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2",),
        exit=frozenset({1}),
        setup=[write("people.csv", _csv("not-an-address,Nobody\n"))],
    ),
    Case(
        "csv-name-escape-sequence",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2", "name"),
        exit=frozenset({1, 2}),
        setup=[write("people.csv", _csv("a@example.net,\x1b[2JEve\n"))],
    ),
    Case(
        "csv-first-name-escape-sequence",
        "csv",
        ("subscribers", "import", "people.csv"),
        ("people.csv:2", "name"),
        exit=frozenset({1, 2}),
        setup=[write("people.csv", "email,first name\na@example.net,\x1b[2JEve\n")],
    ),
    Case(
        "add-first-name-escape-sequence",
        "cli",
        ("subscribers", "add", "a@example.net", "--first-name", "\x1b[2JEve"),
        ("a@example.net", "name"),
    ),
    # -- subscribers on the command line --------------------------------------------------------
    Case("add-invalid-address", "cli", ("subscribers", "add", "bad-address"), ("bad-address",)),
    Case(
        "add-name-990-chars",
        "cli",
        ("subscribers", "add", "a@example.net", "--name", "x" * 990),
        ("name",),
    ),
    Case(
        "add-name-400-e-acute",
        "cli",
        ("subscribers", "add", "a@example.net", "--name", "é" * 400),
        ("name",),
    ),
    Case(
        "add-address-with-display-name",
        "cli",
        ("subscribers", "add", "Ada Lovelace <ada@example.net>"),
        ("Ada Lovelace",),
    ),
    Case(
        "add-existing",
        "cli",
        ("subscribers", "add", "ada.lovelace@example.org"),
        ("ada.lovelace@example.org",),
    ),
    Case(
        "remove-unknown",
        "cli",
        ("subscribers", "remove", "nobody@example.net"),
        ("nobody@example.net",),
    ),
    Case(
        "forget-unknown",
        "cli",
        ("subscribers", "remove", "nobody@example.net", "--forget"),
        ("nobody@example.net",),
    ),
    Case("unsubscribe-forged-token", "cli", ("unsubscribe", "AAAA.BBBB"), ("token",)),
    # -- feeds (local files, or the loopback server) ---------------------------------------------
    Case(
        "feed-garbage",
        "feed",
        ("import", "feeds/garbage.bin", "--type", "feed"),
        ("garbage",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "feed-is-html",
        "feed",
        ("import", "feeds/not-a-feed.html", "--type", "feed"),
        ("not-a-feed",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "feed-empty-file",
        "feed",
        ("import", "feeds/empty.xml", "--type", "feed"),
        ("empty",),
        exit=SOURCE_FAILED,
        setup=[write("feeds/empty.xml", "")],
    ),
    Case(
        "feed-truncated-json",
        "feed",
        ("import", "feeds/cut.json", "--type", "feed"),
        ("cut",),
        exit=SOURCE_FAILED,
        setup=[
            write(
                "feeds/cut.json",
                '{"version": "https://jsonfeed.org/version/1.1", '
                '"items": [{"id": "1", "url": "https://e',
            )
        ],
    ),
    Case(
        "feed-json-nested-100000",
        "feed",
        ("import", "feeds/deep.json", "--type", "feed"),
        ("deep",),
        exit=SOURCE_FAILED,
        setup=[write("feeds/deep.json", DEEP_JSON_FEED)],
    ),
    Case(
        "feed-json-items-wrong-type",
        "feed",
        ("import", "feeds/odd.json", "--type", "feed"),
        ("odd",),
        exit=SOURCE_FAILED,
        setup=[
            write(
                "feeds/odd.json", '{"version": "https://jsonfeed.org/version/1.1", "items": "none"}'
            )
        ],
    ),
    Case(
        "feed-xml-nested-100000",
        "feed",
        ("import", "feeds/deep.xml", "--type", "feed"),
        ("deep",),
        exit=SOURCE_FAILED,
        setup=[
            write(
                "feeds/deep.xml",
                '<?xml version="1.0"?><rss version="2.0"><channel>'
                + "<x>" * 100_000
                + "</x>" * 100_000
                + "</channel></rss>",
            )
        ],
    ),
    Case(
        "feed-csv-given-as-feed",
        "feed",
        ("import", "subscribers.csv", "--type", "feed"),
        ("subscribers",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "feed-over-max-bytes",
        "feed",
        ("import", "feeds/rss2.xml", "--type", "feed"),
        ("rss2.xml", "byte"),
        exit=SOURCE_FAILED,
        setup=[config("max_bytes = 5000000", "max_bytes = 100")],
    ),
    Case(
        "feed-loopback-url-refused",
        "feed",
        ("import", "{http}/feed.xml", "--type", "feed"),
        ("127.0.0.1",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "feed-url-404",
        "feed",
        ("import", "{http}/missing.xml", "--type", "feed"),
        ("404",),
        exit=SOURCE_FAILED,
        setup=[config_key("collect", "allow_private = true")],
    ),
    Case(
        "feed-file-url",
        "feed",
        ("import", "file:///etc/passwd", "--type", "feed"),
        ("file:",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "feed-gopher-url",
        "feed",
        ("import", "gopher://127.0.0.1/", "--type", "feed"),
        ("gopher:",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "import-missing-file",
        "feed",
        ("import", "feeds/none.xml", "--type", "feed"),
        ("feeds/none.xml",),
    ),
    Case("import-a-folder", "feed", ("import", "feeds", "--type", "feed"), ("feeds",)),
    Case("import-dev-zero", "feed", ("import", "/dev/zero", "--type", "feed"), ("/dev/zero",)),
    Case("import-empty-location", "cli", ("import", "", "--type", "text"), ("location",)),
    Case(
        "collect-source-file-missing",
        "feed",
        ("collect",),
        ("gone", "gone.xml"),
        exit=frozenset({1}),
        store="other-sources",
        setup=[config_append(_source("gone", "feed", "feeds/gone.xml"))],
    ),
    Case(
        "collect-source-dev-zero",
        "feed",
        ("collect", "--source", "zero"),
        ("zero",),
        exit=SOURCE_FAILED,
        memory_limit=1 << 29,
        setup=[config_append(_source("zero", "feed", "/dev/zero"))],
    ),
    Case("collect-unknown-source", "cli", ("collect", "--source", "nope"), ("nope",)),
    Case(
        "collect-no-sources",
        "config",
        ("collect",),
        ("sources",),
        setup=[
            config(
                "[[sources]]\n# A short name, for `collect --source` and the library.\n"
                'name = "nato-newsroom-text"\n# feed, page or text.\ntype = "text"\n'
                "# A URL, or a path relative to this file.\n"
                'location = "examples/nato-newsroom-2023-06-23.txt"\n'
                '# Kind for items that do not say.\nkind = "news"',
                "",
            )
        ],
    ),
    # -- newsroom pages -------------------------------------------------------------------------
    Case(
        "page-without-selector",
        "page",
        ("import", "feeds/page.html", "--type", "page"),
        ("selector",),
    ),
    Case(
        "page-selector-without-equals",
        "page",
        ("import", "feeds/page.html", "--type", "page", "--selector", "li.news"),
        ("li.news",),
    ),
    Case(
        "page-selector-invalid-css",
        "page",
        (
            "import",
            "feeds/page.html",
            "--type",
            "page",
            "--selector",
            "item=[[[",
        ),
        ("[[[",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "page-selector-unknown-key",
        "page",
        (
            "import",
            "feeds/page.html",
            "--type",
            "page",
            "--selector",
            "item=li",
            "--selector",
            "titel=h1",
        ),
        ("titel",),
    ),
    Case(
        "page-selector-matches-nothing",
        "page",
        ("import", "feeds/page.html", "--type", "page", "--selector", "item=.no-such-class"),
        (".no-such-class",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "page-selectors-on-a-feed",
        "page",
        ("import", "feeds/rss2.xml", "--type", "feed", "--selector", "item=li"),
        ("selector",),
    ),
    Case(
        "page-binary",
        "page",
        ("import", "feeds/garbage.bin", "--type", "page", "--selector", "item=li"),
        ("garbage",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "page-empty",
        "page",
        ("import", "feeds/empty.html", "--type", "page", "--selector", "item=li"),
        ("empty",),
        exit=SOURCE_FAILED,
        setup=[write("feeds/empty.html", "")],
    ),
    Case(
        "page-loopback-url-refused",
        "page",
        ("import", "{http}/page.html", "--type", "page", "--selector", "item=li"),
        ("127.0.0.1",),
        exit=SOURCE_FAILED,
    ),
    # -- copied text ----------------------------------------------------------------------------
    Case(
        "text-binary",
        "text",
        ("import", "feeds/garbage.bin", "--type", "text"),
        ("garbage",),
        exit=SOURCE_FAILED,
    ),
    Case(
        "text-empty",
        "text",
        ("import", "copied/empty.txt", "--type", "text"),
        ("empty",),
        exit=SOURCE_FAILED,
        setup=[write("copied/empty.txt", "")],
    ),
    Case(
        "text-no-stories",
        "text",
        ("import", "copied/blank.txt", "--type", "text"),
        ("blank",),
        exit=SOURCE_FAILED,
        setup=[write("copied/blank.txt", "\n\n   \n\t\n" * 50)],
    ),
    Case(
        "text-latin1",
        "text",
        ("import", "copied/latin1.txt", "--type", "text"),
        ("latin1",),
        exit=SOURCE_FAILED,
        setup=[
            write(
                "copied/latin1.txt",
                "Café society opens\n\n22 June 2023\n\nRead more\n".encode("latin-1"),
            )
        ],
    ),
    Case(
        "text-one-huge-line",
        "text",
        ("import", "copied/huge.txt", "--type", "text"),
        ("huge",),
        exit=SOURCE_FAILED,
        setup=[write("copied/huge.txt", "word " * 200_000)],
    ),
    # -- templates ------------------------------------------------------------------------------
    Case(
        "template-syntax-error",
        "templates",
        BUILD,
        ("issue.mjml.j2",),
        setup=[theme_override("issue.mjml.j2", ("{% endif %}", "{% endfi %}"))],
    ),
    Case(
        "template-undefined-variable",
        "templates",
        BUILD,
        ("footer.mjml.j2", "postal_adress"),
        setup=[
            theme_override(
                "partials/footer.mjml.j2", ("newsletter.postal_address", "newsletter.postal_adress")
            )
        ],
    ),
    Case(
        "template-mjml-error",
        "templates",
        BUILD,
        ("MJML",),
        setup=[theme_override("partials/footer.mjml.j2", ("<mj-column>", "<mj-column><mj-bogus>"))],
    ),
    Case(
        "template-text-syntax-error",
        "templates",
        BUILD,
        ("issue.txt.j2",),
        setup=[
            theme_override(
                "issue.txt.j2", ("{{ issue.newsletter | upper }}", "{{ issue.newsletter | upper }")
            )
        ],
    ),
    Case(
        "template-unknown-filter",
        "templates",
        BUILD,
        ("issue.txt.j2", "shout"),
        setup=[
            theme_override(
                "issue.txt.j2", ("{{ issue.newsletter | upper }}", "{{ issue.newsletter | shout }}")
            )
        ],
    ),
    Case(
        "template-latin1",
        "templates",
        BUILD,
        ("footer.mjml.j2",),
        setup=[
            write(
                "templates/partials/footer.mjml.j2",
                "<mj-section><mj-column><mj-text>Café</mj-text></mj-column></mj-section>".encode(
                    "latin-1"
                ),
            )
        ],
    ),
    Case(
        "template-includes-itself",
        "templates",
        BUILD,
        ("footer.mjml.j2",),
        setup=[
            write("templates/partials/footer.mjml.j2", '{% include "partials/footer.mjml.j2" %}')
        ],
    ),
    Case(
        "template-runtime-error",
        "templates",
        BUILD,
        ("header.mjml.j2",),
        setup=[write("templates/partials/header.mjml.j2", "{{ 1 // 0 }}")],
    ),
    # -- command-line mistakes ------------------------------------------------------------------
    Case("cli-unknown-command", "cli", ("biuld", ISSUE), ("biuld",)),
    Case("cli-missing-argument", "cli", ("build",), ("ISSUE_FILE",)),
    Case("cli-unknown-option", "cli", ("build", ISSUE, "--outt", "x"), ("--outt",)),
    Case("cli-limit-zero", "cli", ("send", ISSUE, "--limit", "0", "--yes"), ("--limit",)),
    Case("cli-limit-not-a-number", "cli", ("send", ISSUE, "--limit", "ten", "--yes"), ("--limit",)),
    Case(
        "cli-import-type-unknown",
        "cli",
        ("import", "feeds/rss2.xml", "--type", "podcast"),
        ("--type",),
    ),
    Case("cli-import-type-missing", "cli", ("import", "feeds/rss2.xml"), ("--type",)),
    Case("cli-status-unknown", "cli", ("subscribers", "list", "--status", "zombie"), ("--status",)),
    Case("cli-draft-week-99", "cli", ("draft", "--week", "2023-W99"), ("2023-W99",)),
    Case("cli-draft-week-format", "cli", ("draft", "--week", "23/25"), ("23/25",)),
    Case("cli-items-week-garbage", "cli", ("items", "--week", "last"), ("last",)),
    Case("cli-weekly-week-99", "cli", ("weekly", "--week", "2023-W99"), ("2023-W99",)),
    Case("cli-weekly-no-issue", "cli", ("weekly", "--week", "2023-W30"), ("2023-W30",)),
    Case(
        "cli-send-test-bad-address",
        "cli",
        ("send", ISSUE, "--test", "bad-address"),
        ("bad-address",),
    ),
    Case(
        "cli-send-test-two-addresses",
        "cli",
        ("send", ISSUE, "--test", "a@example.net", "b@example.net"),
        ("b@example.net",),
    ),
    Case("cli-send-no-yes-no-terminal", "cli", ("send", ISSUE), ("--yes",)),
    Case("cli-pin-unknown-id", "cli", ("pin", "unknown-id"), ("unknown-id",)),
    Case("cli-keygen-no-selector", "cli", ("dkim", "keygen", "--domain", "x.org"), ("--selector",)),
    Case("cli-keygen-no-domain", "cli", ("dkim", "keygen", "--selector", "s1"), ("--domain",)),
    Case(
        "cli-keygen-selector-not-a-dns-label",
        "cli",
        ("dkim", "keygen", "--selector", "s1\nX-Evil: 1", "--domain", "example.org"),
        ("--selector",),
    ),
    Case(
        "cli-keygen-domain-with-space",
        "cli",
        ("dkim", "keygen", "--selector", "s1", "--domain", "example .org"),
        ("--domain",),
    ),
    Case("cli-keygen-domain-empty", "cli", (*KEYGEN[:4], "--domain", ""), ("--domain",)),
    Case("cli-keygen-bits-too-small", "cli", (*KEYGEN, "--bits", "512"), ("--bits",)),
    Case("cli-keygen-bits-too-big", "cli", (*KEYGEN, "--bits", "16384"), ("--bits",)),
    Case("cli-keygen-bits-not-a-number", "cli", (*KEYGEN, "--bits", "lots"), ("--bits",)),
    Case(
        "cli-keygen-out-exists",
        "cli",
        (*KEYGEN, "--out", "keys/s1.pem"),
        ("keys/s1.pem", "--force"),
        setup=[write("keys/s1.pem", "the key already in use\n")],
    ),
    Case("cli-keygen-out-is-a-folder", "cli", (*KEYGEN, "--out", "static"), ("--out",)),
    Case(
        "cli-keygen-out-under-a-file",
        "cli",
        (*KEYGEN, "--out", f"{ISSUE}/s1.pem"),
        (f"{ISSUE}/s1.pem",),
    ),
    Case("cli-init-under-a-file", "cli", ("init", "config.toml/new"), ("config.toml",)),
    Case("cli-init-existing-project", "cli", ("init", "."), ("config.toml",)),
    Case("cli-serve-port-out-of-range", "cli", ("serve", "--port", "70000"), ("--port", "70000")),
    Case(
        "cli-doctor-nameserver-not-an-ip",
        "cli",
        ("doctor", "--nameserver", "dns.example.org"),
        ("--nameserver", "dns.example.org"),
    ),
    Case(
        "cli-doctor-nameserver-port-out-of-range",
        "cli",
        ("doctor", "--nameserver", "127.0.0.1:70000"),
        ("--nameserver", "70000"),
    ),
]


class _Loopback(BaseHTTPRequestHandler):
    """A feed and a page on loopback, for the cases that must refuse or report them."""

    def do_GET(self) -> None:
        if self.path == "/feed.xml":
            body = (Path(__file__).parent / "fixtures" / "feeds" / "rss2.xml").read_bytes()
        elif self.path == "/page.html":
            body = b"<ul><li><a href='/x'>Internal story</a></li></ul>"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("bad-input-template") / "project")


@pytest.fixture(scope="module")
def loopback() -> Iterator[str]:
    with serve(_Loopback) as url:
        yield url


def _prepare(case: Case, template: Path, tmp_path: Path, loopback: str) -> tuple[Path, list[str]]:
    project = new_project(template, tmp_path / "project")
    for step in case.setup:
        step(project)
    port = loopback.rsplit(":", 1)[1]
    conf = project / "config.toml"
    if conf.is_file():
        raw = conf.read_bytes()
        # relay(0): the port held by the loopback HTTP server, which speaks no SMTP.
        conf.write_bytes(raw.replace(b"\nport = 0\n", b"\nport = " + port.encode() + b"\n"))
    return project, [a.replace("{http}", loopback) for a in case.argv]


def items(dump: list[str]) -> list[str]:
    """Item ids in a store dump."""
    return [line.split("'")[1] for line in dump if line.startswith('INSERT INTO "items"')]


def without_items(dump: list[str]) -> list[str]:
    return [line for line in dump if not line.startswith('INSERT INTO "items"')]


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_catalogue_is_big_and_distinct() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert len(CASES) >= 130
    assert {case.area for case in CASES} >= {
        "config",
        "paths",
        "smtp",
        "issue",
        "csv",
        "feed",
        "page",
        "text",
        "templates",
        "cli",
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, template: Path, tmp_path: Path, loopback: str) -> None:
    project, argv = _prepare(case, template, tmp_path, loopback)
    before = Snapshot.take(project)
    result = run_cli(project, argv, case.env, memory_limit=case.memory_limit)
    after = Snapshot.take(project)
    output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"

    assert "Traceback" not in result.stdout + result.stderr, output
    assert result.returncode in case.exit, (
        f"exit {result.returncode}, want {set(case.exit)}\n{output}"
    )
    lines = _error_lines(result.stderr)
    assert len(lines) <= 1, f"{len(lines)} lines on stderr, want at most one\n{output}"
    where = lines[0] if case.stream == "stderr" and lines else result.stdout
    if case.stream == "stderr":
        assert lines, f"no error line on stderr\n{output}"
    missing = [f for f in case.fragments if f not in where]
    assert not missing, f"the error does not name {missing}\n{output}"

    changed = sorted(
        k for k in before.files.keys() | after.files.keys()
        if before.files.get(k) != after.files.get(k)
    )  # fmt: skip
    if case.store == "none-sent":
        # A stopped send keeps its report: that is the record of the run, not partial output.
        changed = [k for k in changed if not Path(k).name.startswith("send-report")]
    assert not changed, "files changed:\n" + "\n".join(changed)
    if case.store == "none-sent":
        assert sent_count(project) == 0
        assert without_ledger(after.store) == without_ledger(before.store)
    elif case.store == "other-sources":
        # The sources that worked were collected (their items' last-seen times move on);
        # the failing one added nothing.
        assert items(after.store) == items(before.store)
        assert without_items(after.store) == without_items(before.store)
    else:
        assert after.store == before.store, "the store changed"


# -- inputs that look odd but must work ---------------------------------------------------------


def test_csv_with_a_bom_imports(template: Path, tmp_path: Path) -> None:
    project = new_project(template, tmp_path / "project")
    (project / "bom.csv").write_bytes(
        codecs.BOM_UTF8 + "email,name\r\nzoe@example.net,Zoë\r\n".encode()
    )
    result = run_cli(project, ["subscribers", "import", "bom.csv"])
    assert result.returncode == 0, result.stderr
    assert "Imported 1," in result.stdout
    listed = run_cli(project, ["subscribers", "list", "--json"])
    assert '"zoe@example.net"' in listed.stdout and "Zoë" in listed.stdout


def test_issue_file_with_crlf_line_endings_builds(template: Path, tmp_path: Path) -> None:
    project = new_project(template, tmp_path / "project")
    (project / "issues" / "crlf.toml").write_bytes(ISSUE_TEXT.replace("\n", "\r\n").encode())
    result = run_cli(project, ["build", "issues/crlf.toml", "--out", "crlf-out"])
    assert result.returncode == 0, result.stderr
    assert (project / "crlf-out" / WEEK / "email.html").is_file()


def test_feed_with_an_impossible_date_keeps_the_item_undated(
    template: Path, tmp_path: Path
) -> None:
    project = new_project(template, tmp_path / "project")
    rss = (project / "feeds" / "rss2.xml").read_text(encoding="utf-8")
    bad = re.sub(
        r"<pubDate>[^<]*</pubDate>",
        "<pubDate>Fri, 31 Dec 9999 23:59:59 -1200</pubDate>",
        rss,
        count=1,
    )
    assert "9999" in bad
    (project / "feeds" / "future.xml").write_text(bad, encoding="utf-8")
    result = run_cli(project, ["import", "feeds/future.xml", "--type", "feed"])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"future: [1-9]\d* new", result.stdout), result.stdout


def test_draft_of_titles_with_control_characters_parses(template: Path, tmp_path: Path) -> None:
    project = new_project(template, tmp_path / "project")
    text = "Control\x7f character\x01 in a headline\n\nBody text of the story.\n\nRead more\n"
    (project / "copied.txt").write_text("23 June 2023\n\n" + text, encoding="utf-8")
    imported = run_cli(project, ["import", "copied.txt", "--type", "text"])
    assert imported.returncode == 0, imported.stderr
    drafted = run_cli(project, ["draft", "--week", WEEK])
    assert drafted.returncode == 0, drafted.stderr
    draft = (project / "issues" / f"{WEEK}.new.toml").read_text(encoding="utf-8")
    assert "\x7f" not in draft and "\x01" not in draft
    import tomllib

    tomllib.loads(draft)


# -- Ctrl-C at each stage -----------------------------------------------------------------------

#: stage -> (setup, command). Each command reaches the pause point with work still to write.
STAGES: dict[str, tuple[list, list[str]]] = {
    "collect": (
        [config_append(_source("feed", "feed", "feeds/rss2.xml"))],
        ["collect", "--source", "feed"],
    ),
    "import": (
        [write("new.csv", _csv("new1@example.net,New One\nnew2@example.net,New Two\n"))],
        ["subscribers", "import", "new.csv"],
    ),
    "draft": ([], ["draft", "--week", WEEK]),
    "check": ([], ["check", ISSUE]),
    "build": ([], ["build", ISSUE, "--out", "fresh-out"]),
    "send": ([], ["send", ISSUE, "--yes"]),
}
PAUSE_TIMEOUT = 60.0


def _start_paused(project: Path, stage: str, argv: list[str]) -> subprocess.Popen[str]:
    marker = project.parent / "paused.pid"
    env = clean_env({"NEWSLETTER_TEST_PAUSE": stage, "NEWSLETTER_TEST_PAUSE_FILE": str(marker)})
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *argv],
        cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + PAUSE_TIMEOUT
    while not (marker.is_file() and marker.read_text().strip()):
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"{argv} ended before pausing at {stage}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{argv} never paused at {stage}")
        time.sleep(0.02)  # polling for a file, not racing a timer
    assert int(marker.read_text()) == process.pid
    return process


def _maildir_recipients(project: Path) -> Counter[str]:
    box = mailbox.Maildir(project / "out" / "mail", create=False)
    return Counter(str(message["To"]) for message in box)


@pytest.mark.parametrize("stage", list(STAGES))
def test_ctrl_c_at_each_stage(stage: str, template: Path, tmp_path: Path) -> None:
    setup, argv = STAGES[stage]
    project = new_project(template, tmp_path / "project")
    for step in setup:
        step(project)
    before = Snapshot.take(project)
    process = _start_paused(project, stage, argv)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=TIMEOUT)
    after = Snapshot.take(project)
    output = f"--- stdout\n{out}\n--- stderr\n{err}"
    assert "Traceback" not in out + err, output

    if stage != "send":
        assert process.returncode == 130, output
        assert _error_lines(err) in (["interrupted"], ["aborted"]), output
        assert after.store == before.store, "the store changed"
        assert after.files == before.files, "files changed"
        return

    # send finishes the messages in flight on the first signal, records them, and stops.
    assert process.returncode == 1, output
    assert "interrupted" in err, output
    assert sent_count(project) == 0  # paused before the first message: none in flight
    assert without_ledger(after.store) == without_ledger(before.store)
    rerun = run_cli(project, ["send", ISSUE, "--yes"])
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sent_count(project) == 20
    received = _maildir_recipients(project)
    assert len(received) == 20 and set(received.values()) == {1}, received
    again = run_cli(project, ["send", ISSUE, "--yes"])
    assert again.returncode == 0 and "Nothing to send" in again.stdout
    assert sum(_maildir_recipients(project).values()) == 20
