"""`newsletter serve` end to end: real processes, real HTTP on loopback, real captured mail.

No TestClient here. A temp project gets three subscribers and the sample issue through the
command line (`subscribers import`, `send`, in capture mode), then `newsletter serve` runs
as a subprocess on a free port of 127.0.0.1 that is also the project's base_url, so every
link in the captured messages points at it. The one-click unsubscribe URL is taken from a
message's List-Unsubscribe header and POSTed to like a mail client would (RFC 8058); the
next issue must then skip that subscriber only.

The helpers (``live_server``, ``Live``) are shared with tests/test_web_browser.py.
"""

from __future__ import annotations

import contextlib
import json
import mailbox
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import pytest

from tests.bad_input_project import clean_env
from tests.conftest import ROOT, SAMPLE_ISSUE, STATIC

#: Hang guards for the subprocesses (a stuck command fails the test instead of blocking the
#: run). Never a measure of speed.
CLI_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

SAMPLE_WEEK = "2023-W25"
SAMPLE_SUBJECT = "Montenegro's role in the Balkans, and DIANA goes live"
#: The three rows imported from CSV: (email, name).
SUBSCRIBERS = (
    ("ada@example.com", "Ada Lovelace"),
    ("ben@example.com", "Ben"),
    ("cyd@example.com", "Cyd Charisse"),
)

#: urllib without any proxy from the environment: everything here is 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_project(folder: Path) -> Path:
    """What tests/conftest.py's ``project`` fixture makes, in ``folder`` (any scope)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    (folder / "issues").mkdir()
    shutil.copy(SAMPLE_ISSUE, folder / "issues" / SAMPLE_ISSUE.name)
    shutil.copytree(STATIC, folder / "static")
    return folder


def run_cli(project: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``newsletter ARGV`` in ``project`` (its config.toml), as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *argv],
        cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        encoding="utf-8", errors="replace", timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip


@dataclass
class Response:
    status: int
    #: Names in lower case.
    headers: dict[str, str]
    content: bytes

    @property
    def body(self) -> str:
        return self.content.decode()


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    """One real HTTP request (redirects followed); error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as answer:
            return Response(answer.status, _lower(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, _lower(error.headers.items()), error.read())


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def read_maildir(maildir: Path) -> list[EmailMessage]:
    """Every message the capture has filed, parsed."""
    if not maildir.is_dir():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(box.get_bytes(key)) for key in sorted(box.keys())]


def recipient(message: EmailMessage) -> str:
    return parseaddr(str(message["To"]))[1]


def web_url(url: str, port: int) -> str:
    """``url`` with its scheme and host swapped for the local server's (a no-op when the
    messages were built with that base_url already)."""
    return urlunsplit(urlsplit(url)._replace(scheme="http", netloc=f"127.0.0.1:{port}"))


@dataclass
class Live:
    """A project with subscribers, a sent issue, and `newsletter serve` answering for it."""

    project: Path
    port: int
    #: The path of base_url, which every route sits under: "/" or "/weekly/".
    path: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return self.origin + self.path

    @property
    def maildir(self) -> Path:
        return self.project / "out" / "mail"

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(self.project, self.env, *argv)
        assert result.returncode == 0, f"newsletter {' '.join(argv)}: {result.stderr}"
        return result

    def messages(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)

    def subscribers(self) -> dict[str, dict[str, Any]]:
        """The store, as `newsletter subscribers export --json` shows it, by address."""
        rows = json.loads(self.cli("subscribers", "export", "--json").stdout)
        return {row["email"]: row for row in rows}

    def log(self) -> str:
        """What the server has written to stderr so far."""
        return (self.project / "serve.err").read_text(encoding="utf-8", errors="replace")


