"""Which source modules hold SQL matching a pattern: the one-owner-per-table tests."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "newsletter"


def modules_with(pattern: str) -> set[str]:
    sql = re.compile(pattern)
    return {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if sql.search(path.read_text(encoding="utf-8"))
    }
