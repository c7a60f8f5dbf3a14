"""config.toml + environment, and one clear line for every mistake."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newsletter import ConfigError, load_settings
from tests.conftest import ROOT


def write(project: Path, old: str, new: str) -> Path:
    path = project / "config.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    return path


def test_shipped_config_loads_and_resolves_paths(project: Path) -> None:
    settings = load_settings(project / "config.toml")
    assert settings.newsletter.name == "NATO Newsroom Weekly"
    assert settings.newsletter.base_url == "https://newsletter.example.org/"
    assert settings.output_dir == project.resolve() / "out"
    assert settings.issues_dir == project.resolve() / "issues"


def test_every_shipped_key_has_a_comment() -> None:
    lines = (ROOT / "config.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_]+\s*=", line):
            assert lines[number - 1].startswith("#"), (
                f"config.toml:{number + 1}: {line!r} has no comment"
            )


def test_environment_overrides_the_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_NEWSLETTER__BASE_URL", "https://news.example.net")
    monkeypatch.setenv("NEWSLETTER_PATHS__OUTPUT_DIR", "/srv/out")
    settings = load_settings(project / "config.toml")
    assert settings.newsletter.base_url == "https://news.example.net/"
    assert settings.output_dir == Path("/srv/out")
    assert settings.newsletter.name == "NATO Newsroom Weekly"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"config file not found \(pass --config PATH, or .*init"
    ) as info:
        load_settings(tmp_path / "nope.toml")
    assert info.value.exit_code == 2


def test_unknown_key_is_named(project: Path) -> None:
    path = write(project, "language = ", "langauge = ")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert (
        str(info.value) == f"{path}: [newsletter] langauge: is not a known key (check its spelling)"
    )


def test_unknown_section_is_named(project: Path) -> None:
    path = write(project, "[build]", "[bulid]")
    with pytest.raises(ConfigError, match=r"bulid: is not a known key"):
        load_settings(path)


def test_wrong_type_is_named(project: Path) -> None:
    path = write(project, "allow_linkless_items = false", 'allow_linkless_items = "sometimes"')
    with pytest.raises(ConfigError, match=r"\[build\] allow_linkless_items: "):
        load_settings(path)


def test_bad_address_and_url(project: Path) -> None:
    path = write(project, '"newsletter@example.org"', '"not-an-address"')
    with pytest.raises(ConfigError, match=r"\[newsletter\] from_address: .*email"):
        load_settings(path)
    path = write(project, '"not-an-address"', '"newsletter@example.org"')
    path = write(project, '"https://newsletter.example.org/"', '"newsletter.example.org"')
    with pytest.raises(ConfigError, match=r"\[newsletter\] base_url: must be an absolute https://"):
        load_settings(path)


@pytest.mark.parametrize(
    "url",
    [
        "https://news.example.org/\r\nBcc: victim@example.net",
        "https://news.example.org/ weekly/",
        "https://news.example.org/\u2028",
        "https://news.example.org/?a=1",
        "https:///no-host/",
        "javascript:alert(1)",
    ],
)
def test_base_url_cannot_carry_a_header_or_garbage(project: Path, url: str) -> None:
    path = write(project, '"https://newsletter.example.org/"', json.dumps(url))
    with pytest.raises(ConfigError, match=r"\[newsletter\] base_url: must"):
        load_settings(path)


def test_relative_file_paths_are_relative_to_the_config(project: Path, tmp_path: Path) -> None:
    config = project / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            '# key_file = "/etc/newsletter/dkim.pem"', 'key_file = "keys/dkim.pem"'
        ),
        encoding="utf-8",
    )
    config.write_text(
        config.read_text(encoding="utf-8").replace("[smtp]", '[smtp]\nca_file = "ca.pem"', 1),
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert settings.dkim.key_file == project.resolve() / "keys" / "dkim.pem"
    assert settings.smtp.ca_file == project.resolve() / "ca.pem"


def test_binary_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b"\xff\xfe[\x00n\x00")
    with pytest.raises(ConfigError, match=r"config.toml: not UTF-8 text \(byte 0\)"):
        load_settings(config)


def test_toml_syntax_error(project: Path) -> None:
    path = write(project, 'language = "en"', 'language = "en')
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line \d+"):
        load_settings(path)


def test_overlong_name_and_base_url_are_refused(project: Path) -> None:
    # Both reach header lines (From, List-Unsubscribe), which stop at 998 characters.
    path = write(
        project,
        '"https://newsletter.example.org/"',
        json.dumps("https://x.example.org/" + "a" * 990),
    )
    with pytest.raises(ConfigError, match=r"\[newsletter\] base_url: is \d+ characters"):
        load_settings(path)
    path = write(
        project, '"https://x.example.org/' + "a" * 990 + '"', '"https://newsletter.example.org/"'
    )
    path = write(project, 'name = "NATO Newsroom Weekly"', f'name = "{"N" * 1000}"')
    with pytest.raises(ConfigError, match=r"\[newsletter\] name: is 1000 characters"):
        load_settings(path)
