"""The complete message: multipart/alternative, text first then HTML, UTF-8."""

from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from ..errors import InputError
from ..models import Issue
from ..settings import NewsletterSettings

__all__ = ["compose", "message_id"]


def message_id(newsletter: NewsletterSettings) -> str:
    """A unique Message-ID on the sender's own domain."""
    return make_msgid(domain=newsletter.from_address.rsplit("@", 1)[1])


def _address(name: str, email: str) -> Address:
    username, domain = email.rsplit("@", 1)
    return Address(display_name=name, username=username, domain=domain)


def compose(
    issue: Issue,
    newsletter: NewsletterSettings,
    text: str,
    html: str,
    *,
    date: dt.datetime,
    msgid: str,
) -> EmailMessage:
    """The preview message of the build, addressed to the list itself.

    Per-subscriber messages are made by the send stage (``send/compose.py``).
    """
    for field, value in (("subject", issue.subject), ("newsletter name", issue.newsletter)):
        if "\r" in value or "\n" in value:
            raise InputError(f"the {field} contains a line break, which would inject a header")
    message = EmailMessage(policy=SMTP)
    sender = _address(issue.newsletter, newsletter.from_address)
    message["From"] = sender
    message["Reply-To"] = _address(issue.newsletter, newsletter.reply_to)
    message["To"] = sender
    message["Subject"] = issue.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = msgid
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message
