"""The weekly issue model: Item, Section, Issue.

Validation messages are written for the communications officer who edits issue
files by hand, not for a programmer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import InputError
from .normalise import is_web_url

__all__ = [
    "APPROVAL_KEYS",
    "PREHEADER_MAX",
    "SUBJECT_MAX",
    "Image",
    "Issue",
    "Item",
    "Section",
    "control_problem",
    "iso_week",
    "item_id",
    "week_range",
]

#: Inbox previews show roughly 90-140 characters; longer text is cut and wastes the space.
PREHEADER_MAX = 150
#: Not a hard limit of the standard, but a subject this long is certainly a mistake.
SUBJECT_MAX = 200
#: The From display name of every message.
NEWSLETTER_NAME_MAX = 200

#: The top-level keys that record an approval; they are not the issue's content, so an
#: approval's hash leaves them out (see :mod:`newsletter.approval`).
APPROVAL_KEYS = ("status", "approved_by", "approved_at", "approved_hash")

_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_KIND = re.compile(r"^[a-z][a-z0-9-]*$")


def lenient(info: ValidationInfo) -> bool:
    """Whether to let content problems through, for `newsletter check` to report them all.

    Building and sending validate strictly. The checks parse with
    ``context={"lenient": True}`` so that a bad link or a missing alt text reaches the
    rendered HTML, where the link and image checks name it beside every other problem.
    """
    return bool(info.context and info.context.get("lenient"))


def _web_url(value: str) -> str:
    value = value.strip()
    if is_web_url(value):
        return value
    # Which of the two rules failed: a good start (up to the first space) means spaces.
    if not value or not is_web_url(value.split()[0]):
        raise ValueError(f"must be a web address starting with https:// or http:// (got {value!r})")
    raise ValueError(f"must not contain spaces (got {value!r})")


#: Every character that str.splitlines() and mail clients treat as ending a line.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: The line breaks and every other C0 control but tab, and DEL.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def control_problem(value: str) -> str | None:
    """What is wrong with a one-line text: a line break or control character, or None.

    The same rule as the message builder's for header values, so that a subject or
    name it would refuse is refused here first, with the issue file's line.
    """
    # One regex scan: the builder checks four header values per recipient.
    found = _CONTROL.search(value)
    if found is None:
        return None
    char = found[0]
    if char in _LINE_BREAKS:
        return f"a line break (U+{ord(char):04X})"
    return f"a control character (U+{ord(char):04X})"


def _single_line(value: str, what: str) -> str:
    problem = control_problem(value)
    if problem:
        raise ValueError(f"{what} must be on one line with no control characters; remove {problem}")
    return value.strip()


def item_id(url: str | None, title: str) -> str:
    """A stable id: from the URL, or from the title when there is none (copied text)."""
    return hashlib.sha1((url or title.casefold()).encode()).hexdigest()[:12]


def iso_week(day: dt.date) -> str:
    """``2023-06-23`` -> ``"2023-W25"``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _monday(week: str) -> dt.date:
    """The Monday of ``2023-W25``; ValueError for anything but a week that exists."""
    match = _WEEK.fullmatch(week)
    if not match:
        raise ValueError(f"must be an ISO week such as 2023-W25 (got {week!r})")
    try:
        return dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ValueError(f"{week!r} is not a week that exists: weeks run 01 to 52 or 53") from None


def week_range(week: str) -> tuple[dt.date, dt.date]:
    """``2023-W25`` -> (Monday 19 June, Sunday 25 June 2023); InputError naming ``--week``.

    The one check of a week given on the command line (`draft`, `items`, `weekly`).
    """
    try:
        monday = _monday(week)
    except ValueError as exc:
        detail = str(exc) if _WEEK.fullmatch(week) else f"got {week!r}"
        raise InputError(f"not an ISO week such as 2023-W25 ({detail})", "--week") from None
    return monday, monday + dt.timedelta(days=6)


class _Model(BaseModel):
    # Hand-edited files: a misspelt field must be reported, never silently dropped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Image(_Model):
    #: Absolute URL, or a path relative to the newsletter's ``base_url``.
    url: str
    #: Describes the picture for people who cannot see it. Required.
    alt: str = ""
    #: Display width in pixels; the theme picks one when absent.
    width: int | None = Field(default=None, gt=0, le=1200)
    #: The picture contains words (a poster, a chart title): `check` warns, since the
    #: words are lost with images off, in dark mode and to screen readers.
    contains_text: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if lenient(info):
            return value
        if not value:
            raise ValueError("is empty; give the image's address")
        if re.match(r"^[a-z][a-z0-9+.-]*:", value, re.IGNORECASE):
            return _web_url(value)
        if value.startswith("//"):
            raise ValueError("must be https://… or a path under base_url, not //host")
        return value

    @model_validator(mode="after")
    def _alt(self, info: ValidationInfo) -> Image:
        if not self.alt and not lenient(info):
            raise ValueError(
                f"image {self.url!r} has no alt text; describe the picture for readers "
                "who cannot see it"
            )
        return self


