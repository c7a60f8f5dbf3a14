"""Jinja -> MJML -> HTML (+ premailer), and the plain-text part from its own template.

One :class:`Renderer` per run: the Jinja environment, the compiled templates and the
premailer instance are built once and reused for every render.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import mjml
import premailer.merge_style
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from markupsafe import Markup, escape
from premailer import Premailer

from ..errors import ConfigError, InputError, NewsletterError
from ..models import Image, Issue, Item
from ..normalise import MONTHS
from ..settings import Settings
from ..urls import browser_url, home_url, static_file, subscribe_url, unsubscribe_url
from .markup import markdown_html, markdown_text, smart_quotes, wrap

__all__ = [
    "HTML_TEMPLATE",
    "TEXT_TEMPLATE",
    "Links",
    "RenderError",
    "Renderer",
    "builtin_theme",
    "template_dirs",
]


class RenderError(NewsletterError):
    """The rendering tools produced something this theme does not recognise."""


HTML_TEMPLATE = "issue.mjml.j2"
TEXT_TEMPLATE = "issue.txt.j2"


_STYLE_BLOCK = re.compile(r"<style\b[^>]*>.*?</style>", re.IGNORECASE | re.DOTALL)
_IMPORT = re.compile(r"@import\s+[^;]+;", re.IGNORECASE)
_MJML_RESET = '<style type="text/css">\n#outlook a'
_ADJACENT_CONDITIONALS = re.compile(r"<!\[endif\]-->\s*<!--\[if mso \| IE\]>")
_IMG_STYLE_HEIGHT = re.compile(r"(<img\b[^>]*\bstyle=\"(?:[^\"]*?;\s*)?)height:\s*\d+px")
_MJML_RESET_KEPT = '<style type="text/css" data-premailer="ignore">\n#outlook a'


def _pairs_unvalidated(csstext: str, validate: bool = False) -> Any:
    return _csstext_to_pairs(csstext, validate=False)


# premailer's merge_styles parses each element's own style attribute with cssutils'
# validation on, whatever disable_validation says (it calls csstext_to_pairs without
# passing it on). Validation only logs, and we discard that log; but it compiles some 350
# regular expressions on the first render of each process: ~0.15 s of every `send`.
_csstext_to_pairs = premailer.merge_style.csstext_to_pairs
# The original looks its lock up by its module-level name, which is now this wrapper.
_pairs_unvalidated._lock = _csstext_to_pairs._lock  # type: ignore[attr-defined]
premailer.merge_style.csstext_to_pairs = _pairs_unvalidated


def _intrinsic_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the file's header; None if it is not a readable picture."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _header_size(path, stat.st_mtime_ns, stat.st_size)


# Keyed on the file's change time and size too: `serve` runs for weeks while pictures change.
@functools.lru_cache(maxsize=256)
def _header_size(path: Path, mtime_ns: int, size: int) -> tuple[int, int] | None:
    import imagesize

    try:
        width, height = imagesize.get(path)
    except (OSError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def builtin_theme() -> Path:
    """The default theme: inside an installed wheel, or the checkout's top-level ``templates/``."""
    packaged = Path(str(resources.files("newsletter"))) / "theme"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "templates"


def _template_place(exc: BaseException) -> str:
    """``file:line`` of the template where ``exc`` happened: Jinja keeps template frames."""
    place = ""
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            place = f"{filename}:{trace.tb_lineno}"
        trace = trace.tb_next
    return place


def template_dirs(settings: Settings) -> list[Path]:
    """Where templates are looked up, in order: the project's own, then the built-in theme."""
    if settings.templates_dir.exists() and not settings.templates_dir.is_dir():
        raise ConfigError(f"[paths] templates_dir {settings.templates_dir}: not a folder")
    search = [settings.templates_dir, builtin_theme()]
    return list(dict.fromkeys(p.resolve() for p in search if p.is_dir()))


def longdate(day: dt.date) -> str:
    """``2023-06-22`` -> ``22 June 2023``, independent of the machine's locale."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def title_link(item: Item) -> Markup:
    """A story's title as a link, or as plain text when it has no URL."""
    title = smart_quotes(item.title)
    if item.url:
        return Markup('<a href="{}">{}</a>').format(item.url, title)
    return escape(title)


def image_alt(item: Item) -> str:
    """A linked picture's alt text says where the link goes: the headline. Unlinked, it
    describes the picture."""
    assert item.image is not None
    return smart_quotes(item.title) if item.url else item.image.alt


