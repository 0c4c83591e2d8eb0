"""Build speed, page weight and chart payload: site_builder against MkDocs + Material on the same chapters.

    python -m benchmarks.build                      # 12 chapters, 5 repetitions (a few minutes)
    python -m benchmarks.build --scale 12,50,200,1000 --reps 3

Prints tables: medians over --reps runs (with min-max), ratios site_builder / MkDocs measured in the same
invocation, the machine's load, bytes per page, chart payloads, ms per formula, a cProfile of the cold
build and, with --scale, cold build time against the number of chapters. Nothing here asserts a time.
See benchmarks/mkdocs_site.py for how the MkDocs baseline is configured and what it leaves out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import corpus, measure, mkdocs_site
from benchmarks.measure import Series

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- output


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in cells:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    sys.stdout.flush()


def kb(n: float) -> str:
    return f"{n / 1024:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


# ---------------------------------------------------------------------------------------------- tools


class SiteBuilder:
    """`python -m site_builder build` on a corpus; cold means no dist and no cache."""

    name = "site_builder"

    def __init__(self, root: Path, jobs: int | None = None):
        self.root, self.out, self.jobs = root, root / "dist", jobs
        self.corpus_root = root

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "site_builder", "build", "--root", str(self.root), "--out", str(self.out)]
        return cmd + (["--jobs", str(self.jobs)] if self.jobs else [])

    def clean(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        shutil.rmtree(self.root / ".cache", ignore_errors=True)

    def build(self, *extra: str) -> measure.Sample:
        return measure.run_timed(self.command() + list(extra), cwd=self.root)

    def sync(self) -> None:
        pass


class MkDocs:
    """`mkdocs build` of the translated chapters (variant 'client' or 'katex', see mkdocs_site.py)."""

    def __init__(self, corpus_root: Path, work: Path, n: int, variant: str, katex_dist: Path | None, dirty=False):
        self.name = f"mkdocs-{variant}" + ("-dirty" if dirty else "")
        self.corpus_root, self.dirty = corpus_root, dirty
        self.project = work / f"mkdocs-{variant}"
        self.out = self.project / "site"
        self.config = mkdocs_site.write_project(corpus_root, self.project, n, variant, katex_dist)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(self.config), "-d", str(self.out)]
        return cmd + (["--dirty"] if self.dirty else [])

    def clean(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)

    def build(self) -> measure.Sample:
        return measure.run_timed(self.command(), cwd=self.project)

    def sync(self) -> None:
        mkdocs_site.sync_docs(self.corpus_root, self.project)


def katex_dist() -> Path | None:
    """KaTeX's dist/ (CSS, fonts, JS) for the MkDocs baseline: the copy `npm ci` installs for site_builder."""
    dist = REPO / "node_modules" / "katex" / "dist"
    return dist if dist.is_dir() else None


# ---------------------------------------------------------------------------------------------- phases


def time_phases(tool, reps: int, n: int) -> dict[str, Series]:
    """Cold (clean, build), no-op (build again) and one change (edit one chapter, build), `reps` each."""
    res = {"cold": Series(), "no-op": Series(), "one change": Series()}
    for _ in range(reps):
        tool.clean()
        res["cold"].samples.append(tool.build())
    tool.build()  # settle (a first warm build may still write caches)
    for _ in range(reps):
        res["no-op"].samples.append(tool.build())
    for rep in range(reps):
        corpus.touch_chapter(tool.corpus_root, 1 + rep % n, edit=int(time.time() * 1000))
        tool.sync()
        res["one change"].samples.append(tool.build())
    return res


