"""Benchmark of the studio's preview refresh: one edit, then the page and its preview.

What a person waits for after pressing "Save" on the week page, in process, through the
studio's ASGI app (Starlette's TestClient, no network): the edit POST (load the issue
file, apply the change, validate it, write it atomically), the redirected week page
(the issue built in memory once: Jinja -> MJML -> premailer, the text part, every check;
the page rendered) and the preview iframe's document (served from that one build).

The reference, measured in the same run, is the CLI a person without the studio would
run after editing the file: ``newsletter build ISSUE`` as a child process. The ratio
refresh / CLI build says how much quicker the studio shows a change; the target is a
refresh under half of the CLI build (ratio <= 0.5), informational: exit 0 either way.

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/preview.py [--runs 20]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from newsletter.settings import load_settings
from newsletter.store import Store
from newsletter.studio import accounts
from newsletter.studio.app import create_app

ROOT = Path(__file__).resolve().parents[1]
WEEK = "2023-W25"
TARGET = 0.5
PASSWORD = "bench password 123"


def _project(folder: Path) -> Path:
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    (folder / "issues").mkdir()
    shutil.copy(ROOT / "issues" / f"{WEEK}.toml", folder / "issues")
    shutil.copytree(ROOT / "static", folder / "static")
    return folder


def _token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, name
    return found[1]


def _refreshes(project: Path, runs: int) -> list[float]:
    settings = load_settings(project / "config.toml")
    with Store(settings.store_path) as store:
        accounts.add_user(store, "bench", PASSWORD, "editor")
    times: list[float] = []
    with TestClient(create_app(settings)) as client:
        login = client.get("/login")
        client.post(
            "/login",
            data={"name": "bench", "password": PASSWORD, "csrf": _token(login.text, "csrf")},
        )
        page = client.get(f"/week/{WEEK}")  # warm: the first build loads the theme
        for run in range(runs + 2):
            data = {
                "csrf": _token(page.text, "csrf"), "version": _token(page.text, "version"),
                "op": "fields", "intro": f"Edit number {run}: the studio's preview refresh.",
            }  # fmt: skip
            start = time.perf_counter()
            page = client.post(f"/week/{WEEK}/edit", data=data)  # follows the redirect
            frame = client.get(f"/week/{WEEK}/preview")
            elapsed = time.perf_counter() - start
            assert page.status_code == 200 and f"Edit number {run}" in frame.text
            if run >= 2:
                times.append(elapsed)
    return times


def _cli_builds(project: Path, runs: int) -> list[float]:
    times: list[float] = []
    command = [sys.executable, "-m", "newsletter", "build", f"issues/{WEEK}.toml"]
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=project, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        project = _project(Path(temp))
        refresh = _refreshes(project, args.runs)
        cli = _cli_builds(project, max(5, args.runs // 4))
    ours, ref = statistics.median(refresh), statistics.median(cli)
    for label, times in (("studio refresh (edit + page + preview)", refresh),
                         ("reference `newsletter build` (process)", cli)):  # fmt: skip
        low, mid, high = (1000 * f(times) for f in (min, statistics.median, max))
        print(f"{label}: median {mid:7.1f} ms  min {low:.1f}  max {high:.1f}  ({len(times)} runs)")
    ratio = ours / ref
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"ratio refresh / CLI build: {ratio:.2f}  (target <= {TARGET}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
