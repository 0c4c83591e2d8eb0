"""The build: content/ + exports/ + templates/ -> dist/, in two phases (gather every page, then write).

    result = build_site(root, out)      # also used by serve, check and the benchmarks

1. gather: parse every chapter (front matter, headings, labels), order and number them, so that
   cross-references (\\eqref, \\ref) and links can point anywhere;
2. render each page's markdown (math through the KaTeX cache, charts, tables, values from exports/),
   check every internal link and anchor, then write pages + assets into a staged folder that replaces
   dist/ only when everything succeeded (fsutil.staged_dir).

A rebuild whose inputs (chapters, templates, site.toml, the exports they read, this code, the options)
have not changed is skipped; see `Fingerprint`.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import orjson
from markupsafe import Markup

import site_builder
from site_builder.charts.data import (
    AGGREGATES,
    SourceMissing,
    aggregate,
    lookup_key,
    read_mapping,
    read_numeric_columns,
    read_table,
    resolve_source,
)
from site_builder.charts.figures import build_chart
from site_builder.content.markdown import Heading, MarkdownDoc, parse_markdown, render_inline, render_markdown
from site_builder.content.math import MathRenderer, katex_version
from site_builder.errors import UserError
from site_builder.fsutil import staged_dir, write_bytes_atomic
from site_builder.site.assets import PROJECT_ROOT, collect_assets, find_katex
from site_builder.site.config import SiteConfig, load_config

BUILD_ID_FILE = ".build-id"  # in dist/: the fingerprint of the inputs it was built from


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
    charts: int = 0
    has_math: bool = False

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

    def summary(self) -> str:
        if self.skipped:
            return f"dist up to date ({self.out.name}/): nothing re-rendered, {self.seconds:.3f} s"
        per = f", {1000 * self.katex_seconds / self.formulas_rendered:.2f} ms each" if self.formulas_rendered else ""
        return (
            f"built {len(self.pages)} pages, {self.charts} charts, {self.files} files, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s "
            f"(math: {self.formulas_total} formulas, {self.formulas_rendered} rendered by KaTeX{per})"
        )


@dataclass
class Project:
    """Where a site's inputs are."""

    root: Path
    config: SiteConfig

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def templates(self) -> Path:
        own = self.root / "templates"
        return own if (own / "base.html").exists() else PROJECT_ROOT / "templates"

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "build"


# ---------------------------------------------------------------------------------------------------
# phase 1: gather


def gather_pages(project: Project) -> list[Page]:
    sources = sorted(project.content.glob("*.md"))
    if not sources:
        raise UserError("no chapters: add markdown files to content/ (index.md is the home page)", path="content/")
    pages = []
    for source in sources:
        rel = source.relative_to(project.root).as_posix()
        doc = parse_markdown(source.read_text(encoding="utf-8"), rel)
        order = doc.meta.get("order", 0 if source.stem == "index" else 1000)
        if not isinstance(order, (int, float)):
            raise UserError(f"front matter: order must be a number, got {order!r}", path=rel, line=1)
        pages.append(Page(source, source.stem, doc))
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
    """label -> (page, 'chapter.n'); equations, figures and tables are counted separately."""
    registry: dict[str, tuple[Page, str]] = {}
    for page in pages:
        counters = {"eq": 0, "fig": 0, "tbl": 0}
        for label in page.doc.labels:
            counters[label.kind] += 1
            label.number = f"{page.number}.{counters[label.kind]}" if page.number else str(counters[label.kind])
            if label.name in registry:
                other = registry[label.name][0]
                raise UserError(f"label '{label.name}' is already defined in {other.doc.path}", path=page.doc.path, line=label.line)
            registry[label.name] = (page, label.number)
    return registry


# ---------------------------------------------------------------------------------------------------
# phase 2: render


