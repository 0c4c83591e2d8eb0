"""Hostile and broken chapters (issue 9): every bad input is a one-line error naming the file and line,
exit 1, no traceback, and the previous dist/ byte-identical; raw HTML never reaches a page as markup.

Each test builds a small good site once, breaks one input, builds again through the real CLI.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from site_builder import cli
from tests.conftest import chart_figures

HISTORY = "_step,train/loss,probe/test_acc\n0,2.0,\n1,1.5,0.25\n2,1.25,\n3,1.0,0.5\n"

GOOD = {
    "site.toml": 'title = "Hostile"\n',
    "content/index.md": "---\ntitle: Home\nsummary: Home page.\n---\n\nSee [chapter A](a.md#first).\n",
    "content/a.md": (
        "---\ntitle: A\norder: 1\nsummary: First.\n---\n\n## First\n\nBest accuracy "
        "{{ runs/r/history.csv#probe/test_acc@max | .1% }} and $x^2$.\n\n"
        "```chart\nsource: runs/r/history.csv\ny: train/loss\ntitle: Loss\n```\n"
    ),
    "content/b.md": "---\ntitle: B\norder: 2\nsummary: Second.\n---\n\n## Second\n\nText.\n",
    "exports/runs/r/history.csv": HISTORY,
    "exports/runs/r/config.json": json.dumps({"lr": 0.002, "model/depth": 4}),
}


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def build(root: Path, *args: str) -> tuple[int, str, str]:
    """`python -m site_builder [args] build --root ROOT` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([*args, "build", "--root", str(root)])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def site(tmp_path) -> Path:
    """A good site with dist/ already built."""
    root = write(tmp_path / "site", GOOD)
    rc, _, err = build(root)
    assert rc == 0, err
    return root


def assert_rejected(site: Path, changes: dict[str, str | bytes], *where: str) -> str:
    """Apply `changes`, build: one-line error containing every `where`, exit 1, dist/ unchanged."""
    before = snapshot(site / "dist")
    write(site, changes)
    rc, out, err = build(site)
    lines = err.strip().splitlines()
    assert rc == 1, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for part in where:
        assert part in lines[0], (part, lines[0])
    assert snapshot(site / "dist") == before
    assert not [p for p in site.iterdir() if ".tmp-" in p.name]  # no staged leftovers beside dist/
    return lines[0]


def chapter(body: str, title: str = "A", order: int = 1) -> str:
    return f"---\ntitle: {title}\norder: {order}\n---\n\n{body}\n"


# --- front matter, chapters, links -----------------------------------------------------------------


def test_malformed_front_matter(site):
    assert_rejected(site, {"content/b.md": "---\ntitle: [unclosed\norder: 2\n---\n\nText.\n"}, "content/b.md:", "front matter")


def test_front_matter_that_is_not_a_mapping(site):
    assert_rejected(site, {"content/b.md": "---\n- just\n- a list\n---\n\nText.\n"}, "content/b.md:1", "mapping")


def test_duplicate_chapter_order(site):
    line = assert_rejected(site, {"content/b.md": chapter("## Second", "B", order=1)}, "content/", "order")
    assert "a.md" in line and "b.md" in line  # names both chapters


def test_duplicate_slug_in_site_toml(site):
    assert_rejected(site, {"site.toml": 'title = "Hostile"\nchapters = ["a", "b", "a"]\n'}, "site.toml", "'a'")


def test_slugs_that_differ_only_in_case(site):
    """A.md and a.md would overwrite each other's page on a case-insensitive file system (macOS, Windows)."""
    assert_rejected(site, {"content/A.md": chapter("## Other", "Other A", order=3)}, "content/", "A.md", "a.md")


def test_link_to_a_missing_chapter(site):
    assert_rejected(site, {"content/b.md": chapter("Intro.\n\nSee [nowhere](missing.md).", "B", 2)}, "content/b.md:8", "missing.md")


