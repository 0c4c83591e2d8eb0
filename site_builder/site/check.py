"""`python -m site_builder check`: build strictly into a temporary folder and verify the result.

`check_dist` reads every HTML and CSS file of a built site and reports:
- internal links, images, scripts and stylesheets that point at a missing file, or at a missing anchor;
- root-absolute URLs (`/x.html`), which break when the site lives under a Pages sub-path;
- anything a page *loads* from another host (scripts, styles, images, fonts, frames): the site must work
  offline and leak no reader to a third party. Plain links to other sites (`<a href="https://…">`) are
  navigation, not loading, and are allowed (counted in the summary);
- images without alt text; chart data that is not valid JSON or has nothing to draw;
- the published extras: a social card for every page, sitemap.xml listing every page, 404.html, the
  search index.

Build warnings (pending boxes for exports that do not exist yet) are listed but do not fail the check,
so a site can be published while experiments still run; `--strict` makes them fail too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from site_builder.charts.script import read_chart_script

# (tag, attribute) pairs whose URL the browser loads; <a href> is navigation and checked separately.
LOADED = {("img", "src"), ("script", "src"), ("link", "href"), ("source", "src"), ("iframe", "src"),
          ("video", "src"), ("audio", "src"), ("video", "poster"), ("embed", "src"), ("object", "data"),
          ("track", "src"), ("input", "src")}
CSS_URL_RE = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


@dataclass
class ParsedPage:
    ids: set[str] = field(default_factory=set)
    refs: list[tuple[str, str, str]] = field(default_factory=list)
    """(tag, attribute, url) for every URL the page names."""
    base: str = ""
    images_without_alt: int = 0
    chart_data: list[str] = field(default_factory=list)
    """Inline chart figures (<script class="chart-data">), as older builds wrote them."""
    chart_sources: list[str] = field(default_factory=list)
    """data/charts/<id>.js of each chart (data-src)."""
    meta: dict[str, str] = field(default_factory=dict)


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self._in_chart_data = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.page.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.page.ids.add(a["name"])
        if tag == "base" and "href" in a:
            self.page.base = a["href"]
        if tag == "meta" and ("property" in a or "name" in a):
            self.page.meta[a.get("property") or a["name"]] = a.get("content", "")
        if tag == "img" and not a.get("alt", "").strip() and a.get("role") != "presentation" and a.get("aria-hidden") != "true":
            self.page.images_without_alt += 1
        for attr in ("href", "src", "poster", "data"):
            if attr in a and (tag, attr) in LOADED | {("a", "href"), ("area", "href")}:
                self.page.refs.append((tag, attr, a[attr].strip()))
        for attr in ("srcset", "imagesrcset"):
            for candidate in a.get(attr, "").split(","):
                if candidate.strip():
                    self.page.refs.append((tag, attr, candidate.split()[0]))
        if "style" in a:
            self.page.refs += [("style", "url", m[0] or m[1]) for m in CSS_URL_RE.findall(a["style"])]
        if tag == "div" and "chart" in a.get("class", "").split() and "data-src" in a:
            self.page.chart_sources.append(a["data-src"])
            self.page.refs.append(("script", "src", a["data-src"]))  # site.js loads it as a script
        self._in_chart_data = tag == "script" and "chart-data" in a.get("class", "").split()
        if self._in_chart_data:
            self.page.chart_data.append("")

    def handle_data(self, data):
        if self._in_chart_data:
            self.page.chart_data[-1] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_chart_data = False


def parse_page(html: str) -> ParsedPage:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.page


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    pages: int = 0
    internal: int = 0
    external_links: int = 0

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def _is_foreign(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme in ("http", "https", "ftp", "ws", "wss")


def _check_url(report: Report, dist: Path, where: str, folder: PurePosixPath, tag: str, url: str,
               ids: dict[str, set[str]], base_path: str) -> None:
    parts = urlsplit(url)
    loaded = tag != "a" and tag != "area"
    if not url or parts.scheme in ("mailto", "tel") or (parts.scheme == "data" and loaded):
        return
    if parts.scheme == "javascript":
        return report.add(where, f"javascript: URL in <{tag}>")
    if _is_foreign(url):
        if loaded:
            return report.add(where, f"loads {url} from another host (<{tag}>)")
        report.external_links += 1
        return
    report.internal += 1
    path = unquote(parts.path)
    if path.startswith("/"):
        if not (base_path and path.startswith(base_path)):
            return report.add(where, f"root-absolute URL {url} breaks under a sub-path; use a relative link")
        rel = PurePosixPath(path[len(base_path):])
    else:
        rel = folder / path if path else PurePosixPath(where)
    target = PurePosixPath(*[p for p in _normalise(rel)])
    file = dist / target
    if file.is_dir():
        file, target = file / "index.html", target / "index.html"
    if not file.is_file():
        return report.add(where, f"broken {'link' if not loaded else 'reference'} {url}: no {target.as_posix()} in the site")
    if parts.fragment and target.suffix == ".html":
        anchors = ids.get(target.as_posix())
        if anchors is not None and unquote(parts.fragment) not in anchors:
            report.add(where, f"link {url}: no anchor #{parts.fragment} on {target.as_posix()}")


def _normalise(path: PurePosixPath) -> list[str]:
    out: list[str] = []
    for part in path.parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in (".", ""):
            out.append(part)
    return out


def _chart_scripts(dist: Path, folder: PurePosixPath, sources: list[str]) -> list[str]:
    """The JSON inside each chart's data script ('' when it is not a chart script; a missing file is a
    broken reference, reported as such)."""
    out = []
    for src in sources:
        path = dist / folder / unquote(urlsplit(src).path)
        if path.is_file():
            found = read_chart_script(path.read_bytes())
            out.append(found[1].decode("utf-8", errors="replace") if found else "")
    return out


def check_dist(dist: str | Path, base_url: str = "") -> Report:
    """Verify a built site folder; returns the problems found (empty when the site is sound)."""
    dist = Path(dist)
    report = Report()
    base_path = urlsplit(base_url).path if base_url else ""
    base_path = base_path.rstrip("/") + "/" if base_path else ""
    html_files = sorted(p for p in dist.rglob("*.html") if "pagefind" not in p.relative_to(dist).parts)
    pages = {p.relative_to(dist).as_posix(): parse_page(p.read_text(encoding="utf-8")) for p in html_files}
    ids = {name: page.ids for name, page in pages.items()}
    for name, page in pages.items():
        report.pages += 1
        folder = PurePosixPath(name).parent
        if page.base:  # 404.html: links resolve against the site's path
            if _is_foreign(page.base) or not base_path or page.base.rstrip("/") + "/" != base_path:
                report.add(name, f"<base href={page.base!r}> does not match the base URL {base_url!r}")
            folder = PurePosixPath(".")
        for tag, attr, url in page.refs:
            if page.base and url.startswith(page.base):
                url = url[len(page.base):] or "index.html"
            _check_url(report, dist, name, folder, tag, url, ids, base_path)
        if page.images_without_alt:
            report.add(name, f"{page.images_without_alt} image(s) without alt text")
        for i, data in enumerate(page.chart_data + _chart_scripts(dist, folder, page.chart_sources), start=1):
            try:
                figure = json.loads(data)
            except ValueError:
                report.add(name, f"chart {i}: its data is not valid JSON")
                continue
            if not (figure.get("traces") or figure.get("frames")):
                report.add(name, f"chart {i}: nothing to draw (no traces or frames)")
        image = page.meta.get("og:image")
        if image is not None and name != "404.html":
            card = urlsplit(image).path
            card = card[len(base_path):] if base_path and card.startswith(base_path) else card.lstrip("/")
            if not (dist / card).is_file():
                report.add(name, f"social card {image} is missing")
    for css in sorted(dist.rglob("*.css")):
        rel = css.relative_to(dist).as_posix()
        for m in CSS_URL_RE.findall(css.read_text(encoding="utf-8", errors="replace")):
            url = m[0] or m[1]
            _check_url(report, dist, rel, PurePosixPath(rel).parent, "css", url, ids, base_path)
    _check_extras(report, dist, pages, base_url)
    return report


def _check_extras(report: Report, dist: Path, pages: dict[str, ParsedPage], base_url: str) -> None:
    chapters = [n for n in pages if n != "404.html"]
    if not (dist / "404.html").is_file():
        report.add("404.html", "missing")
    if not (dist / "pagefind" / "pagefind-entry.json").is_file():
        report.add("pagefind/", "the search index is missing")
    if base_url:
        sitemap = dist / "sitemap.xml"
        if not sitemap.is_file():
            return report.add("sitemap.xml", "missing")
        locs = re.findall(r"<loc>([^<]+)</loc>", sitemap.read_text(encoding="utf-8"))
        listed = {("index.html" if loc.endswith("/") else loc.rsplit("/", 1)[-1]) for loc in locs}
        for name in chapters:
            if name not in listed:
                report.add("sitemap.xml", f"does not list {name}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build the site into a temporary folder (dist/ is left alone) and verify it: internal links, "
        "anchors, images, chart data, social cards, sitemap, 404 page and search index, and that no page "
        "loads anything from another host. Pending boxes are listed as warnings; --strict fails on them."
    )
    parser.add_argument("--root", default=".", help="project folder (default: .)")
    parser.add_argument("--base-url", default=None, help="as for build (default: site.toml's base_url)")
    parser.add_argument("--strict", action="store_true", help="fail on build warnings (pending data) too")


def run(args: argparse.Namespace) -> int:
    from site_builder.site.build import build_site
    from site_builder.site.config import load_config
    from site_builder.site.published import is_absolute

    root = Path(args.root).resolve()
    base_url = args.base_url if args.base_url is not None else load_config(root).base_url
    with tempfile.TemporaryDirectory(prefix="site_builder-check-") as tmp:
        result = build_site(root, Path(tmp) / "dist", base_url=base_url, force=True)
        report = check_dist(result.out, base_url)
    warnings = list(result.warnings)
    if base_url and not is_absolute(base_url):
        warnings.append(f"base URL {base_url!r} has no host: social cards and sitemap.xml need "
                        "https://host/path/ to be absolute (build --base-url)")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    failed = bool(report.problems) or (args.strict and bool(warnings))
    print(
        f"checked {report.pages} pages: {report.internal} internal links and references, "
        f"{report.external_links} links to other sites; {len(report.problems)} problems, {len(warnings)} warnings"
        + (" (--strict: warnings fail)" if args.strict and warnings else "")
    )
    return 1 if failed else 0