def speed_section(tools: list, reps: int, n: int) -> dict:
    print(f"\n== Build time, {n} chapters, median of {reps} (min-max) seconds; load before: {measure.load()}")
    results = {}
    for tool in tools:
        results[tool.name] = time_phases(tool, reps, n)
        print(f"  {tool.name}: done (load {measure.load()})", flush=True)
    rows = []
    base = tools[0].name
    for tool in tools:
        r = results[tool.name]
        row = [tool.name]
        for phase in ("cold", "no-op", "one change"):
            row += [f"{r[phase].median:.3f}", r[phase].spread, f"{r[phase].cpu:.2f}"]
        rows.append(row)
    headers = ["tool"]
    for phase in ("cold", "no-op", "one change"):
        headers += [f"{phase} s", "min-max", "cpu s"]
    print_table("Build time (wall seconds, median and min-max; 'cpu s' = median CPU seconds of the build and "
                "its child processes)", headers, rows)
    ratio_rows = []
    phases = ("cold", "no-op", "one change")
    for tool in tools[1:]:
        ratio_rows.append([f"{base} / {tool.name}"]
                          + [ratio(results[base][p].median, results[tool.name][p].median) for p in phases]
                          + [ratio(results[base][p].cpu, results[tool.name][p].cpu) for p in phases])
    print_table("Ratios of medians (target: cold <= 0.20 against MkDocs)",
                ["", "cold", "no-op", "one change", "cold cpu", "no-op cpu", "one change cpu"], ratio_rows)
    forced = Series([tools[0].build("--force") for _ in range(reps)])
    print(f"  site_builder --force (every page re-rendered, formula cache warm): median {forced.median:.3f} s "
          f"({forced.spread}), cpu {forced.cpu:.2f} s; its last words: {forced.samples[-1].output.strip()[-200:]}")
    results[base]["forced, warm cache"] = forced
    return {name: {p: [vars(s) | {"output": s.output[-500:]} for s in series.samples] for p, series in r.items()}
            for name, r in results.items()}


def startup_section() -> dict:
    """Interpreter start and import cost: the floor under any no-op build run as a command."""
    rows, out = [], {}
    for label, code in [("python -c pass", "pass"),
                        ("import site_builder.cli", "import site_builder.cli"),
                        ("+ import site_builder.site.command", "import site_builder.site.command"),
                        ("import mkdocs.commands.build", "import mkdocs.commands.build")]:
        try:
            samples = Series([measure.run_timed([sys.executable, "-c", code]) for _ in range(5)])
        except SystemExit:  # module not there (yet)
            rows.append([label, "n/a"])
            continue
        rows.append([label, f"{samples.median:.3f}"])
        out[label] = samples.median
    print_table("Start-up floor (median of 5, seconds)", ["command", "wall s"], rows)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import site_builder.site.command"],
                          capture_output=True, text=True)
    top = _import_times(proc.stderr)[:10]
    if top:
        print_table("Slowest imports behind `site_builder build` (python -X importtime, cumulative, ms; "
                    "one run; a package's cost includes what it imports)", ["module", "ms"], [[m, f"{us / 1000:.0f}"] for m, us in top])
    out["imports_ms"] = {m: us / 1000 for m, us in top}
    return out


def _import_times(stderr: str) -> list[tuple[str, int]]:
    """Top-level packages by cumulative import time, from `python -X importtime` output."""
    best: dict[str, int] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| \s*(\S+)", line)
        if not m or m.group(2).startswith(("site_builder", "site", "encodings", "_")):
            continue
        package = m.group(2).split(".")[0]  # a package's cost = its slowest (outermost) import
        best[package] = max(best.get(package, 0), int(m.group(1)))
    return sorted(best.items(), key=lambda kv: kv[1], reverse=True)




