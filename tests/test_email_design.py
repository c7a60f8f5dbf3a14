"""The email itself (issue 12): size, Outlook-safe structure, pictures, links, branding."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from pathlib import Path

import pytest

from newsletter import Build, Settings, issue_from_text, render_issue
from newsletter.checks import Context, Report, run_checks
from newsletter.errors import ConfigError
from newsletter.render.theme import _MJML_RESET, Renderer, RenderError
from newsletter.settings import load_settings
from tests.conftest import SAMPLE_ISSUE

SAMPLE = SAMPLE_ISSUE.read_text()


def checked(settings: Settings, text: str = SAMPLE) -> tuple[Build, Report]:
    loaded = issue_from_text(text, settings, "issue.toml")
    build = render_issue(loaded)
    return build, run_checks(Context(loaded, build))


def findings(report: Report, check: str) -> list[str]:
    return [f"{f.where} | {f.message} | {f.fix}" for f in report.findings if f.check == check]


def with_theme(project: Path, lines: str) -> Settings:
    config = project / "config.toml"
    config.write_text(config.read_text() + f"\n[theme]\n{lines}\n")
    return load_settings(config)


def png(path: Path, width: int, height: int) -> None:
    """A real (blank, greyscale) PNG of the given size."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# -- size and structure ---------------------------------------------------------------------------


def test_the_sample_is_under_40_kb(sample_build: Build) -> None:
    # 59 KB before issue 12 (one MJML section and up to four text blocks per story).
    assert len(sample_build.html.encode()) < 40 * 1024


def test_outlook_scaffolding_is_kept_and_adjacent_conditionals_are_merged(
    sample_build: Build,
) -> None:
    html = sample_build.html
    # MJML's Outlook tables and Office settings stay: Chromium never shows them, Outlook needs.
    assert "<!--[if mso | IE]><table" in html
    assert "<o:OfficeDocumentSettings>" in html
    assert not re.search(r"<!\[endif\]-->\s*<!--\[if mso \| IE\]>", html)
    # Media queries are written as clients understand them (no minifier's `width<=479px`).
    assert "(max-width:479px)" in html.replace(" ", "")
    assert "<=" not in html


def test_the_reset_block_stays_in_head_and_its_absence_fails_loudly(
    settings: Settings, sample_build: Build
) -> None:
    head, body = sample_build.html.split("<body", 1)
    assert "#outlook a" in head
    # Not inlined onto every element (+11 KB): the reset's own rules are absent from cells.
    assert "mso-table-lspace" not in body
    renderer = Renderer(settings)
    mjml = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>"
        "</mj-body></mjml>"
    )
    assert _MJML_RESET in renderer.compile_mjml(mjml)

    class Reformatted(Renderer):
        pass

    import mjml as mjml_module

    original = mjml_module.mjml2html

    def reformatted(*args: object, **kwargs: object) -> str:
        return str(original(*args, **kwargs)).replace(
            _MJML_RESET, '<style type="text/css">#outlook a'
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mjml_module, "mjml2html", reformatted)
        with pytest.raises(RenderError, match="MJML reset block"):
            Reformatted(settings).compile_mjml(mjml)


def test_the_preheader_is_hidden_without_tricks_filters_score(sample_build: Build) -> None:
    (div,) = re.findall(r'<div class="nl-preheader"[^>]*>', sample_build.html)
    assert "font-size" not in div and "color" not in div and "mso-hide:all" in div
    assert sample_build.archive_html.count("nl-preheader") == 0  # the web page has none


# -- pictures -------------------------------------------------------------------------------------


def test_pictures_are_capped_at_their_column_and_have_numeric_heights(
    sample_build: Build,
) -> None:
    images = re.findall(r"<img\b[^>]*>", sample_build.html)
    sizes = [
        (re.search(r'width="(\d+)"', i)[1], re.search(r'height="(\w+)"', i)[1]) for i in images
    ]  # type: ignore[index]
    # The lead asks for 600 in a 544 px box; the video 260 beside a story, in 210. Heights
    # from the files (1200 x 600 and 520 x 292), at the shown width.
    assert sizes == [("544", "272"), ("210", "118")]
    assert all("height:auto" in i.replace(" ", "") for i in images)


def test_a_remote_picture_keeps_height_auto(settings: Settings) -> None:
    text = SAMPLE.replace('"images/2023-W25-video.png"', '"https://cdn.example.net/v.png"')
    build, _ = checked(settings, text)
    video = re.search(r'<img\b[^>]*src="https://cdn.example.net/v.png"[^>]*>', build.html)
    assert video and 'height="auto"' in video[0]


def test_linked_pictures_are_described_by_their_headline(sample_build: Build) -> None:
    alts = re.findall(r'<a href="([^"]+)"[^>]*><img\b[^>]*alt="([^"]*)"', sample_build.html)
    assert [alt for _, alt in alts] == [
        "Secretary General praises Montenegro\u2019s contributions to NATO, key role in "
        "Western Balkans",
        "Training Ukraine\u2019s volunteer army",
    ]


def test_image_fit_fails_a_picture_wider_than_its_column(settings: Settings) -> None:
    _, report = checked(settings)
    assert findings(report, "image-fit") == []
    # The theme before issue 12: mjml-python kept a 600 px lead in the 544 px card.
    loaded = issue_from_text(SAMPLE, settings, "issue.toml")
    build = render_issue(loaded)
    wide = build.html.replace('width="544"', 'width="600"', 1)
    found = findings(
        run_checks(Context(loaded, dataclasses.replace(build, html=wide))), "image-fit"
    )
    assert len(found) == 1
    assert "600 px wide in a 544 px column" in found[0] and "lead story" in found[0]


