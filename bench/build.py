"""Benchmark of one issue build, with the official MJML compiler as a reference.

What it measures, in-process (interpreter start-up and imports excluded):

* the whole build of ``issues/2023-W25.toml``: ``render_issue`` (Jinja -> MJML -> premailer,
  the text part, the MIME message) plus writing the four outputs with one ``write_atomic``
  call into a temporary directory, reusing one ``Renderer`` across runs as the real build does;
* the median of each stage, from ``Build.timings`` (the Jinja and MJML stages cover both
  documents: the email and the archive page);
* as a reference, the official MJML compiler (npm package ``mjml@4``) on the same two MJML
  sources, timed inside Node with ``process.hrtime.bigint()`` after warm-up, so Node's
  start-up and module loading are excluded. It is installed with npm into a temporary
  folder, or into ``--npm-cache-dir`` / ``$NEWSLETTER_BENCH_NPM_DIR`` to reuse it.

Run it by hand from the project root (it is not part of the test suite)::

    .venv/bin/python bench/build.py [--runs 50] [--warmup 5] [--ref-runs 50] [--no-reference]

The target (whole build median <= 30 ms) is informational: the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from newsletter.files import write_atomic
from newsletter.issuefile import ParsedIssue, parse
from newsletter.render import LoadedIssue, Renderer, render_issue
from newsletter.render.theme import Links
from newsletter.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.toml"
ISSUE = ROOT / "issues" / "2023-W25.toml"

TARGET_MS = 30.0
MJML_SPEC = "mjml@4"
NPM_DIR_ENV = "NEWSLETTER_BENCH_NPM_DIR"

#: Stages reported by ``render_issue`` (``Build.timings``), in pipeline order, plus our "write".
STAGES: tuple[tuple[str, str], ...] = (
    ("jinja", "Jinja (MJML source, x2)"),
    ("mjml", "MJML -> HTML (MRML, x2)"),
    ("premailer", "premailer (x2)"),
    ("text", "text part"),
    ("mime", "MIME (.eml)"),
    ("write", "writing 4 files"),
)

# Node side of the reference: argv = mjml module dir, runs, warm-up, MJML files...
# Prints one JSON object on stdout.
NODE_SCRIPT = r"""'use strict';
const fs = require('fs');
const path = require('path');
const [modDir, runsArg, warmupArg, ...files] = process.argv.slice(2);
const mjml2html = require(modDir);
const version = require(path.join(modDir, 'package.json')).version;
const sources = files.map((f) => fs.readFileSync(f, 'utf8'));
const options = {
  validationLevel: 'skip', minify: false, beautify: false, keepComments: false, fonts: {},
};
const runs = Number(runsArg);
const warmup = Number(warmupArg);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sizes = [];
for (let i = 0; i < warmup; i++) {
  sources.forEach((src, j) => {
    const res = mjml2html(src, options);
    if (res.errors && res.errors.length) throw new Error(JSON.stringify(res.errors[0]));
    sizes[j] = Buffer.byteLength(res.html);
  });
}
const totals = [];
const perDoc = sources.map(() => []);
for (let i = 0; i < runs; i++) {
  let total = 0n;
  sources.forEach((src, j) => {
    const t0 = process.hrtime.bigint();
    mjml2html(src, options);
    const dt = process.hrtime.bigint() - t0;
    perDoc[j].push(Number(dt) / 1e6);
    total += dt;
  });
  totals.push(Number(total) / 1e6);
}
process.stdout.write(JSON.stringify({
  version, node: process.version, runs,
  median_ms: median(totals), per_doc_median_ms: perDoc.map(median), html_bytes: sizes,
}) + '\n');
"""


@dataclass
class Reference:
    """The official compiler's figures, or why there are none."""

    median_ms: float | None = None
    html_bytes: tuple[int, ...] = ()
    version: str = ""
    node: str = ""
    skipped: str = ""


def ms(seconds: float) -> float:
    return seconds * 1000.0


