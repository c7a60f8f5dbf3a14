"""Fetching a source over HTTP: timeouts, a User-Agent, a size limit, conditional GET."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

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
    """GET ``url``; 304 when unchanged since ``etag`` / ``last_modified``."""
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with (
            httpx.Client(
                timeout=settings.timeout,
                follow_redirects=True,
                max_redirects=settings.max_redirects,
                transport=transport,
            ) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 304:
                return Fetched(None, str(response.url), etag, last_modified)
            if response.status_code >= 400:
                raise FetchError(f"{url}: the server answered {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > settings.max_bytes:
                raise FetchError(f"{url}: {declared} bytes, over the {settings.max_bytes} limit")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchError(f"{url}: more than {settings.max_bytes} bytes; stopped")
                chunks.append(chunk)
            return Fetched(
                b"".join(chunks),
                str(response.url),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: more than {settings.max_redirects} redirects") from None
    except httpx.TimeoutException:
        raise FetchError(f"{url}: timed out after {settings.timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise FetchError(f"{url}: {exc}") from None
