"""Rendering: the HTML email, the plain-text part, escaping, theme overrides, the network."""

from __future__ import annotations

import html as htmllib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import Build, InputError, Settings, issue_from_text, open_issue, render_issue
from newsletter.render.markup import markdown_html, markdown_text, smart_quotes, wrap
from newsletter.render.theme import Renderer
from tests.conftest import PINNED_MSGID, PINNED_NOW, SAMPLE_ISSUE

URL = re.compile(r"https?://\S+")


def long_lines(text: str) -> list[str]:
    """Lines over 78 characters that are not a lone URL."""
    return [
        line for line in text.splitlines() if len(line) > 78 and not URL.fullmatch(line.strip())
    ]


def test_every_story_appears_in_both_parts(sample_build: Build) -> None:
    for item in sample_build.issue.items():
        # With typographic quotes: an apostrophe is shown as U+2019.
        title = smart_quotes(item.title)
        assert htmllib.escape(title, quote=False) in sample_build.html, item.title
        assert title in sample_build.text.replace("\n", " "), item.title
        assert f'href="{item.url}"' in sample_build.html
        assert f"\n{item.url}\n" in sample_build.text


def test_text_part_lines_fit_78_columns_and_urls_are_whole(sample_build: Build) -> None:
    assert long_lines(sample_build.text) == []
    # The long URLs (over 78 characters) stand whole on their own line.
    assert (
        "https://newsroom.example.org/review/2023/06/23/afghanistan-2003-2021-planners-perspective\n"
        in sample_build.text
    )


def test_text_part_has_intro_sections_and_links(sample_build: Build) -> None:
    text = sample_build.text
    assert text.startswith("NATO NEWSROOM WEEKLY\nIssue 1 - 23 June 2023\n")
    assert "Welcome to this week\u2019s round-up" in text
    assert "met the leaders of Montenegro and Germany" in text  # Markdown **bold** reduced to text
    for heading in ("TOP STORY", "NEWS", "VIDEO", "FURTHER READING"):
        assert f"\n{heading}\n" in text
    assert "View in your browser:\nhttps://newsletter.example.org/2023-W25/\n" in text
    assert "Unsubscribe:\nhttps://newsletter.example.org/unsubscribe\n" in text
    assert "Watch:\nhttps://newsroom.example.org/video/" in text
    assert "<" not in text and "&amp;" not in text and "**" not in text


def test_html_has_theme_essentials(sample_build: Build) -> None:
    html = sample_build.html
    assert html.startswith("<!doctype html>")
    assert '<html lang="en"' in html
    assert "<title>Montenegro's role in the Balkans, and DIANA goes live</title>" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html
    # The mobile media queries survive inlining, with their !important.
    assert re.search(r"@media only screen and \(min-width: ?480px\).*?!important", html, re.S)
    # Every layout table is marked presentational.
    tables = re.findall(r"<table\b[^>]*>", html)
    assert tables and all('role="presentation"' in t for t in tables)
    # Every image has alt text and an absolute URL under base_url.
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 2
    for img in images:
        assert re.search(r'alt="[^"]+"', img)
        assert 'src="https://newsletter.example.org/images/' in img
    assert "Example Organisation, Boulevard Léopold III" in html
    assert 'href="https://newsletter.example.org/unsubscribe"' in html
    assert 'href="https://newsletter.example.org/2023-W25/"' in html
    # The one piece of hidden text is the preheader, hidden without a colour or a 1 px
    # font (filters score those as hidden text), padded with invisible characters.
    hidden = re.findall(r'<div class="nl-preheader" style="([^"]*)">([^<]*)</div>', html)
    assert len(hidden) == 1
    style, text = hidden[0]
    assert "display:none" in style and "mso-hide:all" in style
    assert "color" not in style and "font-size" not in style
    preheader = smart_quotes(sample_build.issue.preheader)
    assert text.startswith(preheader)
    assert set(text[len(preheader) :]) == {"\u034f", "\u200c", "\u00a0"}
    assert "font-size:1px" not in html.replace(" ", "")


def test_css_is_inlined(sample_build: Build) -> None:
    # mj-style rules land on the elements themselves; clients that drop <style> still get them.
    assert re.search(r'<h1 style="[^"]*margin: ?0', sample_build.html)
    assert "<style" in sample_build.html  # media queries stay in <head>


def test_archive_version_has_no_preheader_and_no_view_in_browser(sample_build: Build) -> None:
    archive = sample_build.archive_html
    assert sample_build.issue.preheader[:40] not in archive
    assert "View this email in your browser" not in archive
    assert "Unsubscribe" in archive and sample_build.issue.sections[0].items[0].title in archive


