"""check_links against a real HTTP server on loopback (no mocks)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from newsletter import open_issue
from newsletter.checks.linkcheck import LinkResult, check_links
from tests.local_http import serve


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so that the client's connection pool is exercised with keep-alive.
    protocol_version = "HTTP/1.1"
    #: Every request, as (method, path): the server's log, shared by the tests.
    seen: ClassVar[list[tuple[str, str]]] = []

    def reply(self, method: str) -> None:
        self.seen.append((method, self.path))
        path = self.path
        status, headers = 200, {"Content-Type": "text/plain"}
        if path == "/moved":
            status, headers["Location"] = 301, "/ok"
        elif path == "/missing":
            status = 404
        elif path == "/fails":
            status = 500
        elif path == "/slow":
            time.sleep(1.5)
        elif path == "/no-head" and method == "HEAD":
            status = 405
        elif path != "/ok" and path != "/no-head":
            status = 404
        body = b"x" * 100_000  # bigger than socket buffers: a GET must not wait for it
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "GET":
            with contextlib.suppress(OSError):  # the client hangs up after the headers
                self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.reply("HEAD")

    def do_GET(self) -> None:
        self.reply("GET")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve(Handler) as url:
        yield url


@pytest.fixture(scope="module")
def results(base: str) -> dict[str, LinkResult]:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    urls = [
        f"{base}/ok",
        f"{base}/moved",
        f"{base}/missing",
        f"{base}/fails",
        f"{base}/slow",
        f"{base}/no-head",
        f"http://127.0.0.1:{closed}/",
        "http://[::1/",
        "ftp://example.org/file",
        "no-scheme.example.org/page",
        f"{base}/ok",
    ]
    found = check_links(urls, timeout=5.0, slow_after=0.5, allow_private=True)
    assert [r.url for r in found] == list(dict.fromkeys(urls))  # de-duplicated, in order
    by_path = {r.url.removeprefix(base): r for r in found}
    by_path["refused"] = found[6]
    return by_path


def test_ok(results: dict[str, LinkResult]) -> None:
    ok = results["/ok"]
    assert (ok.kind, ok.status, ok.location, ok.error) == ("ok", 200, None, "")


def test_redirect_is_reported_not_followed(results: dict[str, LinkResult], base: str) -> None:
    moved = results["/moved"]
    assert (moved.kind, moved.status, moved.location) == ("redirected", 301, f"{base}/ok")


def test_broken(results: dict[str, LinkResult]) -> None:
    assert (results["/missing"].kind, results["/missing"].status) == ("broken", 404)
    assert (results["/fails"].kind, results["/fails"].status) == ("broken", 500)
    # A page is called broken only after a GET confirms what HEAD said.
    assert ("GET", "/missing") in Handler.seen


def test_slow(results: dict[str, LinkResult]) -> None:
    slow = results["/slow"]
    assert (slow.kind, slow.status) == ("slow", 200)
    assert ("GET", "/slow") not in Handler.seen


def test_head_refused_falls_back_to_get(results: dict[str, LinkResult]) -> None:
    assert (results["/no-head"].kind, results["/no-head"].status) == ("ok", 200)
    assert {("HEAD", "/no-head"), ("GET", "/no-head")} <= set(Handler.seen)


def test_connection_refused(results: dict[str, LinkResult]) -> None:
    refused = results["refused"]
    assert (refused.kind, refused.error) == ("error", "connection refused")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1/", "invalid URL"),
        ("ftp://example.org/file", "unsupported scheme 'ftp'"),
        ("no-scheme.example.org/page", "not an absolute URL"),
    ],
)
def test_bad_urls_are_errors(results: dict[str, LinkResult], url: str, reason: str) -> None:
    bad = results[url]
    assert (bad.kind, bad.status) == ("error", None)
    assert bad.error.startswith(reason)


def test_timeout_and_unresolvable_name() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        [timed_out, unresolved] = check_links(
            [url, "http://no-such-host.invalid/"], timeout=0.3, allow_private=True
        )
    assert (timed_out.kind, timed_out.error) == ("error", "timed out after 0.3 s")
    assert unresolved.kind == "error"
    assert unresolved.error == "name not resolved"


def test_nothing_to_check() -> None:
    assert check_links([]) == []


def test_check_links_option_reports_through_the_check_command(base: str, tmp_path: Path) -> None:
    """`newsletter check --links` end to end: stories pointing at the local server."""
    import shutil

    from newsletter import load_settings
    from newsletter.checks import check_issue
    from tests.conftest import ROOT, SAMPLE_ISSUE

    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    text = SAMPLE_ISSUE.read_text()
    for old, path in (
        ("https://newsroom.example.org/news/2023/06/21/armed-forces-green-and-strong", "/missing"),
        ("https://newsroom.example.org/news/2023/06/20/exercise-air-defender-germany", "/moved"),
        ("https://newsroom.example.org/news/2023/06/19/germany-contributions", "/ok"),
    ):
        text = text.replace(old, base + path)
    (tmp_path / "issue.toml").write_text(text)
    settings = load_settings(tmp_path / "config.toml")
    allowed = settings.checks.model_copy(update={"allowed_hosts": ["*.example.org", "127.0.0.1"]})
    loopback = settings.collect.model_copy(update={"allow_private": True})
    settings = settings.model_copy(update={"checks": allowed, "collect": loopback})
    report = check_issue(open_issue(tmp_path / "issue.toml", settings), network=True)
    found = {(f.value, f.severity) for f in report.findings if f.check == "links-reachable"}
    assert (base + "/missing", "error") in found
    assert (base + "/moved", "info") in found
    assert not any(value == base + "/ok" for value, _ in found)
    # Without --links, no request is made.
    before = len(Handler.seen)
    offline = check_issue(open_issue(tmp_path / "issue.toml", settings))
    assert "links-reachable" not in {f.check for f in offline.findings}
    assert len(Handler.seen) == before


def test_internal_addresses_are_refused_without_a_request(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --links` goes through the same guard as collect: no request to loopback or
    private targets unless [collect] allow_private."""
    from tests.local_http import fake_network

    net = fake_network(monkeypatch, names={"intranet.example.test": ["10.20.30.40"]})
    before = len(Handler.seen)
    loopback, decimal, private = check_links(
        [f"{base}/ok", "http://2130706433/", "https://intranet.example.test/wiki"]
    )
    hint = "; set [collect] allow_private = true to allow it"
    assert (loopback.kind, loopback.error) == (
        "error", f"refused: 127.0.0.1 is a loopback address{hint}"
    )  # fmt: skip
    assert decimal.error == f"refused: 127.0.0.1 is a loopback address{hint}"
    assert private.error == f"refused: 10.20.30.40 is a private address{hint}"
    assert len(Handler.seen) == before and net.connects == []


def test_a_server_trickling_its_headers_meets_the_timeout() -> None:
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stop = threading.Event()

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 40:
                    if stop.wait(0.25):
                        return
                    conn.sendall(bytes([byte]))

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        [result] = check_links([url], timeout=1.0, allow_private=True)
        stop.set()
        thread.join()
    assert (result.kind, result.error) == ("error", "timed out after 1 s")
