"""Checks of the issue's words: subject, preheader, sections and stories."""

from __future__ import annotations

from collections.abc import Iterator

from ..normalise import canonical_url, is_web_url, normalise_title
from . import Context, Problem, check

#: Inbox lists show roughly this many characters of a subject.
SUBJECT_VISIBLE = 60
SUMMARY_LONG = 600


@check("subject-length", "warning", "The subject fits an inbox line (about 60 characters).")
def subject_length(ctx: Context) -> Iterator[Problem]:
    subject = ctx.issue.subject
    if len(subject) > SUBJECT_VISIBLE:
        yield Problem(
            f"the subject is {len(subject)} characters; "
            f"inboxes cut it after about {SUBJECT_VISIBLE}",
            ctx.where_field("subject"),
            subject,
            "put the news first and shorten the subject",
        )


@check("preheader", "warning", "A preheader is set and does not repeat the subject.")
def preheader(ctx: Context) -> Iterator[Problem]:
    issue = ctx.issue
    if not issue.preheader:
        yield Problem(
            "there is no preheader, so inboxes show the first words of the email instead",
            ctx.where_field("subject"),
            "",
            'add `preheader = "…"`: one line that adds to the subject',
        )
    elif normalise_title(issue.preheader) == normalise_title(issue.subject) or normalise_title(
        issue.preheader
    ).startswith(normalise_title(issue.subject)):
        yield Problem(
            "the preheader repeats the subject, wasting the preview line",
            ctx.where_field("preheader"),
            issue.preheader,
            "say something the subject does not",
        )


@check("empty-section", "warning", "Every section has at least one story.")
def empty_section(ctx: Context) -> Iterator[Problem]:
    for index, section in enumerate(ctx.issue.sections):
        if not section.items:
            line = ctx.lines.get(("sections", index))
            yield Problem(
                f"section {section.title!r} has no stories and is left out of the email",
                f"{ctx.source}:{line}" if line else ctx.source,
                section.title,
                "add stories to it or delete the section",
            )


@check("stale-story", "warning", "No story was published before the issue's week.")
def stale_story(ctx: Context) -> Iterator[Problem]:
    for item in ctx.issue.items():
        if item.published and item.published < ctx.week_start:
            yield Problem(
                f"published {item.published.isoformat()}, before the week of "
                f"{ctx.week_start.isoformat()}",
                ctx.where(item),
                item.title,
                "check the date, or keep older stories out of this week's issue",
            )


@check("duplicate-story", "warning", "No story appears twice under different titles or URLs.")
def duplicate_story(ctx: Context) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for item in ctx.issue.items():
        # The model refuses the exact same URL twice; this catches the same page under
        # tracking parameters or another case, and the same headline under two URLs.
        keys = {"title:" + normalise_title(item.title)}
        if item.url and is_web_url(item.url):
            keys.add("url:" + canonical_url(item.url))
        earlier = next((seen[k] for k in keys if k in seen), None)
        if earlier:
            yield Problem(
                f"the same story appears twice (also at {earlier})",
                ctx.where(item),
                item.title,
                "remove one of them",
            )
        for key in keys:
            seen.setdefault(key, ctx.where(item))


@check("shouting", "warning", "Headlines are not in ALL CAPS and have no repeated '!'.")
def shouting(ctx: Context) -> Iterator[Problem]:
    for item in ctx.issue.items():
        letters = [c for c in item.title if c.isalpha()]
        if len(letters) >= 8 and all(c.isupper() for c in letters):
            yield Problem(
                "the headline is in capitals, which reads as shouting and trips spam filters",
                ctx.where(item),
                item.title,
                "write it in sentence case",
            )
        elif "!!" in item.title:
            yield Problem(
                "the headline has repeated exclamation marks, which trip spam filters",
                ctx.where(item),
                item.title,
                "use one, or none",
            )


@check("summary", "info", "Each story has a summary of a reasonable length.")
def summary(ctx: Context) -> Iterator[Problem]:
    for item in ctx.issue.items():
        if not item.summary:
            yield Problem(
                "no summary: readers see only the headline",
                ctx.where(item),
                item.title,
                'add `summary = "…"` (one or two sentences)',
            )
        elif len(item.summary) > SUMMARY_LONG:
            yield Problem(
                f"the summary is {len(item.summary)} characters; long summaries push the "
                "rest of the issue towards Gmail's clipping limit",
                ctx.where(item),
                item.summary[:60] + "…",
                f"keep it under {SUMMARY_LONG}",
                severity="warning",
            )
