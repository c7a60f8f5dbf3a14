"""Signed tokens for the links we send, checked in constant time.

Two shapes, both HMAC-SHA256 with the ``[security] secret``:

* ``<id>.<mac>``: a subscriber's unsubscribe token. It never expires, because it is in
  every message ever sent (List-Unsubscribe, the footer). The purpose is inside the MAC.
* ``<payload>.<expires>.<mac>``: a link that does one thing for a while (confirm a
  subscription, resubscribe). The purpose and the expiry (Unix seconds) are inside the
  MAC, so a token made for one purpose never works for another, and its expiry cannot be
  moved.

Verification tries the current secret, then ``[security] previous_secrets``, so links
signed before a rotation keep working while the old secret is listed. Standard library
only: the message builder signs each recipient's token and must not pull in the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Checked",
    "decode_payload",
    "encode_payload",
    "sign_expiring",
    "sign_token",
    "verify_expiring",
    "verify_token",
]

#: Purposes of expiring tokens (and the unsubscribe token's fixed one).
PURPOSES = ("confirm", "resubscribe", "csrf")
#: Longer tokens are not ours: refuse them before any work.
MAX_TOKEN = 2000


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def _as_list(secrets: str | Sequence[str]) -> Sequence[str]:
    return (secrets,) if isinstance(secrets, str) else secrets


def sign_token(secret: str, token_id: str) -> str:
    """``<id>.<mac>``: the id names the subscriber, the HMAC proves we issued it."""
    return f"{token_id}.{_mac(secret, 'unsubscribe:' + token_id)}"


def verify_token(secrets: str | Sequence[str], token: str) -> str | None:
    """The token id if ``token`` is an unsubscribe token signed with one of ``secrets``."""
    token = token.strip()
    if len(token) > MAX_TOKEN or not token.isascii() or token.count(".") != 1:
        return None
    token_id = token.partition(".")[0]
    if not token_id:
        return None
    # Every secret is tried, so the time taken does not say which one matched.
    matched = [hmac.compare_digest(sign_token(s, token_id), token) for s in _as_list(secrets)]
    return token_id if any(matched) else None


@dataclass(frozen=True)
class Checked:
    """An expiring token whose signature is good: what it carries, and whether it lapsed."""

    payload: str
    expires: int

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires


def sign_expiring(secret: str, purpose: str, payload: str, seconds: float) -> str:
    """``<payload>.<expires>.<mac>``, valid for ``seconds`` from now for ``purpose`` only."""
    if purpose not in PURPOSES or "." in payload:
        raise ValueError(f"cannot sign purpose {purpose!r} with payload {payload!r}")
    expires = int(time.time() + seconds)
    body = f"{payload}.{expires}"
    return f"{body}.{_mac(secret, f'{purpose}:{body}')}"


def verify_expiring(secrets: str | Sequence[str], purpose: str, token: str) -> Checked | None:
    """The token's payload if one of ``secrets`` signed it for ``purpose``; None if forged.

    Expiry is the caller's to check (:meth:`Checked.expired`), so that a page can tell
    "this link is too old" from "this link is not ours".
    """
    token = token.strip()
    if len(token) > MAX_TOKEN or not token.isascii() or token.count(".") != 2:
        return None
    body, _, mac = token.rpartition(".")
    payload, _, expires = body.partition(".")
    if not expires.isdigit() or len(expires) > 12:
        return None
    wanted = [_mac(s, f"{purpose}:{body}") for s in _as_list(secrets)]
    if not any([hmac.compare_digest(w, mac) for w in wanted]):
        return None
    return Checked(payload, int(expires))


def encode_payload(data: dict[str, str]) -> str:
    """Several values as one token payload (URL-safe, no dots)."""
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_payload(payload: str) -> dict[str, str] | None:
    """The values of :func:`encode_payload`, or None if it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return None
    return data
