"""Source type ``text``: a newsroom listing page copied as plain text (select all, copy, paste).

A copied page has lost its markup and links, so stories are found by the shape of the text:

* A story ends at a marker line ("Read more", "Continue reading ->", "Watch Video", "Listen now",
  "Lire la suite", "Weiterlesen", "Leer mas", ...). Video markers give kind ``video``, listen or
  podcast markers ``audio``, the rest ``news``.
* Its headline is the first line of the story; a copy of it on the next line (image title, then
  heading) is dropped. In the first story the page header comes first, so there the headline is
  the last headline-like line followed by a sentence (or by nothing).
* Its date, in this order: a date line next to its headline ("June 5, 2024", "Published 3 March
  2024 . Podcast"); else the page date (``page_date``, or the first standalone date line above
  the first story); else the first date in its summary ("on Thursday (22 June 2023)"). ISO
  timestamps ("2023-06-22T09:30:00Z") count too. A summary's date is often not the publication
  date ("sign up from Monday, June 10, 2024"), and taking it would move the story to another
  week, so it is the last resort. Each item says which rule dated it (``Candidate.dated_by``).
* An opening bullet list of top stories repeats later headlines, possibly behind a "Video - "
  prefix. A bullet that matches no later headline becomes an item of its own only when it looks
  like a headline (a top story need not be in the listing); otherwise it is reported as skipped.
* After the last marker come headline lines without markers. A short heading ("NATO Review",
  "More from our blog", at most four words) opens a block whose items get that heading as
  section and kind ``feature`` (``video``, ``audio`` or ``news`` if the heading says so). A
  personal name right after a headline is its author; a block whose first item is signed ends
  at its first unsigned one. Items outside any block get section "Further reading", kind
  ``news``. A text without any marker is read this way as a whole.
* The same headline (case, accents and punctuation aside: see ``normalise.normalise_title``) is
  never taken twice; an http(s) URL in a story gives its ``url``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..normalise import find_date, normalise_title
from .base import DATE_LINE, PAGE_DATE, TEXT_DATE, Candidate, Parsed

__all__ = ["parse_text"]

FURTHER_READING = "Further reading"

_VIDEO = r"watch(?:\s+(?:the\s+)?video|\s+now)?|(?:play|view)\s+(?:the\s+)?video|video\s+ansehen"
_VIDEO += r"|regarder(?:\s+la\s+vid[e\u00e9]o)?|ver\s+(?:el\s+)?v[i\u00ed]deo"
_AUDIO = r"listen(?:\s+now|\s+to\s+(?:the\s+)?(?:podcast|episode))?|play\s+(?:the\s+)?episode"
_AUDIO += r"|[e\u00e9]couter|(?:jetzt\s+)?anh[o\u00f6]ren|escuchar"
_NEWS = r"read\s+more|read\s+(?:the\s+)?(?:full\s+)?(?:story|article)|continue\s+reading"
_NEWS += r"|learn\s+more|find\s+out\s+more|full\s+story|lire\s+la\s+suite|en\s+savoir\s+plus"
_NEWS += r"|weiterlesen|mehr\s+lesen|leer\s+m[a\u00e1]s|seguir\s+leyendo"
# A marker is a whole line, optionally with an arrow ("Continue reading ->") or its link.
_MARKER_RE = re.compile(
    rf"^(?:(?P<video>{_VIDEO})|(?P<audio>{_AUDIO})|(?P<news>{_NEWS}))"
    r"[\s:.\u2026\u2192\u00bb\u203a>\-\u2013\u2014]*(?P<url>https?://\S+)?$",
    re.IGNORECASE,
)
_BULLET_RE = re.compile(r"^[\u2022\u00b7\u25aa\u25e6\u2023*\-\u2013\u2014]\s+(?P<text>.+)$")
# "Video - Title", "Podcast: Title": a short label before the headline proper.
_PREFIX_RE = re.compile(
    r"^(?P<label>[^\W\d_][\w ]{0,24}?)\s*(?:[\-\u2013\u2014|:])\s+(?P<rest>.+)$"
)
_URL_RE = re.compile(r"https?://[^\s<>\"'()\[\]]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\ufeff]")

# Words that may sit beside the date on a date line ("Published 3 March 2024 . Podcast").
_DATE_LINE_WORDS = {"published", "posted", "updated", "on", "date", "last", "modified", "at", "in"}
_AUDIO_WORDS = {"podcast", "podcasts", "audio", "episode", "listen"}
_VIDEO_WORDS = {"video", "videos", "film", "watch"}
_NEWS_WORDS = {"news", "press", "releases", "statements", "announcements"}
# Words of section headings and page furniture: a line using them is not a person's name.
_NOT_NAME_WORDS = {
    "news", "review", "reviews", "blog", "reading", "stories", "story", "podcasts", "podcast",
    "videos", "video", "more", "latest", "related", "features", "feature", "analysis", "opinion",
    "events", "publications", "reports", "press", "releases", "media", "insights", "updates",
    "highlights", "resources", "also", "see", "from", "our", "the", "focus", "photos", "gallery",
    "top", "read", "watch", "listen", "contact", "contacts", "home", "search", "menu",
}  # fmt: skip
_NAME_PARTICLES = {"de", "da", "di", "del", "della", "der", "den", "van", "von", "la", "le", "du"}
_NAME_PARTICLES |= {"dos", "das", "bin", "ibn", "al", "el", "ter", "ten", "zu", "y"}
# Footer and navigation lines that would otherwise look like headlines in a closing list.
_BOILERPLATE_RE = re.compile(
    r"\u00a9|copyright|all rights reserved|cookie|privacy|terms of (?:use|service)|follow us"
    r"|subscribe|sign up|contact us|back to top|skip to|accessibility"
    r"|registered (?:charity|company|office)|(?:charity|company) (?:no\b|number)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Line:
    no: int  # 1-based line number in the pasted text, for problem reports
    text: str
    para: int  # paragraph number: blank lines separate paragraphs


@dataclass(frozen=True)
class _DateHit:
    text: str
    value: dt.date | None  # None: shaped like a date but not a real one
    no: int = 0
    kind: str = ""  # kind hinted by the words on a date line ("Podcast")


@dataclass
class _Draft:
    title: str
    no: int
    kind: str = "news"
    summary: list[_Line] = field(default_factory=list)
    date: _DateHit | None = None  # its own date line
    text_date: _DateHit | None = None  # the first date in its summary
    url: str | None = None
    author: str = ""
    section: str = ""
    block: int = 0  # which closing block (heading) the item sits in; 0 for none


@dataclass
class _Page:
    stories: list[_Draft] = field(default_factory=list)
    bullets: list[_Line] = field(default_factory=list)
    page_dates: list[_DateHit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_text(text: str, *, page_date: dt.date | None = None, source: str = "") -> Parsed:
    """Parse a copied newsroom page into candidate items; see the module docstring for the rules."""
    page = _Page()
    lines = _split_lines(text)
    chunks, tail = _split_at_markers(lines)
    _read_stories(chunks, page)
    _read_closing(tail, page)
    _match_bullets(page)
    where = f"{source}: " if source else ""
    parsed = Parsed(problems=[where + p for p in page.problems])
    if not page.stories:
        parsed.error = where + "no recognisable stories in the text"
        return parsed
    default = page_date or _page_date_from_text(page, parsed.problems, where)
    seen: set[str] = set()
    for draft in page.stories:
        if normalise_title(draft.title) in seen:
            parsed.problems.append(f"{where}line {draft.no}: skipped {draft.title!r}: seen above")
            continue
        seen.add(normalise_title(draft.title))
        parsed.items.append(_candidate(draft, default, parsed.problems, where))
    undated = sum(1 for item in parsed.items if item.published is None)
    if undated:
        parsed.problems.append(f"{where}no page date found: {undated} item(s) left undated")
    return parsed


def _split_lines(text: str) -> list[_Line]:
    """Non-blank lines with whitespace collapsed, each knowing its paragraph."""
    lines: list[_Line] = []
    para = 0
    for no, raw in enumerate(text.splitlines(), start=1):
        clean = " ".join(_CONTROL_RE.sub("", raw).split())
        if not clean:
            para += 1
            continue
        lines.append(_Line(no, clean, para))
    return lines


def _split_at_markers(lines: list[_Line]) -> tuple[list[list[_Line]], list[_Line]]:
    """Story chunks, each ending with its marker line, and the lines after the last marker."""
    chunks: list[list[_Line]] = []
    current: list[_Line] = []
    for line in lines:
        current.append(line)
        if _MARKER_RE.match(line.text):
            chunks.append(current)
            current = []
    return chunks, current


def _read_stories(chunks: list[list[_Line]], page: _Page) -> None:
    # Read the later stories first: whether they carry a date line above the headline tells
    # whether a date line above the first headline is that story's date or the page's.
    later = [_read_story(chunk, page, first=False, date_above=True) for chunk in chunks[1:]]
    dated_above = sum(1 for draft in later if draft and draft.date and draft.date.no < draft.no)
    date_above = 2 * dated_above >= len(later) if later else None
    first = [_read_story(chunks[0], page, first=True, date_above=date_above)] if chunks else []
    page.stories.extend(draft for draft in first + later if draft)


def _read_story(
    chunk: list[_Line], page: _Page, *, first: bool, date_above: bool | None
) -> _Draft | None:
    *body, marker = chunk
    match = _MARKER_RE.match(marker.text)
    assert match is not None  # chunks end at a marker by construction
    start = _title_index(body, first=first)
    if start is None:
        page.problems.append(f"line {marker.no}: skipped {marker.text!r}: no headline above it")
        return None
    title = body[start]
    kind = "video" if match["video"] else "audio" if match["audio"] else "news"
    draft = _Draft(title=_strip_bullet(title.text), no=title.no, kind=kind, url=match["url"])
    if date_above is None:
        # A story copied alone: no other story shows the layout. A date line in the
        # headline's own paragraph is the story's; one set apart by a blank line is the page's.
        date_above = start > 0 and body[start - 1].para == title.para
    _read_preamble(body[:start], draft, page, date_above=date_above)
    _read_body(body[start + 1 :], draft)
    return draft


def _title_index(body: list[_Line], *, first: bool) -> int | None:
    texts = [i for i, line in enumerate(body) if not _is_date_line(line) and not _is_url(line)]
    found = [i for pos, i in enumerate(texts) if _is_title_at(body, texts, pos)]
    if found:
        # The first chunk also holds the page header, navigation, top-story bullets and page
        # date, so its headline is the last one found; a later chunk may open with a label
        # between stories ("Videos") before its headline, so its headline is the first one.
        return found[-1] if first else found[0]
    plain = [i for i in texts if not _BULLET_RE.match(body[i].text)]
    return plain[0] if plain else None


def _is_title_at(body: list[_Line], texts: list[int], pos: int) -> bool:
    """A headline-like line followed by a summary, a byline or nothing (not its own copy)."""
    line, title = body[texts[pos]], normalise_title(body[texts[pos]].text)
    if pos and normalise_title(body[texts[pos - 1]].text) == title:
        return False  # the second copy of a doubled headline
    if _BULLET_RE.match(line.text) or _author_name(line.text):
        return False
    if not _looks_like_headline(line.text):
        return False
    after = [body[j].text for j in texts[pos + 1 :] if normalise_title(body[j].text) != title]
    return not after or _is_sentence(after[0]) or bool(_author_name(after[0]))


def _read_preamble(lines: list[_Line], draft: _Draft, page: _Page, *, date_above: bool) -> None:
    """Lines above a headline: its date (in date-above layouts), top-story bullets, page date."""
    for i, line in enumerate(lines):
        hit = _date_line(line)
        if hit and i == len(lines) - 1 and date_above:
            draft.date = hit
        elif hit:
            page.page_dates.append(hit)
        elif _BULLET_RE.match(line.text):
            page.bullets.append(line)


def _read_body(lines: list[_Line], draft: _Draft) -> None:
    """Lines under a headline: its copy, date line, byline, URL and summary."""
    for line in lines:
        hit = _date_line(line)
        if normalise_title(line.text) == normalise_title(draft.title):
            continue
        if hit:
            draft.date = draft.date or hit
        elif not draft.summary and not draft.author and (name := _author_name(line.text)):
            draft.author = name
        elif not _is_url(line):
            draft.summary.append(line)
        draft.url = draft.url or _first_url(line.text)
    for line in draft.summary:
        # Dates inside links are path segments, not news dates.
        if hit := _find_date(_URL_RE.sub(" ", line.text), line.no):
            draft.text_date = hit
            break
    if draft.date and draft.date.kind and draft.kind == "news":
        draft.kind = draft.date.kind


def _read_closing(lines: list[_Line], page: _Page) -> None:
    """Headline lines after the last story: blocks under short headings, or further reading."""
    current: _Draft | None = None
    closing: list[_Draft] = []
    section, block, after_title = "", 0, False
    for i, line in enumerate(lines):
        hit = _date_line(line)
        if _is_url(line):
            if current:
                current.url = current.url or _first_url(line.text)
        elif hit:
            if current:
                current.date = current.date or hit
            else:
                page.page_dates.append(hit)
        elif current and normalise_title(line.text) == normalise_title(current.title):
            continue  # the second copy of a doubled headline keeps after_title as it was
        elif current and after_title and not current.author and (name := _author_name(line.text)):
            current.author = name
        elif _is_heading(line.text, lines[i + 1].text if i + 1 < len(lines) else ""):
            section, block = line.text.rstrip(":").strip(), block + 1
        elif _looks_like_headline(_strip_bullet(line.text)):
            current = _Draft(_strip_bullet(line.text), line.no, section=section, block=block)
            closing.append(current)
        elif current and _is_sentence(line.text):
            current.summary.append(line)
        # Anything else is page furniture (navigation, contacts, footers) and is left out.
        after_title = current is not None and current.title == _strip_bullet(line.text)
    _settle_blocks(closing)
    page.stories.extend(closing)


def _settle_blocks(closing: list[_Draft]) -> None:
    """Give closing items their section and kind.

    A block whose first item carries a byline (a review, a blog) signs every piece, so it ends at
    the first unsigned item: the unsigned lines after it are the page's general link list. On the
    NATO seed this keeps only the Afghanistan article (image title, heading and byline, laid out
    like a card) under "NATO Review"; "NATO's response to Russia's invasion of Ukraine" and "Top
    Five Russian Myths Debunked" follow as two bare lines in one paragraph, like the two lines
    above the heading, and become further reading.
    """
    first_signed: dict[int, bool] = {}
    ended: set[int] = set()
    for draft in closing:
        signs = draft.block and first_signed.setdefault(draft.block, bool(draft.author))
        if signs and not draft.author:
            ended.add(draft.block)
        if draft.block and draft.block not in ended:
            draft.kind = _kind_of_heading(draft.section)
        else:
            draft.section, draft.kind = FURTHER_READING, "news"


def _kind_of_heading(heading: str) -> str:
    """A named block is features (a review, a blog) unless its heading says otherwise."""
    words = set(_words(heading))
    if words & _AUDIO_WORDS or words & _VIDEO_WORDS:
        return "audio" if words & _AUDIO_WORDS else "video"
    return "news" if words & _NEWS_WORDS else "feature"


def _match_bullets(page: _Page) -> None:
    """Top-story bullets name later stories; one that names none may be a story of its own."""
    known = {normalise_title(draft.title) for draft in page.stories}
    extra: list[_Draft] = []
    for line in page.bullets:
        text = _strip_bullet(line.text)
        prefix = _PREFIX_RE.match(text)
        names = {normalise_title(text), normalise_title(prefix["rest"]) if prefix else ""}
        if names & known:
            continue
        if not _looks_like_headline(text):
            page.problems.append(f"line {line.no}: skipped bullet {text!r}: not a headline")
            continue
        label = set(_words(prefix["label"])) if prefix else set()
        kind = "video" if label & _VIDEO_WORDS else "audio" if label & _AUDIO_WORDS else "news"
        extra.append(_Draft(text, line.no, kind=kind))
        known.add(normalise_title(text))
    page.stories[:0] = extra


def _page_date_from_text(page: _Page, problems: list[str], where: str) -> dt.date | None:
    if not page.page_dates:
        return None
    hit = page.page_dates[0]
    if hit.value is None:
        problems.append(f"{where}line {hit.no}: page date {hit.text!r} is not a valid date")
    return hit.value


def _candidate(
    draft: _Draft, default: dt.date | None, problems: list[str], where: str
) -> Candidate:
    published, dated_by = _dated(draft, default, problems, where)
    summary = "\n\n".join(
        " ".join(line.text for line in draft.summary if line.para == para)
        for para in dict.fromkeys(line.para for line in draft.summary)
    )
    return Candidate(
        title=draft.title,
        url=draft.url,
        summary=summary,
        published=published,
        dated_by=dated_by,
        kind=draft.kind,
        section=draft.section,
        author=draft.author,
    )


def _dated(
    draft: _Draft, default: dt.date | None, problems: list[str], where: str
) -> tuple[dt.date | None, str]:
    """The item's date and the rule that gave it: its date line, the page date, its text."""
    if draft.date and draft.date.value:
        return draft.date.value, DATE_LINE
    # The summary's date is only read when nothing else dates the item, so a bad one is
    # only worth reporting then.
    bad = draft.date if draft.date else draft.text_date if default is None else None
    if default is not None:
        result: tuple[dt.date | None, str] = default, PAGE_DATE
    elif draft.text_date and draft.text_date.value:
        result = draft.text_date.value, TEXT_DATE
    else:
        result = None, ""
    if bad and bad.value is None:
        then = {PAGE_DATE: "takes the page date", TEXT_DATE: "takes the date in its text"}
        problems.append(
            f"{where}line {bad.no}: {bad.text!r} is not a valid date;"
            f" {draft.title!r} {then.get(result[1], 'is left undated')}"
        )
    return result