def bytes_section(tools: list) -> dict:
    out = {}
    rows = []
    for tool in tools:
        tool.clean()
        tool.build()
        total, files = measure.tree_size(tool.out)
        pages = measure.html_pages(tool.out)
        html_sizes = sorted(p.stat().st_size for p in pages)
        html_gz = sorted(measure.gz_size(p.read_bytes()) for p in pages)
        rows.append([tool.name, kb(total), files, len(pages), kb(html_sizes[len(pages) // 2]), kb(html_sizes[-1]),
                     kb(html_gz[len(pages) // 2])])
        out[tool.name] = {"dist_bytes": total, "files": files, "pages": len(pages), "html_bytes": html_sizes}
    print_table("Output size (KB)", ["tool", "dist KB", "files", "pages", "HTML/page median", "max", "gzip median"],
                rows)
    kinds = ["html", "js", "css", "fonts", "json", "csv", "other"]
    by_kind_rows = []
    for tool in tools:
        sizes = dict.fromkeys(kinds, 0)
        for p in tool.out.rglob("*"):
            if p.is_file():
                sizes[_kind(p)] += p.stat().st_size
        out[tool.name]["by_kind"] = sizes
        by_kind_rows.append([tool.name] + [kb(sizes[k]) for k in kinds])
    print_table("dist/ by kind of file (KB)", ["tool"] + kinds, by_kind_rows)

    rows = []
    for tool in tools:
        # the corpus' rule: even chapters carry charts, odd ones none
        with_charts, without = f"{corpus.chapter_slug(2)}.html", f"{corpus.chapter_slug(1)}.html"
        loads = measure.browser_loads(tool.out, ["index.html", without, with_charts])
        out[tool.name]["page_loads"] = [vars(load) for load in loads]
        for load, label in zip(loads, ["home", "page, no charts", "page, charts"]):
            html, html_gz = load.total("document")
            js, js_gz = load.total("script")
            data, data_gz = (a + b for a, b in zip(load.total("fetch"), load.total("xhr")))
            css, css_gz = load.total("stylesheet")
            fonts, _ = load.total("font")
            ext = len(load.by_type.get("external", []))
            rows.append([tool.name, label, kb(html), kb(html_gz), kb(load.inline_data), kb(js), kb(js_gz),
                         kb(load.inline_js), kb(data), kb(data_gz), kb(css), kb(fonts), ext,
                         kb(load.gzip_total(before_scroll=True)), kb(load.gzip_total())])
    print_table("What a first visit downloads (headless Chromium over HTTP, scrolled to the end; KB). "
                "'in HTML: data' = chart JSON inside the page; 'fetched data' = JSON fetched by scripts; JS includes "
                "chart data loaded as scripts; last two: gzip of everything fetched before scrolling and after "
                "scrolling to the end (goal: <= 600 and <= 1,500)",
                ["tool", "page", "HTML", "HTML gz", "in HTML: data", "JS", "JS gz", "inline JS",
                 "fetched data", "gz", "CSS", "fonts", "external", "gz before scroll", "gz after"], rows)
    return out


def _kind(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    if ext in ("woff", "woff2", "ttf"):
        return "fonts"
    return ext if ext in ("html", "js", "css", "json", "csv") else "other"


def charts_section(site: Path) -> dict:
    """Every chart's data in dist/ (JSON files, data/charts/*.js, or JSON blocks inside pages): raw, gzip, longest trace."""
    payloads = [(str(p.relative_to(site)), p.read_bytes()) for p in sorted(site.rglob("*.json")) if _looks_like_chart(p)]
    from site_builder.charts.script import read_chart_script

    for script in sorted((site / "data" / "charts").glob("*.js")):  # site_builder's chart data scripts
        found = read_chart_script(script.read_bytes())
        if found:
            payloads.append((str(script.relative_to(site)), found[1]))
    for page in measure.html_pages(site):
        blocks = measure.inline_json_blocks(page.read_bytes())
        payloads += [(f"{page.relative_to(site)} block {k}", b) for k, b in enumerate(blocks, 1)]
    rows, out = [], []
    for name, data in payloads:
        points = _max_trace_points(json.loads(data))
        out.append({"file": name, "bytes": len(data), "gzip": measure.gz_size(data), "max_points": points})
    if not out:
        print("\nChart data: no chart JSON files found in dist/")
        return {}
    raw = sorted(o["bytes"] for o in out)
    gz = sorted(o["gzip"] for o in out)
    pts = max(o["max_points"] for o in out)
    over = [o["file"] for o in out if o["gzip"] > 150 * 1024]
    rows = [[len(out), kb(raw[len(raw) // 2]), kb(raw[-1]), kb(gz[len(gz) // 2]), kb(gz[-1]), pts, len(over)]]
    print_table("Chart JSON per chart (KB; target: none over 150 KB gzip, <= 2,000 points a trace)",
                ["charts", "raw median", "raw max", "gzip median", "gzip max", "max points/trace", "over 150 KB gz"],
                rows)
    biggest = max(out, key=lambda o: o["gzip"])
    print(f"  largest: {biggest['file']} ({kb(biggest['bytes'])} KB raw, {kb(biggest['gzip'])} KB gzip)")
    return {"charts": out}


def _looks_like_chart(path: Path) -> bool:
    if "pagefind" in path.parts or path.name in ("search_index.json",):
        return False
    try:
        head = path.read_bytes()[:4000]
    except OSError:
        return False
    return b'"data"' in head or b'"traces"' in head or b'"x"' in head


def _max_trace_points(obj) -> int:
    """Length of the longest `x`/`y` list anywhere in a Plotly-like figure."""
    best = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("x", "y") and isinstance(v, list):
                    best = max(best, len(v))
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(v for v in o if isinstance(v, (dict, list)))
    return best


_DISPLAY = re.compile(r"\$\$\n?(.*?)\n?\$\$", re.S)
_INLINE = re.compile(r"\$([^$\n]+)\$")


def math_section(root: Path) -> dict:
    """Time KaTeX (pykatex, one core, in this process) over every formula of the corpus, first time seen."""
    import pykatex

    formulas = []
    for md in sorted((root / "content").glob("*.md")):
        text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
        formulas += [(re.sub(r"\\label\{[^}]*\}", "", f), True) for f in _DISPLAY.findall(text)]
        formulas += [(f, False) for f in _INLINE.findall(_DISPLAY.sub("", text))]
    pykatex.renderToString("x", displayMode=False)  # start-up of the JS engine, not per formula
    start = time.perf_counter()
    for tex, display in formulas:
        pykatex.renderToString(tex, displayMode=display)
    elapsed = time.perf_counter() - start
    unique = sorted(set(formulas))
    n_display = sum(d for _, d in formulas)
    per = 1000 * elapsed / len(formulas)
    # The build's engine: the unique formulas in 1 and 2 Node workers (start-up included), CPU of the workers too.
    node = {n: _node_render(unique, n) for n in (1, 2)}
    print_table("Math: pykatex over all formulas in this process; the unique ones in Node workers as the build does "
                "(wall s, start-up included; cpu s of the workers)",
                ["formulas", "display", "unique", "pykatex s", "ms/formula", "node 1 s", "cpu", "node 2 s", "cpu",
                 "pykatex / node 1"],
                [[len(formulas), n_display, len(unique), f"{elapsed:.2f}", f"{per:.2f}", f"{node[1][0]:.2f}",
                  f"{node[1][1]:.2f}", f"{node[2][0]:.2f}", f"{node[2][1]:.2f}",
                  f"{elapsed * len(unique) / len(formulas) / node[1][0]:.2f}x"]])
    return {"formulas": len(formulas), "display": n_display, "unique": len(unique), "seconds": elapsed,
            "ms_per_formula": per, "node_1": node[1], "node_2": node[2]}


def _node_render(formulas: list[tuple[str, bool]], processes: int) -> tuple[float, float]:
    """(wall s, worker cpu s) to render `formulas` in `processes` fresh Node workers (site_builder's NodeKatex)."""
    import resource

    from site_builder.content.math import Formula, NodeKatex

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    engine = NodeKatex("node", REPO / "node_modules" / "katex")
    try:
        engine.render([Formula(tex, display, "bench", 1) for tex, display in formulas], processes)
    finally:
        engine.close()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def profile_section(builder: SiteBuilder, n: int, top: int = 15) -> dict:
    """cProfile of a cold build and of a one-chapter-changed build, in this process (--jobs 1 if offered)."""
    from site_builder import cli

    args = ["build", "--root", str(builder.root), "--out", str(builder.out)]
    if builder_has_jobs():
        args += ["--jobs", "1"]
    cwd = os.getcwd()
    os.chdir(builder.root)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            builder.clean()
            stats = measure.profile_call(cli.main, args)
            corpus.touch_chapter(builder.root, 1, edit=int(time.time() * 1000))
            changed = measure.profile_call(cli.main, args)
    finally:
        os.chdir(cwd)
    total = max(r[3] for r in measure.top_functions(stats, "cumtime", 1))
    print(f"\n== cProfile of the cold {n}-chapter build (in-process{', --jobs 1' if builder_has_jobs() else ''}): "
          f"{total:.2f} s under the profiler")
    for line in said.getvalue().splitlines():
        if not line.startswith("warning:"):
            print(f"  site_builder said: {line}")
    pkgs = measure.time_by_package(stats)
    print_table("Where the time goes, by package (own time)", ["package", "s", "%"],
                [[p, f"{t:.2f}", f"{100 * t / total:.0f}"] for p, t in pkgs[:12]])
    print_table(f"Top {top} functions by own time", ["function", "calls", "own s", "cum s"],
                [[f[:90], c, f"{t:.3f}", f"{cu:.3f}"] for f, c, t, cu in measure.top_functions(stats, "tottime", top)])
    print_table(f"Top {top} functions by cumulative time", ["function", "calls", "own s", "cum s"],
                [[f[:90], c, f"{t:.3f}", f"{cu:.3f}"] for f, c, t, cu in measure.top_functions(stats, "cumtime", top)])
    counters = {
        "KaTeX renders (pykatex.renderToString)": r"renderToString",
        "markdown-it parses (MarkdownIt.parse)": r"markdown_it/main.py:parse$",
        "Pygments highlights (pygments.highlight)": r"pygments/__init__.py:highlight$",
        "Jinja2 template renders (Template.render)": r"jinja2/environment.py:render$",
    }
    rows = [[label, measure.calls_matching(stats, rx), measure.calls_matching(changed, rx)]
            for label, rx in counters.items()]
    print_table("Work done: cold build vs. after editing one chapter (calls)", ["", "cold", "one change"], rows)
    changed_total = max(r[3] for r in measure.top_functions(changed, "cumtime", 1))
    print(f"  one-change build under the profiler: {changed_total:.2f} s; by package: "
          + ", ".join(f"{p} {t:.2f}" for p, t in measure.time_by_package(changed)[:8]))
    print("  its top functions by own time: "
          + "; ".join(f"{f} {t:.2f}" for f, _c, t, _cu in measure.top_functions(changed, "tottime", 8)))
    return {"cold_top": measure.top_functions(stats, "tottime", 30), "packages": pkgs,
            "work": {r[0]: {"cold": r[1], "one change": r[2]} for r in rows}}


def builder_has_jobs() -> bool:
    proc = subprocess.run([sys.executable, "-m", "site_builder", "build", "--help"], capture_output=True, text=True)
    return "--jobs" in proc.stdout


def jobs_section(builder: SiteBuilder, reps: int) -> dict:
    """Does the process pool pay? Cold builds with --jobs 1 and 2."""
    rows, out = [], {}
    for jobs in (1, 2):
        builder.jobs = jobs
        series = Series()
        for _ in range(reps):
            builder.clean()
            series.samples.append(builder.build())
        out[jobs] = series.median
        rows.append([f"--jobs {jobs}", f"{series.median:.3f}", series.spread, f"{series.cpu:.2f}"])
    builder.jobs = None
    print_table("Cold build, one process vs. two (seconds)", ["", "median", "min-max", "cpu s"], rows)
    print(f"  speed-up with 2 jobs: {out[1] / out[2]:.2f}x")
    return out


def scale_section(sizes: list[int], reps: int, work: Path, katex: Path | None, with_mkdocs: bool) -> dict:
    rows, out = [], {}
    print(f"\n== Scaling: cold builds, median of {reps}; load before: {measure.load()}")
    for n in sizes:
        root = corpus.write_corpus(work / f"scale-{n}", n)
        tools = [SiteBuilder(root)]
        if with_mkdocs:
            mk_work = work / f"scale-{n}-mkdocs"
            tools += [MkDocs(root, mk_work, n, "client", katex), MkDocs(root, mk_work, n, "katex", katex)]
        times = {}
        for tool in tools:
            series = Series()
            for _ in range(reps):
                tool.clean()
                series.samples.append(tool.build())
            times[tool.name] = (series.median, series.cpu)
        dist_bytes, _ = measure.tree_size(tools[0].out)
        out[n] = times | {"site_builder dist bytes": dist_bytes}
        sb, sb_cpu = times["site_builder"]
        row = [n, f"{sb:.2f}", f"{sb_cpu:.2f}", f"{1000 * sb_cpu / n:.0f}", f"{dist_bytes / 2**20:.0f}"]
        for name in ("mkdocs-client", "mkdocs-katex"):
            if name in times:
                row += [f"{times[name][0]:.2f}", f"{times[name][1]:.2f}", ratio(sb, times[name][0])]
        rows.append(row)
        for tool in tools:
            tool.clean()
        print(f"  {n} chapters: " + ", ".join(f"{k} {w:.2f} s wall / {c:.2f} s cpu" for k, (w, c) in times.items())
              + f" (load {measure.load()})", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work / f"scale-{n}-mkdocs", ignore_errors=True)
    headers = ["chapters", "site_builder s", "cpu s", "cpu ms/chapter", "dist MB"]
    if with_mkdocs:
        headers += ["mkdocs-client s", "cpu s", "ratio", "mkdocs-katex s", "cpu s", "ratio"]
    print_table("Cold build time against size (wall median, CPU median; linear = constant ms/chapter; "
                "ratio = site_builder / MkDocs wall)", headers, rows)
    return out


# ---------------------------------------------------------------------------------------------- main


def environment() -> dict:
    def ver(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "not installed"

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "site_builder", "templates"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    env = {
        "cpus": os.cpu_count(), "load": measure.load(), "python": platform.python_version(),
        "site_builder commit": (commit.stdout.strip() or "?") + (" + uncommitted changes" if dirty else ""),
        "mkdocs": ver("mkdocs"),
        "mkdocs-material": ver("mkdocs-material"), "pykatex": ver("pykatex"), "markdown-it-py": ver("markdown-it-py"),
    }
    print("== Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.build", description=__doc__.split("\n")[0])
    parser.add_argument("--chapters", type=int, default=12, help="chapters in the main corpus (default 12)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per measurement (default 5)")
    parser.add_argument("--scale", default="", help="comma-separated chapter counts for the scaling table, "
                        "e.g. 12,50,200,1000 (default: skip)")
    parser.add_argument("--scale-reps", type=int, default=1, help="repetitions per size in --scale (default 1)")
    parser.add_argument("--scale-only", action="store_true", help="run only the --scale table")
    parser.add_argument("--no-mkdocs", action="store_true", help="time site_builder only")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium page-weight measurement")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write every number measured to this JSON file")
    args = parser.parse_args(argv)

    results: dict = {"environment": environment()}
    work = args.keep or Path(tempfile.mkdtemp(prefix="site_builder-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if not args.scale_only:
            main_sections(args, work, results)
        if args.scale:
            katex = None if args.no_mkdocs else katex_dist()
            sizes = [int(s) for s in args.scale.split(",")]
            results["scale"] = scale_section(sizes, args.scale_reps, work, katex, not args.no_mkdocs)
        print(f"\n== Done in {time.perf_counter() - start:.0f} s; load after: {measure.load()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


def main_sections(args: argparse.Namespace, work: Path, results: dict) -> None:
    """Everything but the scaling table, on one corpus of --chapters chapters."""
    start = time.perf_counter()
    root = corpus.write_corpus(work / "corpus", args.chapters)
    words = sum(len(p.read_text().split()) for p in (root / "content").glob("*.md"))
    print(f"== Corpus: {args.chapters} chapters, {words} words (incl. markup), {len(corpus.RUNS)} runs x "
          f"{corpus.STEPS} rows, generated in {time.perf_counter() - start:.1f} s under {work}")
    katex = None if args.no_mkdocs else katex_dist()
    if not args.no_mkdocs and katex is None:
        print("  (node_modules/katex missing, run `npm ci`: the MkDocs baseline runs without KaTeX's files; "
              "its page weight then misses KaTeX's JS, CSS and fonts)")
    builder = SiteBuilder(root)
    tools = [builder]
    if not args.no_mkdocs:
        tools += [MkDocs(root, work, args.chapters, "client", katex),
                  MkDocs(root, work, args.chapters, "katex", katex),
                  MkDocs(root, work, args.chapters, "katex", katex, dirty=True)]
    results["startup"] = startup_section()
    results["speed"] = speed_section(tools, args.reps, args.chapters)
    if builder_has_jobs():
        results["jobs"] = jobs_section(builder, args.reps)
    if not args.no_browser:
        results["bytes"] = bytes_section([t for t in tools if not t.name.endswith("dirty")])
    else:
        builder.clean()
        builder.build()
    results["charts"] = charts_section(builder.out)
    results["math"] = math_section(root)
    if not args.no_profile:
        results["profile"] = profile_section(builder, args.chapters)


if __name__ == "__main__":
    raise SystemExit(main())