def fit(image: Image, box: int) -> int:
    """The picture's width in a column ``box`` pixels wide: never wider than it (Outlook
    honours a fixed width, and would widen the whole email)."""
    return min(image.width or box, box)


@dataclass(frozen=True)
class StoryGroup:
    """Stories that share one MJML section: a run without pictures, or one with a picture."""

    picture: bool
    items: list[Item]


def story_groups(items: Iterable[Item]) -> list[StoryGroup]:
    groups: list[StoryGroup] = []
    for item in items:
        if item.image is None and groups and not groups[-1].picture:
            groups[-1].items.append(item)
        else:
            groups.append(StoryGroup(item.image is not None, [item]))
    return groups


#: Invisible characters after the preheader, so the inbox preview ends with it instead of
#: running on into "View this email in your browser".
PREHEADER_FILLER = Markup("&#847;&zwnj;&nbsp;" * 60)


def _autoescape(name: str | None) -> bool:
    # Everything but the plain-text templates is markup and must be escaped.
    return not (name or "").endswith(".txt.j2")


@dataclass(frozen=True)
class Links:
    """The links every issue carries; ``unsubscribe`` is personalised at send time."""

    home: str
    archive: str
    unsubscribe: str
    #: The subscribe form: the browser version offers it to readers who were forwarded it.
    subscribe: str = ""

    @classmethod
    def for_issue(cls, settings: Settings, week: str) -> Links:
        """The links as the browser version and the list's own copy carry them."""
        base = settings.newsletter.base_url
        return cls(
            home=home_url(base), archive=browser_url(base, week),
            unsubscribe=unsubscribe_url(base), subscribe=subscribe_url(base),
        )  # fmt: skip