def _find_date(text: str, no: int = 0) -> _DateHit | None:
    """The first date-shaped string in the text, with its value if it is a real date."""
    # Strict: a copied "31 February 2024" is reported, not passed over for a later date.
    found = find_date(text, strict=True)
    return _DateHit(found.text, found.value, no) if found else None


def _date_line(line: _Line) -> _DateHit | None:
    """A line that is a date, maybe with a few words beside it ("Published ... . Podcast")."""
    hit = _find_date(line.text, line.no)
    if hit is None or line.text.endswith("."):
        return None
    rest = set(_words(line.text.replace(hit.text, " "))) - _DATE_LINE_WORDS
    if len(rest) > 3:
        return None
    kind = "audio" if rest & _AUDIO_WORDS else "video" if rest & _VIDEO_WORDS else ""
    return _DateHit(hit.text, hit.value, line.no, kind)


def _is_date_line(line: _Line) -> bool:
    return _date_line(line) is not None


def _is_url(line: _Line) -> bool:
    return _URL_RE.fullmatch(line.text) is not None


def _first_url(text: str) -> str | None:
    found = _URL_RE.search(text)
    return found[0].rstrip(".,;:!?") if found else None


def _strip_bullet(text: str) -> str:
    bullet = _BULLET_RE.match(text)
    return bullet["text"] if bullet else text


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.casefold())


