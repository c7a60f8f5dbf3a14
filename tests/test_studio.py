"""The studio (``newsletter studio``), route by route, through Starlette's TestClient.

Every test starts from the sample project with three subscribers and three staff
accounts, one per role (tests/studio_site.py). Sends go through the embedded default:
the capture server, a real SMTP server on loopback, into out/mail.
"""

from __future__ import annotations

import mailbox
import re
import socket
import tomllib
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from newsletter import ledger
from newsletter.approval import approval_of
from newsletter.settings import SAMPLE_SECRET
from newsletter.store import Store
from tests.studio_site import (
    PASSWORD,
    PEOPLE,
    WEEK,
    StudioSite,
    csrf_of,
    make_site,
    version_of,
)

#: The sample config's secret: what the studio seals approvals with in these tests.
SECRETS = [SAMPLE_SECRET]


@pytest.fixture
def site(project: Path) -> StudioSite:
    return make_site(project, studio='test_addresses = ["desk@example.org"]')


def captured(site: StudioSite) -> list[EmailMessage]:
    folder = site.project / "out" / "mail"
    if not folder.exists():
        return []
    found = []
    for raw in mailbox.Maildir(folder, create=False):
        parsed = message_from_bytes(raw.as_bytes(), policy=default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


# -- signing in --------------------------------------------------------------------------------


def test_every_page_needs_a_sign_in(site: StudioSite) -> None:
    with site.client() as client:
        for path in (f"/week/{WEEK}", "/subscribers", "/audit", "/staff", "/reports",
                     f"/week/{WEEK}/preview", f"/week/{WEEK}/progress.json"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=")


def test_sign_in_sets_a_strict_session_cookie_and_is_audited(site: StudioSite) -> None:
    with site.client() as client:
        page = client.get("/login")
        wrong = client.post(
            "/login", data={"name": "ada", "password": "not it at all", "csrf": csrf_of(page.text)}
        )
        assert wrong.status_code == 401
        assert "do not match" in wrong.text
        right = client.post(
            "/login",
            data={"name": "ada", "password": PASSWORD, "csrf": csrf_of(page.text),
                  "next": f"/week/{WEEK}"},
        )  # fmt: skip
        assert right.status_code == 303
        assert right.headers["location"] == f"/week/{WEEK}"
        cookie = next(
            v for k, v in right.headers.multi_items()
            if k == "set-cookie" and v.startswith("newsletter_studio=")
        )  # fmt: skip
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        assert client.get(f"/week/{WEEK}").status_code == 200
    assert [e.action for e in site.audit()] == ["login"]


def test_sign_in_over_https_marks_the_cookie_secure(site: StudioSite) -> None:
    with site.client(base_url="https://studio.example.org") as client:
        page = client.get("/login")
        right = client.post(
            "/login", data={"name": "ada", "password": PASSWORD, "csrf": csrf_of(page.text)}
        )
        assert "Secure" in right.headers["set-cookie"]


def test_sign_in_is_rate_limited(site: StudioSite) -> None:
    with site.client() as client:
        csrf = csrf_of(client.get("/login").text)
        for _ in range(site.settings.studio.logins_per_hour):
            bad = client.post("/login", data={"name": "ada", "password": "x" * 12, "csrf": csrf})
            assert bad.status_code == 401
        refused = client.post("/login", data={"name": "ada", "password": PASSWORD, "csrf": csrf})
        assert refused.status_code == 429
        assert "newsletter_studio=" not in refused.headers.get("set-cookie", "")


def test_sign_in_never_redirects_off_site(site: StudioSite) -> None:
    with site.client() as client:
        for target in ("//evil.example/", "https://evil.example/", "javascript:alert(1)"):
            page = client.get("/login", params={"next": target})
            response = client.post(
                "/login",
                data={"name": "ada", "password": PASSWORD, "csrf": csrf_of(page.text),
                      "next": target},
            )  # fmt: skip
            assert response.headers["location"] == "/"


def test_sign_out_ends_the_session(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    page = site.page(client)
    token = client.cookies["newsletter_studio"]
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    client.cookies.set("newsletter_studio", token)  # a copied cookie no longer works
    assert client.get(f"/week/{WEEK}").status_code == 303


# -- roles and CSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "status"),
    [
        ("eddie", "/subscribers", 403),
        ("eddie", f"/week/{WEEK}/send", 403),
        ("eddie", "/staff", 403),
        ("sam", "/subscribers", 200),
        ("sam", f"/week/{WEEK}/send", 200),
        ("sam", "/staff", 403),
        ("ada", "/staff", 200),
        ("eddie", "/audit", 403),
        ("sam", "/audit", 200),
    ],
)
def test_each_role_sees_what_it_may(site: StudioSite, name: str, path: str, status: int) -> None:
    client = site.signed_in(name)
    assert client.get(path).status_code == status


def test_an_editor_cannot_send_or_type_test_addresses(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    page = site.page(client)
    send = client.post(
        f"/week/{WEEK}/send", data={"csrf": csrf_of(page.text), "version": version_of(page.text)}
    )
    assert send.status_code == 403
    typed = client.post(
        f"/week/{WEEK}/test", data={"csrf": csrf_of(page.text), "addresses": "x@example.org"}
    )
    assert typed.status_code == 403
    assert captured(site) == []


def test_a_post_without_its_csrf_token_changes_nothing(site: StudioSite) -> None:
    client = site.signed_in("ada")
    before = site.issue.read_bytes()
    page = site.page(client)
    for token in ("", "0" * 64, csrf_of(page.text) + "0"):
        response = client.post(
            f"/week/{WEEK}/edit",
            data={"csrf": token, "version": version_of(page.text), "op": "fields",
                  "intro": "Hijacked"},
        )  # fmt: skip
        assert response.status_code == 403
    assert site.issue.read_bytes() == before


# -- composing ---------------------------------------------------------------------------------


def test_saving_the_intro_writes_the_file_and_the_preview_follows(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    before = site.issue.read_text()
    response = site.edit(client, op="fields", intro="A *new* opening line.\nSecond line.")
    assert response.status_code == 303
    after = site.issue.read_text()
    assert tomllib.loads(after)["intro"].strip() == "A *new* opening line.\nSecond line."
    # The hand-written header comments are still there.
    assert after.splitlines()[:3] == before.splitlines()[:3]
    preview = client.get(f"/week/{WEEK}/preview")
    assert "<em>new</em> opening line" in preview.text
    assert "A *new* opening line." in client.get(f"/week/{WEEK}?view=text").text
    assert any(e.action == "edit" and "intro" in e.what for e in site.audit())


def test_a_story_is_taken_out_moved_and_retitled(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    data = tomllib.loads(site.issue.read_text())
    first, second = data["sections"][0]["items"][:2]
    keys = re.findall(r'id="story-([^"]+)"', site.page(client).text)
    assert len(keys) == 1 + sum(len(s["items"]) for s in data["sections"])
    # keys[0] is the lead; keys[1], keys[2] the first section's first two stories.
    assert site.edit(client, op="remove", key=keys[1]).status_code == 303
    assert site.edit(client, op="up", key=keys[3]).status_code == 303
    assert site.edit(client, op="story", key=keys[2], title="A retitled story",
                     summary="Shorter.").status_code == 303  # fmt: skip
    items = tomllib.loads(site.issue.read_text())["sections"][0]["items"]
    titles = [item["title"] for item in items]
    assert first["title"] not in titles
    assert titles[0] == data["sections"][0]["items"][2]["title"]
    assert titles[1] == "A retitled story" and items[1]["url"] == second["url"]
    assert "A retitled story" in client.get(f"/week/{WEEK}/preview").text


def test_a_bad_value_is_refused_and_the_file_kept(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    before = site.issue.read_bytes()
    response = site.edit(client, op="fields", subject="")
    assert response.status_code == 400
    assert "subject" in response.text
    assert site.issue.read_bytes() == before


def test_a_file_changed_on_disk_is_not_overwritten(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    page = site.page(client)
    text = site.issue.read_text()
    hand = text.replace("Welcome to this week", "Hand-edited: welcome to this week")
    site.issue.write_text(hand)
    response = client.post(
        f"/week/{WEEK}/edit",
        data={"csrf": csrf_of(page.text), "version": version_of(page.text), "op": "fields",
              "intro": "From the stale page"},
    )  # fmt: skip
    assert response.status_code == 303
    assert "conflict=1" in response.headers["location"]
    assert site.issue.read_text() == hand
    banner = client.get(response.headers["location"])
    assert "changed on disk" in banner.text


def test_draft_this_week_writes_the_same_draft_as_the_cli(site: StudioSite) -> None:
    from newsletter.collect import collect

    collect(site.settings)
    client = site.signed_in("eddie")
    week = "2023-W24"
    page = site.page(client, f"/week/{week}")
    assert "Draft this week" in page.text
    response = client.post(f"/week/{week}/draft", data={"csrf": csrf_of(page.text)})
    if response.status_code == 400:
        assert "no items published" in response.text  # the seed has no stories that week
        return
    assert response.status_code == 303
    assert (site.project / "issues" / f"{week}.toml").exists()


# -- approval ----------------------------------------------------------------------------------


def test_approval_is_recorded_and_lost_on_a_later_edit(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    page = site.page(client)
    response = client.post(
        f"/week/{WEEK}/approve", data={"csrf": csrf_of(page.text), "version": version_of(page.text)}
    )
    assert response.status_code == 303
    approval = approval_of(site.issue.read_text(), SECRETS)
    assert approval.valid and approval.by == "eddie"
    assert "Approved by" in site.page(client).text
    site.edit(client, op="fields", preheader="A new preheader after approval.")
    assert not approval_of(site.issue.read_text(), SECRETS).valid
    assert "not approved" in site.page(client).text


def test_a_hand_edit_after_approval_returns_the_issue_to_draft(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    page = site.page(client)
    client.post(
        f"/week/{WEEK}/approve", data={"csrf": csrf_of(page.text), "version": version_of(page.text)}
    )
    site.issue.write_text(site.issue.read_text().replace("DIANA goes live", "DIANA is live"))
    assert not approval_of(site.issue.read_text(), SECRETS).valid
    assert "edited after approval" in site.page(client).text


def test_require_approval_blocks_the_studio_send_until_approved(project: Path) -> None:
    site = make_site(project, weekly="require_approval = true")
    client = site.signed_in("sam")
    page = site.page(client)
    refused = client.post(
        f"/week/{WEEK}/send", data={"csrf": csrf_of(page.text), "version": version_of(page.text)}
    )
    assert refused.status_code == 409
    assert "approve" in refused.text
    assert captured(site) == []


# -- tests and sends ---------------------------------------------------------------------------


def test_send_test_goes_to_the_configured_address_with_the_edits(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    site.edit(client, op="fields", intro="Only in the test copy so far.")
    page = site.page(client)
    response = client.post(f"/week/{WEEK}/test", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    (message,) = captured(site)
    assert message["To"] == "desk@example.org"
    assert message["Subject"].startswith("[TEST]")
    assert "Only in the test copy so far." in html_of(message)
    with Store(site.settings.store_path) as store:
        assert ledger.counts(store, WEEK).get("sent", 0) == 0


def test_send_now_sends_once_in_the_background(site: StudioSite) -> None:
    client = site.signed_in("sam")
    confirm = site.page(client, f"/week/{WEEK}/send")
    assert f"<b>{len(PEOPLE)}</b> active subscribers" in confirm.text
    response = client.post(
        f"/week/{WEEK}/send",
        data={"csrf": csrf_of(confirm.text), "version": version_of(confirm.text)},
    )
    assert response.headers["location"] == f"/week/{WEEK}/progress"
    progress = site.wait_for_send(client)
    assert progress["sent"] == len(PEOPLE) and progress["percent"] == 100, progress
    assert sorted(m["To"].addresses[0].addr_spec for m in captured(site)) == sorted(
        e for e, _ in PEOPLE
    )
    # A second click sends nothing more.
    again = site.page(client, f"/week/{WEEK}/send")
    assert "Nothing to send" in again.text
    assert len(captured(site)) == len(PEOPLE)
    assert any(e.action == "send" for e in site.audit())


def test_a_send_running_elsewhere_is_shown_and_not_doubled(site: StudioSite) -> None:
    # A CLI send of the same issue holds the ledger's lease (this process stands in).
    with Store(site.settings.store_path) as store:
        owner = ledger.acquire_lease(store, WEEK, "subject", 60)
    assert owner
    client = site.signed_in("sam")
    confirm = site.page(client, f"/week/{WEEK}/send")
    assert "already running" in confirm.text
    page = site.page(client)  # a week page loaded before the other send began
    response = client.post(
        f"/week/{WEEK}/send",
        data={"csrf": csrf_of(page.text), "version": version_of(page.text)},
    )
    assert response.headers["location"] == f"/week/{WEEK}/progress"
    assert "is running" in site.page(client, f"/week/{WEEK}/progress").text
    assert captured(site) == []


# -- the preview -------------------------------------------------------------------------------


def test_the_preview_is_sandboxed_and_has_a_dark_variant(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    light = client.get(f"/week/{WEEK}/preview")
    assert light.status_code == 200
    csp = light.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert light.headers["x-frame-options"] == "SAMEORIGIN"
    assert "prefers-color-scheme" in light.text
    dark = client.get(f"/week/{WEEK}/preview", params={"dark": "1"})
    assert "@media all" in dark.text and "prefers-color-scheme: dark" not in dark.text
    page = site.page(client).text
    assert re.search(r"<iframe[^>]* sandbox[ >]", page)
    # The preview's images come from the project's static folder, served here.
    image = re.search(r'src="(/files/[^"]+)"', light.text)
    assert image and client.get(image[1]).status_code == 200


def test_the_checks_link_to_the_story_they_concern(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    # A vague link text is a finding about one story.
    keys = re.findall(r'id="story-([^"]+)"', site.page(client).text)
    site.edit(client, op="story", key=keys[1], title="Click here")
    page = site.page(client).text
    assert re.search(rf'<a href="#story-{keys[1]}">', page), "no finding links to the story"


# -- subscribers, staff, audit -----------------------------------------------------------------


def test_subscribers_page_searches_and_never_shows_a_token(site: StudioSite) -> None:
    client = site.signed_in("sam")
    page = site.page(client, "/subscribers")
    with Store(site.settings.store_path) as store:
        tokens = [r[0] for r in store.db.execute("SELECT token FROM subscribers")]
    for token in tokens:
        assert token not in page.text
    assert all(email in page.text for email, _ in PEOPLE)
    found = site.page(client, "/subscribers?q=bob")
    assert "bob@example.net" in found.text and "ada@example.org" not in found.text
    exported = client.get("/subscribers/export")
    assert exported.status_code == 200 and exported.text.startswith("email,")
    assert all(token not in exported.text for token in tokens)


def test_subscribers_are_added_imported_and_unsubscribed(site: StudioSite) -> None:
    client = site.signed_in("sam")
    page = site.page(client, "/subscribers")
    added = client.post(
        "/subscribers/add", data={"csrf": csrf_of(page.text), "email": "new@example.org"}
    )
    assert added.status_code == 303
    csv_text = "email,name\ncsv@example.org,From CSV\nnot-an-address,Bad Row\n"
    imported = client.post(
        "/subscribers/import", data={"csrf": csrf_of(page.text)},
        files={"file": ("list.csv", csv_text.encode(), "text/csv")},
    )  # fmt: skip
    assert imported.status_code == 200
    assert "Imported 1" in imported.text and "list.csv:3" in imported.text
    row = re.search(r'action="/subscribers/(\d+)/unsubscribe"', imported.text)
    assert row
    done = client.post(row[0].split('"')[1], data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303
    actions = [e.action for e in site.audit()]
    assert {"add-subscriber", "import", "unsubscribe"} <= set(actions)


def test_an_admin_manages_staff_and_it_is_audited(site: StudioSite) -> None:
    client = site.signed_in("ada")
    page = site.page(client, "/staff")
    csrf = csrf_of(page.text)
    new = {"op": "add", "name": "newbie", "password": "a long enough one", "role": "editor"}
    add = client.post("/staff", data={"csrf": csrf, **new})
    assert add.status_code == 303
    short = client.post("/staff", data={"csrf": csrf, **new, "name": "x", "password": "short"})
    assert short.status_code == 400 and "12" in short.text
    client.post("/staff", data={"csrf": csrf, "op": "remove", "name": "newbie"})
    actions = [(e.action, e.what) for e in site.audit()]
    assert ("user-add", "newbie as editor") in actions
    assert ("user-remove", "newbie") in actions
    assert "user-add" in site.page(client, "/audit").text


# -- auth = "none" -----------------------------------------------------------------------------


def test_auth_none_serves_only_this_computer(project: Path) -> None:
    site = make_site(project, studio='auth = "none"')
    local = "http://127.0.0.1:8001"
    with site.client(client=("127.0.0.1", 5000), base_url=local) as client:
        assert client.get(f"/week/{WEEK}").status_code == 200
        proxied = client.get(f"/week/{WEEK}", headers={"x-forwarded-for": "203.0.113.9"})
        assert proxied.status_code == 403
        # DNS rebinding: a web page whose name now points at 127.0.0.1 reaches this
        # port from this computer, but its requests carry its own name.
        rebound = client.get("/subscribers/export", headers={"host": "evil.example"})
        assert rebound.status_code == 400 and "@example" not in rebound.text
        for host in ("evil.example:8001", "127.0.0.1.evil.example", "[::2]:8001", ""):
            assert client.get("/", headers={"host": host}).status_code == 400, host
        for host in ("localhost:8001", "LOCALHOST", "127.0.0.1", "127.0.0.2:8001", "[::1]:8001"):
            assert client.get(f"/week/{WEEK}", headers={"host": host}).status_code == 200, host
    with site.client(client=("203.0.113.9", 5000), base_url=local) as client:
        assert client.get(f"/week/{WEEK}").status_code == 403


def test_behind_a_trusted_https_proxy_the_cookie_is_secure(project: Path) -> None:
    site = make_site(project, web='trusted_proxies = ["127.0.0.1"]')
    for peer, secure in (("127.0.0.1", True), ("203.0.113.9", False)):
        with site.client(client=(peer, 5000)) as client:
            page = client.get("/login")
            response = client.post(
                "/login",
                data={"name": "ada", "password": PASSWORD, "csrf": csrf_of(page.text)},
                headers={"x-forwarded-proto": "https"},
            )
            assert response.status_code == 303
            assert ("Secure" in response.headers["set-cookie"]) is secure, peer


def test_studio_with_auth_none_refuses_a_public_address(project: Path) -> None:
    from tests.cli_process import run_newsletter

    make_site(project, studio='auth = "none"')
    result = run_newsletter(project, "studio", "--host", "0.0.0.0", "--port", "8999")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback" in lines[0] and "Traceback" not in result.stderr


def test_a_file_broken_by_hand_is_named_with_its_line(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    lines = site.issue.read_text().splitlines()
    site.issue.write_text("\n".join([*lines, "subject = = oops"]) + "\n")
    page = site.page(client)
    assert "cannot be read" in page.text
    assert f"line {len(lines) + 1}" in page.text or f":{len(lines) + 1}" in page.text


def test_a_send_that_died_does_not_count_as_running(site: StudioSite) -> None:
    # A lease left by a process that is gone (its pid no longer exists).
    with Store(site.settings.store_path) as store:
        ledger.acquire_lease(store, WEEK, "subject", 60)
        dead = f"{socket.gethostname()}:999999999:dead"
        store.db.execute("UPDATE campaigns SET lease_owner = ?", (dead,))
        store.db.commit()
    client = site.signed_in("sam")
    assert client.get(f"/week/{WEEK}/progress.json").json()["running"] is False
    confirm = site.page(client, f"/week/{WEEK}/send")
    assert "already running" not in confirm.text
    response = client.post(
        f"/week/{WEEK}/send",
        data={"csrf": csrf_of(confirm.text), "version": version_of(confirm.text)},
    )
    assert response.headers["location"] == f"/week/{WEEK}/progress"
    assert site.wait_for_send(client)["sent"] == len(PEOPLE)


def test_the_export_is_safe_to_open_in_a_spreadsheet(site: StudioSite) -> None:
    from newsletter import subscribers

    with Store(site.settings.store_path) as store:
        subscribers.add(store, "formula@example.org", '=HYPERLINK("http://x.example","hi")')
    client = site.signed_in("sam")
    exported = client.get("/subscribers/export").text
    assert "'=HYPERLINK" in exported and ",=HYPERLINK" not in exported


def test_command_line_actions_are_in_the_audit_log_too(project: Path) -> None:
    import getpass
    import json

    from tests.cli_process import run_newsletter

    make_site(project)
    steps = [
        ("subscribers", "add", "dee@example.org"),
        ("send", f"issues/{WEEK}.toml", "--test", "desk@example.org"),
        ("send", f"issues/{WEEK}.toml", "--yes"),
        ("send", f"issues/{WEEK}.toml", "--yes"),  # nothing left: not an action
        ("subscribers", "remove", "dee@example.org"),
    ]
    for step in steps:
        assert run_newsletter(project, *step).returncode == 0, step
    result = run_newsletter(project, "studio", "audit", "--json")
    entries = [(e["who"], e["action"], e["what"]) for e in json.loads(result.stdout)]
    who = f"cli:{getpass.getuser()}"
    assert entries == [
        (who, "unsubscribe", "dee@example.org"),
        (who, "sent", f"{WEEK}: {len(PEOPLE) + 1} sent, 0 failed, 0 deferred"),
        (who, "test", f"{WEEK} to desk@example.org"),
        (who, "add-subscriber", "dee@example.org"),
    ]


def test_the_week_page_shows_the_next_scheduled_send(project: Path) -> None:
    site = make_site(project, weekly='send_at = "Fri 09:00"\ntimezone = "Europe/Brussels"')
    page = site.page(site.signed_in("eddie")).text
    found = re.search(r'Next scheduled send: <time datetime="([^"]+)">([^<]+)</time>', page)
    assert found, "no next send on the page"
    assert found[1].endswith("+01:00") or found[1].endswith("+02:00")  # Brussels time
    assert found[2].startswith("Fri ") and "09:00" in found[2]


def test_reports_show_a_sent_issue_and_the_growth_chart(site: StudioSite) -> None:
    client = site.signed_in("sam")
    confirm = site.page(client, f"/week/{WEEK}/send")
    client.post(
        f"/week/{WEEK}/send",
        data={"csrf": csrf_of(confirm.text), "version": version_of(confirm.text)},
    )
    site.wait_for_send(client)
    index = site.page(client, "/reports")
    assert f'href="/reports/{WEEK}"' in index.text and "<svg" in index.text
    report = site.page(client, f"/reports/{WEEK}")
    assert re.search(r"<dt>Sent</dt><dd>3</dd>", report.text)
    assert "<svg" in report.text and "<script" not in report.text.split("<svg", 1)[1]


def test_the_studio_and_the_public_app_serve_none_of_each_others_routes(
    site: StudioSite,
) -> None:
    from starlette.testclient import TestClient

    from newsletter.web import create_app as public_app

    client = site.signed_in("ada")
    for path in ("/unsubscribe", "/subscribe", "/feed.xml", f"/{WEEK}/"):
        assert client.get(path).status_code == 404, path
    with TestClient(public_app(site.settings), base_url="https://newsletter.example.org") as web:
        for path in ("/login", f"/week/{WEEK}", "/subscribers", "/staff", "/_/studio.js"):
            assert web.get(path).status_code == 404, path


def test_a_long_intro_in_any_script_is_saved(site: StudioSite) -> None:
    client = site.signed_in("eddie")
    for intro in ("é" * 4900, "Ж" * 4900, "新" * 4900):
        response = site.edit(client, op="fields", intro=intro)
        assert response.status_code == 303, response.text[:300]
        assert tomllib.loads(site.issue.read_text())["intro"].strip() == intro


def test_a_file_with_windows_line_ends_is_sent(site: StudioSite) -> None:
    site.issue.write_bytes(site.issue.read_bytes().replace(b"\n", b"\r\n"))
    client = site.signed_in("sam")
    confirm = site.page(client, f"/week/{WEEK}/send")
    response = client.post(
        f"/week/{WEEK}/send",
        data={"csrf": csrf_of(confirm.text), "version": version_of(confirm.text)},
    )
    assert response.headers["location"] == f"/week/{WEEK}/progress"
    assert site.wait_for_send(client)["sent"] == len(PEOPLE)


def test_a_hand_typed_hash_with_any_characters_is_refused_not_a_crash(site: StudioSite) -> None:
    text = site.issue.read_text()
    site.issue.write_text('status = "approved"\napproved_hash = "hmac-sha256:3f1c…"\n' + text)
    assert not approval_of(site.issue.read_text(), SECRETS).valid
    assert "not approved" in site.page(site.signed_in("eddie")).text


def test_an_export_imports_back(site: StudioSite) -> None:
    from newsletter import subscribers

    with Store(site.settings.store_path) as store:
        subscribers.add(store, "-dash@example.org", "+plus name")
    exported = site.signed_in("sam").get("/subscribers/export").text
    assert "\n-dash@example.org," in exported.replace("\r\n", "\n")
    assert ",'+plus name," in exported
    again = site.project / "again.csv"
    again.write_text(exported)
    with Store(site.settings.store_path) as store:
        store.db.execute("DELETE FROM subscribers")
        store.db.commit()
        report = subscribers.import_csv(store, again)
    assert report.imported == len(PEOPLE) + 1 and not report.problems
