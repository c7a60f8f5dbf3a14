"""Approval: the content hash, what counts as approved, the `weekly` gate, the next send."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import tomlkit

from newsletter.approval import (
    Approval,
    NotApproved,
    approval_of,
    content_hash,
    require_approved,
    seal,
)
from newsletter.draft import Draft, render_draft
from newsletter.errors import InputError
from newsletter.issuefile import parse, parse_issue
from newsletter.schedule import next_send
from newsletter.settings import SAMPLE_SECRET, Settings, WeeklySettings
from newsletter.studio.issuedoc import IssueDoc
from tests.cli_process import run_newsletter
from tests.conftest import ROOT, SAMPLE_ISSUE
from tests.test_cli import assert_one_line_error

SAMPLE = SAMPLE_ISSUE.read_text(encoding="utf-8")
ISSUE = "issues/2023-W25.toml"
NOW = dt.datetime(2023, 6, 22, 16, 5, tzinfo=dt.UTC)
#: The sample config's secret, which the CLI tests' projects use.
SECRETS = [SAMPLE_SECRET]


def approved(text: str, who: str = "ada", secret: str = SAMPLE_SECRET) -> str:
    """``text`` with an approval recorded the way the studio records it."""
    data = tomllib.loads(text)
    data.update(approved_by=who, approved_at=dt.datetime(2023, 6, 22, 16, 5, tzinfo=dt.UTC))
    return (
        f'status = "approved"\napproved_by = "{who}"\napproved_at = 2023-06-22T16:05:00Z\n'
        f'approved_hash = "{seal(data, secret)}"\n' + text
    )


# -- the content hash -----------------------------------------------------------------------------


def test_the_hash_covers_values_not_layout() -> None:
    base = content_hash(tomllib.loads(SAMPLE))
    assert base.startswith("sha256:") and len(base) == len("sha256:") + 64
    same = [
        SAMPLE.replace("number = 1\n", "# a comment\n\nnumber = 1\n"),  # comments, blank lines
        SAMPLE.replace(
            'week = "2023-W25"\ndate = 2023-06-23\n', 'date = 2023-06-23\nweek = "2023-W25"\n'
        ),
        SAMPLE.replace('kind = "video"', "kind = 'video'"),  # quoting
        SAMPLE.replace('title = "News"', 'title   =   "News"   # spacing'),
        approved(SAMPLE),  # the approval keys themselves
        'status = "draft"\n' + SAMPLE,
    ]
    for text in same:
        assert content_hash(tomllib.loads(text)) == base, text[:80]
    different = [
        SAMPLE.replace("number = 1", "number = 2"),
        SAMPLE.replace("date = 2023-06-23", "date = 2023-06-22"),
        SAMPLE.replace("on Monday (19 June 2023), in order", "on Monday (19 June 2023) in order"),
        SAMPLE.replace("width = 260", "width = 261"),
        SAMPLE.replace('title = "Video"', 'title = "Videos"'),
        'newsletter = "Another name"\n' + SAMPLE,
    ]
    hashes = {content_hash(tomllib.loads(text)) for text in different}
    assert base not in hashes and len(hashes) == len(different)


def test_the_hash_reads_dates_and_times_as_iso_strings() -> None:
    data = {"date": dt.date(2023, 6, 23), "at": dt.datetime(2023, 6, 23, 9, 0), "t": dt.time(9)}
    text = {"date": "2023-06-23", "at": "2023-06-23T09:00:00", "t": "09:00:00"}
    assert content_hash(data) == content_hash(text)


# -- what counts as approved ----------------------------------------------------------------------


def test_only_a_matching_hash_approves() -> None:
    assert approval_of(SAMPLE, SECRETS) == Approval(status="draft", by="", at="", valid=False)
    good = approval_of(approved(SAMPLE), SECRETS)
    assert good == Approval("approved", "ada", "2023-06-22T16:05:00+00:00", valid=True)
    assert not good.stale and good.problem() == ""
    typed = approval_of('status = "approved"\n' + SAMPLE, SECRETS)
    assert not typed.valid and not typed.stale
    assert "typed, not recorded by an approval" in typed.problem()
    wrong = approval_of(approved(SAMPLE).replace('"hmac-sha256:', '"hmac-sha256:0'), SECRETS)
    assert not wrong.valid and wrong.stale
    edited = approval_of(approved(SAMPLE).replace("number = 1", "number = 2"), SECRETS)
    assert not edited.valid and edited.stale
    assert edited.problem() == (
        "not approved: edited after its approval (by ada on 2023-06-22T16:05:00+00:00)"
    )
    with pytest.raises(InputError, match="not valid TOML"):
        approval_of("status = ", SECRETS)


def test_only_the_secret_seals_an_approval() -> None:
    text = approved(SAMPLE)
    assert not approval_of(text, ["another secret"]).valid
    # The plain content hash (what anyone can compute from the file) approves nothing.
    data = tomllib.loads(SAMPLE)
    forged = text.replace(text.split('approved_hash = "')[1].split('"')[0], content_hash(data))
    assert not approval_of(forged, SECRETS).valid
    # Who and when are sealed too: the approval cannot be moved to someone else.
    assert not approval_of(
        text.replace('approved_by = "ada"', 'approved_by = "boss"'), SECRETS
    ).valid
    # After a rotation, approvals sealed with a previous secret still hold.
    assert approval_of(approved(SAMPLE, secret="old"), ["new", "old"]).valid


def test_require_approved_says_why_in_one_line() -> None:
    source = "issues/2023-W25.toml"
    assert require_approved(approved(SAMPLE), source, SECRETS).valid
    cases = {
        SAMPLE: 'issues/2023-W25.toml: not approved (status "draft"); approve it in the studio, '
        "or set [weekly] require_approval = false",
        approved(SAMPLE).replace("number = 1", "number = 2"): "issues/2023-W25.toml: not "
        "approved: edited after its approval (by ada on 2023-06-22T16:05:00+00:00); approve it "
        "again in the studio, or set [weekly] require_approval = false",
    }
    for text, message in cases.items():
        with pytest.raises(NotApproved) as caught:
            require_approved(text, source, SECRETS)
        assert str(caught.value) == message
        assert caught.value.exit_code == 2


def test_the_model_reads_the_approval_keys_and_refuses_a_bad_status() -> None:
    issue = parse_issue(SAMPLE, "old file")  # a file from before approvals: a draft
    assert (issue.status, issue.approved_by, issue.approved_at, issue.approved_hash) == (
        "draft", "", None, ""
    )  # fmt: skip
    issue = parse_issue(approved(SAMPLE), "approved")
    assert issue.status == "approved" and issue.approved_at == NOW
    refusals = parse('status = "aproved"\n' + SAMPLE, "x.toml").refusals
    assert [str(r) for r in refusals] == ["x.toml:1: status: Input should be 'draft' or 'approved'"]


def test_a_new_draft_is_a_draft(tmp_path: Path) -> None:
    text = render_draft(Draft("2023-W25", tmp_path / "2023-W25.toml"), 3)
    assert '\nstatus = "draft"\n' in text
    assert tomllib.loads(text)["status"] == "draft"
    assert approval_of(text, SECRETS).status == "draft"


# -- `newsletter weekly` with [weekly] require_approval -------------------------------------------


def approval_project(project: Path) -> Path:
    """The sample project with subscribers, sending only approved issues."""
    (project / "subscribers.csv").write_text(
        (ROOT / "examples" / "subscribers.csv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    imported = run_newsletter(project, "subscribers", "import", "subscribers.csv")
    assert imported.returncode == 0, imported.stderr
    config = project / "config.toml"
    settings = tomlkit.parse(config.read_text(encoding="utf-8"))  # with or without [weekly]
    weekly = settings.setdefault("weekly", tomlkit.table())
    weekly["require_approval"] = True
    weekly["send_at"] = "Fri 09:00"
    config.write_text(tomlkit.dumps(settings), encoding="utf-8")
    return project


def sent(project: Path) -> int:
    maildir = project / "out" / "mail" / "new"
    return len(list(maildir.iterdir())) if maildir.is_dir() else 0


def test_weekly_sends_only_an_approved_issue(project: Path) -> None:
    approval_project(project)
    issue = project / ISSUE
    assert_one_line_error(
        run_newsletter(project, "weekly", "--week", "2023-W25"),
        'issues/2023-W25.toml: not approved (status "draft"); approve it in the studio, '
        "or set [weekly] require_approval = false",
    )
    issue.write_text('status = "approved"\n' + SAMPLE, encoding="utf-8")
    assert_one_line_error(
        run_newsletter(project, "weekly", "--week", "2023-W25", "--force"),
        "issues/2023-W25.toml: not approved",
        "typed, not recorded by an approval",
    )
    assert sent(project) == 0 and not (project / "out" / "2023-W25").exists()

    doc = IssueDoc.load(issue)
    doc.approve("ada", NOW, SAMPLE_SECRET)
    doc.save(doc.version)
    first = run_newsletter(project, "weekly", "--week", "2023-W25")
    assert first.returncode == 0, first.stderr
    assert "2023-W25: sent 20, failed 0" in first.stdout and sent(project) == 20

    # Edited after the send (a typo fixed for the archive): nobody is left to send to, so
    # the approval no longer matters and cron stays quiet.
    doc = IssueDoc.load(issue)
    doc.set_field("subject", "A typo fixed after the send")
    doc.save(doc.version)
    assert not approval_of(issue.read_text(encoding="utf-8"), SECRETS).valid
    again = run_newsletter(project, "weekly", "--week", "2023-W25")
    assert again.returncode == 0, again.stderr
    assert "Nothing to send: 2023-W25 already went to 20 subscribers." in again.stdout
    assert again.stderr == "" and sent(project) == 20


def test_weekly_refuses_an_issue_edited_after_its_approval(project: Path) -> None:
    approval_project(project)
    issue = project / ISSUE
    doc = IssueDoc.load(issue)
    doc.approve("ada", NOW, SAMPLE_SECRET)
    doc.save(doc.version)
    text = issue.read_text(encoding="utf-8")
    issue.write_text(text.replace("in Berlin on Monday", "in Berlin on Tuesday"), "utf-8")
    assert_one_line_error(
        run_newsletter(project, "weekly", "--week", "2023-W25"),
        "issues/2023-W25.toml: not approved: edited after its approval "
        "(by ada on 2023-06-22T16:05:00+00:00); approve it again in the studio, "
        "or set [weekly] require_approval = false",
    )
    assert sent(project) == 0


# -- the next scheduled send ----------------------------------------------------------------------

BRUSSELS = ZoneInfo("Europe/Brussels")


def scheduled(settings: Settings, send_at: str, timezone: str = "Europe/Brussels") -> Settings:
    weekly = WeeklySettings(send_at=send_at, timezone=timezone)
    return settings.model_copy(update={"weekly": weekly})


def at(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    """Wall-clock time in Brussels."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def test_no_schedule_no_next_send(settings: Settings) -> None:
    assert next_send(settings, at(2023, 6, 21, 12, 0)) is None


