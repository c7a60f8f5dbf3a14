"""The command line as a user meets it: a real subprocess, exit codes, no tracebacks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

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
    long_summary = "A long summary that keeps going. " * 800
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
