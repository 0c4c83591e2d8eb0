"""TeX -> HTML with KaTeX at build time (pykatex runs KaTeX inside QuickJS), with a persistent cache.

Pages carry no math JavaScript: only KaTeX's CSS and fonts, which must be the same KaTeX version as the
renderer (see site.assets). The cache is keyed by (TeX, display mode, KaTeX version), so a rebuild renders
only formulas it has never seen.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import time
from importlib.metadata import version
from pathlib import Path

import orjson
import pykatex

from site_builder.errors import UserError
from site_builder.fsutil import write_bytes_atomic
from site_builder.signals import quiet_worker

# pykatex does not expose the KaTeX version it embeds; this table does, per pykatex release.
KATEX_IN_PYKATEX = {"0.1.1": "0.16.22"}

POOL_MIN = 200  # new formulas below which prerender() does not start a pool (measured: benchmarks.build)

LABEL_RE = re.compile(r"\\label\{([^{}]*)\}")
LABEL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


def katex_version() -> str:
    pykatex_version = version("pykatex")
    try:
        return KATEX_IN_PYKATEX[pykatex_version]
    except KeyError:
        raise UserError(
            f"pykatex {pykatex_version} is installed but site_builder only knows which KaTeX is inside "
            f"pykatex {', '.join(KATEX_IN_PYKATEX)}; install a known version (pip install -e .)"
        ) from None


def split_label(tex: str, *, path: str, line: int) -> tuple[str, str | None]:
    """Remove one `\\label{...}` from display TeX (KaTeX has no \\label) and return (tex, label)."""
    labels = LABEL_RE.findall(tex)
    if not labels:
        return tex, None
    if len(labels) > 1:
        raise UserError(f"one \\label per display formula, found {len(labels)}: {', '.join(labels)}", path=path, line=line)
    label = labels[0].strip()
    if not LABEL_NAME_RE.match(label):
        raise UserError(f"bad label '{label}': use letters, digits and : . _ - (for example eq:sigreg)", path=path, line=line)
    return LABEL_RE.sub("", tex), label


def _render_chunk(chunk: list[tuple[str, bool]]) -> list[str | None]:
    """In a pool worker: KaTeX HTML per formula, None for TeX that KaTeX rejects."""
    out = []
    for tex, display in chunk:
        try:
            out.append(pykatex.renderToString(tex, displayMode=display, throwOnError=True))
        except pykatex.ParseError:
            out.append(None)
    return out


class MathRenderer:
    """Renders formulas through KaTeX, remembering every result in `cache_file` (if given)."""

    def __init__(self, cache_file: Path | None = None):
        self.version = katex_version()
        self.cache_file = cache_file
        self.cache: dict[str, str] = {}
        if cache_file and cache_file.exists():
            try:
                self.cache = orjson.loads(cache_file.read_bytes())
            except orjson.JSONDecodeError:
                self.cache = {}  # a damaged cache is only a slower build
        self.dirty = False
        self.calls = 0  # formulas asked for
        self.rendered = 0  # formulas actually sent to KaTeX (cache misses)
        self.seconds = 0.0  # time spent inside KaTeX

    def _key(self, tex: str, display: bool) -> str:
        return hashlib.sha256(f"{self.version}\0{int(display)}\0{tex}".encode()).hexdigest()

    def prerender(self, formulas: list[tuple[str, bool]], processes: int) -> None:
        """Render the formulas not in the cache in a pool of `processes` workers when there are at least
        POOL_MIN of them (fewer do not pay for the pool's start). Results are the same strings render()
        would make; a formula KaTeX rejects is left to render(), which reports it with file and line."""
        todo = sorted({(tex, display) for tex, display in formulas if self._key(tex, display) not in self.cache})
        if processes < 2 or len(todo) < POOL_MIN or "fork" not in multiprocessing.get_all_start_methods():
            return
        start = time.perf_counter()
        chunks = [todo[k :: processes * 4] for k in range(processes * 4)]
        with multiprocessing.get_context("fork").Pool(processes, initializer=quiet_worker) as pool:
            for chunk, htmls in zip(chunks, pool.map(_render_chunk, chunks)):
                for (tex, display), html in zip(chunk, htmls):
                    if html is not None:
                        self.cache[self._key(tex, display)] = html
                        self.rendered += 1
                        self.dirty = True
        self.seconds += time.perf_counter() - start

    def render(self, tex: str, display: bool, *, path: str, line: int) -> str:
        self.calls += 1
        key = self._key(tex, display)
        html = self.cache.get(key)
        if html is None:
            start = time.perf_counter()
            try:
                html = pykatex.renderToString(tex, displayMode=display, throwOnError=True)
            except pykatex.ParseError as exc:
                shown = tex.strip().replace("\n", " ")
                raise UserError(f"TeX error in ${shown[:80]}$: {exc}", path=path, line=line) from None
            self.seconds += time.perf_counter() - start
            self.rendered += 1
            self.cache[key] = html
            self.dirty = True
        return html

    def save(self) -> None:
        if self.cache_file and self.dirty:
            write_bytes_atomic(self.cache_file, orjson.dumps(self.cache, option=orjson.OPT_SORT_KEYS))
            self.dirty = False
