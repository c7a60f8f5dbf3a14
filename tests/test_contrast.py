from __future__ import annotations

from pathlib import Path

import pytest
from lxml.html import document_fromstring

from newsletter.checks.contrast import (
    ContrastResult,
    contrast_ratio,
    parse_color,
    parse_style,
    relative_luminance,
    text_contrast,
)

GOLDEN = Path(__file__).parent / "golden" / "2023-W25" / "email.html"


def rgb(value: str) -> tuple[float, float, float, float]:
    color = parse_color(value)
    assert color is not None, value
    return color


@pytest.mark.parametrize(
    ("fg", "bg", "expected"),
    [
        ("black", "white", 21.0),
        ("#fff", "#ffffff", 1.0),
        ("#777777", "#ffffff", 4.48),
        ("#767676", "#ffffff", 4.54),
        ("#0b55a3", "#ffffff", 7.39),
        ("#ffffff", "#004990", 8.91),
        ("#46535f", "#eef2f7", 7.01),
    ],
)
def test_known_pairs(fg: str, bg: str, expected: float) -> None:
    assert contrast_ratio(rgb(fg), rgb(bg)) == pytest.approx(expected, abs=0.005)
    # The ratio does not depend on which colour is the text.
    assert contrast_ratio(rgb(bg), rgb(fg)) == pytest.approx(expected, abs=0.005)


def test_threshold_pair_is_not_rounded_up() -> None:
    assert (
        4.47
        < contrast_ratio(rgb("#777"), rgb("#fff"))
        < 4.5
        < contrast_ratio(rgb("#767676"), rgb("#fff"))
    )


def test_relative_luminance_uses_the_wcag_formula() -> None:
    assert relative_luminance((1.0, 1.0, 1.0)) == 1.0
    assert relative_luminance((0.0, 0.0, 0.0, 1.0)) == 0.0
    # Below the 0.04045 threshold the curve is linear.
    assert relative_luminance((0.04, 0.04, 0.04)) == pytest.approx(0.04 / 12.92)
    assert relative_luminance((0.5, 0.5, 0.5)) == pytest.approx(((0.5 + 0.055) / 1.055) ** 2.4)
    assert relative_luminance(rgb("#ff0000")) == pytest.approx(0.2126)


def test_translucent_colours_are_blended() -> None:
    # Blended in sRGB, as browsers paint: half-black text on white is mid grey (3.98:1).
    grey = (0.5, 0.5, 0.5, 1.0)
    assert contrast_ratio(rgb("rgba(0,0,0,.5)"), rgb("#fff")) == contrast_ratio(grey, rgb("#fff"))
    assert contrast_ratio(grey, rgb("#fff")) == pytest.approx(3.98, abs=0.005)
    # A translucent background lies on white.
    assert contrast_ratio(rgb("#000"), rgb("rgb(0 0 0 / 50%)")) == contrast_ratio(rgb("#000"), grey)
    assert contrast_ratio(rgb("#000"), rgb("#0000007f")) == pytest.approx(5.32, abs=0.005)
    assert contrast_ratio(rgb("white"), rgb("transparent")) == 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("#abc", (0xAA, 0xBB, 0xCC, 1.0)),
        ("#AbCdEf", (0xAB, 0xCD, 0xEF, 1.0)),
        ("#abcd", (0xAA, 0xBB, 0xCC, 0xDD / 255)),
        ("#11223380", (0x11, 0x22, 0x33, 0x80 / 255)),
        ("rgb(1, 2, 3)", (1, 2, 3, 1.0)),
        ("RGB(1,2,3)", (1, 2, 3, 1.0)),
        ("rgba(1, 2, 3, 0.25)", (1, 2, 3, 0.25)),
        ("rgb(1 2 3 / 25%)", (1, 2, 3, 0.25)),
        ("rgb(100%, 0%, 50%)", (255, 0, 127.5, 1.0)),
        ("rgb(300, -5, 0)", (255, 0, 0, 1.0)),
        ("hsl(0, 100%, 50%)", (255, 0, 0, 1.0)),
        ("hsla(240deg 100% 25% / .5)", (0, 0, 127.5, 0.5)),
        ("white", (255, 255, 255, 1.0)),
        ("Black", (0, 0, 0, 1.0)),
        ("grey", (128, 128, 128, 1.0)),
        ("navy", (0, 0, 128, 1.0)),
        ("orange", (255, 165, 0, 1.0)),
        ("transparent", (0, 0, 0, 0.0)),
        ("#fff !important", (255, 255, 255, 1.0)),
        ("  red!IMPORTANT ", (255, 0, 0, 1.0)),
    ],
)
def test_parse_color(value: str, expected: tuple[float, float, float, float]) -> None:
    color = rgb(value)
    assert [c * 255 for c in color[:3]] == pytest.approx(expected[:3])
    assert color[3] == pytest.approx(expected[3])


@pytest.mark.parametrize(
    "value", ["", "#ff", "#ggg", "#12345", "inherit", "currentColor", "url(x.png)", "rgb(1,2)"]
)
def test_parse_color_rejects(value: str) -> None:
    assert parse_color(value) is None


