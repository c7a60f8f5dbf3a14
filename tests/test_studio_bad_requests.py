"""The studio's bad-request catalogue: broken or hostile requests, one each.

The studio twin of tests/test_bad_requests.py. Each record is one request, by whom (a
signed-in role, or nobody), and the status it must get. Whatever the request:

- the expected status, and never a 5xx;
- no traceback in the response;
- the security headers (a CSP, nosniff);
- the issue file, the subscribers and the staff unchanged;
- no mail sent.

``{csrf}`` in a body is a good form token (the case fetches a page first) and
``{version}`` the issue file's current version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from newsletter.store import Store
from tests.studio_site import WEEK, StudioSite, csrf_of, make_site

FORM = {"content-type": "application/x-www-form-urlencoded"}
BOUNDARY = "XyZ"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
EDIT = f"/week/{WEEK}/edit"


def multipart(name: str, filename: str, data: bytes, csrf: str = "{csrf}") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    status: int
    body: bytes | str = b""
    headers: dict[str, str] | None = None
    who: str | None = "ada"
    #: The issue file is broken by hand (not TOML) before the request.
    broken: bool = False
    #: The issue file is valid TOML that the model refuses (a misspelt status).
    refused: bool = False


def edit(**fields: str) -> str:
    return "&".join(
        f"{k}={v}" for k, v in {"csrf": "{csrf}", "version": "{version}", **fields}.items()
    )


CASES: list[Bad] = [
    # -- addresses that are not pages
    Bad("week-54", "GET", "/week/2023-W54", 404),
    Bad("week-00", "GET", "/week/2023-W00", 404),
    Bad("week-not-a-week", "GET", "/week/latest", 404),
    Bad("preview-no-file", "GET", "/week/2023-W30/preview", 404),
    Bad("report-never-sent", "GET", "/reports/2023-W25", 404),
    Bad("unknown-path", "GET", "/wp-admin", 404),
    Bad("dotfile", "GET", "/files/.env", 404),
    Bad("traversal", "GET", "/files/../config.toml", 404),
    Bad("put", "PUT", EDIT, 405, edit(op="fields")),
    # -- the edit form
    Bad("edit-unknown-op", "POST", EDIT, 400, edit(op="drop-table")),
    Bad("edit-no-op", "POST", EDIT, 400, edit()),
    Bad("edit-unknown-story", "POST", EDIT, 400, edit(op="remove", key="nope")),
    Bad("edit-empty-key", "POST", EDIT, 400, edit(op="up", key="")),
    Bad("edit-section-nan", "POST", EDIT, 400, edit(op="section", key="nope", section="x")),
    Bad("edit-subject-newline", "POST", EDIT, 400, edit(op="fields", subject="a%0D%0ABcc: x")),
    Bad("edit-subject-empty", "POST", EDIT, 400, edit(op="fields", subject="")),
    Bad("edit-subject-huge", "POST", EDIT, 400, edit(op="fields", subject="x" * 2000)),
    Bad("edit-add-unknown-item", "POST", EDIT, 400, edit(op="add", item="nope", section="0")),
    Bad("edit-no-file", "POST", "/week/2023-W30/edit", 409, edit(op="fields", intro="x")),
    Bad("edit-stale-version", "POST", EDIT, 303, "csrf={csrf}&version=abc&op=fields&intro=x"),
    Bad("edit-no-csrf", "POST", EDIT, 403, "version={version}&op=fields&intro=x"),
    Bad("edit-by-nobody", "POST", EDIT, 303, edit(op="fields", intro="x"), who=None),
    Bad("approve-no-csrf", "POST", f"/week/{WEEK}/approve", 403, "version={version}"),
    Bad("approve-stale", "POST", f"/week/{WEEK}/approve", 303, "csrf={csrf}&version=0"),
    # -- tests and sends
    Bad("test-not-an-address", "POST", f"/week/{WEEK}/test", 400, "csrf={csrf}&addresses=nope"),
    Bad(
        "test-header-injection",
        "POST",
        f"/week/{WEEK}/test",
        400,
        "csrf={csrf}&addresses=a@example.org%0D%0ABcc:%20evil@example.net",
    ),
    Bad(
        "test-too-many",
        "POST",
        f"/week/{WEEK}/test",
        400,
        "csrf={csrf}&addresses=" + "+".join(f"t{i}@example.org" for i in range(11)),
    ),
    Bad(
        "test-editor-typed",
        "POST",
        f"/week/{WEEK}/test",
        403,
        "csrf={csrf}&addresses=x@example.org",
        who="eddie",
    ),
    Bad(
        "send-by-editor",
        "POST",
        f"/week/{WEEK}/send",
        403,
        "csrf={csrf}&version={version}",
        who="eddie",
    ),
    Bad("send-stale-version", "POST", f"/week/{WEEK}/send", 303, "csrf={csrf}&version=0"),
    Bad("send-no-csrf", "POST", f"/week/{WEEK}/send", 403, "version={version}"),
    # -- subscribers
    Bad("add-not-an-address", "POST", "/subscribers/add", 400, "csrf={csrf}&email=nope"),
    Bad(
        "add-header-injection",
        "POST",
        "/subscribers/add",
        400,
        "csrf={csrf}&email=a@example.org%0ABcc:x@example.net",
    ),
    Bad(
        "add-by-editor",
        "POST",
        "/subscribers/add",
        403,
        "csrf={csrf}&email=e@example.org",
        who="eddie",
    ),
    Bad("unsubscribe-unknown", "POST", "/subscribers/99999/unsubscribe", 404, "csrf={csrf}"),
    Bad("unsubscribe-not-a-number", "POST", "/subscribers/abc/unsubscribe", 404, "csrf={csrf}"),
    Bad("import-no-file", "POST", "/subscribers/import", 400, multipart("other", "", b"")),
    Bad(
        "import-binary",
        "POST",
        "/subscribers/import",
        400,
        multipart("file", "list.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"),
    ),
    Bad(
        "import-no-email-column",
        "POST",
        "/subscribers/import",
        400,
        multipart("file", "list.csv", b"name,phone\nAda,123\n"),
    ),
    Bad(
        "import-no-csrf",
        "POST",
        "/subscribers/import",
        403,
        multipart("file", "list.csv", b"email\nx@example.org\n", csrf=""),
    ),
    Bad("import-too-big", "POST", "/subscribers/import", 413, "x" * (10 * 1024 * 1024)),
    Bad("search-hostile", "GET", "/subscribers?q=%25%27%3Cscript%3E&status=evil&after=-5", 200),
    # -- staff
    Bad("staff-unknown-op", "POST", "/staff", 400, "csrf={csrf}&op=sudo&name=ada"),
    Bad(
        "staff-bad-role",
        "POST",
        "/staff",
        400,
        "csrf={csrf}&op=add&name=zed&password=long+enough+password&role=god",
    ),
    Bad(
        "staff-bad-name",
        "POST",
        "/staff",
        400,
        "csrf={csrf}&op=add&name=%3Cb%3E&password=long+enough+password&role=editor",
    ),
    Bad("staff-remove-self", "POST", "/staff", 400, "csrf={csrf}&op=remove&name=ada"),
    Bad("staff-by-sender", "POST", "/staff", 403, "csrf={csrf}&op=remove&name=eddie", who="sam"),
    # -- signing in
    Bad("login-no-csrf", "POST", "/login", 403, "name=ada&password=x", who=None),
    Bad(
        "login-huge-name",
        "POST",
        "/login",
        401,
        "csrf={csrf}&name=" + "a" * 5000 + "&password=x",
        who=None,
    ),
    Bad("logout-no-csrf", "POST", "/logout", 403, ""),
    # -- numbers too big for any row
    Bad("after-huge", "GET", "/subscribers?after=99999999999999999999", 200),
    Bad("audit-before-huge", "GET", "/audit?before=99999999999999999999", 200),
    Bad(
        "unsubscribe-huge",
        "POST",
        "/subscribers/99999999999999999999/unsubscribe",
        404,
        "csrf={csrf}",
    ),
    # -- big bodies where none is expected (only the import takes one)
    Bad("login-huge-body", "POST", "/login", 413, "csrf={csrf}&name=" + "a" * 100_000, who=None),
    Bad("edit-huge-body", "POST", EDIT, 413, edit(op="fields", intro="x" * 100_000)),
    # -- an issue file the model refuses (valid TOML)
    Bad("refused-week-page", "GET", f"/week/{WEEK}", 200, refused=True),
    Bad("refused-send-page", "GET", f"/week/{WEEK}/send", 409, refused=True),
    Bad(
        "refused-send",
        "POST",
        f"/week/{WEEK}/send",
        409,
        "csrf={csrf}&version={version}",
        refused=True,
    ),
    Bad(
        "refused-approve",
        "POST",
        f"/week/{WEEK}/approve",
        400,
        "csrf={csrf}&version={version}",
        refused=True,
    ),
    # -- an issue file broken by hand
    Bad("broken-week-page", "GET", f"/week/{WEEK}", 200, broken=True),
    Bad("broken-edit", "POST", EDIT, 400, edit(op="fields", intro="x"), broken=True),
    Bad(
        "broken-approve",
        "POST",
        f"/week/{WEEK}/approve",
        409,
        "csrf={csrf}&version={version}",
        broken=True,
    ),
    Bad("broken-preview", "GET", f"/week/{WEEK}/preview", 409, broken=True),
    Bad("broken-send-page", "GET", f"/week/{WEEK}/send", 409, broken=True),
    Bad(
        "broken-send",
        "POST",
        f"/week/{WEEK}/send",
        409,
        "csrf={csrf}&version={version}",
        broken=True,
    ),
    Bad(
        "forged-session",
        "GET",
        f"/week/{WEEK}",
        303,
        headers={"cookie": "newsletter_studio=" + "A" * 43},
        who=None,
    ),
]


def test_catalogue_is_big_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    from tests.conftest import ROOT, SAMPLE_ISSUE, STATIC

    project = tmp_path_factory.mktemp("studio-template")
    shutil.copy(ROOT / "config.toml", project / "config.toml")
    (project / "issues").mkdir()
    shutil.copy(SAMPLE_ISSUE, project / "issues" / SAMPLE_ISSUE.name)
    shutil.copytree(STATIC, project / "static")
    make_site(project)
    return project


def _state(site: StudioSite) -> tuple[Any, ...]:
    with Store(site.settings.store_path) as store:
        people = store.db.execute("SELECT email, status FROM subscribers ORDER BY id").fetchall()
        staff = store.db.execute("SELECT name, role FROM staff ORDER BY id").fetchall()
    mail = site.project / "out" / "mail"
    sent = len(list(mail.rglob("*"))) if mail.exists() else 0
    return site.issue.read_bytes(), [tuple(p) for p in people], [tuple(s) for s in staff], sent


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(case: Bad, template: Path, tmp_path: Path) -> None:
    import shutil

    from newsletter.settings import load_settings

    project = tmp_path / "project"
    shutil.copytree(template, project)
    site = StudioSite(project, load_settings(project / "config.toml"))
    client = site.signed_in(case.who) if case.who else site.client().__enter__()
    try:
        if case.broken:
            site.issue.write_text(site.issue.read_text() + "\n[[sections]\nbroken = \n")
        if case.refused:
            text = site.issue.read_text().replace(
                'week = "2023-W25"', 'week = "2023-W25"\nstatus = "aproved"'
            )
            site.issue.write_text(text)
        before = _state(site)
        page = client.get(f"/week/{WEEK}" if case.who else "/login")
        csrf = csrf_of(page.text)
        version = hashlib.sha256(site.issue.read_bytes()).hexdigest()
        body = case.body if isinstance(case.body, bytes) else case.body.encode()
        body = body.replace(b"{csrf}", csrf.encode()).replace(b"{version}", version.encode())
        headers = dict(case.headers or {})
        if body and "content-type" not in headers:
            headers.update(MULTIPART if body.startswith(b"--" + BOUNDARY.encode()) else FORM)
        if "cookie" in headers:
            client.cookies.clear()
        response = client.request(case.method, case.path, content=body or None, headers=headers)
        assert response.status_code == case.status, response.text[:2000]
        assert "Traceback" not in response.text and 'File "' not in response.text
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert "content-security-policy" in response.headers
        assert "<script>" not in response.text.replace('<script src="/_/studio.js" defer>', "")
        assert _state(site) == before
    finally:
        client.__exit__(None, None, None)