def test_link_to_a_missing_anchor(site):
    assert_rejected(site, {"content/b.md": chapter("Intro.\n\nSee [A](a.md#no-such-heading).", "B", 2)}, "content/b.md:8", "no-such-heading")


def test_reference_to_a_missing_label(site):
    assert_rejected(site, {"content/b.md": chapter("As \\eqref{eq:nope} shows.", "B", 2)}, "content/b.md:6", "eq:nope")


def test_unknown_chart_option_suggests_the_right_one(site):
    body = "```chart\nsource: runs/r/history.csv\ny: train/loss\ncolour: red\ntitel: Loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "colour")


def test_unknown_table_option(site):
    body = "```table\nsource: runs/r/config.json\nkeys: [lr]\nrows: 3\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "rows")


def test_chart_block_that_is_not_yaml(site):
    body = "```chart\nsource: [runs/r/history.csv\ny: train/loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:", "chart block")


def test_chart_naming_a_missing_column_lists_the_existing_ones(site):
    body = "```chart\nsource: runs/r/history.csv\ny: train/los\n```"
    line = assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "train/los", "runs/r/history.csv")
    assert "train/loss" in line and "probe/test_acc" in line


def test_value_naming_a_missing_key(site):
    body = "Depth {{ runs/r/config.json#model/width | d }}."
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "model/width", "model/depth")