def p90(values: list[float]) -> float:
    """90th percentile, nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def one_build(
    parsed: ParsedIssue, settings: Settings, renderer: Renderer, out: Path
) -> dict[str, float]:
    """A whole build like ``build_issue`` minus the loading: returns per-stage seconds + "total"."""
    start = time.perf_counter()
    # A fresh loaded issue (nothing rendered yet) sharing the one renderer, as a run has.
    loaded = LoadedIssue(ISSUE, settings, "", parsed, renderer)
    build = render_issue(loaded)
    written = time.perf_counter()
    write_atomic({out / loaded.week / name: data for name, data in build.outputs().items()})
    end = time.perf_counter()
    return {**build.timings, "write": end - written, "total": end - start}


def bench_ours(
    parsed: ParsedIssue, settings: Settings, renderer: Renderer, runs: int, warmup: int
) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        out = Path(tmp)
        for _ in range(warmup):
            one_build(parsed, settings, renderer, out)
        return [one_build(parsed, settings, renderer, out) for _ in range(runs)]


def install_mjml(npm_dir: Path) -> Path:
    """``npm install mjml@4`` into ``npm_dir`` unless already there; returns the module dir."""
    module = npm_dir / "node_modules" / "mjml"
    if (module / "package.json").is_file():
        return module
    npm_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", MJML_SPEC]
    proc = subprocess.run(cmd, cwd=npm_dir, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (module / "package.json").is_file():
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {' | '.join(detail)}")
    return module


def bench_official(sources: list[str], runs: int, warmup: int, npm_dir: Path | None) -> Reference:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return Reference(skipped=f"`{tool}` is not on PATH")
    own_dir = npm_dir is None
    target = Path(tempfile.mkdtemp(prefix="newsletter-bench-npm-")) if npm_dir is None else npm_dir
    try:
        try:
            module = install_mjml(target)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            return Reference(skipped=f"could not install {MJML_SPEC}: {exc}")
        with tempfile.TemporaryDirectory(prefix="newsletter-bench-node-") as tmp:
            work = Path(tmp)
            script = work / "bench_mjml.js"
            script.write_text(NODE_SCRIPT, encoding="utf-8")
            files = []
            for i, source in enumerate(sources):
                path = work / f"source-{i}.mjml"
                path.write_text(source, encoding="utf-8")
                files.append(str(path))
            cmd = ["node", str(script), str(module), str(runs), str(warmup), *files]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return Reference(skipped=f"node failed: {exc}")
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()[-3:]
            return Reference(skipped=f"node exited {proc.returncode}: {' | '.join(detail)}")
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return Reference(skipped=f"unexpected output from node: {proc.stdout[-200:]!r}")
        return Reference(
            median_ms=float(data["median_ms"]),
            html_bytes=tuple(int(x) for x in data["html_bytes"]),
            version=str(data["version"]),
            node=str(data["node"]),
        )
    finally:
        if own_dir:
            shutil.rmtree(target, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50, help="timed builds (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed builds first (default 5)")
    parser.add_argument(
        "--ref-runs",
        type=int,
        default=50,
        help="timed renders by the official compiler (default 50)",
    )
    parser.add_argument(
        "--npm-cache-dir",
        type=Path,
        default=os.environ.get(NPM_DIR_ENV) or None,
        help=f"install {MJML_SPEC} here and reuse it (default: ${NPM_DIR_ENV}, else a temp dir)",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the official compiler")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.ref_runs < 1 or args.warmup < 0:
        parser.error("--runs and --ref-runs must be >= 1, --warmup >= 0")

    settings = load_settings(CONFIG)
    parsed = parse(ISSUE.read_text(encoding="utf-8"), str(ISSUE), settings)
    issue = LoadedIssue(ISSUE, settings, "", parsed).require_valid().issue
    renderer = Renderer(settings)

    samples = bench_ours(parsed, settings, renderer, args.runs, args.warmup)
    whole = [ms(s["total"]) for s in samples]
    median_whole = statistics.median(whole)

    print(f"newsletter build benchmark: {ISSUE.relative_to(ROOT)}, Python {sys.version.split()[0]}")
    print(f"{args.warmup} warm-up + {args.runs} timed builds (render_issue + write_atomic)\n")
    print(f"  {'stage':<28}{'median ms':>10}")
    print(f"  {'-' * 38}")
    names = dict(STAGES)
    extra = sorted({k for s in samples for k in s} - set(names) - {"total"})
    stage_sum = 0.0
    for key in [k for k, _ in STAGES] + extra:
        values = [ms(s[key]) for s in samples if key in s]
        if len(values) < len(samples):
            print(f"  {names.get(key, key):<28}{'n/a':>10}   (missing from Build.timings)")
            continue
        stage_ms = statistics.median(values)
        stage_sum += stage_ms
        print(f"  {names.get(key, key):<28}{stage_ms:>10.2f}")
    print(f"  {'-' * 38}")
    print(f"  {'sum of stage medians':<28}{stage_sum:>10.2f}")
    print(f"  {'whole build, median':<28}{median_whole:>10.2f}")
    print(f"  {'whole build, p90':<28}{p90(whole):>10.2f}")
    verdict = "PASS" if median_whole <= TARGET_MS else "MISS"
    print(
        f"\ntarget: whole build median <= {TARGET_MS:.0f} ms -> {verdict} "
        f"({median_whole:.2f} ms; informational)"
    )

    print(f"\nreference: official MJML compiler ({MJML_SPEC}, in-process in Node)")
    if args.no_reference:
        print("  skipped: --no-reference")
        return 0
    links = Links.for_issue(settings, issue.week)
    sources = [
        renderer.render_mjml(issue, links),
        renderer.render_mjml(issue, links, archive=True),
    ]
    ref_warmup = max(1, args.warmup * 4)  # V8 needs a longer warm-up than MRML
    ref = bench_official(sources, args.ref_runs, ref_warmup, args.npm_cache_dir)
    if ref.median_ms is None:
        print(f"  skipped: {ref.skipped}")
        return 0
    ours_mjml = statistics.median(ms(s["mjml"]) for s in samples)
    ours_bytes = [len(renderer.compile_mjml(src).encode()) for src in sources]
    print(
        f"  mjml {ref.version} on Node {ref.node}: {ref_warmup} warm-up + "
        f"{args.ref_runs} timed renders"
    )
    print("  of the same 2 MJML sources (email + archive) as our MJML stage, with")
    print("  validationLevel 'skip', minify false, beautify false, keepComments false, fonts {}\n")
    print(f"  {'':<34}{'ours (MRML)':>13}{'official':>13}")
    print(f"  {'-' * 60}")
    print(f"  {'MJML, 2 documents, median ms':<34}{ours_mjml:>13.2f}{ref.median_ms:>13.2f}")
    for label, i in (("email", 0), ("archive", 1)):
        print(f"  {f'HTML bytes, {label}':<34}{ours_bytes[i]:>13,}{ref.html_bytes[i]:>13,}")
    print(f"  {'-' * 60}")
    print(
        f"  MJML: official / ours = {ref.median_ms / ours_mjml:.1f}x "
        "(how many times faster our MJML stage is)"
    )
    print(
        f"  our whole build / official MJML only = {median_whole / ref.median_ms:.2f}x "
        f"({median_whole:.2f} ms vs {ref.median_ms:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