class Renderer:
    """Renders issues with one project's settings and templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: Seconds spent per stage over this renderer's life, for ``bench/build.py``.
        self.timings: dict[str, float] = {}
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(p)) for p in template_dirs(settings)]),
            autoescape=_autoescape,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters.update(
            markdown=markdown_html,
            markdown_text=markdown_text,
            wrap=wrap,
            longdate=longdate,
            title_link=title_link,
            image_alt=image_alt,
            smart=smart_quotes,
            fit=fit,
            height_at=self.height_at,
            story_groups=story_groups,
        )
        options: dict[str, Any] = dict(
            base_url=settings.newsletter.base_url,
            allow_network=False,
            allow_loading_external_files=False,
            # MJML's mobile media queries rely on !important to beat the inlined widths.
            strip_important=False,
            # Keep MJML's width/height attributes: Outlook reads them, not the CSS.
            disable_basic_attributes=["width", "height"],
            disable_validation=True,
            remove_classes=False,
            # cssutils warns about every mso-/-webkit- property MJML emits on purpose.
            cssutils_logging_handler=logging.NullHandler(),
            cssutils_logging_level=logging.CRITICAL,
        )
        self.premailer = Premailer(**options)
        # Giving floated images an align attribute (for Outlook) parses every <img>'s style
        # with cssutils' validation on, whatever disable_validation says: ~0.3 s of regular
        # expressions compiled on the first render in each process. A document that never
        # says "float" has no floated image, so it is skipped there (same output).
        self.premailer_no_float = Premailer(**options, align_floating_images=False)

    def height_at(self, image: Image, width: int) -> int | None:
        """The picture's height at ``width``, from its file under ``static_dir`` when it is
        served from there: a numeric height keeps the layout still while pictures load,
        and shaped when they are off. None when the file cannot be read (height stays auto)."""
        static = self.settings.static_dir.resolve()
        path = static_file(self.settings.newsletter.base_url, static, image.url)
        if path is None or not path.is_relative_to(static):
            return None
        size = _intrinsic_size(path)
        if size is None:
            return None
        natural_width, natural_height = size
        return max(1, round(natural_height * width / natural_width))

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _template_error(self, exc: TemplateError) -> InputError:
        if isinstance(exc, TemplateSyntaxError):
            return InputError(
                f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}"
            )
        if isinstance(exc, TemplateNotFound):
            return InputError(
                f"template {exc.name!r} not found in {self.settings.templates_dir} "
                "or the built-in theme"
            )
        if isinstance(exc, UndefinedError):
            return InputError(
                f"template error: {exc.message} (a misspelt variable?)", _template_place(exc)
            )
        return InputError(f"template error: {exc}", _template_place(exc))

    def _render(self, name: str, context: dict[str, Any]) -> str:
        """Render one template; whatever goes wrong in it is one line naming the place."""
        try:
            return self.env.get_template(name).render(context)
        except TemplateError as exc:
            raise self._template_error(exc) from None
        except UnicodeDecodeError:
            raise InputError(
                "not UTF-8 text; save the template as UTF-8", str(self._undecodable())
            ) from None
        except RecursionError as exc:
            raise InputError(
                "template error: it includes itself, directly or through another template",
                _template_place(exc),
            ) from None
        except Exception as exc:  # a template's own expression failed: 1 // 0, say
            raise InputError(f"template error: {exc!r}", _template_place(exc)) from None

    def _undecodable(self) -> Path | str:
        for folder in template_dirs(self.settings):
            for path in sorted(folder.rglob("*.j2")):
                try:
                    path.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    return path
        return "a template"

    def context(
        self, issue: Issue, links: Links, archive: bool = False, greeting: str | None = None
    ) -> dict[str, Any]:
        return {
            "issue": issue,
            "newsletter": self.settings.newsletter,
            "links": links,
            "archive": archive,
            # The archive is read by anyone: no greeting. Sending splices in each name.
            "greeting": "" if archive else greeting or self.settings.newsletter.greeting_no_name,
            "theme": self.settings.theme,
            "logo_height": self._logo_height(),
            "preheader_filler": PREHEADER_FILLER,
        }

    def _logo_height(self) -> int | None:
        theme = self.settings.theme
        if not theme.logo:
            return None
        return self.height_at(Image(url=theme.logo, alt=theme.logo_alt), theme.logo_width)

    def render_mjml(
        self, issue: Issue, links: Links, archive: bool = False, greeting: str | None = None
    ) -> str:
        """Stage 1: Jinja renders the MJML source."""
        context = self.context(issue, links, archive, greeting)
        with self._stage("jinja"):
            return self._render(HTML_TEMPLATE, context)

    def compile_mjml(self, source: str) -> str:
        """Stage 2: MJML to HTML."""
        try:
            # fonts={}: MJML would otherwise add a Google Fonts <link>, a remote request.
            with self._stage("mjml"):
                html = str(mjml.mjml2html(source, disable_comments=True, fonts={}))
        except ValueError as exc:
            raise InputError(f"{HTML_TEMPLATE}: MJML error: {exc}") from None
        if _MJML_RESET not in html:
            # Without the marker premailer would inline the reset onto every element
            # (+11 KB): an mjml-python whose output changed must fail here, not silently.
            raise RenderError(
                "the MJML reset block (a <style> starting with #outlook a) is not where this "
                "newsletter expects it in mjml-python's output: this mjml-python version "
                "formats it differently; install the version in pyproject.toml, or report it"
            )
        return html

    def inline_css(self, html: str) -> str:
        """Stage 3: inline the CSS, keep the media queries, make URLs absolute."""
        # A remote @import would make cssutils fetch it even with allow_network=False.
        html = _STYLE_BLOCK.sub(lambda m: _IMPORT.sub("", m[0]), html)
        # MJML's reset block (#outlook a, body, table, img, p) is meant to stay in <head>;
        # inlining it onto every cell adds ~10 KB towards Gmail's clipping limit.
        html = html.replace(_MJML_RESET, _MJML_RESET_KEPT, 1)
        # As official MJML does: a conditional comment that ends where the next begins is
        # one comment (Outlook reads the same markup; ~2 KB less per issue).
        html = _ADJACENT_CONDITIONALS.sub("", html)
        with self._stage("premailer"):
            floats = "float" in html.lower()
            premailer = self.premailer if floats else self.premailer_no_float
            out = str(premailer.transform(html, pretty_print=False))
        # MJML copies an image's height into its style too, which squashes a picture that
        # is narrowed to a phone's width. The attribute keeps the space while it loads (and
        # is what Outlook reads); CSS keeps its shape.
        out = _IMG_STYLE_HEIGHT.sub(r"\1height:auto", out)
        # lxml drops the doctype; without it clients render in quirks mode.
        if not out.lstrip().lower().startswith("<!doctype"):
            out = "<!doctype html>\n" + out
        return out if out.endswith("\n") else out + "\n"

    def render_html(
        self, issue: Issue, links: Links, archive: bool = False, greeting: str | None = None
    ) -> str:
        return self.inline_css(self.compile_mjml(self.render_mjml(issue, links, archive, greeting)))

    def render_text(self, issue: Issue, links: Links, greeting: str | None = None) -> str:
        """The plain-text part, from its own template."""
        with self._stage("text"):
            text = self._render(TEXT_TEMPLATE, self.context(issue, links, greeting=greeting))
        lines = [line.rstrip() for line in text.strip().splitlines()]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
