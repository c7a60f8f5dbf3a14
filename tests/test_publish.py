"""`newsletter publish`: the public archive as static files, and the build's preview.

A real project copy, a real capture-mode send on loopback, then the tree on disk: what is in
it, that every image and link in it resolves inside it, that it refuses folders it did not
make, and that a failure halfway leaves the previous tree as it was. Chromium opens the tree
from file:// with no network at all.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import feedparser
import pytest
from playwright.sync_api import Browser, Page, Route
from starlette.testclient import TestClient

from newsletter import InputError, Settings, build_issue, open_issue, subscribers
from newsletter.send import send_issue
from newsletter.store import Store
from newsletter.web import create_app, publish as publish_module
from newsletter.web.publish import MARKER, publish
from tests.conftest import ROOT
from tests.test_browser import SCREENSHOTS
from tests.test_cli import assert_one_line_error, run

WEEK = "2023-W25"
DRAFT_WEEK = "2023-W26"
DRAFT_SUBJECT = "A draft nobody was sent"


def send_sample(settings: Settings, project: Path) -> None:
    """The sample issue to the example list, in capture mode (a local SMTP server)."""
    with Store(settings.store_path) as store:
        subscribers.import_csv(store, ROOT / "examples" / "subscribers.csv")
    report = send_issue(open_issue(project / "issues" / f"{WEEK}.toml", settings), settings)
    assert report.ok and report.sent == 20, report


def add_draft(settings: Settings, project: Path) -> None:
    """A second issue, built but never sent: it must never be public."""
    text = (project / "issues" / f"{WEEK}.toml").read_text()
    text = text.replace(f'week = "{WEEK}"', f'week = "{DRAFT_WEEK}"')
    text = text.replace("\ndate = 2023-06-23\n", "\ndate = 2023-06-30\n")
    text = re.sub(r'(?m)^subject = ".*"$', f'subject = "{DRAFT_SUBJECT}"', text)
    draft = project / "issues" / f"{DRAFT_WEEK}.toml"
    draft.write_text(text)
    build_issue(open_issue(draft, settings))


@pytest.fixture
def sent(settings: Settings, project: Path) -> Settings:
    send_sample(settings, project)
    add_draft(settings, project)
    return settings


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones too, by its path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(out: Path) -> list[str]:
    """Staging or old folders publish left beside its target."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


