"""The week page: compose an issue, preview it, approve it, send a test, send it.

Every change is one POST that edits ``issues/<week>.toml`` through :mod:`.issuedoc`
(comments and order kept, written atomically) and answers with a redirect back to the
page: the page, its preview and its checks are always what the file now says. Each form
carries the file's version as the page saw it, so a file changed on disk since (by hand,
or by another tab) is never overwritten: the page says so and offers to reload.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .. import library
from ..approval import approval_of
from ..draft import story_fields
from ..errors import NewsletterError
from ..models import iso_week, week_range
from ..schedule import next_send
from ..weekly import current_week
from . import accounts
from .base import Form, Staff, Studio, field, redirect
from .issuedoc import Conflict, IssueDoc, StoryRef
from .preview import FILES, Preview

__all__ = ["WeekRoutes"]

#: The preview iframe: no scripts, no forms, no same-origin access; images from here.
PREVIEW_CSP = (
    "default-src 'none'; img-src 'self' data: https:; style-src 'unsafe-inline'; "
    "font-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
VIEWS = ("desktop", "phone", "text")
#: The changes the week page's forms may ask for (each needs the compose permission).
OPS = ("fields", "story", "remove", "add", "up", "down", "section", "lead")


@dataclass
class Candidate:
    id: str
    title: str
    url: str
    source: str
    published: str
    kind: str
    image_url: str


class WeekRoutes:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.settings = studio.settings

    def path(self, week: str) -> Path:
        return self.settings.issues_dir / f"{week}.toml"

    def image_src(self, url: str) -> str:
        """A story image as the studio can show it: the project's own files from here."""
        if not url:
            return ""
        if url.startswith(("https://", "http://")):
            base = self.settings.newsletter.base_url
            return FILES + url[len(base) :] if url.startswith(base) else url
        return FILES + url.lstrip("/")

    # -- the page ------------------------------------------------------------------------

    def week_of(self, request: Request) -> str:
        week = str(request.path_params["week"])
        try:
            week_range(week)  # the convertor's pattern matched; this refuses week 54 and such
        except NewsletterError:
            raise HTTPException(status_code=404) from None
        return week

    def home(self, request: Request, user: Staff, form: Form) -> Response:
        return redirect(f"/week/{current_week()}")

    def page(
        self,
        request: Request,
        user: accounts.Staff,
        week: str,
        *,
        error: str = "",
        status_code: int = 200,
    ) -> Response:
        view = request.query_params.get("view", "desktop")
        view = view if view in VIEWS else "desktop"
        dark = request.query_params.get("dark") == "1"
        start, end = week_range(week)
        monday = dt.date.fromisocalendar(*start.isocalendar()[:2], 1)
        context: dict[str, Any] = {
            "week": week, "start": start, "end": end, "view": view, "dark": dark,
            "previous": iso_week(monday - dt.timedelta(days=7)),
            "next": iso_week(monday + dt.timedelta(days=7)),
            "conflict": request.query_params.get("conflict") == "1", "error": error,
            "tested": _count(request.query_params.get("tested", "")),
            "next_send": next_send(self.settings), "doc": None,
            "require_approval": self.settings.weekly.require_approval,
            "test_addresses": [str(a) for a in self.settings.studio.test_addresses],
            "collect_job": self.studio.jobs.get("collect", "all"),
            "sources": [s.name for s in self.settings.sources],
        }  # fmt: skip
        path = self.path(week)
        doc = None
        try:
            doc = IssueDoc.load(path) if path.exists() else None
        except NewsletterError as exc:
            # A file broken by hand: say where; the studio edits it again once it parses.
            context.update(broken=str(exc))
        stories: list[StoryRef] = []
        if doc is not None:
            stories = doc.stories()
            preview = self.preview_of(doc)
            context.update(
                doc=doc, stories=stories, sections=doc.sections(), preview=preview,
                approval=approval_of(doc.text, self.studio.secrets), fields=fields_of(doc),
                findings=preview.findings(),
            )  # fmt: skip
        context["candidates"] = self._candidates(week, stories)
        context["progress"] = self.studio.jobs.progress(week)
        return self.studio.render(
            request, "week.html", user=user, status_code=status_code,
            title=f"Week {week}", image_src=self.image_src, **context,
        )  # fmt: skip

    def preview_of(self, doc: IssueDoc) -> Preview:
        anchors: dict[tuple[int | str, ...], str] = {}
        for story in doc.stories():
            loc: tuple[int | str, ...] = ("lead",)
            if story.where != "lead":
                loc = ("sections", story.section, "items", story.index)
            anchors[loc] = f"story-{story.key}"
        return self.studio.previews.get(doc.text, str(doc.path), anchors)

    def _candidates(self, week: str, stories: list[StoryRef]) -> list[Candidate]:
        taken = {s.key for s in stories} | {s.url for s in stories if s.url}
        with self.studio.store() as store:
            rows = library.draftable_items(store, week)
        return [
            _candidate(row) for row in rows if row["id"] not in taken and row["url"] not in taken
        ]

    def show(self, request: Request, user: Staff, form: Form) -> Response:
        return self.page(request, user, self.week_of(request))

    # -- edits ---------------------------------------------------------------------------

    def edit(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week_of(request)
        op = field(form, "op")
        if op not in OPS:
            return self.page(request, user, week, error=f"unknown change {op!r}", status_code=400)
        path = self.path(week)
        if not path.exists():
            return self.page(request, user, week, error="no issue file yet", status_code=409)
        key = field(form, "key")
        anchor = f"story-{key}" if key else ""
        try:
            doc = IssueDoc.load(path)
            what = self._apply(doc, op, key, form)
            doc.save(field(form, "version"))
        except Conflict:
            return redirect(f"/week/{week}?conflict=1{_view(form)}")
        except NewsletterError as exc:
            return self.page(request, user, week, error=str(exc), status_code=400)
        self.studio.audit(user, "edit", f"{week}: {what}")
        return redirect(
            f"/week/{week}?{_view(form).lstrip('&')}" + (f"#{anchor}" if anchor else "")
        )

    def _apply(self, doc: IssueDoc, op: str, key: str, form: FormData | None) -> str:
        if op == "fields":
            changed = []
            for name in ("subject", "preheader", "intro"):
                value = field(form, name).replace("\r\n", "\n")
                if form is not None and name in form and value != fields_of(doc)[name]:
                    doc.set_field(name, value)
                    changed.append(name)
            return "changed " + (", ".join(changed) or "nothing")
        if op == "story":
            url = field(form, "url").strip()
            summary = field(form, "summary").replace("\r\n", "\n")
            doc.edit_story(key, title=field(form, "title"), summary=summary, url=url or None)
            return f"edited story {key}"
        if op == "remove":
            doc.remove_story(key)
            return f"removed story {key}"
        if op in ("up", "down"):
            doc.move(key, -1 if op == "up" else 1)
            return f"moved story {key} {op}"
        if op == "section":
            doc.move_to_section(key, _int(field(form, "section")))
            return f"moved story {key} to section {field(form, 'section')}"
        if op == "lead":
            doc.make_lead(key)
            return f"made story {key} the lead"
        # op == "add": a candidate from the library
        with self.studio.store() as store:
            rows = library.draftable_items(store, doc_week(doc))
        row = next((r for r in rows if r["id"] == field(form, "item")), None)
        if row is None:
            raise NewsletterError("that story is no longer in the library for this week")
        doc.add_story(story_fields(row), _int(field(form, "section")))
        return f"added story {row['id']}"

    def draft(self, request: Request, user: Staff, form: Form) -> Response:
        from ..draft import draft_issue

        week = self.week_of(request)
        try:
            made = draft_issue(self.settings, week)
        except NewsletterError as exc:
            return self.page(request, user, week, error=str(exc), status_code=400)
        self.studio.audit(user, "draft", f"{week}: {made.path.name}")
        if made.beside:
            # A second click, or a file made meanwhile: draft never overwrites one.
            return self.page(
                request, user, week, status_code=409,
                error=f"an issue file for {week} exists already; the new draft went to "
                f"{made.path.name} beside it",
            )  # fmt: skip
        return redirect(f"/week/{week}")

    def collect(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week_of(request)
        if self.studio.jobs.start("collect", "all", lambda: self._collect(job_key="all")):
            self.studio.audit(user, "collect", "every source")
        return redirect(f"/week/{week}#candidates")

    def collect_status(self, request: Request, user: Staff, form: Form) -> Response:
        job = self.studio.jobs.get("collect", "all")
        state = {"running": bool(job and not job.done), "summary": job.summary if job else "",
                 "error": job.error if job else ""}  # fmt: skip
        return JSONResponse(state, headers={"cache-control": "no-store"})

    def _collect(self, job_key: str) -> str:
        from ..collect import collect

        done: list[str] = []

        def on_source(result: Any) -> None:
            state = f"failed: {result.error}" if result.error else f"{result.new} new"
            done.append(f"{result.source}: {state}")
            job = self.studio.jobs.get("collect", job_key)
            if job is not None:
                job.summary = "; ".join(done)

        collect(self.settings, on_source=on_source)
        return "; ".join(done) or "no sources configured"

    def approve(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week_of(request)
        try:
            doc = IssueDoc.load(self.path(week))
        except NewsletterError as exc:
            return self.page(request, user, week, error=str(exc), status_code=409)
        preview = self.preview_of(doc)
        if preview.report is None or preview.report.count("error"):
            return self.page(
                request, user, week, status_code=400,
                error="the checks find errors: fix them before approving",
            )  # fmt: skip
        try:
            doc.approve(user.name, dt.datetime.now(dt.UTC), self.studio.secrets[0])
            doc.save(field(form, "version"))
        except Conflict:
            return redirect(f"/week/{week}?conflict=1")
        except NewsletterError as exc:
            return self.page(request, user, week, error=str(exc), status_code=409)
        self.studio.audit(user, "approve", week)
        return redirect(f"/week/{week}")

    # -- the preview -----------------------------------------------------------------------

    def preview(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week_of(request)
        path = self.path(week)
        if not path.exists():
            return PlainTextResponse("No issue file for this week.", status_code=404)
        try:
            preview = self.preview_of(IssueDoc.load(path))
        except NewsletterError as exc:
            return PlainTextResponse(str(exc), status_code=409)
        headers = {
            "content-security-policy": PREVIEW_CSP, "x-frame-options": "SAMEORIGIN",
            "cache-control": "no-store",
        }  # fmt: skip
        if request.query_params.get("part") == "text":
            return PlainTextResponse(preview.text or preview.problem, headers=headers)
        if not preview.html:
            return PlainTextResponse(preview.problem or "No preview.", headers=headers)
        dark = request.query_params.get("dark") == "1"
        return Response(
            preview.dark_html() if dark else preview.html, media_type="text/html", headers=headers
        )


def doc_week(doc: IssueDoc) -> str:
    return doc.path.stem


def fields_of(doc: IssueDoc) -> dict[str, str]:
    import tomllib

    data = tomllib.loads(doc.text)
    return {name: str(data.get(name, "")) for name in ("subject", "preheader", "intro")}


def _view(form: FormData | None) -> str:
    view = field(form, "view")
    return f"&view={view}" if view in VIEWS else ""


def _count(value: str) -> int:
    return int(value) if value.isdigit() and len(value) < 4 else 0


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NewsletterError(f"section {value!r} is not a number") from None


def _candidate(row: sqlite3.Row) -> Candidate:
    return Candidate(
        id=row["id"], title=row["title"], url=row["url"] or "", source=row["source"],
        published=row["published"] or "", kind=row["kind"], image_url=row["image_url"] or "",
    )  # fmt: skip