_SCRIPT_UNSAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_for_script(obj) -> str:
    """JSON that is safe inside <script type="application/json"> whatever strings it holds."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode().translate(_SCRIPT_UNSAFE)


def _fmt(value, spec: str, where: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, "NaN")
    if isinstance(value, float) and value.is_integer() and spec[-1:] in tuple("bcdoxX"):
        value = int(value)  # history columns are read as floats; an integer format wants an int
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: cannot format {value!r} with '{spec}': {exc}") from None


class PageRenderer:
    """The markdown renderer's hooks for one page (see content.markdown.Hooks)."""

    def __init__(self, builder: "Builder", page: Page):
        self.b, self.page = builder, page
        self.path = page.doc.path
        self.figure_count = 0

    def error(self, message: str, line: int) -> UserError:
        return UserError(message, path=self.path, line=line)

    def _source(self, rel, line: int):
        """Resolve an exports path; None (and a warning) when the file does not exist yet."""
        try:
            path = resolve_source(self.b.project.exports, rel)
        except SourceMissing:
            self.b.data_files.add(f"exports/{rel}")
            self.b.warn(f"{self.path}:{line}: pending: exports/{rel} does not exist yet")
            return None
        except UserError as exc:
            raise self.error(exc.message, line) from None
        self.b.data_files.add(path.relative_to(self.b.project.root).as_posix())
        return path

    # -- math and references

    def math(self, tex: str, display: bool, line: int, label: str | None = None) -> str:
        self.page.has_math = True
        if label:
            tex = f"{tex}\n\\tag{{{self.b.labels[label][1]}}}"
        html = self.b.math.render(tex, display, path=self.path, line=line)
        if label:
            return f'<div class="equation" id="{escape(label)}">{html}</div>'
        return html

    def xref(self, command: str, label: str, line: int) -> str:
        if label not in self.b.labels:
            known = ", ".join(sorted(k for k in self.b.labels if not k.split(":", 1)[1].startswith("#")))
            raise self.error(f"\\{command}{{{label}}}: no such label (defined: {known or 'none'})", line)
        target, number = self.b.labels[label]
        kind = label.split(":", 1)[0]
        text = {"eq": f"({number})", "fig": f"Figure {number}", "tbl": f"Table {number}"}[kind]
        href = f"#{label}" if target is self.page else f"{target.url}#{label}"
        self.page.links.append(Link(href, line, target.url, label))
        return f'<a class="xref" href="{escape(href)}">{escape(text)}</a>'

    def link(self, href: str, line: int) -> str:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            self.page.links.append(Link(href, line))
            return href
        if parts.path.endswith(".md"):
            slug = parts.path[:-3].lstrip("./")
            if slug not in self.b.pages_by_slug:
                raise self.error(f"link to {parts.path}: no such chapter in content/", line)
            target = f"{slug}.html"
            out = target + (f"#{parts.fragment}" if parts.fragment else "")
            self.page.links.append(Link(out, line, target, parts.fragment))
            return out
        if not parts.path:  # same-page anchor
            self.page.links.append(Link(href, line, self.page.url, parts.fragment))
            return href
        self.page.links.append(Link(href, line))
        return href

    # -- data

    def value(self, expr: str, line: int) -> str:
        """{{ source#key@agg | fmt }}"""
        ref, _, spec = (part.strip() for part in expr.partition("|"))
        rel, hash_, key = ref.partition("#")
        if not hash_ or not key:
            raise self.error(f"{{{{ {expr} }}}}: expected {{{{ path#key | format }}}}", line)
        path = self._source(rel, line)
        if path is None:
            return f'<span class="pending" title="exports/{escape(rel)} does not exist yet">pending</span>'
        try:
            if path.suffix == ".csv" or (path.suffix == ".json" and "@" in key):
                column, at, agg = key.rpartition("@")
                if not at or agg not in AGGREGATES:
                    raise UserError(f"a history column needs an aggregate: {key}@last (or @{', @'.join(AGGREGATES[1:])})")
                value = aggregate(read_numeric_columns(path, rel, [column])[column], agg, column, rel)
            else:
                value = lookup_key(read_mapping(path, rel), key, rel)
            text = _fmt(value, spec, f"{{{{ {expr} }}}}")
        except UserError as exc:
            raise self.error(exc.message, line) from None
        return f'<span class="value" title="{escape(ref)}">{escape(text)}</span>'

    def directive(self, kind: str, spec: dict, line: int) -> str:
        label = spec.pop("_label")
        number = self.b.labels[label][1]
        anchor = label if not label.split(":", 1)[1].startswith("#") else ""
        try:
            if kind == "chart":
                return self.chart(spec, line, label, anchor, number)
            return self.table(spec, line, anchor, number)
        except UserError as exc:
            if exc.path:
                raise
            raise self.error(exc.message, line) from None

    def _caption(self, prefix: str, spec: dict, line: int, extra: str = "") -> str:
        title = render_inline(str(spec["title"]), self, self.path, line) if spec.get("title") else ""
        caption = render_inline(str(spec["caption"]), self, self.path, line) if spec.get("caption") else ""
        title_html = f' <span class="figure-title">{title}</span>' if title else ""
        return f'<figcaption><span class="figure-number">{prefix}</span>{title_html} {caption}{extra}</figcaption>'

    def _pending(self, missing: list[str]) -> str:
        items = ", ".join(f"<code>exports/{escape(m)}</code>" for m in missing)
        return f'<div class="pending-box" role="note"><strong>Pending.</strong> This needs {items}, which does not exist yet.</div>'

    def chart(self, spec: dict, line: int, label: str, anchor: str, number: str) -> str:
        self.figure_count += 1
        id_attr = f' id="{escape(anchor)}"' if anchor else ""
        for rel in (spec.get("source") or {}).values() if isinstance(spec.get("source"), dict) else [spec.get("source")]:
            if isinstance(rel, str):
                self._source(rel, line)  # records the file (or the pending warning)
        result = self.b.chart(spec)
        caption = lambda extra="": self._caption(f"Figure {number}", spec, line, extra)  # noqa: E731
        if result.figure is None:
            return f'<figure class="chart-figure"{id_attr}>{self._pending(result.missing)}{caption()}</figure>\n'
        self.page.charts += 1
        extra = ""
        if result.csv is not None:
            csv_rel = f"data/{self.page.slug}-figure-{self.figure_count}.csv"
            self.b.data_out[csv_rel] = result.csv
            extra = f' <a class="download" href="{csv_rel}" download>Data (CSV)</a>'
        figure = dict(result.figure, title=str(spec.get("title", "")))
        height = int(spec.get("height", 380))
        controls = ""
        if figure["type"] in ("line", "scatter"):
            smoothing = figure["smoothing"]
            controls = (
                '<div class="chart-controls">'
                f'<label>Smoothing <input class="js-smoothing" type="range" min="0" max="0.99" step="0.01" value="{smoothing}">'
                f'<output>{smoothing:.2f}</output></label>'
                f'<label><input class="js-log-y" type="checkbox"{" checked" if figure["log_y"] else ""}> log y</label>'
                "</div>"
            )
        elif figure["type"] == "panels" and len(figure["frames"]) > 1:
            n = len(figure["frames"])
            first = escape(figure["frames"][0]["label"])
            controls = (
                f'<div class="chart-controls"><label>{escape(figure["frame_label"])} '
                f'<input class="js-frame" type="range" min="0" max="{n - 1}" step="1" value="0">'
                f"<output>{first}</output></label></div>"
            )
        return (
            f'<figure class="chart-figure"{id_attr}>\n'
            f'<div class="chart" data-chart-type="{figure["type"]}">'
            f'<div class="chart-plot" style="height:{height}px"></div>{controls}'
            f'<script type="application/json" class="chart-data">{json_for_script(figure)}</script></div>\n'
            f"{caption(extra)}\n</figure>\n"
        )

    def table(self, spec: dict, line: int, anchor: str, number: str) -> str:
        allowed = {"id", "source", "keys", "columns", "caption", "title", "format"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise UserError(f"table: unknown key '{unknown[0]}' (keys: {', '.join(sorted(allowed))})")
        if "source" not in spec:
            raise UserError("table: 'source' is required")
        sources = spec["source"] if isinstance(spec["source"], dict) else {"": spec["source"]}
        fmt = str(spec.get("format", ""))
        id_attr = f' id="{escape(anchor)}"' if anchor else ""
        paths = {label: (rel, self._source(rel, line)) for label, rel in sources.items()}
        missing = [rel for rel, path in paths.values() if path is None]
        caption = self._caption(f"Table {number}", spec, line)
        if missing:
            return f'<figure class="table-figure"{id_attr}>{self._pending(missing)}{caption}</figure>\n'
        cell = lambda v: "" if v is None else escape(_fmt(v, fmt, "table") if fmt and isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))  # noqa: E731
        if "keys" in spec:
            keys = [str(k) for k in spec["keys"]]
            header = ["key"] + [label or "value" for label in paths]
            mappings = {label: read_mapping(path, rel) for label, (rel, path) in paths.items()}
            rows = [[key] + [lookup_key(mappings[label], key, paths[label][0]) for label in paths] for key in keys]
        else:
            if len(paths) != 1:
                raise UserError("table: several sources need 'keys' (rows from {key: value} files)")
            rel, path = next(iter(paths.values()))
            header, rows = read_table(path, rel, [str(c) for c in spec["columns"]] if "columns" in spec else None)
        head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n" for row in rows)
        return (
            f'<figure class="table-figure"{id_attr}>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n'
            f"</table>\n{caption}\n</figure>\n"
        )


