"""The page model: a chapter, its outgoing links and anchors, and the site's order and numbering.

`gather_pages` is phase 1 of the build: parse every chapter, order them (index first, then site.toml's
`chapters`, then front matter `order`, then file name) and number them; `number_labels` numbers every
equation, figure and table as chapter.n so references work across chapters.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from site_builder.errors import UserError
from site_builder.fsutil import read_regular_bytes
from site_builder.site import cache_file

if TYPE_CHECKING:
    from site_builder.content.markdown import Heading, MarkdownDoc
    from site_builder.site.project import Project


@dataclass
class Link:
    """An outgoing link written on a page (after .md -> .html rewriting)."""

    href: str
    line: int
    page: str = ""  # target page url for internal links ('' for external / same-page)
    anchor: str = ""


@dataclass
class Page:
    source: Path
    """The chapter's markdown file."""
    slug: str
    """File name without .md; the page is `<slug>.html`."""
    doc: MarkdownDoc
    number: int = 0
    """Chapter number used in equation / figure / table numbers (0 for the home page)."""
    body: str = ""
    """Rendered article HTML."""
    links: list[Link] = field(default_factory=list)
    """Every link the page's markdown makes (for the link checker)."""
    anchors: set[str] = field(default_factory=set)
    """Every id on the rendered page."""
    label_numbers: list[str] = field(default_factory=list)
    """'chapter.n' of each of doc.labels (site.pages.number_labels)."""
    charts: int = 0
    has_math: bool = False
    explorers: bool = False  # has an explorer figure: the page loads explorers.js
    text: str = ""
    """The chapter's markdown source."""

    @property
    def url(self) -> str:
        return f"{self.slug}.html"

    @property
    def title(self) -> str:
        return str(self.doc.meta["title"])

    @property
    def summary(self) -> str:
        return str(self.doc.meta.get("summary", ""))

    @property
    def headings(self) -> list[Heading]:
        return self.doc.headings

    def parsed(self) -> MarkdownDoc:
        """The doc with its tokens, parsing the source now if phase 1 took only its outline from the cache."""
        if self.doc.tokens is None:
            from site_builder.content.markdown import parse_markdown

            doc = parse_markdown(self.text, self.doc.path)
            doc.labels = self.doc.labels  # the same labels, already numbered
            self.doc = doc
        return self.doc


OUTLINE_FORMAT = b"labels: kind, name or null, line\0"  # part of each entry's hash: a new format misses old entries