def test_the_next_send_is_strictly_after_now(settings: Settings) -> None:
    friday = scheduled(settings, "fri 9:00")  # normalised to "Fri 09:00"
    slot = at(2023, 6, 23, 9, 0)
    assert next_send(friday, at(2023, 6, 21, 12, 0)) == slot  # Wednesday: this Friday
    assert next_send(friday, slot - dt.timedelta(seconds=1)) == slot
    # At the slot itself the run is due or under way: the next one is a week later.
    assert next_send(friday, slot) == at(2023, 6, 30, 9, 0)
    assert next_send(friday, at(2023, 6, 23, 9, 1)) == at(2023, 6, 30, 9, 0)
    found = next_send(friday, at(2023, 6, 24, 8, 0))
    assert (
        found is not None
        and found.tzinfo == BRUSSELS
        and found.utcoffset() == dt.timedelta(hours=2)
    )
    # A now in another zone, or naive (read as the schedule's wall clock).
    assert next_send(friday, dt.datetime(2023, 6, 23, 6, 59, tzinfo=dt.UTC)) == slot
    assert next_send(friday, dt.datetime(2023, 6, 23, 8, 59)) == slot
    assert next_send(friday, dt.datetime(2023, 6, 23, 7, 0, tzinfo=dt.UTC)) == at(2023, 6, 30, 9, 0)