class Builder:
    """State of one build (see build_site)."""

    def __init__(self, project: Project):
        self.project = project
        self.math = MathRenderer(project.cache / f"katex-{katex_version()}.json")
        self.labels: dict[str, tuple[Page, str]] = {}
        self.pages_by_slug: dict[str, Page] = {}
        self.data_files: set[str] = set()
        self.data_out: dict[str, bytes] = {}
        self.warnings: list[str] = []
        self.formulas = 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def chart(self, spec: dict):
        return build_chart(spec, self.project.exports)


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


def render_site(project: Project, builder: Builder, pages: list[Page], base_url: str) -> dict[str, bytes]:
    """Every file of dist/ (relative path -> bytes)."""
    katex_dist = find_katex(project.root, builder.math.version)
    for page in pages:
        renderer = PageRenderer(builder, page)
        page.body = render_markdown(page.doc, renderer)
        page.anchors = set(ID_RE.findall(page.body))
    check_links(pages)
    assets = collect_assets(project.templates, katex_dist, with_plotly=any(p.charts for p in pages))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(project.templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("page.html")
    files: dict[str, bytes] = dict(assets.files)
    for i, page in enumerate(pages):
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
        files[page.url] = html.encode("utf-8")
    files.update(builder.data_out)
    files[".nojekyll"] = b""
    return files


# ---------------------------------------------------------------------------------------------------
# fingerprint: skip a build whose inputs have not changed


class Fingerprint:
    """A hash over every input of a build; file contents are re-hashed only when size or mtime changed."""

    def __init__(self, project: Project, options: dict):
        self.project = project
        self.options = options
        self.state_file = project.cache / "state.json"
        try:
            self.state = orjson.loads(self.state_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            self.state = {}
        self.hashes: dict[str, list] = {}

    def input_files(self, data_files) -> list[Path]:
        root = self.project.root
        files = [root / "site.toml", *sorted(self.project.content.glob("*.md"))]
        files += sorted(p for p in self.project.templates.rglob("*") if p.is_file())
        code = Path(site_builder.__file__).parent
        for package in ("site", "content", "charts"):
            files += sorted((code / package).glob("*.py"))
        files += [code / "fsutil.py", code / "errors.py"]
        files += [root / f for f in sorted(data_files)]
        return files

    def _file_hash(self, path: Path) -> str:
        key = str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return "absent"
        old = self.state.get("hashes", {}).get(key)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            digest = old[2]
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest = h.hexdigest()
        self.hashes[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def compute(self, data_files) -> str:
        h = hashlib.sha256(orjson.dumps(self.options, option=orjson.OPT_SORT_KEYS))
        for path in self.input_files(data_files):
            h.update(f"{path}\0{self._file_hash(path)}\n".encode())
        return h.hexdigest()

    def up_to_date(self, out: Path) -> bool:
        previous = self.state.get("key")
        if not previous or not (out / BUILD_ID_FILE).exists():
            return False
        if (out / BUILD_ID_FILE).read_text().strip() != previous:
            return False
        return self.compute(self.state.get("data_files", [])) == previous

    def save(self, key: str, data_files) -> None:
        self.state = {"key": key, "data_files": sorted(data_files), "hashes": self.hashes}
        write_bytes_atomic(self.state_file, orjson.dumps(self.state, option=orjson.OPT_SORT_KEYS))


# ---------------------------------------------------------------------------------------------------


def build_site(root: str | Path = ".", out: str | Path | None = None, *, base_url: str | None = None, force: bool = False) -> BuildResult:
    """Build the site at `root` into `out` (default root/dist). Raises UserError on bad input; the
    previous `out` stays untouched unless the whole build succeeds."""
    start = time.perf_counter()
    root = Path(root).resolve()
    project = Project(root, load_config(root))
    out = Path(out).resolve() if out else root / "dist"
    base_url = base_url if base_url is not None else project.config.base_url
    options = {"base_url": base_url, "katex": katex_version(), "version": site_builder.__version__}
    fingerprint = Fingerprint(project, options)
    if not force and fingerprint.up_to_date(out):
        return BuildResult(out, [], skipped=True, seconds=time.perf_counter() - start)

    builder = Builder(project)
    pages = gather_pages(project)
    builder.pages_by_slug = {p.slug: p for p in pages}
    builder.labels = number_labels(pages)
    files = render_site(project, builder, pages, base_url)
    key = fingerprint.compute(builder.data_files)
    files[BUILD_ID_FILE] = key.encode() + b"\n"
    with staged_dir(out) as tmp:
        for rel, data in sorted(files.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    builder.math.save()
    fingerprint.save(key, builder.data_files)
    return BuildResult(
        out,
        pages,
        charts=sum(p.charts for p in pages),
        files=len(files),
        bytes=sum(len(d) for d in files.values()),
        seconds=time.perf_counter() - start,
        warnings=builder.warnings,
        formulas_rendered=builder.math.rendered,
        formulas_total=builder.math.calls,
        katex_seconds=builder.math.seconds,
    )
