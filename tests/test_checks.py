"""Each pre-send check: a sample that triggers it, and the sample issue that does not."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter import Settings, issue_from_text, open_issue, render_issue
from newsletter.checks import CHECKS, Context, Report, check_issue, run_checks
from newsletter.errors import ConfigError
from tests.cli_process import run_newsletter
from tests.conftest import ROOT, SAMPLE_ISSUE

SAMPLE = SAMPLE_ISSUE.read_text(encoding="utf-8")


def run(
    settings: Settings,
    text: str = SAMPLE,
    html: Callable[[str], str] | None = None,
    plain: Callable[[str], str] | None = None,
) -> Report:
    """Check an issue text, optionally with its rendered HTML or text edited afterwards."""
    loaded = issue_from_text(text, settings, "issue.toml")
    build = render_issue(loaded)
    if html:
        build = dataclasses.replace(build, html=html(build.html))
    if plain:
        build = dataclasses.replace(build, text=plain(build.text))
    return run_checks(Context(loaded, build))


def names(report: Report, severity: str | None = None) -> set[str]:
    return {f.check for f in report.findings if severity is None or f.severity == severity}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("clean")
    (folder / "config.toml").write_text((ROOT / "config.toml").read_text())
    shutil.copytree(ROOT / "static", folder / "static")
    from newsletter import load_settings

    return check_issue(open_issue(SAMPLE_ISSUE, load_settings(folder / "config.toml")))


def test_sample_issue_is_clean(clean: Report) -> None:
    assert clean.exit_code == 0
    assert names(clean, "error") == set() and names(clean, "warning") == set()
    # Only notes: the further-reading headlines have no summary, and the image count.
    assert names(clean) == {"summary", "image-count"}


def test_every_check_is_listed_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    from newsletter.checks import _load_check_modules

    _load_check_modules()
    assert len(CHECKS) >= 25
    for name in CHECKS:
        assert f"`{name}`" in readme, f"README.md does not list the check {name}"


def replace(old: str, new: str, text: str = SAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


GREEN = 'url = "https://newsroom.example.org/news/2023/06/21/armed-forces-green-and-strong"'
VIDEO_ALT = ', alt = "Abstract illustration: a play symbol on a field of blue and yellow"'
VIDEO_URL = (
    'url = "https://newsroom.example.org/video/2023/06/23/training-ukraines-volunteer-army"\n'
)


@pytest.mark.parametrize(
    ("check", "edit"),
    [
        ("subject-length", lambda t: replace('subject = "', 'subject = "' + "Very long " * 8, t)),
        (
            "preheader",
            lambda t: re.sub(
                r'preheader = ".*"',
                'preheader = "Montenegro\'s role in the Balkans, and DIANA goes live"',
                t,
            ),
        ),
        ("empty-section", lambda t: t + '\n[[sections]]\ntitle = "Events"\n'),
        ("stale-story", lambda t: replace("published = 2023-06-21", "published = 2023-05-02", t)),
        (
            "duplicate-story",
            lambda t: replace(
                'title = "Statement by NATO Spokesperson on Kosovo"',
                'title = "NATO Secretary General visits exercise Air Defender in Germany!"',
                t,
            ),
        ),
        (
            "shouting",
            lambda t: replace(
                'title = "Statement by NATO Spokesperson on Kosovo"',
                'title = "STATEMENT BY NATO SPOKESPERSON ON KOSOVO"',
                t,
            ),
        ),
        (
            "summary",
            lambda t: replace(
                'summary = "NATO takes', 'summary = "' + "Long words. " * 60 + "NATO takes", t
            ),
        ),
        ("link-scheme", lambda t: replace(GREEN, 'url = "javascript:alert(1)"', t)),
        ("link-host", lambda t: replace(GREEN, 'url = "http://localhost:8000/draft"', t)),
        ("link-host", lambda t: replace(GREEN, 'url = "https://10.1.2.3/internal"', t)),
        (
            "tracking-params",
            lambda t: replace(GREEN, GREEN[:-1] + '?utm_source=a&utm_source=b"', t),
        ),
        # A linked picture's alt is its headline (it says where the link goes): the alt
        # in the file is what an unlinked picture shows.
        ("image-alt", lambda t: replace(VIDEO_ALT, "", replace(VIDEO_URL, "", t))),
        (
            "image-alt",
            lambda t: replace(VIDEO_ALT, ', alt = "IMG_2041.jpg"', replace(VIDEO_URL, "", t)),
        ),
        ("image-text", lambda t: replace(VIDEO_ALT, VIDEO_ALT + ", contains_text = true", t)),
    ],
)
def test_issue_edits_trigger_their_check(
    settings: Settings, check: str, edit: Callable[[str], str]
) -> None:
    report = run(settings, edit(SAMPLE))
    # "summary" is a note when missing and a warning when too long: the edit makes it long.
    triggered = [f for f in report.findings if f.check == check and f.severity != "info"]
    assert triggered, f"{check} not triggered: {names(report)}"
    finding = triggered[0]
    assert finding.message and finding.fix and finding.where


def test_link_host_allowed_by_config(settings: Settings) -> None:
    text = replace(GREEN, 'url = "https://intranet.example.com/page"')
    assert "link-host" in names(run(settings, text))
    allowed = settings.model_copy(
        update={
            "checks": settings.checks.model_copy(
                update={"allowed_hosts": [*settings.checks.allowed_hosts, "intranet.example.com"]}
            )
        }
    )
    assert "link-host" not in names(run(allowed, text))


@pytest.mark.parametrize(
    ("check", "html", "plain"),
    [
        ("size", lambda h: h.replace("</body>", "<p>" + "x" * 110_000 + "</p></body>"), None),
        ("html-parse", lambda h: h.replace("</body>", "</span></div></td></body>"), None),
        (
            "forbidden-tags",
            lambda h: h.replace(
                "</body>",
                "<script>x()</script><iframe src='https://a.example.org'></iframe></body>",
            ),
            None,
        ),
        ("css-support", lambda h: h.replace('<h1 style="', '<h1 style="position:absolute; '), None),
        (
            "css-support",
            lambda h: h.replace(
                "</head>", '<link rel="stylesheet" href="https://cdn.example.org/x.css"></head>'
            ),
            None,
        ),
        ("media-queries", lambda h: re.sub(r"<style[^>]*>@media[^<]*</style>", "", h), None),
        ("lang-and-title", lambda h: h.replace('lang="en"', "", 1), None),
        ("heading-order", lambda h: h.replace("<h1 ", "<h4 ", 1), None),
        ("link-text", lambda h: h.replace(">View in browser<", ">click here<"), None),
        ("contrast", lambda h: h.replace("color:#1f2933", "color:#bbbbbb"), None),
        (
            "unsubscribe",
            lambda h: h.replace(
                "https://newsletter.example.org/unsubscribe", "https://x.example.org/"
            ),
            None,
        ),
        ("postal-address", lambda h: h.replace("Boulevard Léopold III", "Somewhere"), None),
        (
            "text-part",
            None,
            lambda t: t.replace(
                "https://newsroom.example.org/news/2023/06/19/germany-contributions", ""
            ),
        ),
        ("text-part", None, lambda t: ""),
        (
            "text-lines",
            None,
            lambda t: t.replace("Welcome to this week\u2019s", "Welcome " + "to this week " * 8),
        ),
        (
            "text-leftovers",
            None,
            lambda t: t.replace("Welcome to", "**Welcome** {{ issue.intro }} to"),
        ),
    ],
)
def test_rendered_output_edits_trigger_their_check(
    settings: Settings,
    check: str,
    html: Callable[[str], str] | None,
    plain: Callable[[str], str] | None,
) -> None:
    report = run(settings, html=html, plain=plain)
    assert check in names(report), f"{check} not triggered: {names(report)}"
    assert check not in names(run(settings)), "the unedited sample must not trigger it"


def test_near_the_clipping_limit_is_a_warning(settings: Settings) -> None:
    report = run(
        settings, html=lambda h: h.replace("</body>", "<p>" + "x" * 70_000 + "</p></body>")
    )
    (finding,) = [f for f in report.findings if f.check == "size"]
    assert finding.severity == "warning"


def test_sender_domains_consistency(settings: Settings) -> None:
    newsletter = settings.newsletter.model_copy(update={"reply_to": "press@elsewhere.example.net"})
    report = run(settings.model_copy(update={"newsletter": newsletter}))
    assert "sender" in names(report, "warning")


def test_severity_and_disabling_from_config(settings: Settings) -> None:
    text = replace('subject = "', 'subject = "' + "Very long " * 8)
    checks = settings.checks.model_copy(update={"severity": {"subject-length": "error"}})
    report = run(settings.model_copy(update={"checks": checks}), text)
    assert "subject-length" in names(report, "error") and report.exit_code == 2
    checks = settings.checks.model_copy(
        update={"disabled": {"subject-length": "we like long ones"}}
    )
    report = run(settings.model_copy(update={"checks": checks}), text)
    assert "subject-length" not in names(report) and report.disabled == {
        "subject-length": "we like long ones"
    }
    checks = settings.checks.model_copy(update={"disabled": {"no-such-check": "x"}})
    with pytest.raises(ConfigError, match=r"\[checks\] no-such-check: no such check"):
        run(settings.model_copy(update={"checks": checks}))


def broken_copy(project: Path) -> Path:
    """The acceptance sample: a javascript: link, a missing alt, 102 KB+, a 120-char subject."""
    text = replace(GREEN, 'url = "javascript:alert(1)"')
    text = replace(VIDEO_ALT, "", text)
    text = re.sub(
        r'subject = ".*"', f'subject = "{"Breaking news from the Alliance " * 4}"'[:130] + '"', text
    )
    for n in range(120):
        text += (
            f'\n[[sections.items]]\ntitle = "Photo {n} of the summit preparations"\n'
            f'url = "https://newsroom.example.org/photos/{n}"\npublished = 2023-06-23\n'
            f'image = {{ url = "images/2023-W25-lead.png", alt = "Photo {n}", width = 260 }}\n'
        )
    path = project / "issues" / "2023-W25.toml"
    path.write_text(text)
    return path


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_newsletter(project, *args)


def test_broken_copy_names_every_problem_and_send_refuses_it(project: Path) -> None:
    broken_copy(project)
    result = cli(project, "check", "issues/2023-W25.toml")
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert re.search(
        r"error\s+link-scheme\s+section 'News', item 1 .*\(issues/2023-W25.toml:\d+\)", out
    )
    assert "value: 'javascript:alert(1)'" in out
    # The missing alt is the issue file's error (a linked picture shows its headline).
    assert re.search(
        r"error\s+issue-file\s+issues/2023-W25.toml:\d+: section 2 'Video', item 1", out
    )
    assert "'images/2023-W25-video.png' has no alt text" in out
    assert re.search(r"error\s+size\s+email.html", out) and "Gmail clips it" in out
    assert re.search(r"warning\s+subject-length\s+issues/2023-W25.toml:\d+", out)
    assert out.count("fix: ") >= 4
    as_json = json.loads(cli(project, "check", "issues/2023-W25.toml", "--json").stdout)
    assert as_json["exit_code"] == 2 and as_json["counts"]["error"] >= 3
    assert {"check", "severity", "message", "where", "value", "fix"} <= set(as_json["findings"][0])
    # send refuses it: strict validation refuses the javascript: link and the missing alt.
    send = cli(project, "send", "issues/2023-W25.toml", "--yes")
    assert send.returncode == 2 and "javascript:alert(1)" in send.stderr


def test_send_refuses_check_errors_until_forced(project: Path) -> None:
    (project / "list.csv").write_text("email\nada@example.org\n")
    cli(project, "subscribers", "import", "list.csv")
    issue = project / "issues" / "2023-W25.toml"
    # Valid for the model, but an error for the checks: a link to a private address.
    issue.write_text(replace(GREEN, 'url = "https://192.168.1.20/draft"'))
    refused = cli(project, "send", "issues/2023-W25.toml", "--yes")
    assert refused.returncode == 2
    assert "link-host" in refused.stdout and "pre-send check error(s)" in refused.stderr
    assert not (project / "out" / "mail").exists()
    weekly = cli(project, "weekly", "--week", "2023-W25")
    assert weekly.returncode == 2 and "link-host" in weekly.stdout
    forced = cli(project, "send", "issues/2023-W25.toml", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "sending despite 1 check errors (--force)" in forced.stderr
    assert len(list((project / "out" / "mail" / "new").iterdir())) == 1


def test_invalid_issue_file_is_reported_as_a_finding(project: Path) -> None:
    issue = project / "issues" / "2023-W25.toml"
    issue.write_text(issue.read_text().replace('week = "2023-W25"', 'week = "2023-25"'))
    result = cli(project, "check", "issues/2023-W25.toml", "--json")
    assert result.returncode == 2
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["check"] == "issue-file" and finding["where"].startswith("issues/2023-W25.toml:")
    assert finding["where"].endswith(": week")
    assert "must be an ISO week" in finding["message"] and finding["fix"]
    human = cli(project, "check", "issues/2023-W25.toml")
    assert (
        human.returncode == 2 and "issue-file" in human.stdout and "Traceback" not in human.stderr
    )


def test_build_prints_check_counts(project: Path) -> None:
    result = cli(project, "build", "issues/2023-W25.toml")
    assert result.returncode == 0
    assert "checks: 0 errors, 0 warnings, 6 notes" in result.stdout


@pytest.mark.parametrize(
    ("url", "missing"),
    [
        ("images/typo.png", True),
        ("https://newsletter.example.org/images/typo.png", True),  # under base_url
        ("../../../../etc/passwd", True),  # escapes static/
        ("images/2023-W25-lead.png", False),
        ("https://newsletter.example.org/images/2023-W25-lead.png", False),
        ("https://cdn.example.org/images/typo.png", False),  # elsewhere: --links checks it
    ],
)
def test_image_missing(project: Path, url: str, missing: bool) -> None:
    from newsletter import load_settings

    settings = load_settings(project / "config.toml")
    text = SAMPLE.replace('url = "images/2023-W25-lead.png"', f'url = "{url}"')
    report = run(settings, text)
    found = [f for f in report.findings if f.check == "image-missing"]
    assert bool(found) == missing, found
    if missing:
        assert found[0].severity == "error" and found[0].where.startswith("lead story")


def test_link_host_passes_our_own_pages_on_a_local_base_url(settings: Settings) -> None:
    """With base_url on loopback (trying `newsletter serve` locally), our own links and
    images under it pass link-host; a story link to another local host still fails."""
    local = settings.model_copy(
        update={
            "newsletter": settings.newsletter.model_copy(
                update={"base_url": "http://127.0.0.1:8000/"}
            ),
            "checks": settings.checks.model_copy(update={"allowed_hosts": ["*.example.org"]}),
        }
    )
    report = run(local, SAMPLE)
    assert "link-host" not in names(report), report.findings
    other = run(local, replace(GREEN, 'url = "http://127.0.0.1:9999/draft"'))
    flagged = [f for f in other.findings if f.check == "link-host"]
    assert [f.value for f in flagged] == ["http://127.0.0.1:9999/draft"]