def test_the_next_send_follows_summer_time(settings: Settings) -> None:
    friday = scheduled(settings, "Fri 09:00")
    # Clocks go forward on Sunday 26 March 2023: 09:00 is 08:00 UTC before, 07:00 after.
    spring = next_send(friday, at(2023, 3, 24, 10, 0))
    assert spring == at(2023, 3, 31, 9, 0)
    assert spring is not None and spring.astimezone(dt.UTC).hour == 7
    # Back on Sunday 29 October 2023.
    autumn = next_send(friday, at(2023, 10, 27, 10, 0))
    assert autumn is not None and autumn.astimezone(dt.UTC) == dt.datetime(
        2023, 11, 3, 8, 0, tzinfo=dt.UTC
    )


def test_a_slot_in_the_changing_hour(settings: Settings) -> None:
    sunday = scheduled(settings, "Sun 02:30")
    # 02:30 does not exist on 26 March 2023: the slot is that instant, 03:30 summer time.
    gap = next_send(sunday, at(2023, 3, 25, 12, 0))
    assert gap is not None and gap.astimezone(dt.UTC) == dt.datetime(
        2023, 3, 26, 1, 30, tzinfo=dt.UTC
    )
    assert (gap.hour, gap.minute, gap.utcoffset()) == (3, 30, dt.timedelta(hours=2))
    # 02:30 happens twice on 29 October 2023: the first time counts.
    repeated = next_send(sunday, at(2023, 10, 28, 12, 0))
    assert repeated is not None
    assert repeated.astimezone(dt.UTC) == dt.datetime(2023, 10, 29, 0, 30, tzinfo=dt.UTC)
    after_first = repeated + dt.timedelta(minutes=1)
    assert next_send(sunday, after_first) == at(2023, 11, 5, 2, 30)


def test_the_schedule_zone_defaults_to_the_drafts(settings: Settings) -> None:
    tokyo = settings.model_copy(
        update={
            "weekly": WeeklySettings(send_at="Mon 08:00"),
            "draft": settings.draft.model_copy(update={"timezone": "Asia/Tokyo"}),
        }
    )
    found = next_send(tokyo, dt.datetime(2023, 6, 18, 23, 30, tzinfo=dt.UTC))  # Mon 08:30 Tokyo
    assert found == dt.datetime(2023, 6, 26, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert found is not None and str(found.tzinfo) == "Asia/Tokyo"