def test_parse_style() -> None:
    style = parse_style(
        "COLOR: #111; background:url(a.png) #222 ; font-weight : bold !important;"
        "font-weight: normal; /* note */ broken; font-size:12px"
    )
    assert style == {
        "color": "#111",
        "background": "url(a.png) #222",
        "font-weight": "bold",
        "font-size": "12px",
    }


def results(body: str) -> list[ContrastResult]:
    return text_contrast(document_fromstring(f"<html><head><title>t</title></head>{body}</html>"))


def test_low_contrast_paragraph_is_found() -> None:
    [found] = results(
        '<body><p style="color:#aaaaaa;background-color:#ffffff">Faint   text</p></body>'
    )
    assert (found.text, found.tag, found.color, found.background) == (
        "Faint text",
        "p",
        "#aaaaaa",
        "#ffffff",
    )
    assert found.ratio == pytest.approx(2.32, abs=0.01)
    assert (found.required, found.large, found.ok) == (4.5, False, False)


def test_large_bold_heading_needs_three_to_one() -> None:
    # #949494 on white is 3.03:1: enough for large text only.
    body = (
        '<body><h2 style="color:#949494;font-size:19px">Big</h2><p style="color:#949494">Small</p>'
    )
    heading, paragraph = results(body + "</body>")
    assert heading.large and heading.required == 3.0 and heading.ok
    assert heading.ratio == pytest.approx(3.03, abs=0.01)
    assert not paragraph.large and not paragraph.ok


@pytest.mark.parametrize(
    ("style", "large"),
    [
        ("font-size:24px", True),
        ("font-size:18pt", True),
        ("font-size:23px", False),
        ("font-size:19px;font-weight:700", True),
        ("font-size:19px;font-weight:bold", True),
        ("font-size:19px;font-weight:600", False),
        ("font-size:18px;font-weight:bold", False),
        ("font-size:1.5em", True),
        ("", False),
    ],
)
def test_large_text(style: str, large: bool) -> None:
    [found] = results(f'<body><div style="{style}">x</div></body>')
    assert found.large is large


def test_bold_ancestor_and_heading_defaults() -> None:
    body = '<body><div style="font-size:20px"><b>bold <span>still</span></b></div><h1>Title</h1>'
    bold, span, h1 = results(body + "</body>")
    assert bold.large and span.large
    assert h1.large  # 2em of 16px, bold by default


def test_colours_and_backgrounds_are_inherited() -> None:
    body = """<body style="background-color:#eef2f7">
      <table bgcolor="#004990"><tr><td><div style="color:#dce8f5">
        <span>On blue</span></div></td></tr></table>
      <div style="color:#333">Page <font color="#0b55a3">font tag</font></div>
      <a href="https://example.org/">plain link</a>
    </body>"""
    on_blue, page, font, link = results(body)
    assert (on_blue.tag, on_blue.color, on_blue.background) == ("span", "#dce8f5", "#004990")
    assert (page.color, page.background) == ("#333333", "#eef2f7")
    assert font.color == "#0b55a3"
    # A link has its own colour in every client; it does not take the text's.
    assert link.color == "#0000ee"


def test_style_beats_bgcolor_and_translucent_background_is_blended() -> None:
    body = """<body><table bgcolor="#000000" style="background:#ffffff">
      <tr><td><p style="background-color:rgba(0,0,0,0.5);color:#fff">dim</p></td></tr>
      </table></body>"""
    [dim] = results(body)
    assert dim.background == "#808080"
    assert dim.ratio == pytest.approx(3.98, abs=0.005)


def test_hidden_text_is_ignored() -> None:
    body = """<body>
      <div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;
                  max-width:0px;opacity:0;overflow:hidden;">Preheader <b>text</b></div>
      <div style="max-height:0;overflow:hidden">Collapsed preheader</div>
      <div style="visibility:hidden">Invisible <span style="visibility:visible">back</span></div>
      <div style="font-size:0px">gap <div style="font-size:16px">Shown</div></div>
      <script>var x = 1;</script><style>p { color: red }</style><!-- a comment -->
    </body>"""
    assert [r.text for r in results(body)] == ["back", "Shown"]


def test_text_is_own_text_and_tails() -> None:
    body = "<body><p>Before <strong>bold</strong> after " + "long " * 20 + "</p></body>"
    para, strong = results(body)
    assert para.text.startswith("Before after long") and para.text.endswith("…")
    assert len(para.text) <= 60
    assert strong.text == "bold"


def test_golden_email_passes() -> None:
    found = text_contrast(document_fromstring(GOLDEN.read_text(encoding="utf-8")))
    assert len(found) > 30
    assert [r for r in found if not r.ok] == []
    texts = {r.text for r in found}
    assert "Top Five Russian Myths Debunked" in texts  # a headline (the link itself)
    assert not any("Montenegro's President" in t for t in texts)  # the preheader is hidden
    header = next(r for r in found if r.text == "NATO Newsroom Weekly")
    assert (header.color, header.background, header.large) == ("#ffffff", "#004990", True)
