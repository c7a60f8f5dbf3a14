"""Sender authentication: what Gmail's and Yahoo's bulk-sender rules would hold against a send.

The same findings are shown by `send` and `weekly` before they ask to send; turning the
check off (``[checks.disabled] dkim = "our relay signs"``) silences both.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..mailauth import auth_warnings
from . import Context, Problem, check


@check(
    "dkim",
    "warning",
    "A relay send is DKIM-signed by us, as a d= domain aligned with the From address.",
    announce=True,
)
def dkim_readiness(ctx: Context) -> Iterator[Problem]:
    for found in auth_warnings(ctx.settings):
        yield Problem(found.message, found.where, found.value, found.fix)
