"""``newsletter publish``: the public archive as static files, for a plain web server or
object storage.

The tree mirrors the server's URLs under ``base_url``, so the links in sent messages
resolve to it, and every link inside it is relative, so it also works opened from disk::

    index.html              the archive index (archive.html, as `serve` shows it)
    feed.xml                the Atom feed
    <week>/index.html       each sent issue's browser version, images ../images/…
    _/newsletter.css        the pages' stylesheet
    images/…                every local image the issues use, from [paths] static_dir
    .newsletter-publish     the marker: this folder is publish's to replace

Subscribe and unsubscribe need the server (``newsletter serve``): their links stay
absolute. The tree is built in a hidden sibling folder and swapped in whole, so a
failure leaves the previous tree as it was; a folder publish did not make is refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import ledger
from ..errors import InputError
from ..files import check_writable
from ..settings import Settings
from ..store import Store
from ..urls import subscribe_url, unsubscribe_url
from . import STATIC
from .archive import (
    WEEK,
    browser_page,
    feed_xml,
    image_names,
    index_entries,
    local_images,
    localise_images,
)
from .pages import Pages

__all__ = ["MARKER", "PublishReport", "default_out_dir", "publish"]

#: The file that says a folder was made by publish (and may be replaced by it).
MARKER = ".newsletter-publish"
MARKER_TEXT = (
    b"Made by `newsletter publish`. It replaces this whole folder each time it runs:\n"
    b"do not keep other files here.\n"
)
STYLESHEET = "_/newsletter.css"
STYLESHEET_SOURCE = STATIC / "newsletter.css"


@dataclass
class PublishReport:
    """What one publish wrote."""

    out: Path
    #: Sent issues published, each as <week>/index.html.
    issues: int = 0
    #: Local images copied from [paths] static_dir.
    images: int = 0
    #: Every file in the tree, the marker included.
    files: int = 0
    #: Sent issues whose page could not be made (sent before pages were kept, file gone).
    skipped: list[str] = field(default_factory=list)
    #: Local image URLs the pages use that have no file in [paths] static_dir.
    missing_images: list[str] = field(default_factory=list)


def default_out_dir(settings: Settings) -> Path:
    return settings.output_dir / "public"


def publish(settings: Settings, out_dir: Path | None = None) -> PublishReport:
    """Write the public archive to ``out_dir`` (default ``<[paths] output_dir>/public``).

    Only issues that reached a subscriber appear; drafts never do. Everything is rendered
    before the first byte is written. Raises :class:`InputError` for a target that is a
    file or a folder publish did not make, and when the tree cannot be written.
    """
    out = out_dir if out_dir is not None else default_out_dir(settings)
    target = _check_target(out, settings)
    report = PublishReport(out=out)
    files, images = _render(settings, report)
    _write_tree(target, files, images, report)
    return report


# -- what goes into the tree -----------------------------------------------------------------


def _render(settings: Settings, report: PublishReport) -> tuple[dict[str, bytes], dict[str, Path]]:
    """(every file of the tree by its path in it, the images to copy by their path in it)."""
    base = settings.newsletter.base_url
    pages: dict[str, bytes] = {}
    published: list[ledger.SentIssue] = []
    images: dict[str, Path] = {}
    if settings.store_path.is_file():  # no store yet: nothing was ever sent
        with Store(settings.store_path) as store:
            for item in ledger.sent_issues(store):
                # The week names a folder in the tree: nothing else may (no "..").
                page = (
                    browser_page(store, settings, item.issue)
                    if WEEK.fullmatch(item.issue)
                    else None
                )
                if page is None:
                    report.skipped.append(item.issue)
                    continue
                published.append(item)
                found = local_images(page, base, settings.static_dir)
                images.update(found)
                for name in image_names(page, base):
                    if name not in found and name not in report.missing_images:
                        report.missing_images.append(name)
                pages[f"{item.issue}/index.html"] = localise_images(page, base, "../").encode()
    report.issues = len(published)
    index = Pages(settings).page(
        "archive.html",
        entries=index_entries(published, lambda week: f"{week}/index.html"),
        **_links(settings),
    )
    files = {
        MARKER: MARKER_TEXT,
        "index.html": index.encode(),
        "feed.xml": feed_xml(settings, published),
        STYLESHEET: STYLESHEET_SOURCE.read_bytes(),
        **pages,
    }
    # The tree's own files win over an image of the same name (or one that would need a
    # folder where a file is, or the other way round).
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents}
    for name in list(images):
        parents = {str(parent) for parent in PurePosixPath(name).parents}
        if name in files or name in folders or not parents.isdisjoint(files):
            del images[name]
            report.missing_images.append(name)
    return files, images


def _links(settings: Settings) -> dict[str, str]:
    """The links every page carries, for a page at the root of the tree: the tree's own
    relative, the ones only the server answers absolute."""
    base = settings.newsletter.base_url
    return {
        "home": "index.html",
        "stylesheet": STYLESHEET,
        "feed": "feed.xml",
        "subscribe": subscribe_url(base),
        "unsubscribe": unsubscribe_url(base),
    }


# -- the target folder and the swap ----------------------------------------------------------


def _check_target(out: Path, settings: Settings) -> Path:
    """The folder to replace, after refusing anything publish must not touch."""
    where = str(out)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InputError(f"{'it' if blocker == out else blocker} is a file, not a folder", where)
    # A link to a folder: replace the folder it points at, and keep the link.
    target = out.resolve() if out.is_symlink() else out.absolute()
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise InputError(
            f"is not empty and was not made by `newsletter publish` (it has no {MARKER}); "
            "choose a new or empty folder",
            where,
        )
    # Replacing the folder must never take the project's own files with it.
    for label, path in _project_paths(settings).items():
        if path.resolve().is_relative_to(target.resolve()):
            raise InputError(f"holds {label} {path}; choose another folder", where)
    check_writable(target.parent)
    return target


def _project_paths(settings: Settings) -> dict[str, Path]:
    return {
        "the project folder": settings.root,
        "[paths] output_dir": settings.output_dir,
        "[paths] static_dir": settings.static_dir,
        "[paths] issues_dir": settings.issues_dir,
        "[paths] templates_dir": settings.templates_dir,
        "[store] path": settings.store_path,
        "[smtp] capture_dir": settings.path(settings.smtp.capture_dir),
    }


def _write_tree(
    target: Path, files: dict[str, bytes], images: dict[str, Path], report: PublishReport
) -> None:
    """Build the tree in a hidden sibling of ``target``, then swap it in."""
    # Made like any folder (its mode follows the umask: a web server must read it).
    stage = target.with_name(f".{target.name}.publish-{secrets.token_hex(4)}")
    try:
        stage.mkdir()
        for name, data in files.items():
            _write(stage / name, data)
        report.files = len(files)
        for name, source in images.items():
            _write(stage / name, source.read_bytes())
            report.images += 1
            report.files += 1
        _swap(stage, target)
    except OSError as exc:
        # Name the file as it would have been in the tree, not in the hidden stage.
        where = str(exc.filename or target).replace(str(stage), str(target))
        raise InputError(f"cannot write: {exc.strerror or exc}", where) from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _swap(stage: Path, target: Path) -> None:
    """Put the new tree in place of the old one: the old one moves aside first and comes
    back if the new one cannot take its place."""
    if not target.exists():
        os.rename(stage, target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
