"""Golden files for the sample issue, with the clock and Message-ID pinned.

Regenerate after an intended change to the theme, then review the diff by eye
(and the screenshots the browser tests leave in test-output/):

    .venv/bin/pytest tests/test_golden.py --regen-golden
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter import Build

GOLDEN = Path(__file__).parent / "golden" / "2023-W25"


@pytest.mark.parametrize("name", ["email.html", "email.txt", "archive.html"])
def test_sample_issue_matches_golden(
    sample_build: Build, name: str, request: pytest.FixtureRequest
) -> None:
    actual = sample_build.outputs()[name].decode()
    golden = GOLDEN / name
    if request.config.getoption("--regen-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing: run pytest tests/test_golden.py --regen-golden"
    assert actual == golden.read_text(encoding="utf-8"), (
        f"{name} differs from {golden}; if the change is intended, regenerate with "
        "--regen-golden and review the diff"
    )
