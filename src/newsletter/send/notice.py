"""One-off messages to one address: a subscription's confirmation link, an unsubscribe link.

They go through the same mode as issues (``[smtp] mode``: the relay, or the local
capture), signed with the same DKIM key, but with no ledger: the web app sends one after
answering the request, and a lost one is asked for again.
"""

from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from ..render.message import dkim_signer, dot_stuff, message_id
from ..settings import Settings
from .modes import mode_for
from .transport import Envelope, Reply, TransportFactory

__all__ = ["notice_bytes", "send_notice"]


def notice_bytes(settings: Settings, to: str, subject: str, text: str) -> bytes:
    """A plain-text message from the newsletter to ``to``, DKIM-signed when configured."""
    newsletter = settings.newsletter
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(newsletter.name, *newsletter.from_address.rsplit("@", 1))
    message["Reply-To"] = Address(newsletter.name, *newsletter.reply_to.rsplit("@", 1))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id(newsletter.from_address)
    # RFC 3834: an automatic reply to a request; vacation responders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, cte="quoted-printable")
    data = message.as_bytes()
    signer = dkim_signer(settings)
    return signer(data) if signer else data


def send_notice(
    settings: Settings,
    to: str,
    subject: str,
    text: str,
    *,
    transport: TransportFactory | None = None,
) -> Reply:
    """Send one notice now; raises :class:`~.transport.TransportError` if it was refused."""
    data = dot_stuff(notice_bytes(settings, to, subject, text))
    mode = mode_for(settings, transport)
    mode.check(settings)
    with mode.start(settings) as transports:
        connection = transports.new()
        try:
            return connection.send(Envelope(settings.envelope_sender, to, data))
        finally:
            connection.close()
