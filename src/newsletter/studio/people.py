"""The studio's lists of people: subscribers, staff accounts, and the audit log.

No page shows a subscriber's token: templates get :meth:`Subscriber.public` data only.
Imports go through the same :func:`~newsletter.subscribers.import_csv` as the CLI, so
the report (imported, already subscribed, every skipped row by line) is the same.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .. import audit, subscribers
from ..errors import NewsletterError
from . import accounts
from .base import Form, Staff, Studio, field, redirect

__all__ = ["PeopleRoutes"]

PAGE = 50


def _row(found: subscribers.Subscriber) -> dict[str, Any]:
    data = found.public()
    data["id"] = found.id  # the row's number, for the staff's unsubscribe button
    return data


class PeopleRoutes:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    # -- subscribers ---------------------------------------------------------------------

    def subscribers(
        self, request: Request, user: Staff, form: Form, status_code: int = 200, **extra: Any
    ) -> Response:
        query = request.query_params.get("q", "")[:200]
        status = request.query_params.get("status", "")
        status = status if status in subscribers.STATUSES else ""
        after = _int(request.query_params.get("after", "0"))
        with self.studio.store() as store:
            counts = subscribers.counts_by_status(store)
            rows = subscribers.search(store, query, status or None, after_id=after, limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        return self.studio.render(
            request, "subscribers.html", user=user, title="Subscribers", counts=counts,
            status_code=status_code,
            rows=[_row(r) for r in rows], q=query, status=status,
            next_after=rows[-1].id if more and rows else 0, first_page=after == 0,
            statuses=subscribers.STATUSES, **extra,
        )  # fmt: skip

    def add(self, request: Request, user: Staff, form: Form) -> Response:
        email = field(form, "email").strip()
        try:
            with self.studio.store() as store:
                added = subscribers.add(
                    store, email, " ".join(field(form, "name").split()),
                    first_name=" ".join(field(form, "first_name").split()),
                )  # fmt: skip
        except (NewsletterError, ValueError) as exc:
            return self.subscribers(request, user, form, 400, error=f"{email}: {exc}")
        self.studio.audit(user, "add-subscriber", added.email)
        return redirect(f"/subscribers?added={added.id}")

    def unsubscribe(self, request: Request, user: Staff, form: Form) -> Response:
        subscriber_id = _int(str(request.path_params["id"]))
        with self.studio.store() as store:
            found = subscribers.by_id(store, subscriber_id)
            if found is None:
                return self.studio.error(request, 404, "No such subscriber", "", user=user)
            subscribers.unsubscribe_address(store, found.email)
        self.studio.audit(user, "unsubscribe", found.email)
        return redirect("/subscribers?unsubscribed=1")

    async def import_csv(self, request: Request, user: Staff, form: Form) -> Response:
        # The upload is read here (async); the import itself runs in the thread pool.
        upload = form.get("file") if form is not None else None
        if not isinstance(upload, UploadFile) or not upload.filename:
            await _close(form)
            return await run_in_threadpool(
                self.subscribers, request, user, form, 400, error="choose a CSV file"
            )
        name = Path(upload.filename).name
        handle, temp = tempfile.mkstemp(suffix=".csv")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := await upload.read(64 * 1024):
                    out.write(chunk)
            await _close(form)
            return await run_in_threadpool(self._import, request, user, Path(temp), name)
        finally:
            await _close(form)
            os.unlink(temp)

    def _import(self, request: Request, user: Staff, temp: Path, name: str) -> Response:
        try:
            with self.studio.store() as store:
                report = subscribers.import_csv(store, temp, source=f"studio:{user.name}")
        except NewsletterError as exc:
            # The messages name the uploaded file, not the temporary copy.
            error = str(exc).replace(str(temp), name)
            return self.subscribers(request, user, None, 400, error=error)
        if report.imported:  # an import that added nobody leaves the store as it was
            what = f"{name}: {report.imported} imported, {report.skipped} skipped"
            self.studio.audit(user, "import", what)
        problems = [p.replace(str(temp), name) for p in report.problems]
        return self.subscribers(request, user, None, report=report, problems=problems)

    def export(self, request: Request, user: Staff, form: Form) -> Response:
        status = request.query_params.get("status", "")
        handle, temp = tempfile.mkstemp(suffix=".csv")
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(subscribers.EXPORT_COLUMNS)
            with self.studio.store() as store:
                for found in subscribers.iter_subscribers(
                    store, status if status in subscribers.STATUSES else None
                ):
                    row = [getattr(found, c) for c in subscribers.EXPORT_COLUMNS]
                    # The address stays as it is (it may start with "-" or "+", and must
                    # import back); the free-text columns are made formula-safe.
                    writer.writerow([row[0], *map(_cell, row[1:])])
        self.studio.audit(user, "export", status or "every subscriber")
        return FileResponse(
            temp, media_type="text/csv", filename="subscribers.csv",
            background=BackgroundTask(os.unlink, temp), headers={"cache-control": "no-store"},
        )  # fmt: skip

    # -- staff and the audit log -----------------------------------------------------------

    def audit(self, request: Request, user: Staff, form: Form) -> Response:
        before = _int(request.query_params.get("before", "0")) or None
        with self.studio.store() as store:
            entries = audit.entries(store, limit=PAGE + 1, before_id=before)
        more = len(entries) > PAGE
        entries = entries[:PAGE]
        return self.studio.render(
            request, "audit.html", user=user, title="Audit log", entries=entries,
            next_before=entries[-1].id if more and entries else 0,
        )  # fmt: skip

    def staff(
        self, request: Request, user: Staff, form: Form, status_code: int = 200, **extra: Any
    ) -> Response:
        with self.studio.store() as store:
            users = accounts.list_users(store)
        return self.studio.render(
            request, "staff.html", user=user, title="Staff", users=users, roles=accounts.ROLES,
            status_code=status_code, **extra,
        )  # fmt: skip

    def staff_change(self, request: Request, user: Staff, form: Form) -> Response:
        op, name = field(form, "op"), field(form, "name").strip()
        try:
            with self.studio.store() as store:
                if op == "add":
                    accounts.add_user(store, name, field(form, "password"), field(form, "role"))
                elif op == "role":
                    accounts.set_role(store, name, field(form, "role"))
                elif op == "remove":
                    if name.lower() == user.name.lower():
                        raise NewsletterError("you cannot remove your own account")
                    accounts.remove_user(store, name)
                else:
                    raise NewsletterError(f"unknown change {op!r}")
        except NewsletterError as exc:
            return self.staff(request, user, form, 400, error=str(exc))
        action = {"add": "user-add", "role": "user-role", "remove": "user-remove"}[op]
        self.studio.audit(
            user, action, name + (f" as {field(form, 'role')}" if op != "remove" else "")
        )
        return redirect("/staff")


#: The largest row number SQLite holds: anything above names no row.
_ROW_MAX = 2**63 - 1


def _int(value: str) -> int:
    try:
        return min(max(0, int(value)), _ROW_MAX)
    except ValueError:
        return 0


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ would start a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def _close(form: FormData | None) -> None:
    if form is not None:
        await form.close()
