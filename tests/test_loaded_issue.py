"""One loaded issue per command: parsed once, each variant rendered at most once."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from newsletter import issuefile, load_settings, open_issue, render_issue
from newsletter.cli import main
from newsletter.render.message import MessageBuilder
from newsletter.render.theme import Renderer
from tests.conftest import ROOT


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count issue parses and renders of each variant, wherever they come from."""
    counted: Counter[str] = Counter()
    parse, render_mjml, render_text = issuefile.parse, Renderer.render_mjml, Renderer.render_text

    def counting_parse(*args: Any, **kwargs: Any) -> issuefile.ParsedIssue:
        counted["parse"] += 1
        return parse(*args, **kwargs)

    def counting_mjml(self: Renderer, *args: Any, **kwargs: Any) -> str:
        archive = kwargs.get("archive", args[2] if len(args) > 2 else False)
        counted["browser version" if archive else "email"] += 1
        return render_mjml(self, *args, **kwargs)

    def counting_text(self: Renderer, *args: Any, **kwargs: Any) -> str:
        counted["text"] += 1
        return render_text(self, *args, **kwargs)

    builder_init = MessageBuilder.__init__

    def counting_builder(self: MessageBuilder, *args: Any, **kwargs: Any) -> None:
        counted["message builder"] += 1
        builder_init(self, *args, **kwargs)

    monkeypatch.setattr(MessageBuilder, "__init__", counting_builder)
    # render/loaded.py imported `parse` by name: patch it where it is used.
    monkeypatch.setattr("newsletter.render.loaded.parse", counting_parse)
    monkeypatch.setattr(Renderer, "render_mjml", counting_mjml)
    monkeypatch.setattr(Renderer, "render_text", counting_text)
    return counted


def test_send_yes_loads_once_and_renders_each_variant_once(
    project: Path, calls: Counter[str]
) -> None:
    shutil.copy(ROOT / "examples" / "subscribers.csv", project / "subscribers.csv")
    config = str(project / "config.toml")
    assert (
        main(["subscribers", "import", str(project / "subscribers.csv"), "--config", config]) == 0
    )
    # Outputs missing: the send checks, builds and sends, all from one load.
    code = main(["send", str(project / "issues" / "2023-W25.toml"), "--yes", "--config", config])
    assert code == 0
    assert (project / "out" / "2023-W25" / "email.html").is_file()
    assert len(list((project / "out" / "mail" / "new").iterdir())) == 20
    assert calls == {
        "parse": 1, "email": 1, "browser version": 1, "text": 1, "message builder": 1
    }  # fmt: skip


def test_weekly_loads_once_and_renders_each_variant_once(
    project: Path, calls: Counter[str]
) -> None:
    config = str(project / "config.toml")
    assert main(["subscribers", "add", "ada@example.org", "--config", config]) == 0
    assert main(["weekly", "--week", "2023-W25", "--config", config]) == 0
    assert calls == {
        "parse": 1, "email": 1, "browser version": 1, "text": 1, "message builder": 1
    }  # fmt: skip


def test_check_and_build_share_one_render(project: Path, calls: Counter[str]) -> None:
    settings = load_settings(project / "config.toml")
    loaded = open_issue(project / "issues" / "2023-W25.toml", settings)
    from newsletter.checks import check_issue
    from newsletter.render import build_issue

    build = build_issue(loaded)
    report = check_issue(loaded, build=build)
    render_issue(loaded)
    assert report.exit_code == 0
    assert calls == {
        "parse": 1, "email": 1, "browser version": 1, "text": 1, "message builder": 1
    }  # fmt: skip


def test_an_invalid_issue_loads_with_every_refusal(settings: Any, project: Path) -> None:
    issue = project / "issues" / "2023-W25.toml"
    text = issue.read_text(encoding="utf-8")
    text = text.replace('subject = "Monte', 'subject = "Monte\\nnegro', 1)
    text = text.replace('kind = "news"', 'kind = "x y"')
    issue.write_text(text, encoding="utf-8")
    loaded = open_issue(issue, settings)
    assert not loaded.valid
    places = [error.where for error in loaded.refusals]
    assert any(p.endswith("subject") for p in places)
    assert sum("kind" in p for p in places) >= 2  # every bad kind, not just the first
    with pytest.raises(type(loaded.refusals[0])) as first:
        loaded.require_valid()
    assert first.value is loaded.refusals[0]


def test_stale_outputs_follow_the_issue_file_and_templates(settings: Any, project: Path) -> None:
    import os

    issue = project / "issues" / "2023-W25.toml"
    loaded = open_issue(issue, settings)
    assert loaded.stale()
    from newsletter.render import build_issue

    build_issue(loaded)
    assert not loaded.stale()
    built = project / "out" / "2023-W25" / "email.html"
    earlier = issue.stat().st_mtime - 10
    os.utime(built, (earlier, earlier))  # edited since the build
    assert loaded.stale()
    build_issue(loaded)
    assert not loaded.stale()
    (project / "templates").mkdir()
    override = project / "templates" / "issue.txt.j2"
    override.write_text("{{ issue.subject }}\n")
    later = built.stat().st_mtime + 10
    os.utime(override, (later, later))  # a template edited since the build
    assert loaded.stale()
