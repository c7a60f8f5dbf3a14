"""A studio project for the route tests: the sample project, three subscribers, three
staff accounts (one per role), and a TestClient that signs in like a browser does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from starlette.testclient import TestClient

from newsletter import audit, subscribers
from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from newsletter.studio import accounts
from newsletter.studio.app import create_app

WEEK = "2023-W25"
PASSWORD = "correct horse battery"
STAFF = {"ada": "admin", "eddie": "editor", "sam": "sender"}
PEOPLE = [
    ("ada@example.org", "Ada Lovelace"),
    ("bob@example.net", "Bob Stone"),
    ("chen@example.com", ""),
]
#: A hang guard for a background send; not a measure of speed.
SEND_TIMEOUT = 60.0


def csrf_of(html: str) -> str:
    found = re.findall(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found[0]


def version_of(html: str) -> str:
    found = re.findall(r'name="version" value="([0-9a-f]+)"', html)
    assert found, "no file version on the page"
    return found[0]


@dataclass
class StudioSite:
    project: Path
    settings: Settings

    @property
    def issue(self) -> Path:
        return self.project / "issues" / f"{WEEK}.toml"

    def client(self, **kwargs: Any) -> TestClient:
        return TestClient(create_app(self.settings), follow_redirects=False, **kwargs)

    def signed_in(self, name: str) -> TestClient:
        client = self.client()
        client.__enter__()
        page = client.get("/login")
        response = client.post(
            "/login", data={"name": name, "password": PASSWORD, "csrf": csrf_of(page.text)}
        )
        assert response.status_code == 303, response.text
        return client

    def page(self, client: TestClient, path: str = f"/week/{WEEK}") -> Any:
        response = client.get(path)
        assert response.status_code == 200, response.text
        return response

    def edit(self, client: TestClient, **fields: str) -> Any:
        page = self.page(client)
        data = {"csrf": csrf_of(page.text), "version": version_of(page.text), **fields}
        return client.post(f"/week/{WEEK}/edit", data=data)

    def audit(self) -> list[audit.AuditEntry]:
        with Store(self.settings.store_path) as store:
            return audit.entries(store)

    def wait_for_send(self, client: TestClient) -> dict[str, Any]:
        deadline = time.monotonic() + SEND_TIMEOUT
        while time.monotonic() < deadline:
            progress: dict[str, Any] = client.get(f"/week/{WEEK}/progress.json").json()
            if not progress["running"] and (progress["summary"] or progress["error"]):
                return progress
            time.sleep(0.1)
        raise AssertionError("the background send did not finish")


def make_site(project: Path, **config: str) -> StudioSite:
    """The sample project with staff and subscribers; ``config`` sets keys of sections:
    ``make_site(project, studio='auth = "none"')``."""
    if config:
        path = project / "config.toml"
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
        for section, body in config.items():
            table = document.setdefault(section, tomlkit.table())
            table.update(tomlkit.parse(body))
        path.write_text(tomlkit.dumps(document), encoding="utf-8")
    settings = load_settings(project / "config.toml")
    with Store(settings.store_path) as store:
        for name, role in STAFF.items():
            accounts.add_user(store, name, PASSWORD, role)
        for email, name in PEOPLE:
            subscribers.add(store, email, name)
    return StudioSite(project, settings)


def close(clients: Iterator[TestClient]) -> None:
    for client in clients:
        client.__exit__(None, None, None)
