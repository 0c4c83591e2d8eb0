"""Phase 2 of the build: render every page (markdown hooks for math, charts, tables, values, links and
cross-references), check internal links and anchors, and return every file of dist/ as bytes.
"""

from __future__ import annotations

import hashlib
import math
import re
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import jinja2
import orjson
from markupsafe import Markup

from site_builder.charts.data import (
    AGGREGATES,
    Column,
    SourceMissing,
    aggregate,
    clear_column_memo,
    is_table,
    lookup_key,
    read_mapping,
    read_numeric_columns,
    read_table,
    resolve_source,
)
from site_builder.charts.cache import ChartCache
from site_builder.charts.script import chart_script
from site_builder.charts.figures import check_spec, files_of, sources_of
from site_builder.content.markdown import render_inline, render_markdown
from site_builder.content.math import Formula, MathRenderer, katex_version
from site_builder.content.table_labels import table_html
from site_builder.errors import UserError
from site_builder.site.assets import collect_assets, find_katex
from site_builder.site.explorers import explorer_html, restore_explorer_files
from site_builder.site.project import Project
from site_builder.site.page_cache import PageCache, RenderedPage, site_key
from site_builder.site.pages import Link, Page
from site_builder.site.published import published_files, social_cards
from site_builder.site.chapter_extras import ChapterExtras, restore_images
from site_builder.site.template_env import TemplateEnvironment


MAX_FORMAT_NUMBER = 100  # widths and precisions in a format spec (a width of 10**8 is a 100 MB page)
MAX_TABLE_CELLS = 20_000  # rows × columns of one table (a 1M-row table is a 39 MB page)


def _shown_as_is(value) -> bool:
    """A number, text, or a list of them (`aug/ratio: [0.75, 1.33]`): what a page can print. Null and
    mappings would print as Python's `None` / `{'a': 1}`."""
    if isinstance(value, list):
        return all(isinstance(v, (int, float, str)) for v in value)
    return isinstance(value, (int, float, str))


def _fmt(value, spec: str, where: str) -> str:
    if any(int(n) > MAX_FORMAT_NUMBER for n in re.findall(r"\d+", spec)):
        raise UserError(f"{where}: format '{spec[:40]}': widths and precisions above {MAX_FORMAT_NUMBER} are not allowed")
    if not _shown_as_is(value):
        shown = "null" if value is None else f"a {type(value).__name__}"
        raise UserError(f"{where}: the value is {shown}, not a number, text or a list of them")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, "NaN")
    if isinstance(value, float) and value.is_integer() and spec[-1:] in tuple("bcdoxX"):
        value = int(value)  # history columns are read as floats; an integer format wants an int
    try:
        if spec.endswith("pp") and isinstance(value, (int, float)) and not isinstance(value, bool):
            # a difference of two fractions in percentage points: `+.1pp` prints 0.0112 as "+1.1 points"
            return format(100 * value, spec[:-2] + "f") + " points"
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: cannot format {value!r} with '{spec}': {exc}") from None


def _cell(value, fmt: str) -> str:
    """A table cell: numbers through the table's `format` (if any), everything escaped."""
    if value is None:
        return ""
    if not _shown_as_is(value):
        raise UserError(f"table: a cell holds a {type(value).__name__} ({str(value)[:40]}), not a number, text or a list of them")
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return escape(_fmt(value, fmt, "table"))
    return escape(str(value))