class Refs(HTMLParser):
    """Every image source and every link of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        elif tag in ("a", "link") and values.get("href"):
            self.links.append(values["href"] or "")


def refs(page: Path) -> Refs:
    parser = Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def resolves_inside(root: Path, page: Path, ref: str) -> bool:
    """A relative reference from ``page`` that names a file in the tree."""
    target = (page.parent / unquote(urlsplit(ref).path)).resolve()
    return target.is_relative_to(root.resolve()) and target.is_file()


# -- what the tree holds ---------------------------------------------------------------------


def test_publish_writes_the_sent_issue_and_never_a_draft(sent: Settings) -> None:
    report = publish(sent)
    out = sent.output_dir / "public"
    assert (report.out, report.issues, report.images) == (out, 1, 2)
    assert report.skipped == [] and report.missing_images == []
    files = tree(out)
    assert sorted(files) == [
        MARKER,
        f"{WEEK}/index.html",
        "_/newsletter.css",
        "feed.xml",
        "images/2023-W25-lead.png",
        "images/2023-W25-video.png",
        "index.html",
    ]
    assert report.files == len(files)
    index = files["index.html"].decode()
    assert f'href="{WEEK}/index.html"' in index and "Montenegro&#39;s role" in index
    assert DRAFT_WEEK not in index and DRAFT_SUBJECT not in index
    assert all(DRAFT_SUBJECT.encode() not in data for data in files.values())
    # The images are the project's own files, byte for byte.
    for name in ("images/2023-W25-lead.png", "images/2023-W25-video.png"):
        assert files[name] == (sent.static_dir / name).read_bytes()


def test_links_only_the_server_answers_are_absolute(sent: Settings) -> None:
    publish(sent)
    index = (sent.output_dir / "public" / "index.html").read_text()
    base = sent.newsletter.base_url
    assert f'href="{base}subscribe"' in index
    assert 'href="_/newsletter.css"' in index and 'href="feed.xml"' in index
    assert 'href="index.html"' in index


def test_a_remote_image_stays_remote(settings: Settings, project: Path) -> None:
    issue = project / "issues" / f"{WEEK}.toml"
    remote = "https://media.example.org/video.png"
    issue.write_text(
        issue.read_text().replace('url = "images/2023-W25-video.png"', f'url = "{remote}"')
    )
    send_sample(settings, project)
    report = publish(settings)
    assert (report.images, report.missing_images) == (1, [])
    out = settings.output_dir / "public"
    assert refs(out / WEEK / "index.html").images == ["../images/2023-W25-lead.png", remote]
    assert not (out / "images" / "2023-W25-video.png").exists()


def test_feed_parses_and_lists_the_sent_issue(sent: Settings) -> None:
    publish(sent)
    feed = feedparser.parse((sent.output_dir / "public" / "feed.xml").read_bytes())
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert [e.link for e in feed.entries] == [f"{sent.newsletter.base_url}{WEEK}/"]
    assert feed.entries[0].title == "Montenegro's role in the Balkans, and DIANA goes live"


def test_every_image_and_link_in_the_tree_resolves(sent: Settings) -> None:
    publish(sent)
    out = sent.output_dir / "public"
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 2
    images = 0
    for page in pages:
        found = refs(page)
        for src in found.images:
            images += 1
            # Remote images may stay remote; ours must be in the tree.
            remote = src.startswith("https://") and not src.startswith(sent.newsletter.base_url)
            assert remote or resolves_inside(out, page, src), (page.name, src)
        for href in found.links:
            if urlsplit(href).scheme in ("https", "mailto", "data") or href.startswith("#"):
                continue
            assert resolves_inside(out, page, href), (page.name, href)
    assert images == 2


def test_the_tree_holds_what_the_server_serves(sent: Settings) -> None:
    publish(sent)
    out = sent.output_dir / "public"
    with TestClient(create_app(sent)) as client:
        issue = client.get(f"/{WEEK}/")
        feed = client.get("/feed.xml")
        image = client.get("/images/2023-W25-lead.png")
        css = client.get("/_/newsletter.css")
    assert issue.status_code == 200
    assert (out / WEEK / "index.html").read_bytes() == issue.content
    assert (out / "feed.xml").read_bytes() == feed.content
    assert (out / "images" / "2023-W25-lead.png").read_bytes() == image.content
    assert (out / "_" / "newsletter.css").read_bytes() == css.content


def test_an_empty_archive_still_has_an_index_and_a_feed(settings: Settings) -> None:
    report = publish(settings)
    out = settings.output_dir / "public"
    assert (report.issues, report.images) == (0, 0)
    assert "No issue has been sent yet." in (out / "index.html").read_text()
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.bozo == 0 and feed.entries == []
    assert not settings.store_path.exists(), "publish made a store for nothing"


def test_cli_prints_one_summary_line(sent: Settings, project: Path) -> None:
    result = run("publish", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Published 1 issue, 2 images to out/public\n"
    assert result.stderr == ""
    result = run("publish", "--out", "elsewhere", cwd=project)
    assert result.stdout == "Published 1 issue, 2 images to elsewhere\n"


def test_a_missing_image_is_a_warning(sent: Settings, project: Path) -> None:
    (sent.static_dir / "images" / "2023-W25-video.png").unlink()
    result = run("publish", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Published 1 issue, 1 image to out/public" in result.stdout
    assert "warning: 1 image not in [paths] static_dir static: images/2023-W25-video.png" in (
        result.stderr
    )


# -- replacing the tree, and refusing what is not ours ---------------------------------------


def test_a_second_publish_replaces_the_whole_tree(sent: Settings) -> None:
    out = sent.output_dir / "public"
    publish(sent)
    (out / "stale.html").write_text("from an older publish")
    (out / "images" / "gone.png").write_bytes(b"old")
    publish(sent)
    assert not (out / "stale.html").exists() and not (out / "images" / "gone.png").exists()
    assert (out / MARKER).is_file() and (out / WEEK / "index.html").is_file()
    assert leftovers(out) == []


def test_the_tree_follows_the_umask(sent: Settings) -> None:
    # A web server running as another user must be able to read it.
    old = os.umask(0o022)
    try:
        publish(sent)
    finally:
        os.umask(old)
    out = sent.output_dir / "public"
    for path in [out, *out.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path


def test_an_empty_folder_is_taken(sent: Settings, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    assert publish(sent, out).issues == 1
    assert (out / "index.html").is_file()


def test_a_link_to_a_folder_stays_a_link(sent: Settings, tmp_path: Path) -> None:
    real = tmp_path / "releases" / "site"
    real.mkdir(parents=True)
    link = tmp_path / "site"
    link.symlink_to(real, target_is_directory=True)
    publish(sent, link)
    publish(sent, link)
    assert link.is_symlink() and (real / "index.html").is_file()


def test_refuses_a_file(sent: Settings, project: Path) -> None:
    (project / "site.html").write_text("mine")
    assert_one_line_error(
        run("publish", "--out", "site.html", cwd=project), "site.html: it is a file, not a folder"
    )
    assert_one_line_error(
        run("publish", "--out", "site.html/public", cwd=project),
        "site.html/public: site.html is a file, not a folder",
    )
    assert (project / "site.html").read_text() == "mine"


def test_refuses_a_folder_it_did_not_make(sent: Settings, project: Path) -> None:
    mine = project / "www"
    (mine / "blog").mkdir(parents=True)
    (mine / "blog" / "post.html").write_text("my post")
    (mine / "index.html").write_text("my home page")
    before = tree(mine)
    assert_one_line_error(
        run("publish", "--out", "www", cwd=project),
        "www: is not empty and was not made by `newsletter publish`",
    )
    assert tree(mine) == before
    assert leftovers(mine) == []
    with pytest.raises(InputError, match="not made by"):
        publish(sent, mine)
    assert tree(mine) == before


@pytest.mark.parametrize(
    ("out", "holds"),
    [("out", "[paths] output_dir"), (".", "the project folder"), ("static", "[paths] static_dir")],
)
def test_refuses_a_folder_holding_the_project(
    settings: Settings, project: Path, out: str, holds: str
) -> None:
    # Even empty (or with a marker planted in it), replacing it would take these along.
    folder = project / out
    folder.mkdir(exist_ok=True)
    (folder / MARKER).write_text("")
    before = tree(project)
    with pytest.raises(InputError, match=re.escape(f"holds {holds}")):
        publish(settings, folder)
    assert tree(project) == before


# -- a failure halfway -----------------------------------------------------------------------


def test_a_write_failing_halfway_leaves_the_previous_tree(
    sent: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = sent.output_dir / "public"
    publish(sent)
    before = tree(out)
    real_write = publish_module._write
    calls = 0

    def full_disk(path: Path, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(publish_module, "_write", full_disk)
    with pytest.raises(InputError, match="cannot write: No space left on device") as raised:
        publish(sent)
    assert calls == 4
    assert raised.value.where.startswith(f"{out}/"), "the error names the file in the tree"
    assert tree(out) == before
    assert leftovers(out) == []


def test_a_swap_failing_puts_the_previous_tree_back(
    sent: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = sent.output_dir / "public"
    publish(sent)
    before = tree(out)
    real_rename = os.rename

    def refuse_the_new_tree(src: Any, dst: Any) -> None:
        if ".publish-" in str(src):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", refuse_the_new_tree)
    with pytest.raises(InputError, match="cannot write"):
        publish(sent)
    monkeypatch.undo()
    assert tree(out) == before
    assert leftovers(out) == []


# -- the build's preview ---------------------------------------------------------------------


@pytest.mark.parametrize("elsewhere", [False, True])
def test_the_build_preview_finds_its_images_on_disk(
    settings: Settings, project: Path, tmp_path: Path, elsewhere: bool
) -> None:
    out_dir = tmp_path / "deep" / "er" / "build" if elsewhere else None
    result = build_issue(open_issue(project / "issues" / f"{WEEK}.toml", settings), out_dir)
    preview = result.files["archive.html"]
    sources = refs(preview).images
    assert len(sources) == 2
    for src in sources:
        assert not src.startswith("https://"), src
        assert (preview.parent / unquote(src)).resolve().is_file(), src
    # The email keeps the absolute URLs, and so does the Build (the golden files).
    base = settings.newsletter.base_url
    assert refs(result.files["email.html"]).images == [
        f"{base}images/{Path(s).name}" for s in sources
    ]
    assert f'src="{base}images/' in result.archive_html


# -- in a browser, from file:// --------------------------------------------------------------


_IMAGES_JS = "() => [...document.images].map(i => ({src: i.src, width: i.naturalWidth}))"
_MASTHEAD_JS = "() => getComputedStyle(document.querySelector('.masthead')).backgroundColor"


@contextmanager
def from_disk(browser: Browser, path: Path) -> Iterator[Page]:
    """``path`` opened from file://, anything else refused; on leaving, no console error,
    failed load or refused request may have happened."""
    context = browser.new_context(viewport={"width": 600, "height": 800})
    problems: list[str] = []

    def handle(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            problems.append(f"blocked: {route.request.url}")
            route.abort("blockedbyclient")

    context.route("**/*", handle)
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    try:
        page.goto(path.as_uri(), wait_until="load")
        yield page
    finally:
        context.close()
    assert problems == []


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / name
    shot.unlink(missing_ok=True)  # a stale file from an earlier run must not pass
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def all_loaded(page: Page) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = page.evaluate(_IMAGES_JS)
    assert [i["src"] for i in images if i["width"] == 0] == []
    return images


def test_the_tree_opens_from_disk_in_chromium(browser: Browser, sent: Settings) -> None:
    publish(sent)
    out = sent.output_dir / "public"
    with from_disk(browser, out / "index.html") as page:
        # The stylesheet came from _/newsletter.css: the masthead has its colour.
        assert page.evaluate(_MASTHEAD_JS) == "rgb(0, 73, 144)"
        screenshot(page, "publish-index.png")
        # On to the issue, as a reader would.
        page.click(f'a[href="{WEEK}/index.html"]')
        page.wait_for_load_state("load")
        assert page.url == (out / WEEK / "index.html").as_uri()
        images = all_loaded(page)
        assert len(images) == 2
        assert all(i["src"].startswith(out.as_uri() + "/") for i in images), images
        screenshot(page, "publish-issue.png")


def test_the_build_preview_opens_from_disk_in_chromium(
    browser: Browser, settings: Settings, project: Path
) -> None:
    result = build_issue(open_issue(project / "issues" / f"{WEEK}.toml", settings))
    with from_disk(browser, result.files["archive.html"]) as page:
        assert len(all_loaded(page)) == 2