class Item(_Model):
    """One story, video or feature, copied into the issue so the issue file is self-contained."""

    #: Stable identifier; derived from the URL (or the title) when not given.
    id: str = ""
    title: str
    url: str | None = None
    summary: str = ""
    published: dt.date | None = None
    kind: str = "news"
    image: Image | None = None
    source: str = ""
    author: str = ""

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = _single_line(value, "the title")
        if not value:
            raise ValueError("the title is empty; every story needs a headline")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        return value.strip() if lenient(info) else _web_url(value)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        value = value.lower()
        if not _KIND.match(value):
            raise ValueError(f"must be one word such as news, video or feature (got {value!r})")
        return value

    @model_validator(mode="after")
    def _default_id(self) -> Item:
        if not self.id:
            self.id = item_id(self.url, self.title)
        return self

    @property
    def action(self) -> str:
        """The call to action for this kind of item."""
        return {"video": "Watch", "audio": "Listen", "podcast": "Listen"}.get(
            self.kind, "Read more"
        )


class Section(_Model):
    title: str
    items: list[Item] = Field(default_factory=list)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = _single_line(value, "the section title")
        if not value:
            raise ValueError("the section title is empty")
        return value


class Issue(_Model):
    #: Filled from the config's ``[newsletter] name`` when the file does not set it.
    newsletter: str = ""
    number: int = Field(ge=1)
    week: str
    date: dt.date
    subject: str
    preheader: str = ""
    intro: str = ""
    lead: Item | None = None
    sections: list[Section] = Field(default_factory=list)
    #: "draft" or "approved" (anything else is refused, with the line). An approval counts
    #: only while ``approved_hash`` matches the content
    #: (:func:`newsletter.approval.approval_of`); a hand-typed "approved" does not.
    status: Literal["draft", "approved"] = "draft"
    #: Who approved the issue, when, and the content hash they approved ("sha256:<hex>").
    approved_by: str = ""
    approved_at: dt.datetime | None = None
    approved_hash: str = ""

    @field_validator("week")
    @classmethod
    def _week(cls, value: str) -> str:
        _monday(value)
        return value

    @field_validator("newsletter")
    @classmethod
    def _newsletter(cls, value: str) -> str:
        value = _single_line(value, "the newsletter name")
        if len(value) > NEWSLETTER_NAME_MAX:
            # It is the From display name of every message: header lines stop at 998.
            raise ValueError(
                f"the newsletter name is {len(value)} characters; keep it under "
                f"{NEWSLETTER_NAME_MAX}"
            )
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        value = _single_line(value, "the subject")
        if not value:
            raise ValueError("the subject is empty; write the line subscribers see in their inbox")
        if len(value) > SUBJECT_MAX:
            raise ValueError(f"the subject is {len(value)} characters; keep it under {SUBJECT_MAX}")
        return value

    @field_validator("preheader")
    @classmethod
    def _preheader(cls, value: str) -> str:
        value = _single_line(value, "the preheader")
        if len(value) > PREHEADER_MAX:
            raise ValueError(
                f"the preheader is {len(value)} characters; inboxes show about "
                f"{PREHEADER_MAX}, so shorten it"
            )
        return value

    @model_validator(mode="after")
    def _whole_issue(self) -> Issue:
        if iso_week(self.date) != self.week:
            raise ValueError(
                f"date {self.date.isoformat()} is in week {iso_week(self.date)}, "
                f"not {self.week}; fix the date or the week"
            )
        items = self.items()
        if not items:
            raise ValueError("the issue has no stories; add a lead or a section with items")
        seen: dict[str, str] = {}
        for item in items:
            for key in filter(None, (item.url, item.id)):
                if key in seen:
                    raise ValueError(
                        f"the story {item.title!r} appears twice "
                        f"(same {'URL' if key == item.url else 'id'} "
                        f"as {seen[key]!r}); remove one"
                    )
                seen[key] = item.title
        return self

    def items(self) -> list[Item]:
        """Every story in reading order: the lead, then each section's items."""
        return ([self.lead] if self.lead else []) + [i for s in self.sections for i in s.items]
