"""Checks of the plain-text part, the headers and what the law and inbox providers require."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..render.markup import TEXT_WIDTH
from ..urls import unsubscribe_url
from . import Context, Problem, check

_URL = re.compile(r"https?://\S+")
# Template or Markdown syntax that should never reach a reader.
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\*\*|__\w|\]\(|XNL[A-Z]+X|&[a-z]+;|<[a-z/][^>]*>")


@check("text-part", "error", "The text part exists and carries every story link of the HTML.")
def text_part(ctx: Context) -> Iterator[Problem]:
    if not ctx.text.strip():
        yield Problem("the plain-text part is empty", "email.txt", "", "check issue.txt.j2")
        return
    for item in ctx.issue.items():
        if item.url and item.url not in ctx.text:
            yield Problem(
                "the story's link is in the HTML but not in the text part",
                ctx.where(item),
                item.url,
                "check partials/story.txt.j2",
            )


@check("text-lines", "warning", "Text lines are at most 78 characters, except URLs.")
def text_lines(ctx: Context) -> Iterator[Problem]:
    for number, line in enumerate(ctx.text.splitlines(), start=1):
        if len(line) > TEXT_WIDTH and not _URL.fullmatch(line.strip()):
            yield Problem(
                f"line of {len(line)} characters; some clients wrap it badly",
                f"email.txt:{number}",
                line[:60] + "…",
                "wrap it with the `wrap` filter",
            )


@check("text-leftovers", "error", "No template or Markdown syntax left in the text part.")
def text_leftovers(ctx: Context) -> Iterator[Problem]:
    for number, line in enumerate(ctx.text.splitlines(), start=1):
        if _URL.fullmatch(line.strip()):
            continue
        match = _LEFTOVER.search(_URL.sub("", line))
        if match:
            yield Problem(
                f"leftover markup {match[0]!r} in the text part",
                f"email.txt:{number}",
                line.strip()[:70],
                "use the markdown_text filter, or fix the template",
            )


@check(
    "unsubscribe",
    "error",
    "Both parts link to unsubscribe; List-Unsubscribe and -Post headers are set.",
)
def unsubscribe(ctx: Context) -> Iterator[Problem]:
    message = ctx.message
    header = str(message.get("List-Unsubscribe", ""))
    url = re.search(r"<(https?://[^>]+)>", header)
    if not url:
        yield Problem(
            "no web List-Unsubscribe header", "message headers", header, "set [newsletter] base_url"
        )
    if str(message.get("List-Unsubscribe-Post", "")) != "List-Unsubscribe=One-Click":
        yield Problem(
            "no List-Unsubscribe-Post header: Gmail and Yahoo require one-click unsubscribe",
            "message headers",
            "",
            "the send stage sets it; check the builder",
        )
    base = unsubscribe_url(ctx.settings.newsletter.base_url)
    for part, body in (("HTML", ctx.html), ("text", ctx.text)):
        if base not in body:
            yield Problem(
                f"the {part} part has no unsubscribe link",
                f"email.{'html' if part == 'HTML' else 'txt'}",
                base,
                "keep the unsubscribe link in the footer templates",
            )


@check("postal-address", "error", "The postal address is in the footer of both parts.")
def postal_address(ctx: Context) -> Iterator[Problem]:
    address = ctx.settings.newsletter.postal_address
    for part, body in (("email.html", ctx.html), ("email.txt", " ".join(ctx.text.split()))):
        if address not in body.replace("&amp;", "&"):
            yield Problem(
                "the postal address (required by anti-spam law in many countries) is missing",
                part,
                address,
                "keep it in the footer templates",
            )


@check("sender", "warning", "From, Reply-To and base_url belong to the same organisation.")
def sender(ctx: Context) -> Iterator[Problem]:
    newsletter = ctx.settings.newsletter
    domain = newsletter.from_address.rsplit("@", 1)[1].lower()
    reply = newsletter.reply_to.rsplit("@", 1)[1].lower()
    host = (urlsplit(newsletter.base_url).hostname or "").lower()

    def related(a: str, b: str) -> bool:
        return a == b or a.endswith("." + b) or b.endswith("." + a)

    if not related(reply, domain):
        yield Problem(
            f"Reply-To is on {reply} but From is on {domain}: filters and readers distrust it",
            "[newsletter] reply_to",
            newsletter.reply_to,
            "use an address on the sending domain",
        )
    if not related(host, domain):
        yield Problem(
            f"links and the unsubscribe page live on {host}, not on the sender's {domain}",
            "[newsletter] base_url",
            newsletter.base_url,
            "serve the archive from the sending domain",
        )
