"""The command line as a user meets it: a real subprocess, exit codes, no tracebacks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from newsletter.cli import cli
from tests.conftest import ROOT


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_build_prints_sizes_and_writes_outputs(project: Path) -> None:
    result = run("build", "issues/2023-W25.toml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Built 2023-W25 (14 stories)" in result.stdout
    for name in ("email.html", "email.txt", "email.eml", "archive.html"):
        assert re.search(rf"out/2023-W25/{name}\s+\d+\.\d KB", result.stdout), name
        assert (project / "out" / "2023-W25" / name).stat().st_size > 1000
    assert "Gmail" not in result.stderr


def test_build_with_out_and_config_from_elsewhere(project: Path, tmp_path: Path) -> None:
    result = run(
        "build",
        str(project / "issues" / "2023-W25.toml"),
        "--out",
        str(tmp_path / "site"),
        "--config",
        str(project / "config.toml"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "2023-W25" / "email.html").is_file()


def test_gmail_clipping_warning(project: Path) -> None:
    issue = project / "issues" / "2023-W25.toml"
    long_summary = "A long summary that keeps going. " * 1600
    issue.write_text(
        issue.read_text().replace(
            'summary = "NATO and the Republic', f'summary = "{long_summary}NATO and the Republic'
        )
    )
    issue.write_text(
        issue.read_text().replace('summary = "NATO takes', f'summary = "{long_summary}NATO takes')
    )
    result = run("build", "issues/2023-W25.toml", cwd=project)
    assert result.returncode == 0
    assert "over Gmail's 102.0 KB limit" in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_bad_issue_file_is_one_line_exit_2(project: Path) -> None:
    issue = project / "issues" / "2023-W25.toml"
    issue.write_text(
        issue.read_text().replace(
            'alt = "Abstract illustration: a play symbol on a field of blue and yellow", ', ""
        )
    )
    assert_one_line_error(
        run("build", "issues/2023-W25.toml", cwd=project),
        "issues/2023-W25.toml:",
        "section 2 'Video', item 1 \"Training Ukraine's volunteer army\", image",
        "alt text",
    )


def test_bad_config_is_one_line_exit_2(project: Path) -> None:
    config = project / "config.toml"
    config.write_text(config.read_text().replace("output_dir =", "output_folder ="))
    assert_one_line_error(
        run("build", "issues/2023-W25.toml", cwd=project),
        "[paths] output_folder",
        "not a known key",
    )
    assert_one_line_error(
        run("build", "issues/2023-W25.toml", "--config", "missing.toml", cwd=project),
        "missing.toml: config file not found",
    )


def test_missing_issue_file(project: Path) -> None:
    assert_one_line_error(
        run("build", "issues/2099-W01.toml", cwd=project),
        "issues/2099-W01.toml: issue file not found",
    )


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert isinstance(cli, click.Group)
    names = []
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.commands]
        else:
            names.append(name)
    assert len(names) >= 9
    for name in names:
        assert f"newsletter {name}" in readme, f"README.md does not show `newsletter {name}`"


def test_help_loads_no_pipeline_stage() -> None:
    """`newsletter --help` imports click and the command modules, never a stage."""
    code = (
        "import sys; from newsletter.cli import main; "
        "sys.argv = ['newsletter', '--help']\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mjml', 'premailer', 'lxml', 'httpx', 'feedparser', 'selectolax',"
        " 'rich', 'newsletter.render', 'newsletter.send', 'newsletter.collect',"
        " 'newsletter.checks', 'newsletter.settings') if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy:", result.stdout


def test_cli_status_choices_match_the_library() -> None:
    from newsletter import subscribers
    from newsletter.cli.subscribers import STATUSES

    assert STATUSES == subscribers.STATUSES


# -- issue 11: one line and exit 2 (items 6, 8 and 13) -----------------------------------------


def test_csv_with_an_unbalanced_quote_imports_nothing(project: Path) -> None:
    rows = "".join(f"user{i}@example.net,User {i}\n" for i in range(300))
    (project / "list.csv").write_text(f'email,name\nbad@example.net,"Broken quote\n{rows}')
    assert_one_line_error(
        run("subscribers", "import", "list.csv", cwd=project), "list.csv:2: ", "never closed"
    )
    assert run("subscribers", "list", cwd=project).stdout == ""


def test_unicode_line_separator_in_subject_or_name_is_one_line(project: Path) -> None:
    issue = project / "issues" / "2023-W25.toml"
    text = issue.read_text()
    issue.write_text(text.replace('subject = "', 'subject = "Montenegro\\u2028', 1))
    assert_one_line_error(
        run("build", "issues/2023-W25.toml", cwd=project),
        "issues/2023-W25.toml:",
        "subject",
        "U+2028",
    )
    issue.write_text(text)
    config = project / "config.toml"
    config.write_text(
        config.read_text().replace('name = "NATO Newsroom Weekly"', 'name = "NATO\\u0085Weekly"')
    )
    assert_one_line_error(
        run("build", "issues/2023-W25.toml", cwd=project), "[newsletter] name", "U+0085"
    )


def test_impossible_week_is_refused_before_the_store_is_opened(project: Path) -> None:
    for command in ("draft", "items", "weekly"):
        for week in ("2023-W99", "2023-W25 ", "2023-W0"):
            assert_one_line_error(
                run(command, "--week", week, cwd=project), "--week: not an ISO week"
            )
    assert not (project / "newsletter.db").exists()


def test_weekly_refuses_an_unusable_output_folder_before_sending(project: Path) -> None:
    (project / "list.csv").write_text("email\nada@example.org\ngrace@example.org\n")
    assert run("subscribers", "import", "list.csv", cwd=project).returncode == 0
    (project / "out" / "2023-W25" / "send-report.json").mkdir(parents=True)
    assert_one_line_error(
        run("weekly", "--week", "2023-W25", cwd=project),
        "[paths] output_dir",
        "send-report.json is a folder",
    )
    assert not list((project / "out" / "mail").glob("*/*"))


def test_store_secrets_and_outputs_are_ignored_by_git() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [
        "newsletter.db",
        "newsletter.db-wal",
        "newsletter.db-shm",
        "secrets.toml",
        "out/2023-W25/email.html",
        "test-output/screenshots/a.png",
    ]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert result.stdout.split() == paths
