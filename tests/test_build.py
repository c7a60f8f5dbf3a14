"""The build stage end to end: files on disk, the .eml, atomic writes."""

from __future__ import annotations

import email
import os
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from newsletter import Build, InputError, Settings, build_issue, open_issue
from newsletter.render import LoadedIssue
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


# -- headers: folding and injection (issue 11, items 4 and 7) -----------------------------------


def _builder(settings: Settings, **newsletter: object) -> LoadedIssue:
    # model_construct: what validation would refuse at config load, the builder must too.
    values = {**settings.newsletter.model_dump(), **newsletter}
    changed = settings.newsletter.model_construct(**values)
    return open_issue(SAMPLE_ISSUE, settings.model_copy(update={"newsletter": changed}))


def _header_lines(message: bytes) -> list[bytes]:
    return message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("A" * 990, "ada@example.org"),
        ("\u00e9" * 400, "ada@example.org"),
        ("Zofia Nowak-\u017b\u00f3\u0142\u0107 " * 12, "zofia@example.org"),
        ("Ada Lovelace", "a" * 64 + "@" + "analytical-engine." * 6 + "example.org"),
        ("", "b" * 64 + "@example.org"),
    ],
    ids=["990-ascii", "400-e-acute", "many-words", "long-address", "no-name"],
)
def test_every_header_is_folded(settings: Settings, name: str, address: str) -> None:
    from email.header import decode_header, make_header

    from newsletter.render.message import Recipient

    loaded = _builder(settings, unsubscribe_mailto="unsubscribe-requests@example.org")
    builder = loaded.message_builder()
    message = builder.message_bytes(Recipient(address, name, "token-id", 7))
    lines = _header_lines(message)
    for line in lines:
        assert len(line) <= 998, line[:80]
        if len(line) > 78:
            # Only a single word too long for any line (a URL, an address) may pass 78.
            body = line.split(b":", 1)[1] if not line[:1].isspace() else line
            assert len(body.split()) == 1, line
    parsed = email.message_from_bytes(message, policy=default)
    to = str(parsed["To"].addresses[0].addr_spec)
    assert to == address
    raw_to = next(v for k, v in email.message_from_bytes(message).items() if k == "To")
    assert str(make_header(decode_header(raw_to))) == (f"{name} <{address}>" if name else address)
    unsubscribe = " ".join(parsed["List-Unsubscribe"].split())
    assert unsubscribe.startswith("<https://newsletter.example.org/unsubscribe?token=")
    assert ", <mailto:unsubscribe-requests@example.org?subject=unsubscribe%20" in unsubscribe
    # The mailto form (110+ characters with the URL) is folded between its two parts.
    assert any(line.startswith(b" <mailto:") for line in lines)


@pytest.mark.parametrize(
    "field",
    ["base_url", "unsubscribe_mailto", "from_address", "reply_to"],
)
@pytest.mark.parametrize("separator", ["\r\n", "\r", "\u2028", "\u0085"])
def test_the_builder_refuses_an_injected_header_in_any_setting(
    settings: Settings, field: str, separator: str
) -> None:
    from newsletter.render.message import Recipient

    value = {
        "base_url": "https://newsletter.example.org/",
        "unsubscribe_mailto": "unsubscribe@example.org",
        "from_address": "newsletter@example.org",
        "reply_to": "press@example.org",
    }[field]
    loaded = _builder(settings, **{field: value + separator + "Bcc: eve@example.net"})
    with pytest.raises(InputError, match="line break or control character"):
        builder = loaded.message_builder()
        builder.message_bytes(Recipient("ada@example.org", "Ada", "token-id", 7))


@pytest.mark.parametrize(
    ("recipient", "message_id"),
    [
        (("ada@example.org", "Ada\u2028Bcc: eve@example.net"), ""),
        (("ada@example.org\r\nBcc: eve@example.net", "Ada"), ""),
        (("ada@example.org", "Ada"), "<x@example.org>\r\nBcc: eve@example.net"),
    ],
    ids=["name", "address", "message-id"],
)
def test_the_builder_refuses_an_injected_header_in_any_value(
    settings: Settings, recipient: tuple[str, str], message_id: str
) -> None:
    from newsletter.render.message import Recipient

    builder = open_issue(SAMPLE_ISSUE, settings).message_builder()
    with pytest.raises(InputError, match="line break or control character"):
        builder.message_bytes(Recipient(*recipient, "token-id", 7), message_id=message_id)


# -- output folders that cannot be used (issue 11, item 8) -------------------------------------


def _one_line_exit_2(*args: str, cwd: Path) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "newsletter", *args], cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_output_dir_that_is_a_file_is_one_line(project: Path) -> None:
    (project / "out").write_text("not a folder\n")
    line = _one_line_exit_2("build", "issues/2023-W25.toml", cwd=project)
    assert "out/2023-W25" in line and "Not a directory" in line
    (project / "afile").write_text("x\n")
    line = _one_line_exit_2("build", "issues/2023-W25.toml", "--out", "afile", cwd=project)
    assert line.startswith("error: afile/2023-W25: cannot write")
    line = _one_line_exit_2("build", "issues/2023-W25.toml", "--out", "/proc/x", cwd=project)
    assert line.startswith("error: /proc/x")


def test_check_writable_refuses_before_any_work(tmp_path: Path) -> None:
    from newsletter.files import check_writable

    (tmp_path / "afile").write_text("x\n")
    with pytest.raises(InputError, match=r"^\[paths\] output_dir .*afile is a file, not a folder"):
        check_writable(tmp_path / "afile" / "2023-W25", what="[paths] output_dir")
    (tmp_path / "out" / "send-report.json").mkdir(parents=True)
    with pytest.raises(InputError, match=r"send-report\.json is a folder; it must be a file"):
        check_writable(tmp_path / "out", "send-report.json")
    with pytest.raises(InputError, match="cannot write there"):
        check_writable(Path("/proc/x"))
    check_writable(tmp_path / "new" / "folder", "send-report.json")
    assert list((tmp_path / "new" / "folder").iterdir()) == []
