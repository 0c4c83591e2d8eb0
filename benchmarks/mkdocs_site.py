"""The same chapters as an MkDocs + Material project, the baseline the builder is timed against.

Two variants, both offline-capable:

- `client`: stock Material. pymdownx.arithmatex (generic) leaves math as TeX in the page and KaTeX renders
  it in the browser (katex.min.js + auto-render, served from the site, no CDN). The build does no math.
- `katex`: the same plus a hook (benchmarks/mkdocs_katex_hook.py) that renders every formula at build time
  with pykatex, the renderer site_builder uses. This variant does the same math work as site_builder.

Both: tables, footnotes, admonitions (our callouts), heading permalinks, Pygments highlighting at build
time (pymdownx.highlight + superfences), Material's default search plugin. Charts, data tables and values
from data have no MkDocs equivalent: chart and table fences are omitted, `{{ … }}` values become plain
text, `\\eqref`/`\\ref` become plain text and `\\label` is dropped (KaTeX has no cross-page numbering).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from benchmarks.corpus import chapter_slug

HOOK = Path(__file__).with_name("mkdocs_katex_hook.py")

_DATA_FENCE = re.compile(r"^```(chart|table)\n.*?^```\n", re.S | re.M)
_VALUE = re.compile(r"\{\{[^}]*\}\}")
_EQREF = re.compile(r"\\(eq)?ref\{([^}]*)\}")
_LABEL = re.compile(r"\\label\{[^}]*\}\n?")
_CALLOUT = re.compile(r"^::: (\w+) ([^\n]*)\n(.*?)^:::\n", re.S | re.M)


def to_mkdocs_markdown(text: str) -> str:
    """Translate one chapter from the README's syntax to MkDocs' (see module docstring for what is lost)."""
    text = _DATA_FENCE.sub("", text)
    text = _VALUE.sub("12.3%", text)
    text = _LABEL.sub("", text)
    text = _EQREF.sub(lambda m: f"({m.group(2)})", text)
    return _CALLOUT.sub(
        lambda m: f'!!! {m.group(1)} "{m.group(2)}"\n' + "".join("    " + line + "\n" for line in m.group(3).splitlines()),
        text,
    )


def sync_docs(corpus_root: Path, project: Path) -> None:
    """Mirror content/*.md into project/docs/, translated; only files whose translation changed are written."""
    docs = project / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for src in sorted((corpus_root / "content").glob("*.md")):
        dst = docs / src.name
        new = to_mkdocs_markdown(src.read_text())
        if not dst.exists() or dst.read_text() != new:
            dst.write_text(new)


def write_project(corpus_root: Path, project: Path, n_chapters: int, variant: str, katex_dist: Path | None) -> Path:
    """Write an MkDocs project for the corpus under `project`; return its mkdocs.yml."""
    project.mkdir(parents=True, exist_ok=True)
    sync_docs(corpus_root, project)
    config = {
        "site_name": "Benchmark corpus",
        "use_directory_urls": False,
        "theme": {"name": "material"},
        "nav": [{"Home": "index.md"}] + [
            {f"Synthetic chapter {i}": f"{chapter_slug(i)}.md"} for i in range(1, n_chapters + 1)
        ],
        "markdown_extensions": [
            "tables", "footnotes", "admonition", "attr_list",
            {"toc": {"permalink": True}},
            {"pymdownx.highlight": {"use_pygments": True}},
            "pymdownx.superfences",
            {"pymdownx.arithmatex": {"generic": True}},
        ],
        "plugins": ["search"],
    }
    if variant == "katex":
        shutil.copy(HOOK, project / HOOK.name)
        config["hooks"] = [HOOK.name]
        if katex_dist:
            _copy_katex(katex_dist, project / "docs" / "katex", js=False)
            config["extra_css"] = ["katex/katex.min.css"]
    elif katex_dist:
        _copy_katex(katex_dist, project / "docs" / "katex", js=True)
        (project / "docs" / "katex" / "render.js").write_text(_AUTO_RENDER_CALL)
        config["extra_css"] = ["katex/katex.min.css"]
        config["extra_javascript"] = ["katex/katex.min.js", "katex/auto-render.min.js", "katex/render.js"]
    path = project / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# Material's documented KaTeX setup (https://squidfunk.github.io/mkdocs-material/reference/math/#katex).
_AUTO_RENDER_CALL = """document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$",  right: "$$",  display: true },
      { left: "$",   right: "$",   display: false },
      { left: "\\\\(", right: "\\\\)", display: false },
      { left: "\\\\[", right: "\\\\]", display: true }
    ],
  })
})
"""


def _copy_katex(dist: Path, dst: Path, js: bool) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(dist / "katex.min.css", dst / "katex.min.css")
    shutil.copytree(dist / "fonts", dst / "fonts", dirs_exist_ok=True)
    if js:
        shutil.copy(dist / "katex.min.js", dst / "katex.min.js")
        shutil.copy(dist / "contrib" / "auto-render.min.js", dst / "auto-render.min.js")
