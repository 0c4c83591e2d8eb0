"""Measuring tools: timed subprocess runs, file sizes, what a browser downloads, cProfile summaries."""

from __future__ import annotations

import cProfile
import gzip
import http.server
import os
import pstats
import re
import resource
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------------------------------------- time


@dataclass
class Sample:
    wall: float  # seconds, as the user waits
    cpu: float  # user + system seconds of the process and the children it waited for (pool workers)
    output: str = ""


def run_timed(cmd: list[str], cwd: Path | None = None) -> Sample:
    """Run `cmd` to completion; a failure stops the benchmark with the command's own error output."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # silence Material's end-of-life banner
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu, proc.stdout + proc.stderr)


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def spread(self) -> str:
        walls = [s.wall for s in self.samples]
        return f"{min(walls):.2f}-{max(walls):.2f}"

    @property
    def cpu(self) -> float:
        """Median CPU seconds: the work done, less sensitive than wall time to other processes' load."""
        return statistics.median(s.cpu for s in self.samples)

    @property
    def cores(self) -> float:
        """CPU seconds per wall second (1.0 = one core busy, 2.0 = both)."""
        return statistics.median(s.cpu / s.wall for s in self.samples)


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---------------------------------------------------------------------------------------------- bytes


def gz_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def tree_size(root: Path) -> tuple[int, int]:
    """(bytes, files) under root."""
    files = [p for p in Path(root).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def html_pages(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.html") if p.name != "404.html")


@dataclass
class PageLoad:
    """What a browser fetched for one page, by resource type: {type: [(path, raw bytes, gzip bytes, order)]}."""

    page: str
    by_type: dict[str, list[tuple[str, int, int]]]
    inline_js: int  # bytes of inline <script> code in the HTML (JSON data blocks excluded)
    inline_data: int  # bytes of inline <script type="application/json"> data blocks (chart figures)
    before_scroll: int = 0  # how many of the fetched files (in fetch order) came before the reader scrolled

    def gzip_total(self, before_scroll: bool = False) -> int:
        """Gzip bytes of every file fetched (only those fetched before scrolling, if asked)."""
        items = sorted((i for kind in self.by_type.values() for i in kind), key=lambda i: i[3])
        return sum(i[2] for i in items if not before_scroll or i[3] < self.before_scroll)

    def total(self, kind: str) -> tuple[int, int]:
        items = self.by_type.get(kind, [])
        return sum(i[1] for i in items), sum(i[2] for i in items)  # (raw, gzip)


_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", re.S | re.I)


def inline_js_bytes(html: bytes) -> int:
    return sum(len(body) for attrs, body in _INLINE_SCRIPT.findall(html) if b"json" not in attrs.lower())


def inline_json_blocks(html: bytes) -> list[bytes]:
    """Bodies of <script type="application/json"> blocks (where charts embed their figure data)."""
    return [body for attrs, body in _INLINE_SCRIPT.findall(html) if b"json" in attrs.lower()]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - silence the per-request log
        pass


def browser_loads(site: Path, pages: list[str]) -> list[PageLoad]:
    """Open each page over a local HTTP server in headless Chromium, scroll to the end (charts load when
    scrolled into view), wait for the network to go idle and list every file it fetched."""
    from playwright.sync_api import sync_playwright

    site = Path(site).resolve()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    results = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            for page_path in pages:
                context = browser.new_context()  # empty cache: a first visit
                page = context.new_page()
                fetched: list[tuple[str, str]] = []
                page.on("requestfinished", lambda r: fetched.append((r.resource_type, r.url)))
                page.goto(base + page_path, wait_until="networkidle")
                page.wait_for_timeout(300)
                before_scroll = len(fetched)
                height = page.evaluate("document.body.scrollHeight")
                for y in range(0, int(height) + 800, 800):
                    page.evaluate(f"window.scrollTo(0, {y})")
                    page.wait_for_timeout(30)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(300)
                context.close()
                by_type: dict[str, list[tuple[str, int, int]]] = {}
                for order, (kind, url) in enumerate(fetched):
                    if not url.startswith(base):
                        by_type.setdefault("external", []).append((url, 0, 0, order))
                        continue
                    rel = url[len(base):].split("?")[0].split("#")[0] or "index.html"
                    path = site / rel
                    if path.is_dir():
                        path = path / "index.html"
                    if not path.is_file():
                        continue
                    data = path.read_bytes()
                    by_type.setdefault(kind, []).append((rel, len(data), gz_size(data), order))
                html = (site / page_path).read_bytes()
                inline_data = sum(len(b) for b in inline_json_blocks(html))
                results.append(PageLoad(page_path, by_type, inline_js_bytes(html), inline_data, before_scroll))
            browser.close()
    finally:
        server.shutdown()
    return results


# ---------------------------------------------------------------------------------------------- profile


def profile_call(fn, *args) -> pstats.Stats:
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn(*args)
    finally:
        prof.disable()
    return pstats.Stats(prof)


def _where(filename: str) -> str:
    """Short location of a profiled function: package-relative path, or the built-in's name."""
    if filename == "~":
        return "built-in"
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    for root in ("site_builder/", "benchmarks/"):
        if root in filename:
            return root + filename.split(root, 1)[1]
    return Path(filename).name


def package_of(filename: str, name: str) -> str:
    """Top-level package a profiled function belongs to (for 'where the time goes' by library)."""
    where = _where(filename)
    if "importlib._bootstrap" in filename or re.search(r"method (marshal|_imp)\.", name):
        return "(importing modules)"
    if re.search(r"/re/_(parser|compiler)\.py$", filename):
        return "(compiling regexes)"
    if where == "built-in":
        # C functions: name like "<built-in method pykatex.renderToString>" or "<method 'sub' of ...>"
        m = re.search(r"(?:method|function) ([\w]+)\.", name)
        return (m.group(1) if m else "(C built-ins: I/O, str, re, ...)") + ("" if not m else " (C)")
    parts = where.split("/")
    if parts[0] == "site_builder" and len(parts) > 2:
        return "site_builder." + parts[1]
    return parts[0].removesuffix(".py")


def top_functions(stats: pstats.Stats, key: str, n: int) -> list[tuple[str, int, float, float]]:
    """[(function, ncalls, tottime, cumtime)] sorted by `key` ('tottime' or 'cumtime')."""
    rows = []
    for (filename, line, name), (cc, ncalls, tottime, cumtime, _) in stats.stats.items():
        label = name if filename == "~" else f"{_where(filename)}:{line}({name})"
        rows.append((label, ncalls, tottime, cumtime))
    rows.sort(key=lambda r: r[2] if key == "tottime" else r[3], reverse=True)
    return rows[:n]


def time_by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _n, tottime, _cum, _) in stats.stats.items():
        pkg = package_of(filename, name)
        totals[pkg] = totals.get(pkg, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)


def calls_matching(stats: pstats.Stats, pattern: str) -> int:
    """Number of calls of functions whose label matches `pattern` (e.g. how many formulas were rendered)."""
    rx = re.compile(pattern)
    total = 0
    for (filename, line, name), (_cc, ncalls, *_rest) in stats.stats.items():
        if rx.search(f"{_where(filename)}:{name}"):
            total += ncalls
    return total