class PageRenderer(ChapterExtras):
    """The markdown renderer's hooks for one page (see content.markdown.Hooks)."""

    def __init__(self, builder: "Builder", page: Page):
        self.b, self.page = builder, page
        self.path = page.doc.path
        self.figure_count = 0
        self.data_files: set[str] = set()  # what this page read (part of its render-cache entry)
        self.data_out: dict[str, str] = {}  # CSV download -> chart-cache key holding its bytes
        self.explorer_files: dict[str, str] = {}  # explorer data in dist/ -> its file in the project
        self.images_out: list[str] = []  # image files the page publishes (site.chapter_extras)
        self.warnings_out: list[str] = []
        self.cited: list[str] = []  # citation keys, in order of first use

    def error(self, message: str, line: int) -> UserError:
        return UserError(message, path=self.path, line=line)

    def _source(self, rel, line: int):
        """Resolve an exports path; None (and a warning) when the file does not exist yet."""
        try:
            path = resolve_source(self.b.project.exports, rel)
        except SourceMissing:
            self.data_files.add(f"exports/{rel}")
            self.b.pending_source(self.path, line, rel)
            return None
        except UserError as exc:
            raise self.error(exc.message, line) from None
        self.data_files.add(path.relative_to(self.b.project.root).as_posix())
        return path

    # -- math and references

    def math(self, tex: str, display: bool, line: int, label: str | None = None) -> str:
        self.page.has_math = True
        html = self.b.math.render(self.b.numbered_tex(tex, label), display, path=self.path, line=line)
        if label:
            return f'<div class="equation" id="{escape(label)}">{html}</div>'
        return html

    def xref(self, command: str, label: str, line: int) -> str:
        if label not in self.b.labels:
            known = ", ".join(sorted(self.b.labels))
            raise self.error(f"\\{command}{{{label}}}: no such label (defined: {known or 'none'})", line)
        target, number = self.b.labels[label]
        kind = label.split(":", 1)[0]
        if number:
            text = {"eq": f"({number})", "fig": f"Figure {number}", "tbl": f"Table {number}"}[kind]
        else:  # a label on an unnumbered page (the home page)
            text = {"eq": "the equation", "fig": "the figure", "tbl": "the table"}[kind]
        href = f"#{label}" if target is self.page else f"{target.url}#{label}"
        self.page.links.append(Link(href, line, target.url, label))
        return f'<a class="xref" href="{escape(href)}">{escape(text)}</a>'

    def link(self, href: str, line: int) -> str:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            self.page.links.append(Link(href, line))
            return href
        if parts.path.endswith(".md"):
            slug = unquote(parts.path[:-3]).lstrip("./")  # [x](my%20chapter.md) or [x](<my chapter.md>)
            if slug not in self.b.pages_by_slug:
                raise self.error(f"link to {parts.path}: no such chapter in content/", line)
            target = f"{slug}.html"
            out = quote(target) + (f"#{parts.fragment}" if parts.fragment else "")
            self.page.links.append(Link(out, line, target, unquote(parts.fragment)))  # ids are not %-encoded
            return out
        if not parts.path:  # same-page anchor
            self.page.links.append(Link(href, line, self.page.url, unquote(parts.fragment)))
            return href
        self.page.links.append(Link(href, line))
        return href

    # -- data

    def value(self, expr: str, line: int, closed: bool = True) -> str:
        """{{ source#key@agg | fmt }}"""
        if not closed:
            raise self.error(f"'{{{{ {expr}' has no closing '}}}}' (in a table cell, write \\| before the format)", line)
        ref, _, spec = (part.strip() for part in expr.partition("|"))
        rel, hash_, key = ref.partition("#")
        if not hash_ or not key:
            raise self.error(f"{{{{ {expr} }}}}: expected {{{{ path#key | format }}}}", line)
        path = self._source(rel, line)
        if path is None:
            return f'<span class="pending" title="exports/{escape(rel)} does not exist yet">pending</span>'
        try:
            if is_table(path, rel):
                column, at, agg = key.rpartition("@")
                if not at or agg not in AGGREGATES:
                    raise UserError(f"a history column needs an aggregate: {key}@last (or @{', @'.join(AGGREGATES[1:])})")
                value = aggregate(self.b.column(path, rel, column), agg, column, rel)
            else:
                value = lookup_key(read_mapping(path, rel), key, rel)
            text = _fmt(value, spec, f"{{{{ {expr} }}}}")
        except UserError as exc:
            raise self.error(exc.message, line) from None
        return f'<span class="value" title="{escape(ref)}">{escape(text)}</span>'

    def directive(self, kind: str, spec: dict, line: int, label_index: int) -> str:
        anchor = self.page.doc.labels[label_index].name or ""
        number = self.page.label_numbers[label_index]
        try:
            if kind == "chart":
                return self.chart(spec, line, anchor, number)
            if kind == "explorer":
                return explorer_html(self, spec, line, anchor, number)
            return self.table(spec, line, anchor, number)
        except UserError as exc:
            if exc.path:
                raise
            raise self.error(exc.message, line) from None

    def _caption(self, prefix: str, spec: dict, line: int, extra: str = "") -> str:
        title = render_inline(str(spec["title"]), self, self.path, line) if spec.get("title") else ""
        caption = render_inline(str(spec["caption"]), self, self.path, line) if spec.get("caption") else ""
        title_html = f' <span class="figure-title">{title}</span>' if title else ""
        number_html = f'<span class="figure-number">{prefix}</span>' if prefix else ""  # none on unnumbered pages
        return f'<figcaption>{number_html}{title_html} {caption}{extra}</figcaption>'

    def _pending(self, missing: list[str]) -> str:
        items = ", ".join(f"<code>exports/{escape(m)}</code>" for m in missing)
        return f'<div class="pending-box" role="note"><strong>Pending.</strong> This needs {items}, which does not exist yet.</div>'

    def chart(self, spec: dict, line: int, anchor: str, number: str) -> str:
        self.figure_count += 1
        id_attr = f' id="{escape(anchor)}"' if anchor else ""
        spec = check_spec(spec)  # once: the cache and the figure code take the checked spec
        for rel in files_of(spec):
            self._source(rel, line)  # records the file it reads (or the pending warning)
        result = self.b.chart(spec)
        if result.figure is None:
            caption = self._caption(f"Figure {number}" if number else "", spec, line)
            return f'<figure class="chart-figure"{id_attr}>{self._pending(result.missing)}{caption}</figure>\n'
        self.page.charts += 1
        download = ""
        if result.csv is not None:
            # named by content: charts of the same data share one file (issue 8); the reader's copy
            # is still saved under the chart's own name
            csv_rel = f"data/{hashlib.sha256(result.csv).hexdigest()[:16]}.csv"
            self.b.data_out[csv_rel] = result.csv
            self.data_out[csv_rel] = result.cache_key
            name = f"{self.page.slug}-figure-{self.figure_count}.csv"
            download = f' <a class="download" href="{csv_rel}" download="{escape(name)}">Data (CSV)</a>'
        caption = self._caption(f"Figure {number}" if number else "", spec, line, download)
        figure = dict(result.figure, title="" if spec.get("title") is None else str(spec["title"]))
        chart_id, script = chart_script(figure)
        src = f"data/charts/{chart_id}.js"
        self.b.data_out[src] = script
        self.data_out[src] = self.b.charts.store(result.cache_key, ".js", script)
        return self.b.partial("chart.html").render(
            anchor=anchor, figure=figure, chart_id=chart_id, src=src, height=spec["height"], group=spec.get("group"), caption=Markup(caption)
        ) + "\n"

    def table(self, spec: dict, line: int, anchor: str, number: str) -> str:
        allowed = {"id", "source", "keys", "columns", "caption", "title", "format", "labels", "formats"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise UserError(f"table: unknown key '{unknown[0]}' (keys: {', '.join(sorted(allowed))})")
        if "source" not in spec:
            raise UserError("table: 'source' is required")
        sources = sources_of(spec)  # a path or {label: path}, every path a string
        id_attr = f' id="{escape(anchor)}"' if anchor else ""
        paths = {label: (rel, self._source(rel, line)) for label, rel in sources.items()}
        missing = [rel for rel, path in paths.values() if path is None]
        caption = self._caption(f"Table {number}" if number else "", spec, line)
        if missing:
            return f'<figure class="table-figure"{id_attr}>{self._pending(missing)}{caption}</figure>\n'
        for key in ("keys", "columns"):
            if key in spec and not (isinstance(spec[key], list) and all(isinstance(v, (str, int, float)) for v in spec[key])):
                raise UserError(f"table: '{key}' must be a list, e.g. {key}: [a, b]")
        if "keys" in spec:
            keys = [str(k) for k in spec["keys"]]
            header = ["key"] + [label or "value" for label in paths]
            mappings = {label: read_mapping(path, rel) for label, (rel, path) in paths.items()}
            rows = [[key] + [lookup_key(mappings[label], key, paths[label][0]) for label in paths] for key in keys]
        else:
            if len(paths) != 1:
                raise UserError("table: several sources need 'keys' (rows from {key: value} files)")
            rel, path = next(iter(paths.values()))
            header, rows = read_table(path, rel, [str(c) for c in spec["columns"]] if "columns" in spec else None, MAX_TABLE_CELLS)
        head, body = table_html(header, rows, spec, by_row="keys" in spec, cell=_cell)
        sortable = ' class="sortable"' if len(rows) > 1 else ""  # reader.js sorts by a header click
        return (
            f'<figure class="table-figure"{id_attr}>\n<table{sortable}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n'
            f"</table>\n{caption}\n</figure>\n"
        )


class Builder:
    """State of one build (see build_site)."""

    def __init__(self, project: Project, file_hash):
        self.project = project
        self.charts = ChartCache(project.cache / "charts", project.exports, file_hash)
        self.page_cache = PageCache(project.cache / "pages", project.root, file_hash)
        self.pages_rendered = 0  # pages whose markdown was rendered (not taken from the render cache)
        self.jobs = 1  # Node processes for new formulas (MathRenderer.prerender)
        clear_column_memo()
        self.katex_dist = find_katex(project.root, katex_version())
        self.math = MathRenderer(project.cache / f"katex-{katex_version()}.json", self.katex_dist.parent)
        self.labels: dict[str, tuple[Page, str]] = {}
        self.pages_by_slug: dict[str, Page] = {}
        self.data_files: set[str] = set()
        self.data_out: dict[str, bytes] = {}
        self.pending: dict[tuple[str, str], list[int]] = {}  # (chapter, source) -> lines that use it
        self.notes: list[str] = []  # other warnings ("chapter:line: ..."), e.g. an image without alt text
        self.env = TemplateEnvironment(
            loader=jinja2.FileSystemLoader(project.template_dirs),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def pending_source(self, page_path: str, line: int, rel: str) -> None:
        lines = self.pending.setdefault((page_path, rel), [])
        if line not in lines:
            lines.append(line)

    @property
    def warnings(self) -> list[str]:
        """One line per chapter and missing source, at its first use."""
        out = []
        for (page_path, rel), lines in self.pending.items():
            more = f" (and {len(lines) - 1} more uses)" if len(lines) > 1 else ""
            out.append(f"{page_path}:{lines[0]}: pending: exports/{rel} does not exist yet{more}")
        return out + self.notes

    def chart(self, spec: dict):
        return self.charts.chart(spec)

    def partial(self, name: str) -> jinja2.Template:
        """A markup partial from templates/partials/ (chart, ...)."""
        return self.env.get_template(f"partials/{name}")

    def numbered_tex(self, tex: str, label: str | None) -> str:
        """A display formula's TeX with its equation number, if it has a label."""
        return f"{tex}\n\\tag{{{self.labels[label][1]}}}" if label and self.labels[label][1] else tex

    def formulas(self, page: Page) -> list[Formula]:
        """The formulas in a page's markdown (captions aside), as render() will ask for them."""
        out, path = [], page.doc.path
        for token in page.parsed().tokens:
            if token.type == "math_block":
                tex = self.numbered_tex(token.meta.get("tex", token.content), token.meta.get("label"))
                out.append(Formula(tex, True, path, token.map[0] + 1))
            for child in token.children or []:
                if child.type in ("math_inline", "math_inline_double"):
                    out.append(Formula(child.content, child.type == "math_inline_double", path, child.meta.get("line", 1)))
        return out

    def column(self, path, rel: str, name: str) -> Column:
        """One history column (read once per build however many values in prose use it: charts.data memoises)."""
        return read_numeric_columns(path, rel, [name])[name]


ID_RE = re.compile(r'\sid="([^"]+)"')


def check_links(pages: list[Page]) -> None:
    by_url = {p.url: p for p in pages}
    for page in pages:
        for link in page.links:
            if not link.page:
                continue
            target = by_url[link.page]
            if link.anchor and link.anchor not in target.anchors:
                raise UserError(f"link to {link.href}: no anchor '#{link.anchor}' on {target.doc.path}", path=page.doc.path, line=link.line)


def _render_page(builder: Builder, page: Page, key: str) -> RenderedPage:
    """Render one page's article (the page template runs later, once the assets are known)."""
    renderer = PageRenderer(builder, page)
    page.body = render_markdown(page.parsed(), renderer) + renderer.end_matter()
    builder.notes += renderer.warnings_out
    page.anchors = set(ID_RE.findall(page.body))
    builder.pages_rendered += 1
    return RenderedPage(
        key=key,
        data=builder.page_cache.data_hashes(renderer.data_files),
        body=page.body,
        links=list(page.links),
        charts=page.charts,
        has_math=page.has_math,
        pending=[(rel, lines) for (path, rel), lines in builder.pending.items() if path == page.doc.path],
        data_out=renderer.data_out,
        images=renderer.images_out,
        warnings=renderer.warnings_out,
        explorers=page.explorers,
        explorer_files=renderer.explorer_files,
    )


def _restore_page(builder: Builder, page: Page, entry: RenderedPage) -> bool:
    """Take a page's render from its cache entry; False when a file it adds left the chart cache."""
    data_out = {rel: builder.charts.read(key, PurePosixPath(rel).suffix) for rel, key in entry.data_out.items()}
    if any(data is None for data in data_out.values()):
        return False
    page.body = entry.body
    page.anchors = set(ID_RE.findall(page.body))
    page.links = list(entry.links)
    page.charts, page.has_math = entry.charts, entry.has_math
    page.explorers = entry.explorers
    restore_explorer_files(builder, entry)
    for rel, lines in entry.pending:
        builder.pending[(page.doc.path, rel)] = list(lines)
    restore_images(builder, entry.images)
    builder.notes += entry.warnings
    builder.charts.used.update(entry.data_out.values())
    builder.data_out.update(data_out)
    return True


def render_site(project: Project, builder: Builder, pages: list[Page], base_url: str, tool_key: str, use_cache: bool = True) -> dict[str, bytes]:
    """Every file of dist/ (relative path -> bytes). Pages whose inputs are unchanged come from the
    render cache (site.page_cache) unless `use_cache` is off; `builder.pages_rendered` counts the others."""
    katex_dist = builder.katex_dist
    with ThreadPoolExecutor(1) as pool:  # cards (Pillow, mostly without the GIL) while pages render
        cards = pool.submit(social_cards, project, pages)
        files = _render_files(project, builder, pages, base_url, tool_key, use_cache, katex_dist)
        files.update(cards.result())
    return files


def _render_files(project: Project, builder: Builder, pages: list[Page], base_url: str, tool_key: str, use_cache: bool, katex_dist) -> dict[str, bytes]:
    shared = site_key(pages, builder.labels)
    entries: dict[str, RenderedPage] = {}
    to_render = []
    for page in pages:
        key = builder.page_cache.key(tool_key, shared, page)
        entry = builder.page_cache.lookup(page, key) if use_cache else None
        if entry is None or not _restore_page(builder, page, entry):
            to_render.append((page, key))
        else:
            entries[page.slug] = entry
    builder.math.prerender([f for page, _ in to_render for f in builder.formulas(page)], builder.jobs)
    for page, key in to_render:
        entries[page.slug] = _render_page(builder, page, key)
    for page in pages:
        builder.data_files.update(entries[page.slug].data)
    check_links(pages)
    assets = collect_assets(project.root, project.template_dirs, katex_dist, with_plotly=any(p.charts or p.explorers for p in pages))
    assets_key = hashlib.sha256(orjson.dumps(assets.urls, option=orjson.OPT_SORT_KEYS)).hexdigest()
    env = builder.env
    template = env.get_template("page.html")
    files: dict[str, bytes] = dict(assets.files)
    for i, page in enumerate(pages):
        entry = entries[page.slug]
        if entry.assets != assets_key:
            html = template.render(
                site=project.config,
                base_url=base_url,
                page=page,
                nav=pages,
                prev=pages[i - 1] if i > 0 else None,
                next=pages[i + 1] if i + 1 < len(pages) else None,
                assets=assets.urls,
                body=Markup(page.body),
            )
            entry = entry.with_html(assets_key, html)
            builder.page_cache.keep(page, entry, changed=True)
        else:
            builder.page_cache.keep(page, entry, changed=False)
        files[page.url] = entry.html.encode("utf-8")
    files.update(builder.data_out)
    files.update(published_files(project, env, pages, assets.urls, base_url))  # issue 7: sitemap, 404
    files[".nojekyll"] = b""
    return files
