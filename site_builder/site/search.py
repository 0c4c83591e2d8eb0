"""Full-text search: Pagefind indexes the finished dist/ offline and ships its own UI and WASM.

The index lives in dist/pagefind/ and is fetched in small chunks by the browser as the reader types, so
pages stay light. Only each page's article is indexed (`data-pagefind-body` in templates/page.html);
KaTeX's visual copy and TeX annotation of each formula are skipped (its MathML copy holds the text once).
Search needs the site served over HTTP (Pagefind fetches its index); from file:// the search box says so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from site_builder.errors import UserError

SEARCH_DIR = "pagefind"
EXCLUDE = ".katex-html, annotation, .header-anchor, .chart-controls"
# Pagefind writes several alternative UIs; the site uses only the default one.
UNUSED = ("pagefind-component-ui.js", "pagefind-component-ui.css", "pagefind-modular-ui.js",
          "pagefind-modular-ui.css", "pagefind-highlight.js")


def pagefind_executable() -> Path:
    try:
        from pagefind_bin import get_executable
    except ImportError:
        raise UserError("search needs the 'pagefind-bin' package: pip install -e .") from None
    return get_executable()


class SearchIndex:
    """Pagefind indexing the HTML files under `dist` into dist/pagefind/, in its own process: started once
    the pages are written, it runs while the build writes everything else (see site.build)."""

    def __init__(self, dist: Path):
        self.dist = dist
        command = [
            str(pagefind_executable()), "--site", str(dist), "--output-subdir", SEARCH_DIR,
            "--keep-index-url", "--exclude-selectors", EXCLUDE, "--silent",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self) -> int:
        """Wait for Pagefind; returns the index's size in bytes (index + fragments + metadata, i.e. what a
        search downloads at most, without the UI code)."""
        out, err = self.process.communicate()
        if self.process.returncode != 0:
            raise UserError(f"search indexing (pagefind) failed: {(err or out).strip()}")
        bundle = self.dist / SEARCH_DIR
        for name in UNUSED:
            (bundle / name).unlink(missing_ok=True)
        index = [p for p in bundle.rglob("*") if p.is_file() and p.suffix in (".pf_index", ".pf_fragment", ".pf_meta")]
        return sum(p.stat().st_size for p in index)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def index_search(dist: Path) -> int:
    """Index the HTML files under `dist` (written already) and wait for it."""
    return SearchIndex(dist).finish()
