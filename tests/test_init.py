"""``newsletter init``: a new project that works without this repository."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from newsletter import ConfigError, InputError, load_settings
from newsletter.render.theme import builtin_theme
from newsletter.scaffold import init_project
from newsletter.settings import SAMPLE_SECRET
from tests.cli_process import run_newsletter
from tests.conftest import ROOT

EXPECTED = [
    "config.toml",
    "secrets.toml",
    ".gitignore",
    "issues/2023-W25.toml",
    "static/images/2023-W25-lead.png",
    "static/images/2023-W25-video.png",
    "templates/README.md",
    "examples/subscribers.csv",
]


def secret_of(project: Path) -> str:
    value = tomllib.loads((project / "secrets.toml").read_text())["security"]["secret"]
    assert isinstance(value, str)
    return value


def tree(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``folder``: its mode and a hash of its content."""
    found = {}
    for path in sorted(folder.rglob("*")):
        content = "" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        found[path.relative_to(folder).as_posix()] = (path.lstat().st_mode, content)
    return found


@pytest.fixture
def new(tmp_path: Path) -> Path:
    """A project written by ``init`` into a folder that did not exist."""
    target = tmp_path / "new"
    init_project(target)
    return target


def test_init_writes_the_listed_files(tmp_path: Path) -> None:
    target = tmp_path / "new" / "project"
    written = init_project(target)
    assert written == [target / name for name in EXPECTED]
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted(EXPECTED)
    # The examples are the repository's own sample files, byte for byte.
    for name in EXPECTED[3:]:
        if not name.startswith("templates/"):
            assert (target / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert [p.name for p in (target / "templates").iterdir()] == ["README.md"]


def test_secret_is_generated_into_a_private_secrets_file(new: Path, tmp_path: Path) -> None:
    secret = secret_of(new)
    assert len(secret) >= 40 and secret != SAMPLE_SECRET
    assert stat.S_IMODE((new / "secrets.toml").stat().st_mode) == 0o600
    config = (new / "config.toml").read_text()
    assert secret not in config
    assert "secret" not in tomllib.loads(config)["security"]
    # Every project gets its own.
    init_project(tmp_path / "other")
    assert secret_of(tmp_path / "other") != secret


def test_config_is_the_shipped_one_without_secret_or_sample_source(new: Path) -> None:
    shipped: dict[str, Any] = tomllib.loads((ROOT / "config.toml").read_text())
    del shipped["security"]["secret"]
    # The sample source reads the repository's examples/, which a new project has not.
    del shipped["sources"]
    assert tomllib.loads((new / "config.toml").read_text()) == shipped
    lines = (new / "config.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            assert lines[number - 1].startswith("#"), f"{number + 1}: {line!r} has no comment"


def test_new_config_loads_with_the_generated_secret(new: Path) -> None:
    settings = load_settings(new / "config.toml")
    assert settings.security.secret.get_secret_value() == secret_of(new)
    assert settings.smtp.mode == "capture"
    assert settings.store_path == new.resolve() / "newsletter.db"
    assert settings.templates_dir == new.resolve() / "templates"


def test_environment_beats_secrets_toml(new: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECURITY__SECRET", "from-the-environment")
    settings = load_settings(new / "config.toml")
    assert settings.security.secret.get_secret_value() == "from-the-environment"


def test_secrets_toml_beats_config_toml_key_by_key(project: Path) -> None:
    # The repository's own layout: the sample secret in config.toml, no secrets.toml.
    assert load_settings(project / "config.toml").security.secret.get_secret_value() == (
        SAMPLE_SECRET
    )
    (project / "secrets.toml").write_text(
        '[security]\nsecret = "from-secrets"\n\n[smtp]\npassword = "hunter2"\n'
    )
    settings = load_settings(project / "config.toml")
    assert settings.security.secret.get_secret_value() == "from-secrets"
    assert settings.smtp.password.get_secret_value() == "hunter2"
    # The rest of [smtp] still comes from config.toml.
    assert settings.smtp.host == "smtp.example.org"


def test_malformed_secrets_toml_is_named(new: Path) -> None:
    (new / "secrets.toml").write_text('[security]\nsecret = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_settings(new / "config.toml")
    message = str(info.value)
    assert message.startswith(f"{new / 'secrets.toml'}: not valid TOML: ")
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_misspelt_key_in_secrets_toml_is_named(new: Path) -> None:
    (new / "secrets.toml").write_text('[security]\nsecert = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(new / "config.toml")
    assert str(info.value) == (
        f"{new / 'secrets.toml'}: [security] secert: is not a known key (check its spelling)"
    )


def test_gitignore_keeps_store_outputs_and_secrets_out(new: Path) -> None:
    lines = (new / ".gitignore").read_text().splitlines()
    for entry in ("newsletter.db*", "out/", "secrets.toml", ".env"):
        assert entry in lines
    if shutil.which("git") is None:
        return
    # And git agrees (in a throwaway repository in the new project, not this one).
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q"], cwd=new, check=True, env=env)
    ignored = ["newsletter.db", "newsletter.db-wal", "newsletter.db-shm", "out/2023-W25/email.eml"]
    ignored += ["out/mail/new/1.eml", "secrets.toml", ".env"]
    kept = [name for name in EXPECTED if name != "secrets.toml"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *ignored, *kept],
        cwd=new,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.splitlines() == ignored


def test_templates_readme_names_every_builtin_template(new: Path) -> None:
    readme = (new / "templates" / "README.md").read_text()
    theme = builtin_theme()
    names = sorted(p.relative_to(theme).as_posix() for p in theme.rglob("*.j2"))
    assert names
    for name in names:
        assert f"`{name}`" in readme, name
    # The command it gives to find the built-in theme prints that folder.
    (command,) = [line.strip() for line in readme.splitlines() if "python -c" in line]
    code = command.removeprefix("python -c ").strip('"')
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert Path(printed.strip()) == theme


def test_second_init_refuses_and_changes_nothing(new: Path) -> None:
    (new / "issues" / "2023-W25.toml").write_text("# edited\n")
    before = tree(new)
    with pytest.raises(InputError) as info:
        init_project(new)
    message = str(info.value)
    assert message.startswith(f"{new / 'config.toml'}: already exists")
    assert "\n" not in message
    assert info.value.exit_code == 2
    assert tree(new) == before


def test_any_existing_file_stops_everything(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "subscribers.csv").write_text("email\nme@example.org\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    before = tree(tmp_path)
    with pytest.raises(InputError, match=r"examples/subscribers\.csv: already exists"):
        init_project(tmp_path)
    assert tree(tmp_path) == before


def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "static").write_text("not a folder\n")
    with pytest.raises(InputError, match=r"static: exists and is not a folder"):
        init_project(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["static"]
    with pytest.raises(InputError, match=r"static: exists and is not a folder"):
        init_project(tmp_path / "static")


def test_the_wheel_carries_every_example_file(new: Path) -> None:
    """pyproject.toml force-includes each file init copies under newsletter/starter/."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for name in EXPECTED:
        if name in ("secrets.toml", ".gitignore", "templates/README.md"):
            continue  # written by init itself
        sources = [s for s in included if name == s or name.startswith(f"{s}/")]
        assert sources, f"{name} is not in the wheel"
        assert included[sources[0]] == f"newsletter/starter/{sources[0]}"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_newsletter(project, *args)


def test_new_project_builds_checks_and_sends(new: Path) -> None:
    issue = "issues/2023-W25.toml"
    built = run(new, "build", issue)
    assert built.returncode == 0, built.stderr
    assert (new / "out" / "2023-W25" / "archive.html").is_file()
    checked = run(new, "check", issue)
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr
    imported = run(new, "subscribers", "import", "examples/subscribers.csv")
    assert imported.returncode == 0, imported.stderr
    sent = run(new, "send", issue, "--yes")
    assert sent.returncode == 0, sent.stderr
    subscribers = len((new / "examples" / "subscribers.csv").read_text().splitlines()) - 1
    captured = list((new / "out" / "mail" / "new").iterdir())
    assert len(captured) == subscribers == 20
    message = captured[0].read_bytes()
    assert b"List-Unsubscribe:" in message


def test_init_command_starts_a_project_and_refuses_a_second_time(tmp_path: Path) -> None:
    first = run(tmp_path, "init", "news")
    assert first.returncode == 0, first.stderr
    assert "news/config.toml" in first.stdout and "news/secrets.toml" in first.stdout
    assert (tmp_path / "news" / "issues" / "2023-W25.toml").is_file()
    again = run(tmp_path, "init", "news")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    (line,) = again.stderr.strip().splitlines()
    assert "news/config.toml" in line and "already exists" in line
    # Outside a project (no config.toml) the other commands say what to do.
    lost = run(tmp_path, "build", "issues/2023-W25.toml")
    assert lost.returncode == 2 and "config.toml: config file not found" in lost.stderr


def test_init_into_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file\n")
    result = run(tmp_path, "init", "taken")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "taken" in line
    assert (tmp_path / "taken").read_text() == "a file\n"