def test_a_value_cut_off_by_a_table_cell_bar_is_an_error_and_an_escaped_bar_works(site):
    """A bare | inside a table row ends the cell, cutting {{ x | fmt }} in two: that must not render as text."""
    table = "| run | depth |\n| --- | --- |\n| r | {{ runs/r/config.json#model/depth | d }} |\n"
    line = assert_rejected(site, {"content/b.md": chapter(table, "B", 2)}, "content/b.md:8", "no closing", "\\|")
    assert "model/depth" in line
    write(site, {"content/b.md": chapter(table.replace(" | d }}", " \\| d }}"), "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    assert '<td><span class="value" title="runs/r/config.json#model/depth">4</span></td>' in (site / "dist/b.html").read_text()


def test_chart_naming_a_missing_file_shows_pending_never_a_number(site):
    """README policy: a source that does not exist yet is a visible pending box and a warning, not an error."""
    body = "```chart\nsource: runs/later/history.csv\ny: train/loss\n```\n\nAccuracy {{ runs/later/summary.json#acc | .1% }}."
    write(site, {"content/b.md": chapter(body, "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    assert "content/b.md:6" in err and "exports/runs/later/history.csv" in err and "pending" in err
    page = (site / "dist/b.html").read_text()
    assert "pending-box" in page and 'class="pending"' in page
    assert 'class="value"' not in page


TEX_ERRORS = ["\\frac{1}{", "\\notacommand{x}", "x^{2"]


@pytest.mark.parametrize("tex", TEX_ERRORS)
def test_tex_that_does_not_parse(site, tex):
    assert_rejected(site, {"content/b.md": chapter(f"Text.\n\n$$\n{tex}\n$$", "B", 2)}, "content/b.md:8", "TeX")


def test_non_utf8_chapter(site):
    body = chapter("Caf\xe9 au lait.", "B", 2).encode("latin-1")
    assert_rejected(site, {"content/b.md": body}, "content/b.md", "UTF-8")


def test_non_utf8_csv(site):
    data = "_step,caf\xe9\n0,1.0\n".encode("latin-1")
    body = "```chart\nsource: runs/bad/history.csv\ny: train/loss\n```"
    assert_rejected(site, {"exports/runs/bad/history.csv": data, "content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/bad/history.csv")


def test_empty_content_folder(tmp_path):
    root = write(tmp_path / "site", {"site.toml": 'title = "Empty"\n'})
    (root / "content").mkdir()
    rc, _, err = build(root)
    assert rc == 1 and err.startswith("error: content/") and len(err.strip().splitlines()) == 1
    assert not (root / "dist").exists()


# --- paths escaping exports/ -----------------------------------------------------------------------


@pytest.fixture
def outside_file(tmp_path) -> Path:
    """A secret-looking file outside the project (stands in for /etc/passwd and the like)."""
    path = tmp_path / "outside" / "secret.csv"
    path.parent.mkdir()
    path.write_text("_step,train/loss\n0,123456789.0\n")
    return path


def escaping_sources(site: Path, outside: Path) -> list[str]:
    rel_up = os.path.relpath(outside, site / "exports")
    return ["../../etc/passwd", "/etc/passwd", str(outside), rel_up, "runs/../../site.toml"]


@pytest.mark.parametrize("directive", ["chart", "table", "value"])
def test_sources_may_not_leave_exports(site, outside_file, directive):
    for source in escaping_sources(site, outside_file):
        if directive == "chart":
            body = f"```chart\nsource: {source}\ny: train/loss\n```"
        elif directive == "table":
            body = f"```table\nsource: {source}\n```"
        else:
            body = f"Value {{{{ {source}#train/loss@max | .1f }}}}."
        assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "exports/")


def test_symlink_out_of_exports_is_refused(site, outside_file):
    link = site / "exports/runs/linked.csv"
    link.symlink_to(outside_file)
    body = "```chart\nsource: runs/linked.csv\ny: train/loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "exports/")
    (site / "exports/runs/evil").symlink_to(outside_file.parent, target_is_directory=True)
    body = "```chart\nsource: runs/evil/secret.csv\ny: train/loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "exports/")


def test_symlinked_chapter_out_of_content_is_refused(site, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text(chapter("Private notes: 123456789.", "Private", 3))
    (site / "content/private.md").symlink_to(outside)
    assert_rejected(site, {}, "content/private.md", "outside the project")


# --- raw HTML, scripts and escaping ----------------------------------------------------------------

XSS = '<script>alert("x")</script>'


class PageScan(HTMLParser):
    """Collects what a browser would execute: script elements, event-handler attributes, javascript: URLs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.handlers: list[str] = []
        self.js_urls: list[str] = []
        self.sources: list[str] = []
        self.titles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append((attrs, ""))
        if tag == "title":
            self.titles.append("")
        self._in = tag
        self.handlers += [name for name in attrs if name.startswith("on")]
        self.js_urls += [v for k, v in attrs.items() if k in ("href", "src", "action") and v and v.strip().lower().startswith("javascript:")]
        self.sources += [v for k, v in attrs.items() if k == "src" and v]

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script" and self.scripts:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        if self._in == "title" and self.titles:
            self.titles[-1] += data


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    return parser


def test_raw_html_and_scripts_are_shown_as_text_and_every_title_is_escaped(tmp_path):
    body = f"""## First

## Heading {XSS}

{XSS}

<img src=x onerror="alert(1)"> and <b onclick="alert(2)">bold</b> and [a link](javascript:alert(3)).

Math cannot link or load either: $\\href{{javascript:alert(10)}}{{x}}$, $\\url{{javascript:alert(11)}}$,
$\\includegraphics{{http://evil.example/x.png}}$, $\\text{{{XSS}}}$.

::: note {XSS}
Callout body.
:::

```"><script>alert(4)</script>
code
```

```chart
source: runs/r/history.csv
y: train/loss
title: '</script><script>alert(5)</script>'
caption: '<img src=x onerror=alert(6)> {XSS}'
```

```table
source: runs/r/config.json
keys: [lr]
caption: '{XSS}'
```
"""
    files = dict(GOOD)
    files["site.toml"] = f"title = '{XSS}'\nauthor = '{XSS}'\ndescription = '\"><script>alert(7)</script>'\n"
    files["content/a.md"] = f"---\ntitle: '</title>{XSS}'\norder: 1\nsummary: '\"><script>alert(8)</script>'\n---\n\n{body}"
    root = write(tmp_path / "site", files)
    rc, _, err = build(root)
    assert rc == 0, err
    html_pages = sorted((root / "dist").glob("*.html"))
    assert len(html_pages) >= 3
    for page in html_pages:
        found = scan(page.read_text())
        assert not found.handlers, (page.name, found.handlers)
        assert not found.js_urls, (page.name, found.js_urls)
        assert not [src for src in found.sources if "evil" in src], (page.name, found.sources)
        for attrs, text in found.scripts:
            assert attrs.get("type") != "application/json", page.name  # chart data lives in data/charts/
            assert "alert(" not in text, (page.name, text)  # no executable script holds page data
            if "src" in attrs:
                assert attrs["src"].startswith("assets/"), (page.name, attrs)
    page = (root / "dist/a.html").read_text()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page or "&lt;script&gt;alert(\"x\")&lt;/script&gt;" in page
    chart_json = chart_figures(root / "dist/a.html")  # each data file is one call with one JSON argument
    assert chart_json[0]["title"] == "</script><script>alert(5)</script>"  # kept as data, escaped as JSON
    assert scan(page).titles[0].startswith("</title>" + XSS)  # the <title> shows the text itself


WRONG_TYPES = {
    "height": "tall",
    "smoothing": "high",
    "log_y": "maybe",
    "y": "{a: 1}",
    "title": "[1, 2]",
    "source": "[runs/r/history.csv]",
}


@pytest.mark.parametrize("option", sorted(WRONG_TYPES))
def test_chart_option_of_the_wrong_type(site, option):
    spec = {"source": "runs/r/history.csv", "y": "train/loss", option: WRONG_TYPES[option]}
    body = "```chart\n" + "".join(f"{k}: {v}\n" for k, v in spec.items()) + "```"
    if option == "title":  # any YAML value is shown as text
        write(site, {"content/b.md": chapter(body, "B", 2)})
        rc, _, err = build(site)
        assert rc == 0, err
        return
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", option)


def test_debug_shows_the_traceback(site):
    """The same bad input with --debug: the exception propagates (a traceback), dist/ still unchanged."""
    from site_builder.errors import UserError

    before = snapshot(site / "dist")
    write(site, {"content/b.md": "---\ntitle: [unclosed\n---\n"})
    with pytest.raises(UserError, match="front matter"):
        build(site, "--debug")
    assert snapshot(site / "dist") == before


TABLE_WRONG_TYPES = {"keys": "5", "columns": "5", "source": "{a: 5}", "format": "'<script>'"}


@pytest.mark.parametrize("option", sorted(TABLE_WRONG_TYPES))
def test_table_option_of_the_wrong_type(site, option):
    spec = {"source": "runs/r/history.csv", option: TABLE_WRONG_TYPES[option]}
    if option in ("keys", "format"):
        spec["source"] = "runs/r/config.json"
    if option == "format":
        spec["keys"] = "[lr]"
    body = "```table\n" + "".join(f"{k}: {v}\n" for k, v in spec.items()) + "```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", option)


@pytest.mark.parametrize("front", ["order: true", "order: .nan", "order: .inf", "order: '2'", "title: {a: 1}", "title: [x, y]",
                                   "title: null", "summary: [a, b]"])
def test_front_matter_values_of_the_wrong_type(site, front):
    key = front.split(":")[0]
    text = f"---\ntitle: B\norder: 2\n{front}\n---\n\nText.\n" if key not in ("title", "order") else (
        f"---\n{front}\n" + ("order: 2\n" if key == "title" else "title: B\n") + "---\n\nText.\n")
    assert_rejected(site, {"content/b.md": text}, "content/b.md", key)


def test_symlink_loops(site):
    """A link to itself in content/ or exports/ is an error naming it, not a hang or a traceback."""
    (site / "content/loop.md").symlink_to("loop.md")
    assert_rejected(site, {}, "content/loop.md")
    (site / "content/loop.md").unlink()
    (site / "exports/runs/loop.csv").symlink_to("loop.csv")
    body = "```chart\nsource: runs/loop.csv\ny: train/loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/loop.csv")