def _is_sentence(text: str) -> bool:
    """Summary prose: a long line, or a sentence of some length."""
    words = len(text.split())
    return words >= 25 or (words >= 6 and text.rstrip("\"')\u201d\u2019").endswith((".", "!")))


def _looks_like_headline(text: str) -> bool:
    words = text.split()
    if not 3 <= len(words) <= 25 or len(text) > 200 or text.endswith((".", ",", ";", ":")):
        return False
    if not (text[0].isupper() or text[0].isdigit()) or "@" in text or _URL_RE.search(text):
        return False
    letters = sum(1 for c in text if c.isalpha() or c.isspace())
    return letters >= 0.7 * len(text) and not _BOILERPLATE_RE.search(text)


def _is_heading(text: str, following: str) -> bool:
    """A short title-like line that introduces a list of headlines ("NATO Review")."""
    words = text.rstrip(":").split()
    if not 1 <= len(words) <= 4 or not text[0].isupper() or text.endswith((".", "!", "?", ",")):
        return False
    if _BOILERPLATE_RE.search(text) or not all(_words(word) for word in words):
        return False
    return _looks_like_headline(_strip_bullet(following))


def _author_name(text: str) -> str:
    """The name on a byline ("Diego A. Ruiz Palmer", "By Amara Okafor"), or ""."""
    name = re.sub(r"^by\s+", "", text, flags=re.IGNORECASE)
    words = name.split()
    if not 2 <= len(words) <= 4 or set(_words(name)) & _NOT_NAME_WORDS:
        return ""
    if not all(_is_name_word(word) for word in words):
        return ""
    return name if sum(1 for word in words if word not in _NAME_PARTICLES) >= 2 else ""


def _is_name_word(word: str) -> bool:
    if word in _NAME_PARTICLES:
        return True
    if len(word) == 2 and word[0].isupper() and word[1] == ".":
        return True  # an initial
    # Capitalised parts, as in "Ruiz", "O'Neil", "Jean-Luc", "McKay"; "NATO" is no name.
    parts = re.split(r"['\u2019\-]", word)
    return all(p.isalpha() and p[0].isupper() and (len(p) == 1 or p != p.upper()) for p in parts)
