"""Sending from the studio: a test copy, the confirmation page, the send, its progress.

The send is the CLI's: :func:`~newsletter.send.checked.send_checked` on the issue as read
once here (the text whose version and approval were checked is the text sent), run in
the background by :mod:`.jobs`, with ``[weekly] require_approval`` applied by the same
rule as ``newsletter weekly`` (:func:`~newsletter.weekly.check_approval`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import NewsletterError
from ..render import LoadedIssue, issue_from_text, open_issue
from ..weekly import check_approval
from . import accounts
from .base import Form, Staff, Studio, field, redirect
from .issuedoc import IssueDoc
from .week import WeekRoutes, fields_of

__all__ = ["SendRoutes"]

#: At most this many addresses for one test send.
TEST_ADDRESSES_MAX = 10


class SendRoutes:
    def __init__(self, studio: Studio, week: WeekRoutes) -> None:
        self.studio, self.week = studio, week
        self.settings = studio.settings

    def test(self, request: Request, user: Staff, form: Form) -> Response:
        from ..send import send_test

        week = self.week.week_of(request)
        typed = [a for a in field(form, "addresses").replace(",", " ").split() if a]
        configured = [str(a) for a in self.settings.studio.test_addresses]
        if typed and not accounts.allowed(user.role, "send"):
            return self.week.page(
                request, user, week, status_code=403,
                error="your role sends tests only to [studio] test_addresses",
            )  # fmt: skip
        addresses = typed or configured
        if not addresses:
            return self.week.page(
                request, user, week, status_code=400,
                error="type an address, or set [studio] test_addresses in config.toml",
            )  # fmt: skip
        if len(addresses) > TEST_ADDRESSES_MAX:
            error = f"at most {TEST_ADDRESSES_MAX} test addresses at once"
            return self.week.page(request, user, week, status_code=400, error=error)
        try:
            report = send_test(
                open_issue(self.week.path(week), self.settings), self.settings, addresses
            )
        except NewsletterError as exc:
            return self.week.page(request, user, week, error=str(exc), status_code=400)
        if report.sent:
            self.studio.audit(user, "test", f"{week} to {', '.join(addresses)}")
        if report.failed:
            reasons = "; ".join(f"{f['email']}: {f['reply']}" for f in report.failures)
            return self.week.page(
                request, user, week, error=f"test not sent: {reasons}", status_code=502
            )
        return redirect(f"/week/{week}?tested={len(addresses)}")

    def _send_blocker(self, loaded: LoadedIssue) -> str:
        """Why this issue may not be sent now ("" if it may): weekly's own rule."""
        try:
            check_approval(loaded, self.settings)
        except NewsletterError as exc:
            return str(exc).replace(f"{self.settings.root}/", "")
        return ""

    def _read(self, path: Path) -> tuple[IssueDoc, LoadedIssue]:
        """The issue file read once: the bytes whose version and approval are checked
        are the ones planned and sent."""
        doc = IssueDoc.load(path)
        return doc, issue_from_text(doc.text, self.settings, str(path))

    def confirm(self, request: Request, user: Staff, form: Form) -> Response:
        from ..send import plan

        week = self.week.week_of(request)
        path = self.week.path(week)
        if not path.exists():
            return redirect(f"/week/{week}")
        try:
            doc, loaded = self._read(path)
            count, _, already = plan(loaded, self.settings)
        except NewsletterError as exc:
            return self.week.page(request, user, week, error=str(exc), status_code=409)
        preview = self.week.preview_of(doc)
        return self.studio.render(
            request, "send_confirm.html", user=user, title=f"Send {week}", week=week, doc=doc,
            count=count, already=already, preview=preview, findings=preview.findings(),
            blocker=self._send_blocker(loaded), progress=self.studio.jobs.progress(week),
            subject=fields_of(doc)["subject"],
        )  # fmt: skip

    def send(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week.week_of(request)
        path = self.week.path(week)
        if not path.exists():
            return redirect(f"/week/{week}")
        try:
            doc, loaded = self._read(path)
            loaded.require_valid()
        except NewsletterError as exc:
            return self.week.page(request, user, week, error=str(exc), status_code=409)
        if doc.version != field(form, "version"):
            return redirect(f"/week/{week}/send?changed=1")
        blocker = self._send_blocker(loaded)
        if blocker:
            return self.week.page(request, user, week, error=blocker, status_code=409)
        if self.studio.jobs.progress(week).running:
            # The ledger's lease would refuse a second run anyway; say so before trying.
            return redirect(f"/week/{week}/progress")
        if self.studio.jobs.start("send", week, lambda: self._send(loaded, user)):
            self.studio.audit(user, "send", week)
        return redirect(f"/week/{week}/progress")

    def _send(self, loaded: LoadedIssue, user: accounts.Staff) -> str:
        from ..send.checked import send_checked

        report = send_checked(loaded, self.settings, stop=self.studio.jobs.stop)
        parts = [f"{report.sent} sent"]
        if report.failed:
            parts.append(f"{report.failed} failed")
        if report.deferred:
            parts.append(f"{report.deferred} deferred")
        if report.stopped:
            parts.append(f"stopped: {report.stopped}")
        summary = ", ".join(parts) + f" in {report.seconds:.1f} s"
        if report.sent or report.failed or report.deferred:
            self.studio.audit(user, "sent", f"{loaded.week}: {summary}")
        return summary

    def progress(self, request: Request, user: Staff, form: Form) -> Response:
        week = self.week.week_of(request)
        progress = self.studio.jobs.progress(week)
        if request.url.path.endswith(".json"):
            return JSONResponse(progress.as_json(), headers={"cache-control": "no-store"})
        return self.studio.render(
            request, "progress.html", user=user, title=f"Sending {week}", week=week,
            progress=progress,
        )  # fmt: skip
