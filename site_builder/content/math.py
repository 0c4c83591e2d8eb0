"""TeX -> HTML with KaTeX at build time (pykatex runs KaTeX inside QuickJS), with a persistent cache.

Pages carry no math JavaScript: only KaTeX's CSS and fonts, which must be the same KaTeX version as the
renderer (see site.assets). The cache is keyed by (TeX, display mode, KaTeX version), so a rebuild renders
only formulas it has never seen.
"""

from __future__ import annotations

import hashlib
import re
import time
from importlib.metadata import version
from pathlib import Path

import orjson
import pykatex

from site_builder.errors import UserError
from site_builder.fsutil import write_bytes_atomic

# pykatex does not expose the KaTeX version it embeds; this table does, per pykatex release.
KATEX_IN_PYKATEX = {"0.1.1": "0.16.22"}

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

    def render(self, tex: str, display: bool, *, path: str, line: int) -> str:
        self.calls += 1
        key = hashlib.sha256(f"{self.version}\0{int(display)}\0{tex}".encode()).hexdigest()
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
