"""The report pages: every past issue with its figures, and one issue's report with the
list's growth around it (an SVG chart drawn on the server: no JavaScript library)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import ledger
from . import reports
from .base import Form, Staff, Studio

__all__ = ["ReportRoutes"]

#: The reports list shows the latest issues; each costs a count over its ledger rows.
LISTED = 52


class ReportRoutes:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def index(self, request: Request, user: Staff, form: Form) -> Response:
        with self.studio.store() as store:
            past = ledger.past_issues(store, limit=LISTED)
            growth = reports.list_growth(store)
        return self.studio.render(
            request, "reports.html", user=user, title="Reports", past=past, growth=growth
        )

    def issue(self, request: Request, user: Staff, form: Form) -> Response:
        week = str(request.path_params["week"])
        with self.studio.store() as store:
            report = reports.issue_report(store, week)
        if report is None:
            return self.studio.error(
                request, 404, f"No report for {week}", "This issue has not been sent.", user=user
            )
        return self.studio.render(
            request, "report.html", user=user, title=f"Report {week}", week=week, report=report
        )
