"""Approval of an issue file: who approved which content, and whether it still holds.

An issue file records its approval in four top-level keys::

    status = "approved"                 # or "draft"
    approved_by = "ada"                 # the staff account that approved it
    approved_at = 2023-06-22T16:05:00Z  # a TOML offset date-time (a string is read too)
    approved_hash = "hmac-sha256:3f1c…" # seal(): the content, who and when, keyed

The seal covers the issue's content (every value of the file except those four keys,
canonicalised, so comments, blank lines, key order and string quoting do not count, and
any change of a value does) together with who approved it and when, keyed with the
project's ``[security] secret``. An approval is valid only while the seal matches: an
edit made after it, in the studio or by hand, undoes it; a hand-typed ``status =
"approved"`` is not an approval, and without the secret nobody can write one that is
(someone who can edit the file but not read the secret cannot forge the studio's
approval). Rotating the secret keeps approvals sealed with ``previous_secrets`` valid.

`weekly` sends only a validly approved issue when ``[weekly] require_approval`` is set
(:func:`require_approved`); the studio writes approvals (:mod:`newsletter.studio.issuedoc`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError, NewsletterError
from .models import APPROVAL_KEYS

__all__ = [
    "Approval",
    "NotApproved",
    "approval_of",
    "content_hash",
    "require_approved",
    "seal",
]

#: What every refusal of `weekly` ends with: the two ways out.
_WAYS_OUT = "approve it in the studio, or set [weekly] require_approval = false"


class NotApproved(NewsletterError):
    """`weekly` with ``[weekly] require_approval = true`` and no valid approval."""

    exit_code = 2


def _plain(value: object) -> str:
    # tomllib gives date, datetime and time objects; nothing else reaches json's default.
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"not a TOML value: {type(value).__name__}")


def content_hash(data: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of the issue's content: the parsed TOML without the approval keys.

    Canonical JSON (keys sorted, no spaces, dates and times as ISO 8601 strings), so it
    depends only on the values, never on comments or layout.
    """
    content = {key: value for key, value in data.items() if key not in APPROVAL_KEYS}
    canonical = json.dumps(
        content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def seal(data: dict[str, Any], secret: str) -> str:
    """``"hmac-sha256:<hex>"`` over the content hash, ``approved_by`` and ``approved_at`` of
    the parsed TOML ``data``, keyed with ``secret``: what ``approved_hash`` must hold."""
    message = "\n".join(
        ("newsletter approval", content_hash(data), _text(data.get("approved_by")),
         _text(data.get("approved_at")))
    )  # fmt: skip
    mac = hmac.new(secret.encode(), message.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


@dataclass
class Approval:
    """An issue file's approval as it stands now."""

    #: The file's ``status`` as written ("draft" when the key is absent).
    status: str
    #: ``approved_by`` and ``approved_at`` as written ("" when absent); ``at`` in ISO 8601.
    by: str
    at: str
    #: True only when status is "approved" and the recorded hash matches the content.
    valid: bool

    @property
    def stale(self) -> bool:
        """Approved once (who and when are recorded), but the content changed since."""
        return self.status == "approved" and not self.valid and bool(self.by or self.at)

    def problem(self) -> str:
        """Why the issue is not approved, in words for the cron mail; "" when it is."""
        if self.valid:
            return ""
        if self.status != "approved":
            return f"not approved (status {json.dumps(self.status)})"
        if not self.stale:
            return 'not approved: status "approved" was typed, not recorded by an approval'
        who = " ".join(
            part for part in (self.by and f"by {self.by}", self.at and f"on {self.at}") if part
        )
        return f"not approved: edited after its approval ({who})"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def approval_of(text: str, secrets: Sequence[str]) -> Approval:
    """Read the approval of issue TOML ``text``, checking its seal against ``secrets`` (the
    current secret and the previous ones); :class:`InputError` if it is not TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}") from None
    status = _text(data.get("status", "draft"))
    recorded = data.get("approved_hash")
    recorded = recorded.strip() if isinstance(recorded, str) else ""
    # Every secret is tried, so the time taken does not say which one matched.
    given = recorded.encode("utf-8", "surrogatepass")  # compare_digest takes ASCII str only
    matches = [hmac.compare_digest(seal(data, secret).encode(), given) for secret in secrets]
    valid = status == "approved" and bool(recorded) and any(matches)
    return Approval(status, _text(data.get("approved_by")), _text(data.get("approved_at")), valid)


def require_approved(text: str, source: str, secrets: Sequence[str]) -> Approval:
    """The approval of ``text``, or :class:`NotApproved` in one line naming ``source``."""
    approval = approval_of(text, secrets)
    if not approval.valid:
        ways_out = _WAYS_OUT.replace("it", "it again", 1) if approval.stale else _WAYS_OUT
        raise NotApproved(f"{source}: {approval.problem()}; {ways_out}")
    return approval