# -- links ----------------------------------------------------------------------------------------


def test_no_read_more_and_each_story_links_at_most_twice(sample_build: Build) -> None:
    html = sample_build.html
    assert "Read more" not in html and ">Watch" not in html
    for item in sample_build.issue.items():
        # The headline, and the picture when there is one.
        assert html.count(f'href="{item.url}"') == 1 + (item.image is not None), item.title


@pytest.mark.parametrize("words", ["Read more", "read more →", "Watch", "Learn more"])
def test_vague_link_text_is_flagged(settings: Settings, words: str) -> None:
    loaded = issue_from_text(SAMPLE, settings, "issue.toml")
    build = render_issue(loaded)
    html = build.html.replace(
        "</body>", f'<p><a href="https://example.org/a">{words}</a></p></body>'
    )
    report = run_checks(Context(loaded, dataclasses.replace(build, html=html)))
    assert any(words.lower().strip(" →") in f for f in findings(report, "link-text"))


# -- typography and the plain-text part -----------------------------------------------------------


def test_quotes_are_typographic_everywhere(sample_build: Build) -> None:
    # The sample mixes "Montenegro's" (typed) with U+2019 (pasted). The subject stays as
    # typed (it is the inbox line, and the page's <title>).
    for part in (sample_build.html.split("<body", 1)[1], sample_build.text):
        body = re.sub(r"<[^>]*>|<!--.*?-->", "", part, flags=re.S)
        words = re.findall(r"\w+'\w+", body)
        assert words == [], words


def test_a_date_is_shown_once_for_stories_of_the_same_day(sample_build: Build) -> None:
    # News: 21, 20, 19, 19, 19, 23 June -> the two later 19 June stories show no date.
    assert sample_build.text.count("19 June 2023\n") == 1
    news = sample_build.html.split(">News<")[1].split(">Video<")[0]
    assert news.count("19 June 2023</p>") == 1


def test_text_part_has_blank_lines_and_cheap_rulers(sample_build: Build) -> None:
    text = sample_build.text
    assert "=" * 10 not in text and "-" * 78 in text
    lead = text.split("TOP STORY")[1].strip("-\n")
    headline, summary, link = lead.split("\n\n")[:3]
    assert headline.startswith("Secretary General praises") and headline.endswith("22 June 2023")
    assert summary.startswith("Secretary General Jens Stoltenberg")
    assert link.startswith("Read more:\nhttps://")


# -- [theme]: branding without editing templates --------------------------------------------------


def test_theme_colours_font_logo_and_footer_reach_the_email(project: Path) -> None:
    png(project / "static" / "images" / "logo.png", 320, 80)
    settings = with_theme(
        project,
        'brand = "#6b1d5c"\ndark_brand = "#4a1440"\naccent = "#8a2c0a"\nfont = "Georgia, serif"\n'
        'logo = "images/logo.png"\nlogo_alt = "Example Organisation"\nlogo_width = 160\n'
        'footer = "Questions? Write to [the press office](https://example.org/press)."',
    )
    build, report = checked(settings)
    html = build.html
    assert "#004990" not in html.lower() and "#6b1d5c" in html
    assert "Georgia, serif" in html and "Helvetica" not in html
    logo = re.search(r'<img\b[^>]*alt="Example Organisation"[^>]*>', html)
    assert logo and 'width="160"' in logo[0] and 'height="40"' in logo[0]
    assert 'src="https://newsletter.example.org/images/logo.png"' in logo[0]
    assert "Questions? Write to" in html and 'href="https://example.org/press"' in html
    assert "Questions? Write to the press office (https://example.org/press)." in build.text
    assert [f for f in report.findings if f.severity == "error"] == []


def test_contrast_names_the_theme_key_at_fault(project: Path) -> None:
    settings = with_theme(project, 'muted = "#a0a8b0"\ndark_accent = "#1c3d5a"')
    _, report = checked(settings)
    light = findings(report, "contrast")
    assert light and all("[theme] muted" in f for f in light)
    # One finding per pair of colours, not one per story.
    assert len(light) <= 3, light
    dark = findings(report, "theme-contrast")
    assert dark == [
        "[theme] dark_accent | in dark mode, dark_accent #1c3d5a on dark_background #17212c has "
        "contrast 1.44:1, below 4.5:1 | lighten [theme] dark_accent or darken [theme] "
        "dark_background"
    ]


def test_the_shipped_palette_passes_in_light_and_dark(settings: Settings) -> None:
    _, report = checked(settings)
    assert findings(report, "contrast") == [] and findings(report, "theme-contrast") == []


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('brand = "blue"', "brand"),
        ('dark_text = "#12345"', "dark_text"),
        ('logo = "images/logo.png"', "logo_alt"),
        ('logo = "../secret.png"\nlogo_alt = "x"', "logo"),
        ('logo = "https://cdn.example.net/logo.png"\nlogo_alt = "x"', "logo"),
        ("logo_width = 900", "logo_width"),
        ('font = "Arial; } body { display:none"', "font"),
        ('colour = "#000"', "colour"),
    ],
)
def test_bad_theme_settings_name_the_key(project: Path, lines: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        with_theme(project, lines)
    message = str(raised.value)
    assert f"config.toml: [theme] {key}: " in message and "\n" not in message
