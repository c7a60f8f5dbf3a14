"""Signed unsubscribe tokens: ``<id>.<mac>``, checked in constant time.

Standard library only: the message builder signs each recipient's token, and it must not
pull in the subscriber store to do so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["sign_token", "verify_token"]


def sign_token(secret: str, token_id: str) -> str:
    """``<id>.<mac>``: the id names the subscriber, the HMAC proves we issued it."""
    mac = hmac.new(secret.encode(), b"unsubscribe:" + token_id.encode(), hashlib.sha256)
    return f"{token_id}.{base64.urlsafe_b64encode(mac.digest()[:18]).decode()}"


def verify_token(secret: str, token: str) -> str | None:
    """The token id if ``token`` was signed with ``secret``, else None."""
    token = token.strip()
    token_id = token.partition(".")[0]
    if not token_id or not token.isascii():
        return None
    if not hmac.compare_digest(sign_token(secret, token_id), token):
        return None
    return token_id
