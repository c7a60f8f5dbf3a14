"""The build stage end to end: files on disk, the .eml, atomic writes."""

from __future__ import annotations

import email
import os
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from newsletter import Build, InputError, Settings, build_issue, open_issue
from tests.conftest import PINNED_MSGID, PINNED_NOW, SAMPLE_ISSUE


def test_build_writes_four_files(settings: Settings, project: Path) -> None:
    result = build_issue(
        open_issue(project / "issues" / "2023-W25.toml", settings),
        now=PINNED_NOW,
        msgid=PINNED_MSGID,
    )
    folder = settings.output_dir / "2023-W25"
    assert sorted(p.name for p in folder.iterdir()) == [
        "archive.html",
        "email.eml",
        "email.html",
        "email.txt",
    ]
    assert (folder / "email.html").read_text() == result.html
    assert (folder / "email.txt").read_text() == result.text
    assert set(result.timings) >= {"jinja", "mjml", "premailer", "text", "mime", "write"}
    assert not result.clipped


def test_eml_parses_back_into_the_two_parts(sample_build: Build) -> None:
    message = email.message_from_bytes(sample_build.eml, policy=default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    # On the wire, text lines end in CRLF.
    assert parts[0].get_content().replace("\r\n", "\n") == sample_build.text
    assert parts[1].get_content().replace("\r\n", "\n") == sample_build.html
    assert message["Subject"] == sample_build.issue.subject
    assert message["From"] == "NATO Newsroom Weekly <newsletter@example.org>"
    assert message["Reply-To"] == "NATO Newsroom Weekly <press@example.org>"
    assert message["To"] == "NATO Newsroom Weekly <newsletter@example.org>"
    assert message["Message-ID"] == PINNED_MSGID
    assert message["Date"].datetime == PINNED_NOW
    assert all(len(line) <= 998 for line in sample_build.eml.split(b"\r\n"))


def test_message_id_is_unique_and_on_the_sender_domain(settings: Settings, project: Path) -> None:
    ids = set()
    for _ in range(2):
        result = build_issue(open_issue(project / "issues" / "2023-W25.toml", settings))
        ids.add(email.message_from_bytes(result.eml, policy=default)["Message-ID"])
    assert len(ids) == 2 and all(i.endswith("@example.org>") for i in ids)


def test_out_option_and_source_date_epoch(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1687503600")
    result = build_issue(open_issue(SAMPLE_ISSUE, settings), tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "2023-W25" / "email.eml").is_file()
    assert (
        email.message_from_bytes(result.eml, policy=default)["Date"].datetime.timestamp()
        == 1687503600
    )


def test_failed_build_leaves_previous_outputs_untouched(settings: Settings, project: Path) -> None:
    issue_file = project / "issues" / "2023-W25.toml"
    build_issue(open_issue(issue_file, settings))
    folder = settings.output_dir / "2023-W25"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    issue_file.write_text(issue_file.read_text().replace('title = "Video"', 'title = ""'))
    with pytest.raises(InputError, match="section title is empty"):
        build_issue(open_issue(issue_file, settings))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_failure_while_writing_leaves_no_partial_file(
    settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue_file = project / "issues" / "2023-W25.toml"
    build_issue(open_issue(issue_file, settings))
    folder = settings.output_dir / "2023-W25"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    issue_file.write_text(issue_file.read_text().replace("Welcome to", "Hello and welcome to"))
    synced: list[int] = []

    def disk_full_on_third_file(fd: int) -> None:
        synced.append(fd)
        if len(synced) == 3:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full_on_third_file)
    with pytest.raises(InputError, match="No space"):
        build_issue(open_issue(issue_file, settings))
    monkeypatch.undo()
    # All four files are as they were (not two new, two old), and no temp file is left.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_outputs_follow_the_umask(settings: Settings, project: Path) -> None:
    old = os.umask(0o022)
    try:
        build_issue(open_issue(project / "issues" / "2023-W25.toml", settings))
    finally:
        os.umask(old)
    for path in (project / "out" / "2023-W25").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_unwritable_output_folder_is_one_line(settings: Settings, project: Path) -> None:
    (project / "afile").write_text("x\n")
    with pytest.raises(InputError, match=r"afile.*cannot write: Not a directory"):
        build_issue(open_issue(project / "issues" / "2023-W25.toml", settings), project / "afile")
