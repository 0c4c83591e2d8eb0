"""The build: content/ + exports/ + templates/ -> dist/, in two phases (gather every page, then write).

    result = build_site(root, out)      # also used by serve, check and the benchmarks

1. gather (site.pages): parse every chapter (front matter, headings, labels), order and number them, so
   cross-references (\\eqref, \\ref) and links can point anywhere;
2. render (site.render): each page's markdown (math through the KaTeX cache, charts, tables, values from
   exports/), check every internal link and anchor, then write pages + assets into a staged folder that
   replaces dist/ only when everything succeeded (fsutil.staged_dir).

A rebuild whose inputs have not changed is skipped before the heavy modules load (site.fingerprint).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import site_builder
from site_builder.fsutil import staged_dir
from site_builder.site.config import load_config
from site_builder.site.fingerprint import BUILD_ID_FILE, Fingerprint
from site_builder.site.project import Project
from site_builder.site.pages import Page


@dataclass
class BuildResult:
    out: Path
    pages: list[Page]
    charts: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped: bool = False
    """True when nothing changed and dist/ was left as it was."""
    warnings: list[str] = field(default_factory=list)
    formulas_rendered: int = 0
    formulas_total: int = 0
    katex_seconds: float = 0.0
    pages_rendered: int = 0
    """Pages whose markdown was rendered; the others came unchanged from the render cache."""
    search_bytes: int = 0
    """Size of the search index in dist/pagefind/ (without Pagefind's UI code)."""

    def summary(self) -> str:
        if self.skipped:
            return f"dist up to date ({self.out.name}/): nothing re-rendered, {self.seconds:.3f} s"
        per = f", {1000 * self.katex_seconds / self.formulas_rendered:.2f} ms each" if self.formulas_rendered else ""
        cached = len(self.pages) - self.pages_rendered
        rendered = f"{self.pages_rendered} of {len(self.pages)} pages rendered" + (f", {cached} from the render cache" if cached else "")
        return (
            f"built {len(self.pages)} pages, {self.charts} charts, {self.files} files, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s "
            f"({rendered}; math: {self.formulas_total} formulas, {self.formulas_rendered} rendered by KaTeX{per}; "
            f"search index {self.search_bytes / 1024:.0f} KB)"
        )


def _write_files(folder: Path, files: dict[str, bytes], names: list[str]) -> None:
    for rel in names:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[rel])


def build_site(root: str | Path = ".", out: str | Path | None = None, *, base_url: str | None = None, force: bool = False, jobs: int | None = None) -> BuildResult:
    """Build the site at `root` into `out` (default root/dist). Raises UserError on bad input; the
    previous `out` stays untouched unless the whole build succeeds. `force` renders every page again;
    `jobs` Node processes (default: one per core but one, which renders the pages meanwhile) render new
    formulas when there are many
    (content.math.MathRenderer.prerender)."""
    start = time.perf_counter()
    root = Path(root).resolve()
    project = Project(root, load_config(root))
    out = Path(out).resolve() if out else root / "dist"
    base_url = base_url if base_url is not None else project.config.base_url
    options = {"base_url": base_url, "site_builder": site_builder.__version__}
    fingerprint = Fingerprint(project, options)
    if not force and fingerprint.up_to_date(out):
        return BuildResult(out, [], skipped=True, seconds=time.perf_counter() - start)

    from site_builder.site.pages import Outlines, gather_pages, number_labels
    from site_builder.site.render import Builder, render_site  # the heavy part: markdown, data, KaTeX
    from site_builder.charts.titles import missing_axis_titles
    from site_builder.site.search import SearchIndex

    builder = Builder(project, fingerprint.file_hash)
    builder.jobs = jobs or max(1, (os.cpu_count() or 1) - 1)
    try:
        outlines = Outlines(project.cache / "outlines.json", use_stored=not force)
        pages = gather_pages(project, outlines)
        builder.pages_by_slug = {p.slug: p for p in pages}
        builder.labels = number_labels(pages)
        files = render_site(project, builder, pages, base_url, fingerprint.tool_key(), use_cache=not force)
    finally:
        builder.math.close()
    key = fingerprint.compute(builder.data_files)
    files[BUILD_ID_FILE] = key.encode() + b"\n"
    with staged_dir(out) as tmp:
        html = sorted(rel for rel in files if rel.endswith(".html"))
        _write_files(tmp, files, html)
        search = SearchIndex(tmp)  # search (issue 7): Pagefind indexes the pages while the rest is written
        try:
            _write_files(tmp, files, sorted(set(files) - set(html)))
            search_bytes = search.finish()
        finally:
            search.stop()
    builder.math.save()
    builder.charts.prune()
    builder.page_cache.save()
    outlines.save()
    fingerprint.save(key, builder.data_files)
    return BuildResult(
        out,
        pages,
        charts=sum(p.charts for p in pages),
        files=len(files),
        bytes=sum(len(d) for d in files.values()),
        seconds=time.perf_counter() - start,
        warnings=builder.warnings + missing_axis_titles([(p.doc.path, p.text) for p in pages]),
        search_bytes=search_bytes,
        pages_rendered=builder.pages_rendered,
        formulas_rendered=builder.math.rendered,
        formulas_total=builder.math.calls,
        katex_seconds=builder.math.seconds,
    )
