"""Render cache (issue 8): a page whose inputs did not change is not rendered again.

A page's key hashes its chapter source, what it sees of the other pages (the nav's order, numbers and
titles; every label's page and number) and the tool (site.toml, templates, build code, libraries and
options: Fingerprint.tool_key). Which data files a page reads is only known once it is rendered, so
the entry keeps their content hashes and a lookup checks them again. One entry per page, in
.cache/build/pages/<slug>.json; the page's HTML is reused when the assets' URLs are the same too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import orjson

from site_builder.site import cache_file

if TYPE_CHECKING:
    from site_builder.site.pages import Page


def site_key(pages: list[Page], labels: dict[str, tuple[Page, str]]) -> str:
    """What every page sees of the others: the nav (order, numbers, titles) and every label's target."""
    nav = [[p.slug, p.number, p.title] for p in pages]
    targets = sorted([name, page.url, number] for name, (page, number) in labels.items())
    return hashlib.sha256(orjson.dumps([nav, targets])).hexdigest()


class PageCache:
    def __init__(self, folder: Path, root: Path, file_hash: Callable[[Path], str]):
        self.folder, self.root, self.file_hash = folder, root, file_hash
        self.entries: dict[str, dict] = {}  # slug -> entry of this build
        self.changed: set[str] = set()  # slugs whose entry save() must write

    def key(self, tool_key: str, site_key: str, page: Page) -> str:
        return hashlib.sha256(f"{tool_key}\0{site_key}\0{page.slug}\0{self.file_hash(page.source)}".encode()).hexdigest()

    def data_hashes(self, data_files) -> dict[str, str]:
        return {rel: self.file_hash(self.root / rel) for rel in sorted(data_files)}

    def lookup(self, page: Page, key: str) -> dict | None:
        """The stored entry if it was rendered from the same inputs, else None."""
        stored = cache_file.read(self.folder / f"{page.slug}.json")
        if stored is None:
            return None
        entry = orjson.loads(stored)
        if entry.get("key") != key or self.data_hashes(entry["data"]) != entry["data"]:
            return None
        return entry

    def keep(self, page: Page, entry: dict, changed: bool) -> None:
        self.entries[page.slug] = entry
        if changed:
            self.changed.add(page.slug)

    def save(self) -> None:
        """Write this build's entries; drop those of pages that no longer exist."""
        for slug in sorted(self.changed):
            cache_file.write(self.folder / f"{slug}.json", orjson.dumps(self.entries[slug]))
        for path in self.folder.glob("*.json") if self.folder.exists() else []:
            if path.stem not in self.entries:
                path.unlink(missing_ok=True)
