"""Start-up of the command line, against the libraries it cannot avoid (issue: the house).

Targets (ratios of medians, measured in the same run, A and B alternating so that a
noisy machine moves both alike):

* ``newsletter --help``  <= 2 x  ``python -c "import click, pydantic"``
* ``newsletter subscribers list`` on an empty store, piped
                          <= 2 x  ``python -c "import click, pydantic_settings"``
  (it needs the settings, so pydantic-settings is its floor).

Run by hand from the project root:  .venv/bin/python bench/startup.py [--runs 30]
Informational: it always exits 0.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0


def _time(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def paired(a: list[str], b: list[str], cwd: Path, runs: int, warmup: int) -> tuple[float, float]:
    """Median seconds of A and of B, run in turn A B A B ..."""
    for _ in range(warmup):
        _time(a, cwd), _time(b, cwd)
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(_time(a, cwd))
        times_b.append(_time(b, cwd))
    return statistics.median(times_a), statistics.median(times_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    newsletter = [python, "-m", "newsletter"]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "config.toml", project / "config.toml")
        # An empty store, created once so that the timed runs only open it.
        subprocess.run([*newsletter, "subscribers", "list"], cwd=project, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        rows = [
            ("newsletter --help", [*newsletter, "--help"], "import click, pydantic"),
            (
                "newsletter subscribers list (empty store)",
                [*newsletter, "subscribers", "list"],
                "import click, pydantic_settings",
            ),
        ]
        print(f"{args.runs} paired runs after {args.warmup} warm-ups; medians\n")
        print(f"{'command':<44}{'ours':>9}{'reference':>11}{'ratio':>8}  target")
        for label, ours, reference in rows:
            a, b = paired(ours, [python, "-c", reference], project, args.runs, args.warmup)
            verdict = "ok" if a / b <= TARGET else "MISSED"
            print(f"{label:<44}{a * 1000:>7.0f}ms{b * 1000:>9.0f}ms{a / b:>8.2f}  "
                  f"<= {TARGET} ({reference!r}) {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