def _wait_until_answering(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"newsletter serve exited with {process.returncode}: {log.read_text()}")
        try:
            with _OPENER.open(base, timeout=5) as answer:
                answer.read()
            return
        except urllib.error.HTTPError as error:
            error.close()
            return  # it answers; what it says is for the tests
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"newsletter serve did not answer on {base}: {log.read_text()}")
        time.sleep(0.05)  # polling for the listening socket, not racing a timer


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # uvicorn shuts down cleanly on SIGTERM
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def live_server(project: Path, path: str = "/") -> Iterator[Live]:
    """Import :data:`SUBSCRIBERS`, send the sample issue, then serve the project on a free
    port: base_url is ``http://127.0.0.1:<port><path>``. The server is always stopped on
    the way out, and must have logged no traceback."""
    port = free_port()
    env = clean_env({"NEWSLETTER_NEWSLETTER__BASE_URL": f"http://127.0.0.1:{port}{path}"})
    rows = "".join(f"{address},{name}\n" for address, name in SUBSCRIBERS)
    (project / "subscribers.csv").write_text("email,name\n" + rows, encoding="utf-8")
    for argv in (
        ("subscribers", "import", "subscribers.csv"),
        ("send", f"issues/{SAMPLE_WEEK}.toml", "--yes"),
    ):
        result = run_cli(project, env, *argv)
        assert result.returncode == 0, f"newsletter {' '.join(argv)}: {result.stderr}"
    log = project / "serve.err"
    with (project / "serve.out").open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        )  # fmt: skip
    live = Live(project, port, path, env, process)
    try:
        _wait_until_answering(process, live.base, log)
        yield live
    finally:
        _stop(process)
    assert "Traceback" not in live.log(), live.log()


@pytest.fixture
def live(project: Path) -> Iterator[Live]:
    with live_server(project) as served:
        yield served


