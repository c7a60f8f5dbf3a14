"""Shared fixtures: a project copy in a temp folder, settings, and a pinned build."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from newsletter import Build, Settings, load_settings, open_issue, render_issue
from tests.chromium import fixture_browser  # noqa: F401  (the shared Chromium)
from tests.smtp_servers import (  # noqa: F401  (fixtures shared by every test module)
    fixture_server_tls,
    fixture_smtp_ca,
    fixture_smtp_ca_file,
    fixture_start_smtp_server,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = ROOT / "issues" / "2023-W25.toml"
STATIC = ROOT / "static"
#: Where tests leave artefacts worth looking at (screenshots); ignored by git.
TEST_OUTPUT = ROOT / "test-output"

#: The clock and Message-ID pinned so rendered output is stable (golden files).
PINNED_NOW = dt.datetime(2023, 6, 23, 7, 0, tzinfo=dt.UTC)
PINNED_MSGID = "<2023-W25.golden@example.org>"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="Rewrite tests/golden/ from the current templates (review the diff, then commit).",
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project folder: the shipped config.toml, the sample issue and its images."""
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    (tmp_path / "issues").mkdir()
    shutil.copy(SAMPLE_ISSUE, tmp_path / "issues" / SAMPLE_ISSUE.name)
    shutil.copytree(STATIC, tmp_path / "static")
    return tmp_path


@pytest.fixture
def settings(project: Path) -> Settings:
    return load_settings(project / "config.toml")


@pytest.fixture
def sample_build(settings: Settings) -> Build:
    return render_issue(open_issue(SAMPLE_ISSUE, settings), now=PINNED_NOW, msgid=PINNED_MSGID)