class Outlines:
    """Phase 1's result per chapter (front matter, headings, labels), stored by the source's hash: numbering
    the pages does not parse an unchanged chapter; it is parsed only if its page is rendered (Page.parsed)."""

    def __init__(self, file: Path, use_stored: bool = True):
        self.file = file
        self.stored: dict = {}
        if use_stored:
            stored = cache_file.read(file)  # None when missing or damaged: only a slower build
            self.stored = orjson.loads(stored) if stored else {}
        self.current: dict[str, dict] = {}

    def doc(self, text: str, rel: str) -> MarkdownDoc:
        from site_builder.content.markdown import Heading, Label, MarkdownDoc, parse_markdown  # heavy: only when building

        digest = hashlib.sha256(OUTLINE_FORMAT + text.encode()).hexdigest()
        outline = self.stored.get(rel)
        if outline and outline["sha256"] == digest:
            headings = [Heading(*h) for h in outline["headings"]]
            labels = [Label(*label) for label in outline["labels"]]
            doc = MarkdownDoc(rel, outline["meta"], None, {}, headings, labels)
        else:
            doc = parse_markdown(text, rel)
            headings = [[h.level, h.id, h.text] for h in doc.headings]
            labels = [[label.kind, label.name, label.line] for label in doc.labels]
            outline = {"sha256": digest, "meta": doc.meta, "headings": headings, "labels": labels}
        self.current[rel] = outline
        return doc

    def save(self) -> None:
        if self.current != self.stored:
            try:
                data = orjson.dumps(self.current, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:  # e.g. an order beyond 64-bit integers: not worth remembering
                return
            cache_file.write(self.file, data)


RESERVED_SLUGS = {"404"}  # dist/404.html is the not-found page (site.published)
URL_BREAKING = re.compile(r"[#?%\\\x00-\x1f\x7f]")


def gather_pages(project: Project, outlines: Outlines | None = None) -> list[Page]:
    """Phase 1; `outlines` (if given) remembers each chapter's outline so the next build parses only changed ones."""
    outlines = outlines or Outlines(project.cache / "outlines.json", use_stored=False)
    sources = sorted(p for p in project.content.glob("*.md") if not p.name.startswith("."))  # .#x.md: an editor's lock
    if not sources:
        raise UserError("no chapters: add markdown files to content/ (index.md is the home page)", path="content/")
    pages = []
    orders: dict[object, str] = {}
    slugs: dict[str, str] = {}
    for source in sources:
        rel = source.relative_to(project.root).as_posix()
        if source.stem in RESERVED_SLUGS:
            raise UserError(f"the page name '{source.stem}' is taken by the site's not-found page ({source.stem}.html); rename the chapter", path=rel)
        if URL_BREAKING.search(source.stem):
            raise UserError("the file name has a character a page address cannot hold (# ? % \\ or a control character); rename it", path=rel)
        if not source.resolve().is_relative_to(project.root):
            raise UserError("a chapter may not be a link to a file outside the project", path=rel)
        other = slugs.setdefault(source.stem.lower(), rel)
        if other != rel:  # A.md and a.md overwrite each other's page on case-insensitive file systems
            raise UserError(f"same page name as {other} apart from letter case; rename one", path=rel)
        try:
            text = read_regular_bytes(source, rel, "the chapter").decode("utf-8").removeprefix("\ufeff")  # a BOM is not text
        except UnicodeDecodeError as exc:
            raise UserError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path=rel) from None
        doc = outlines.doc(text, rel)
        order = doc.meta.get("order", 0 if source.stem == "index" else 1000)
        if isinstance(order, bool) or not isinstance(order, (int, float)) or not math.isfinite(order):
            raise UserError(f"front matter: order must be a number, got {order!r}", path=rel, line=1)
        if "order" in doc.meta and source.stem != "index":
            other = orders.setdefault(order, rel)
            if other != rel:
                raise UserError(f"front matter: order {order} is also the order of {other}; give each chapter its own", path=rel)
        pages.append(Page(source, source.stem, doc, text=text))
    if len(set(project.config.chapters)) != len(project.config.chapters):
        twice = next(s for s in project.config.chapters if project.config.chapters.count(s) > 1)
        raise UserError(f"Config value 'chapters': '{twice}' is listed twice", path="site.toml")
    listed = {slug: i for i, slug in enumerate(project.config.chapters)}
    for slug in listed:
        if slug not in {p.slug for p in pages}:
            raise UserError(f"Config value 'chapters': no content/{slug}.md", path="site.toml")

    def key(page: Page):
        return (page.slug != "index", listed.get(page.slug, len(listed)), page.doc.meta.get("order", 1000), page.slug)

    pages.sort(key=key)
    chapter = 0
    for page in pages:
        if page.slug != "index":
            chapter += 1
            page.number = chapter
    return pages


def number_labels(pages: list[Page]) -> dict[str, tuple[Page, str]]:
    """Numbers every label as 'chapter.n' (page.label_numbers; equations, figures and tables are counted
    separately) and returns the named ones: name -> (page, number), what \\ref and \\eqref can point to."""
    registry: dict[str, tuple[Page, str]] = {}
    for page in pages:
        counters = {"eq": 0, "fig": 0, "tbl": 0}
        page.label_numbers = []
        for label in page.doc.labels:
            counters[label.kind] += 1
            number = f"{page.number}.{counters[label.kind]}" if page.number else ""  # the home page is unnumbered
            page.label_numbers.append(number)
            if label.name is None:
                continue
            if label.name in registry:
                other = registry[label.name][0]
                raise UserError(f"label '{label.name}' is already defined in {other.doc.path}", path=page.doc.path, line=label.line)
            registry[label.name] = (page, number)
    return registry