def test_markup_in_titles_is_text_in_both_parts(settings: Settings) -> None:
    evil = '<script>alert(1)</script> & "quotes"'
    text = (
        SAMPLE_ISSUE.read_text()
        .replace('title = "Statement by NATO Spokesperson on Kosovo"', f"title = '{evil}'")
        .replace("KFOR is taking", "KFOR <b onclick=x()>is</b> taking")
    )
    build = render_issue(
        issue_from_text(text, settings, "evil.toml"), now=PINNED_NOW, msgid=PINNED_MSGID
    )
    assert not re.search(r"<script\b", build.html, re.I)
    assert not re.search(r"<b\b", build.html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; " in build.html
    assert smart_quotes(evil) in build.text
    assert "KFOR <b onclick=x()>is</b> taking" in build.text.replace("\n", " ")
    assert "&lt;b onclick=x()&gt;is&lt;/b&gt;" in build.html


def test_markdown_is_rendered_safely() -> None:
    assert (
        str(markdown_html("**bold** <i>raw</i>", inline=True))
        == "<strong>bold</strong> &lt;i&gt;raw&lt;/i&gt;"
    )
    assert "href" not in markdown_html("[x](javascript:alert(1))")
    assert "<img" not in markdown_html("![a](https://example.org/a.png)")
    assert (
        markdown_text("See [the report](https://example.org/r) *now*.")
        == "See the report (https://example.org/r) now."
    )
    assert markdown_text("- one\n- two") == "- one\n\n- two"


def test_wrap_never_breaks_a_url_or_a_hyphenated_word() -> None:
    url = "https://newsroom.example.org/a-very-long-slug-with-many-hyphens-that-goes-on-and-on"
    wrapped = wrap(f"Read the well-known report at {url} today.", width=40)
    assert url in wrapped.splitlines()
    assert "well-known" in wrapped
    assert all(len(line) <= 40 for line in wrapped.splitlines() if line != url)


def test_project_templates_override_the_builtin_theme(project: Path) -> None:
    (project / "templates" / "partials").mkdir(parents=True)
    (project / "templates" / "partials" / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>Custom footer for {{ issue.newsletter }}"
        "</mj-text></mj-column></mj-section>\n"
    )
    from newsletter import load_settings

    settings = load_settings(project / "config.toml")
    build = render_issue(open_issue(SAMPLE_ISSUE, settings), now=PINNED_NOW, msgid=PINNED_MSGID)
    assert "Custom footer for NATO Newsroom Weekly" in build.html
    assert "Boulevard Léopold III" not in build.html  # the built-in footer was replaced
    assert "Boulevard Léopold III" in build.text  # the text template was not overridden


def test_misspelt_template_variable_is_an_error(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "issue.txt.j2").write_text("{{ issue.subjcet }}\n")
    from newsletter import load_settings

    settings = load_settings(project / "config.toml")
    with pytest.raises(InputError, match="subjcet"):
        render_issue(open_issue(SAMPLE_ISSUE, settings))


def test_template_syntax_error_names_file_and_line(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "issue.txt.j2").write_text("ok\n{% if %}\n")
    from newsletter import load_settings

    settings = load_settings(project / "config.toml")
    with pytest.raises(InputError, match=r"issue\.txt\.j2:2: template error"):
        render_issue(open_issue(SAMPLE_ISSUE, settings))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail loudly on any attempt to resolve or connect, recording it."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts


def test_premailer_never_reaches_the_network(settings: Settings, no_network: list[object]) -> None:
    renderer = Renderer(settings)
    html = (
        "<html><head>"
        '<link rel="stylesheet" href="https://cdn.example.com/site.css">'
        "<style>@import url('https://cdn.example.com/fonts.css'); p { color: #123456 }"
        " @media (max-width: 480px) { p { color: #000 !important } }</style>"
        '</head><body><p>Hello <a href="/about">about</a></p><p>@import x;</p></body></html>'
    )
    out = renderer.inline_css(html)
    assert no_network == []
    assert '<p style="color:#123456">' in out
    assert "@import url" not in out and "@import x;" in out  # only style blocks lose @import
    assert "!important" in out
    assert 'href="https://newsletter.example.org/about"' in out
    # And the whole sample build, with sockets refused.
    render_issue(open_issue(SAMPLE_ISSUE, settings, renderer=renderer))
    assert no_network == []


def test_cssutils_does_not_flood_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # MJML emits mso-/-webkit- properties on purpose; cssutils would warn about each one.
    caplog.set_level("DEBUG")
    renderer = Renderer(settings)
    renderer.inline_css(
        "<html><head><style>td { mso-line-height-rule: exactly; }</style></head>"
        "<body><table><tr><td>x</td></tr></table></body></html>"
    )
    render_issue(open_issue(SAMPLE_ISSUE, settings, renderer=renderer))
    assert [r for r in caplog.records if r.levelno >= 30] == []


def test_a_floated_image_still_gets_its_align_attribute(settings: Settings) -> None:
    # Outlook ignores CSS floats: premailer adds align="left|right". The renderer skips that
    # pass (slow: cssutils validation) only for documents that never mention "float".
    renderer = Renderer(settings)
    page = (
        "<html><head><style>.pic { float: right }</style></head><body>"
        '<img class="pic" src="a.png" alt=""><img style="float: left" src="b.png" alt="">'
        '<img src="c.png" alt=""></body></html>'
    )
    out = renderer.inline_css(page)
    assert re.search(r'<img[^>]*src="[^"]*a\.png"[^>]*>', out)
    aligns = re.findall(r'<img[^>]*\balign="(\w+)"', out)
    assert aligns == ["right", "left"]
    plain = renderer.inline_css('<html><body><img src="c.png" alt=""></body></html>')
    assert "align=" not in plain
