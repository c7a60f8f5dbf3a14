"""Checks of every link and image address in the HTML part."""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import Counter
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

from ..normalise import is_tracking
from . import Context, Problem, check

_TEST_DOMAINS = ("example.com", "example.net", "example.org")
_TEST_TLDS = (".example", ".test", ".invalid", ".localhost", ".local")


def urls(ctx: Context) -> list[str]:
    """Every href and src in the HTML, in document order."""
    found = []
    for element in ctx.tree.iter("a", "img", "link", "area"):
        value = element.get("href") or element.get("src")
        if value:
            found.append(value.strip())
    return found


@check("link-scheme", "error", "Every link is an absolute http(s) URL (or mailto:).")
def link_scheme(ctx: Context) -> Iterator[Problem]:
    for url in dict.fromkeys(urls(ctx)):
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https", "mailto"):
            continue
        if scheme in ("javascript", "data", "file", "vbscript"):
            message = f"a {scheme}: link: mail clients block it and spam filters flag it"
        else:
            message = "not an absolute web address: it will not open from an inbox"
        yield Problem(message, ctx.where_url(url), url, "link to an https:// page instead")


def _test_host(host: str) -> str:
    """Why ``host`` is a test or private host, or "" if it is a public one."""
    if host == "localhost" or host.endswith(_TEST_TLDS):
        return "a local or reserved test host"
    if host in _TEST_DOMAINS or host.endswith(tuple("." + d for d in _TEST_DOMAINS)):
        return "a reserved example domain"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    if address.is_loopback or address.is_private or address.is_link_local or address.is_reserved:
        return "a private or loopback address"
    return ""


@check("link-host", "error", "No link points at localhost, a private address or an example domain.")
def link_host(ctx: Context) -> Iterator[Problem]:
    allowed = ctx.settings.checks.allowed_hosts
    # Our own pages and images (unsubscribe, browser version, archive, static files) are
    # wherever base_url says: a local http://127.0.0.1:8000/ setup is tried end to end.
    base = ctx.settings.newsletter.base_url
    for url in dict.fromkeys(urls(ctx)):
        if url.startswith(base):
            continue
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or parts.scheme not in ("http", "https"):
            continue
        reason = _test_host(host)
        if reason and not any(
            fnmatch.fnmatch(host, p) or host == p.removeprefix("*.") for p in allowed
        ):
            yield Problem(
                f"the link goes to {host}, {reason}: readers cannot open it",
                ctx.where_url(url),
                url,
                "use the public address (or add the host to [checks] allowed_hosts)",
            )


@check("tracking-params", "warning", "No URL carries the same tracking parameter twice.")
def tracking_params(ctx: Context) -> Iterator[Problem]:
    for url in dict.fromkeys(urls(ctx)):
        names = Counter(k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True))
        twice = sorted(n for n, c in names.items() if c > 1 and is_tracking(n))
        if twice:
            yield Problem(
                f"{', '.join(twice)} appears more than once; analytics will count it wrongly",
                ctx.where_url(url),
                url,
                "keep one of each tracking parameter",
            )


@check(
    "links-reachable",
    "error",
    "With --links: each URL answers (not broken, redirected or slow).",
    network=True,
)
def links_reachable(ctx: Context) -> Iterator[Problem]:
    from .linkcheck import check_links

    web = [u for u in dict.fromkeys(urls(ctx)) if urlsplit(u).scheme in ("http", "https")]
    for result in check_links(web, allow_private=ctx.settings.collect.allow_private):
        where = ctx.where_url(result.url)
        if result.kind == "broken":
            yield Problem(
                f"the page answers {result.status}", where, result.url, "fix or remove the link"
            )
        elif result.kind == "error":
            yield Problem(f"no answer: {result.error}", where, result.url, "check the address")
        elif result.kind == "redirected":
            yield Problem(
                f"redirects ({result.status}) to {result.location}",
                where,
                result.url,
                "link to the final address",
                severity="info",
            )
        elif result.kind == "slow":
            yield Problem(
                f"took {result.seconds:.1f} s to answer",
                where,
                result.url,
                "check the server; readers may give up",
                severity="warning",
            )
