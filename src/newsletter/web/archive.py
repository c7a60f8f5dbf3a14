"""The public archive, shared by ``newsletter serve`` and ``newsletter publish``: which
issues went out, each one's browser version, the index and the Atom feed.

Only issues that reached a subscriber are public (the ledger says which); drafts never are.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from .. import ledger
from ..settings import Settings
from ..store import Store
from ..urls import browser_url, feed_url, home_url, localise_images

__all__ = [
    "ISSUE_CSP",
    "WEEK",
    "browser_page",
    "feed_xml",
    "image_names",
    "index_entries",
    "issue_page",
    "local_images",
    "localise_images",
]

#: An issue's week as it appears in its URL: 2023-W25.
WEEK = re.compile(r"\d{4}-W\d{2}")

#: The browser version is the email's HTML: inline styles, images from anywhere, no script.
ISSUE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def image_names(page: str, base_url: str) -> list[str]:
    """The paths under ``base_url`` that the page's images name, as the server would look
    them up (``images/x.png``, decoded, without a query), each once."""
    start = 'src="' + html.escape(base_url, quote=True)
    names: list[str] = []
    for match in re.finditer(re.escape(start) + r'([^"?#]+)[^"]*"', page):
        name = unquote(html.unescape(match.group(1)))
        if name not in names:
            names.append(name)
    return names


def local_images(page: str, base_url: str, static_dir: Path) -> dict[str, Path]:
    """The files under ``static_dir`` that the page's images under ``base_url`` name, by
    name: ``{"images/x.png": <static_dir>/images/x.png}``. Like the server: nothing hidden
    (``.env``), nothing outside ``static_dir``; a name with no such file is left out."""
    root = static_dir.resolve()
    found: dict[str, Path] = {}
    for name in image_names(page, base_url):
        if any(part.startswith(".") for part in name.split("/")):
            continue
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            found[name] = path
    return found


def browser_page(store: Store, settings: Settings, week: str) -> str | None:
    """The browser version of a sent issue as it went out (images under ``base_url``);
    None if the issue has not gone out."""
    page = ledger.browser_version(store, week)
    if page is None:
        return None
    if not page:
        # Sent before browser versions were kept: render its file, if it is still there.
        from ..render import open_issue

        path = settings.issues_dir / f"{week}.toml"
        if not path.is_file():
            return None
        loaded = open_issue(path, settings)
        if not loaded.valid:
            return None
        page = loaded.archive_html
    return page


def issue_page(store: Store, settings: Settings, week: str) -> str | None:
    """The browser version of a sent issue, images relative (``../images/…``); None if the
    issue has not gone out."""
    page = browser_page(store, settings, week)
    if page is None:
        return None
    return localise_images(page, settings.newsletter.base_url, "../")


def feed_xml(settings: Settings, sent: list[ledger.SentIssue]) -> bytes:
    """An Atom feed of the sent issues, newest first."""
    from feedgen.feed import FeedGenerator

    base = settings.newsletter.base_url
    newsletter = settings.newsletter
    feed = FeedGenerator()
    feed.id(home_url(base))
    feed.title(newsletter.name)
    feed.author({"name": newsletter.name})
    feed.link(href=home_url(base), rel="alternate")
    feed.link(href=feed_url(base), rel="self")
    feed.language(newsletter.language)
    newest = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    # feedgen puts each new entry first: add the oldest first.
    for item in reversed(sent):
        when = _when(item.sent)
        newest = max(newest, when)
        entry = feed.add_entry()
        entry.id(browser_url(base, item.issue))
        entry.title(item.subject)
        entry.link(href=browser_url(base, item.issue), rel="alternate")
        entry.published(when)
        entry.updated(when)
        if item.preheader:
            entry.summary(item.preheader)
    feed.updated(newest)
    return bytes(feed.atom_str(pretty=True))


def _when(iso: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(iso)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def index_entries(sent: list[ledger.SentIssue], link: Callable[[str], str]) -> list[dict[str, str]]:
    """What the archive index shows of each issue: its link, date, subject and preheader."""
    from ..render.theme import longdate

    entries = []
    for item in sent:
        if not WEEK.fullmatch(item.issue):
            continue
        year, _, week = item.issue.partition("-W")
        # The issue's own date; the day its send began for one sent before dates were kept.
        day = dt.date.fromisoformat(item.date) if item.date else _when(item.sent).date()
        entries.append(
            {
                "week": item.issue,
                "href": link(item.issue),
                "date": longdate(day),
                "datetime": day.isoformat(),
                "subject": item.subject,
                "preheader": item.preheader,
                "label": f"Week {int(week)}, {year}",
            }
        )
    return entries
