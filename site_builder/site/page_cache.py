"""Render cache (issue 8): a page whose inputs did not change is not rendered again.

A page's key hashes its chapter source, what it sees of the other pages (the nav's order, numbers and
titles; every label's page and number) and the tool (site.toml, templates, build code, libraries and
options: Fingerprint.tool_key). Which data files a page reads is only known once it is rendered, so
the entry keeps their content hashes and a lookup checks them again. One entry per page, in
.cache/build/pages/<slug>.json; the page's HTML is reused when the assets' URLs are the same too.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import orjson

from site_builder.site import cache_file

from site_builder.site.pages import Link

if TYPE_CHECKING:
    from site_builder.site.pages import Page


@dataclass(frozen=True)
class RenderedPage:
    """One page's render: what the build writes and, as it is, the page's render-cache entry."""

    key: str
    """PageCache.key of the inputs it was rendered from."""
    data: dict[str, str]
    """Data files the page read -> their content hashes (checked again on lookup)."""
    body: str
    """The article's HTML."""
    links: list[Link]
    charts: int
    has_math: bool
    pending: list[tuple[str, list[int]]]
    """(exports path that does not exist yet, lines that use it)."""
    data_out: dict[str, str]
    """Files it adds to dist/ (chart data scripts, CSVs) -> the chart-cache key holding their bytes."""
    images: list[str] = field(default_factory=list)
    """Project-relative images it publishes (copied again when the page comes from the cache)."""
    warnings: list[str] = field(default_factory=list)
    """Warnings its render gave ("chapter:line: ..."), repeated when it comes from the cache."""
    explorers: bool = False
    """It has an explorer figure (the page loads explorers.js)."""
    explorer_files: dict[str, str] = field(default_factory=dict)
    """Explorer data in dist/ -> its file in the project (copied again when the page comes from the cache)."""
    assets: str = ""
    """Hash of the asset URLs `html` was made with ('' until the page template ran)."""
    html: str = ""
    """The whole page."""

    def with_html(self, assets: str, html: str) -> RenderedPage:
        return replace(self, assets=assets, html=html)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @staticmethod
    def from_json(data: bytes) -> RenderedPage:
        entry = orjson.loads(data)
        entry["links"] = [Link(**link) for link in entry["links"]]
        entry["pending"] = [(rel, lines) for rel, lines in entry["pending"]]
        return RenderedPage(**entry)


def site_key(pages: list[Page], labels: dict[str, tuple[Page, str]]) -> str:
    """What every page sees of the others: the nav (order, numbers, titles) and every label's target."""
    nav = [[p.slug, p.number, p.title] for p in pages]
    targets = sorted([name, page.url, number] for name, (page, number) in labels.items())
    return hashlib.sha256(orjson.dumps([nav, targets])).hexdigest()


class PageCache:
    def __init__(self, folder: Path, root: Path, file_hash: Callable[[Path], str]):
        self.folder, self.root, self.file_hash = folder, root, file_hash
        self.entries: dict[str, RenderedPage] = {}  # slug -> entry of this build
        self.changed: set[str] = set()  # slugs whose entry save() must write

    def key(self, tool_key: str, site_key: str, page: Page) -> str:
        return hashlib.sha256(f"{tool_key}\0{site_key}\0{page.slug}\0{self.file_hash(page.source)}".encode()).hexdigest()

    def data_hashes(self, data_files) -> dict[str, str]:
        return {rel: self.file_hash(self.root / rel) for rel in sorted(data_files)}

    def lookup(self, page: Page, key: str) -> RenderedPage | None:
        """The stored entry if it was rendered from the same inputs, else None."""
        stored = cache_file.read(self.folder / f"{page.slug}.json")
        if stored is None:
            return None
        try:
            entry = RenderedPage.from_json(stored)
        except (TypeError, KeyError, ValueError):  # an entry of another format
            return None
        if entry.key != key or self.data_hashes(entry.data) != entry.data:
            return None
        return entry

    def keep(self, page: Page, entry: RenderedPage, changed: bool) -> None:
        self.entries[page.slug] = entry
        if changed:
            self.changed.add(page.slug)

    def save(self) -> None:
        """Write this build's entries; drop those of pages that no longer exist."""
        for slug in sorted(self.changed):
            cache_file.write(self.folder / f"{slug}.json", self.entries[slug].to_json())
        for path in self.folder.glob("*.json") if self.folder.exists() else []:
            if path.stem not in self.entries:
                path.unlink(missing_ok=True)
