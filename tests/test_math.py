"""KaTeX at build time: Node's KaTeX and pykatex agree byte for byte; formulas are bounded in length and
render time (a killable Node worker), and Ctrl-C stops a build that is rendering formulas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from site_builder.content import math as math_module
from site_builder.content.markdown import parse_markdown
from site_builder.content.math import Formula, MathRenderer, NodeKatex, PyKatex, make_engine
from site_builder.errors import UserError
from site_builder.site.build import build_site
from tests.conftest import sigint_as_in_a_terminal, write_site

REPO = Path(__file__).resolve().parent.parent
KATEX = REPO / "node_modules" / "katex"


def chapter_formulas() -> list[Formula]:
    """Every formula of the real chapters, as the build asks for them."""
    out = []
    for source in sorted((REPO / "content").glob("*.md")):
        doc = parse_markdown(source.read_text(encoding="utf-8"), source.name)
        for token in doc.tokens:
            if token.type == "math_block":
                out.append(Formula(token.meta["tex"], True, source.name, token.map[0] + 1))
            for child in token.children or []:
                if child.type in ("math_inline", "math_inline_double"):
                    out.append(Formula(child.content, child.type == "math_inline_double", source.name, 1))
    return out


def test_node_and_pykatex_render_byte_identical_html():
    assert isinstance(make_engine(KATEX), NodeKatex), "node and node_modules/katex are needed (npm ci)"
    formulas = chapter_formulas()
    assert len(formulas) > 200
    formulas += [Formula(r"\frac{1}{", False, "x.md", 1), Formula(r"\nope x", True, "x.md", 2)]
    node = NodeKatex("node", KATEX)
    try:
        by_node = node.render(formulas, processes=2)  # two workers: answers still in order
    finally:
        node.close()
    by_pykatex = PyKatex().render(formulas)
    assert by_node == by_pykatex
    assert by_node[-1].html is None and by_node[-1].error.startswith("Undefined control sequence: \\nope")


def test_a_site_renders_the_same_with_node_and_with_pykatex(tmp_path, monkeypatch):
    formulas = " ".join(f"$x_{{{i}}}^2 + \\frac{{{i}}}{{y}}$" for i in range(24))
    # chapter 1 (the home page has no equation numbers)
    files = {"content/index.md": "---\ntitle: Home\n---\n\nHello.\n",
             "content/one.md": f"---\ntitle: One\n---\n\n{formulas}\n\n$$\na = b \\label{{eq:a}}\n$$\n\nSee \\eqref{{eq:a}}.\n"}
    node = build_site(write_site(tmp_path / "node", files))
    monkeypatch.setattr(math_module.shutil, "which", lambda name: None)  # no node on PATH: pykatex
    fallback = build_site(write_site(tmp_path / "pykatex", files))
    assert node.formulas_rendered == fallback.formulas_rendered == 25
    assert (tmp_path / "node/dist/one.html").read_bytes() == (tmp_path / "pykatex/dist/one.html").read_bytes()
    assert "(1.1)" in (tmp_path / "node/dist/one.html").read_text()  # the labelled formula got its number


def test_a_tex_error_names_its_line_whichever_engine(tmp_path, monkeypatch):
    files = {"content/index.md": "---\ntitle: Home\n---\n\n" + " ".join(f"$y_{i}$" for i in range(30)) + "\n\nLine 7 $\\frac{1$ breaks.\n"}
    with pytest.raises(UserError) as node_error:
        build_site(write_site(tmp_path / "node", files))
    monkeypatch.setattr(math_module.shutil, "which", lambda name: None)
    with pytest.raises(UserError) as pykatex_error:
        build_site(write_site(tmp_path / "pykatex", files))
    assert str(node_error.value) == str(pykatex_error.value)
    assert str(node_error.value).startswith("content/index.md:7: TeX error in $\\frac{1$: ")


def test_a_megabyte_formula_is_a_one_line_error_within_seconds(tmp_path):
    huge = "x + " * 250_000  # 1 MB
    root = write_site(tmp_path / "site", {"content/index.md": f"---\ntitle: Home\n---\n\nText.\n\n$$\n{huge}\n$$\n"})
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "site_builder", "build", "--root", str(root)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: content/index.md:7: formula of 1,000,00")
    assert "characters; the limit is 20,000: split it into smaller formulas" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert not (root / "dist").exists()


def slow_formula(i: int) -> str:
    """Within the length limit (19,300 characters), but about a second of KaTeX each."""
    return f"\\text{{{i}}}" + "\\begin{array}{" + "c" * 50 + "}" + ("a&" * 49 + "a\\\\") * 190 + "\\end{array}"


def test_a_formula_that_renders_too_long_is_killed_and_named(tmp_path, monkeypatch):
    # 0.1 s: a warm Node renders slow_formula in ~0.22 s on an idle machine (slower under load), "b" in ~1 ms
    monkeypatch.setattr(math_module, "RENDER_SECONDS", 0.1)
    renderer = MathRenderer(None, KATEX)
    quick = [Formula(f"a_{i}", False, "content/a.md", 3) for i in range(5)]
    renderer.prerender(quick, processes=1)  # in the background: render() waits for each one
    assert [renderer.render(f.tex, f.display, path=f.path, line=f.line).startswith('<span class="katex">') for f in quick] == [True] * 5
    worker = renderer.engine.workers[0]
    slow = [Formula("b", False, "content/a.md", 4), Formula(slow_formula(0), True, "content/a.md", 9)]
    renderer.prerender(slow, processes=1)
    assert renderer.render("b", False, path="content/a.md", line=4)  # answered in time
    with pytest.raises(UserError) as error:
        renderer.render(slow[1].tex, True, path="content/a.md", line=9)
    assert str(error.value) == "content/a.md:9: formula took longer than 0.1 s to render; simplify it or split it"
    assert worker.poll() is not None  # killed, not left running
    assert renderer.engine.workers == []


def test_ctrl_c_stops_a_build_rendering_formulas(tmp_path):
    body = "\n\n".join(f"$$\n{slow_formula(i)}\n$$" for i in range(40))  # ~40 s of KaTeX
    root = write_site(tmp_path / "site", {"content/index.md": f"---\ntitle: Home\n---\n\n{body}\n"})
    (root / "dist").mkdir()
    (root / "dist" / "index.html").write_text("previous build")
    proc = subprocess.Popen([sys.executable, "-m", "site_builder", "build", "--root", str(root), "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    workers = []
    deadline = time.monotonic() + 20
    while not workers and time.monotonic() < deadline:  # wait until it is rendering in Node
        time.sleep(0.1)
        workers = [pid for pid in _children(proc.pid) if b"katex_worker.js" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers, "the build never started a KaTeX worker"
    time.sleep(0.5)
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - interrupted < 3
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert (root / "dist" / "index.html").read_text() == "previous build"


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry))
    return out