def _unsubscribe_link(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    found = re.search(r"<(https?://[^>]+)>", header)
    assert found, f"no web URL in List-Unsubscribe: {header}"
    return found.group(1)


def _second_issue(project: Path, week: str, subject: str) -> Path:
    """The sample issue as a later week: same stories, its own week, date, number, subject."""
    text = SAMPLE_ISSUE.read_text(encoding="utf-8")
    changes = [
        (r'^week = "2023-W25"$', f'week = "{week}"'),
        (r"^date = 2023-06-23$", "date = 2023-06-30"),
        (r"^number = 1$", "number = 2"),
        (r"^subject = .*$", f'subject = "{subject}"'),
    ]
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert count == 1, f"the sample issue no longer has a line matching {pattern}"
    path = project / "issues" / f"{week}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- one-click unsubscribe, and the next issue -----------------------------------------------


def test_one_click_unsubscribe_stops_the_next_issue(live: Live) -> None:
    first = live.messages()
    assert Counter(map(recipient, first)) == {address: 1 for address, _ in SUBSCRIBERS}
    leaver = SUBSCRIBERS[0][0]
    message = next(m for m in first if recipient(m) == leaver)
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    url = web_url(_unsubscribe_link(message), live.port)

    # A link scanner's GET shows a page and changes nothing.
    assert http(url).status == 200
    assert live.subscribers()[leaver]["status"] == "active"

    # The mail client's one-click POST: no cookie, no form token, just this body.
    answer = http(
        url,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200, answer.body
    assert "You are unsubscribed" in answer.body
    store = live.subscribers()
    assert store[leaver]["status"] == "unsubscribed"
    assert [store[a]["status"] for a, _ in SUBSCRIBERS[1:]] == ["active", "active"]

    week, subject = "2023-W26", "Second issue: the week after"
    _second_issue(live.project, week, subject)
    sent = live.cli("send", f"issues/{week}.toml", "--yes")
    assert "sent 2," in sent.stdout, sent.stdout

    second = [m for m in live.messages() if str(m["Subject"]) == subject]
    got = Counter(map(recipient, second))
    assert got[leaver] == 0, "the unsubscribed address got the next issue"
    assert got == {address: 1 for address, _ in SUBSCRIBERS[1:]}
    # The first issue's messages are still the three it made: nothing was resent.
    first_again = [m for m in live.messages() if str(m["Subject"]) == SAMPLE_SUBJECT]
    assert Counter(map(recipient, first_again)) == {address: 1 for address, _ in SUBSCRIBERS}

    # Both issues are public now, newest first.
    index = http(live.base)
    assert index.status == 200
    assert 0 <= index.body.index(f'href="{week}/"') < index.body.index(f'href="{SAMPLE_WEEK}/"')


# --- the public pages over real HTTP ---------------------------------------------------------


def test_archive_issue_feed_and_images_answer(live: Live) -> None:
    index = http(live.base)
    assert index.status == 200
    assert index.headers["content-type"].startswith("text/html")
    assert f'href="{SAMPLE_WEEK}/"' in index.body
    assert "and DIANA goes live" in index.body

    issue = http(f"{live.base}{SAMPLE_WEEK}/")
    assert issue.status == 200
    assert "<title>" in issue.body and "DIANA" in issue.body
    images = re.findall(r'<img[^>]* src="([^"]+)"', issue.body)
    assert len(images) == 2, images
    for src in images:
        assert src.startswith("../images/"), f"the issue page should use its local images: {src}"
        picture = http(urljoin(f"{live.base}{SAMPLE_WEEK}/", src))
        assert picture.status == 200
        assert picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")

    # The link in the message ("View in browser") is the same page.
    message = live.messages()[0]
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    assert f'href="{live.base}{SAMPLE_WEEK}/"' in html.get_content()

    feed = http(f"{live.base}feed.xml")
    assert feed.status == 200
    assert f"{live.base}{SAMPLE_WEEK}/" in feed.body

    # An issue that was never sent is not public.
    assert http(f"{live.base}2023-W30/").status == 404


# --- a port already in use -------------------------------------------------------------------


def test_serve_on_a_busy_port_exits_2_with_one_line(project: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        env = clean_env({"NEWSLETTER_NEWSLETTER__BASE_URL": f"http://127.0.0.1:{port}/"})
        result = run_cli(project, env, "serve", "--port", str(port))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(port) in lines[0]
    assert result.stdout == ""


# --- routes under the path of base_url -------------------------------------------------------


def _multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "newsletter-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def test_routes_sit_under_the_base_url_path(project: Path) -> None:
    with live_server(project, "/weekly/") as live:
        assert live.base == f"http://127.0.0.1:{live.port}/weekly/"
        assert http(live.origin + "/").status == 404
        assert http(live.origin + f"/images/{SAMPLE_WEEK}-lead.png").status == 404
        # Without the trailing slash: redirected (urllib follows) to the page itself.
        assert "and DIANA goes live" in http(live.origin + "/weekly").body
        issue = http(f"{live.base}{SAMPLE_WEEK}")
        assert issue.status == 200 and "DIANA" in issue.body
        for src in re.findall(r'<img[^>]* src="([^"]+)"', issue.body):
            picture = urljoin(f"{live.base}{SAMPLE_WEEK}/", src)
            assert picture.startswith(f"{live.base}images/"), picture
            assert http(picture).status == 200
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', http(live.base).body)
        assert stylesheet and stylesheet.group(1).startswith("/weekly/"), stylesheet
        assert http(live.origin + stylesheet.group(1)).status == 200

        # Every link in the messages resolves here; RFC 8058 prefers multipart/form-data.
        message = next(m for m in live.messages() if recipient(m) == SUBSCRIBERS[2][0])
        url = _unsubscribe_link(message)
        assert url.startswith(f"{live.base}unsubscribe?token="), url
        body, content_type = _multipart({"List-Unsubscribe": "One-Click"})
        answer = http(url, data=body, headers={"Content-Type": content_type})
        assert answer.status == 200, answer.body
        assert "You are unsubscribed" in answer.body
        assert live.subscribers()[SUBSCRIBERS[2][0]]["status"] == "unsubscribed"
        # A second click (a retrying mail client) is answered the same way.
        assert http(url, data=body, headers={"Content-Type": content_type}).status == 200
