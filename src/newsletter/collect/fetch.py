"""Fetching a source over HTTP: through the network guard (no private addresses, one total
deadline, redirects checked), a User-Agent, a size limit, conditional GET."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx

from .. import netguard
from ..errors import NewsletterError
from ..settings import CollectSettings

__all__ = ["FetchError", "Fetched", "fetch"]


class FetchError(NewsletterError):
    """The source could not be fetched; the other sources are still collected."""


@dataclass(frozen=True)
class Fetched:
    #: None when the server said 304 Not Modified.
    content: bytes | None
    url: str
    etag: str | None
    last_modified: str | None


def fetch(
    url: str,
    settings: CollectSettings,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetched:
    """GET ``url``; 304 when unchanged since ``etag`` / ``last_modified``.

    ``[collect] timeout`` bounds the whole request, redirects and body included.
    """
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with (
            netguard.client(timeout=settings.timeout, transport=transport) as session,
            netguard.open_url(
                url,
                headers=headers,
                allow_private=settings.allow_private,
                timeout=settings.timeout,
                max_redirects=settings.max_redirects,
                session=session,
            ) as reply,
        ):
            if reply.status_code == 304:
                return Fetched(None, reply.url, etag, last_modified)
            if reply.status_code >= 400:
                raise FetchError(f"{url}: the server answered {reply.status_code}")
            declared = reply.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > settings.max_bytes:
                raise FetchError(f"{url}: {declared} bytes, over the {settings.max_bytes} limit")
            chunks, size = [], 0
            for chunk in reply.iter_bytes():
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchError(f"{url}: more than {settings.max_bytes} bytes; stopped")
                chunks.append(chunk)
            return Fetched(
                b"".join(chunks),
                reply.url,
                reply.headers.get("ETag"),
                reply.headers.get("Last-Modified"),
            )
    except netguard.NetError as exc:
        raise FetchError(str(exc)) from None
    except socket.gaierror:
        raise FetchError(f"{url}: the host name does not resolve") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FetchError(f"{url}: {reason}") from None
