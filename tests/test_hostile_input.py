"""Hostile and broken input, round two (issue 19, items 2, 3, 5 and 7): bounded YAML, non-regular files,
every user error as one line where it arises, content that used to go silently wrong, page-size limits.
Each case: one `error:` line naming the file (and line), exit 1, the previous dist/ byte-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_hostile_content import assert_rejected, build, chapter, site, write  # noqa: F401 (site: fixture)

REPO = Path(__file__).resolve().parents[1]
CHART = "```chart\nsource: runs/r/history.csv\ny: train/loss\n{}\n```"
# 9**7 = 4.8 million leaves from one line: printed or hashed whole, it hangs or crashes the process
BOMB = "[" + ", ".join(["&a [x,x,x,x,x,x,x,x,x]"] + [f"&{b} [" + ",".join([f"*{a}"] * 9) + "]" for a, b in zip("abcdef", "bcdefg")]) + "]"


@pytest.mark.parametrize("where", ["title", "order", "summary", "caption"])
def test_a_yaml_alias_bomb_is_refused_at_once(site, where):
    text = chapter(CHART.format(f"caption: {BOMB}"), "B", 2) if where == "caption" else f"---\ntitle: B\norder: 2\n{where}: {BOMB}\n---\n\nx\n"
    if where in ("title", "order"):
        text = text.replace(f"{where}: B\n" if where == "title" else "order: 2\n", "", 1)
    line = assert_rejected(site, {"content/b.md": text}, "content/b.md:", "anchors")  # before the fix: minutes, or SIGSEGV
    assert len(line) < 300


YAML_CASES = {
    "front matter key that is a number": ("---\ntitle: B\norder: 2\n1: a\n---\n\nx\n", ":4:", "key '1' must be text"),
    "duplicate front matter key": ("---\ntitle: B\norder: 2\ntitle: C\n---\n\nx\n", ":4:", "appears twice"),
    "chart key that is a number": (chapter(CHART.format("1: x"), "B", 2), ":9:", "must be text"),
    "duplicate chart key": (chapter(CHART.format("y: probe/test_acc"), "B", 2), ":9:", "'y' appears twice"),
    "binary chart value": (chapter(CHART.format("title: !!binary aGVsbG8="), "B", 2), ":9:", "!!binary"),
    "set chart value": (chapter(CHART.format("title: !!set {a}"), "B", 2), ":9:", "!!set"),
    "python tag": (chapter(CHART.format("title: !!python/object/apply:os.system [ls]"), "B", 2), ":9:", "not allowed"),
    "deep nesting": (chapter(CHART.format("title: " + "[" * 200 + "]" * 200), "B", 2), ":9:", "deeper than"),
    "huge block": (chapter(CHART.format("caption: " + "x" * 70_000), "B", 2), "content/b.md", "longer than"),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_yaml_outside_the_bounds(site, case):
    text, line, message = YAML_CASES[case]
    assert_rejected(site, {"content/b.md": text}, "content/b.md", line, message)


def test_a_date_in_yaml_stays_text(site):
    write(site, {"content/b.md": "---\ntitle: 2026-12-01\norder: 2\nsummary: 2026-12-01\n---\n\nx\n"})
    rc, _, err = build(site)
    assert rc == 0, err
    assert "<title>2026-12-01" in (site / "dist" / "b.html").read_text()


def test_a_fifo_a_folder_and_a_dangling_editor_lock_among_the_chapters(site):
    os.mkfifo(site / "content" / "x.md")
    assert_rejected(site, {}, "content/x.md", "not a regular file")  # before the fix: blocked forever
    (site / "content" / "x.md").unlink()
    (site / "content" / "x.md").mkdir()
    assert_rejected(site, {}, "content/x.md", "not a regular file")
    (site / "content" / "x.md").rmdir()
    os.symlink("user@host.4242:1700000000", site / "content" / ".#b.md")  # what emacs leaves while editing b.md
    rc, _, err = build(site)
    assert rc == 0 and "error" not in err and ".#b.md" not in err, err


def test_a_fifo_as_data_source_is_never_opened(site):
    os.mkfifo(site / "exports" / "runs" / "r" / "fifo.csv")
    assert_rejected(site, {"content/b.md": chapter("```chart\nsource: runs/r/fifo.csv\ny: a\n```", "B", 2)}, "content/b.md:6", "not a data file")
    assert_rejected(site, {"content/b.md": chapter("```chart\nsource: runs/r\ny: a\n```", "B", 2)}, "content/b.md:6", "runs/r", "folder")


@pytest.mark.parametrize("content", [b"title = '\xff'\n", None])
def test_a_site_toml_that_is_not_utf8_or_is_a_folder(site, content):
    if content is None:
        (site / "site.toml").unlink()
        (site / "site.toml").mkdir()
        assert_rejected(site, {}, "site.toml", "not a regular file")
    else:
        assert_rejected(site, {"site.toml": content}, "site.toml", "UTF-8")


TEMPLATE_CASES = {
    "undefined variable": ({"templates/page.html": "<p>\n{{ nope }}"}, "templates/page.html:2", "'nope' is undefined"),
    "syntax error": ({"templates/page.html": "<p>\n{% if %}"}, "templates/page.html:2", "syntax"),
    "recursion": ({"templates/page.html": "{% include 'page.html' %}"}, "templates/page.html", "without end"),
    "error in 404 page": ({"templates/404.html": "\n\n{{ 1 / 0 }}"}, "templates/404.html:3", "division by zero"),
    "include of a missing template": ({"templates/page.html": "{% include 'nope.html' %}"}, "templates/page.html", "'nope.html' not found"),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_CASES))
def test_template_errors(site, case):
    changes, *where = TEMPLATE_CASES[case]  # a project's templates/ overrides the theme file by file
    assert_rejected(site, changes, *where)


def test_a_templates_folder_missing_files_or_holding_a_fifo_falls_back_to_the_theme(site):
    (site / "templates" / "assets").mkdir(parents=True)
    os.mkfifo(site / "templates" / "assets" / "site.css")
    (site / "templates" / "page.html").mkdir()
    rc, _, err = build(site, "--debug")
    assert rc == 0, err
    assert (site / "dist" / "index.html").is_file()


def test_values_that_are_null_or_not_a_number(site):
    write(site, {"exports/runs/r/summary.json": json.dumps({"n": None, "o": {"a": 1}, "l": [1, None], "m": [{"a": 1}]})})
    for key, what in (("n", "null"), ("o", "dict"), ("l", "list"), ("m", "list")):
        assert_rejected(site, {"content/b.md": chapter(f"Value {{{{ runs/r/summary.json#{key} }}}}.", "B", 2)}, "content/b.md:6", what)
    assert_rejected(site, {"content/b.md": chapter("```table\nsource: runs/r/summary.json\nkeys: [o]\n```", "B", 2)}, "content/b.md:6", "dict")


@pytest.mark.parametrize("spec", ["3000000000", "100000000", ".500f", "0>1000"])
def test_format_widths_are_bounded(site, spec):
    assert_rejected(site, {"content/b.md": chapter(f"{{{{ runs/r/config.json#lr | {spec} }}}}", "B", 2)}, "content/b.md:6", "above 100")
    table = f"```table\nsource: runs/r/config.json\nkeys: [lr]\nformat: '{spec}'\n```"
    assert_rejected(site, {"content/b.md": chapter(table, "B", 2)}, "content/b.md:6", "above 100")


def test_an_empty_title_is_no_title(site):
    write(site, {"content/b.md": chapter(CHART.format("title:\ncaption:"), "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    assert "None" not in (site / "dist" / "b.html").read_text()


def test_an_empty_y_list_and_non_text_titles(site):
    assert_rejected(site, {"content/b.md": chapter("```chart\nsource: runs/r/history.csv\ny: []\n```", "B", 2)}, "content/b.md:6", "'y' is an empty list")
    assert_rejected(site, {"content/b.md": chapter(CHART.format("title: {a: 1}"), "B", 2)}, "content/b.md:6", "'title' must be text")
    assert_rejected(site, {"content/b.md": chapter(CHART.format("caption: [a, null]"), "B", 2)}, "content/b.md:6", "'caption' must be text")


def test_control_characters_never_reach_the_terminal(site):
    line = assert_rejected(site, {"content/b.md": chapter("$\\foo\x1b[2J\x07$", "B", 2)}, "content/b.md:6", "TeX error")
    assert "\x1b" not in line and "\x07" not in line and "\\x1b" in line


def test_chapter_names_404_and_url_breaking_characters(site):
    assert_rejected(site, {"content/404.md": chapter("Lost?", "Lost", 5)}, "content/404.md", "not-found page")
    (site / "content" / "404.md").unlink()
    for name in ("a#b.md", "what?.md", "100%.md"):
        assert_rejected(site, {f"content/{name}": chapter("x", "X", 6)}, f"content/{name}", "rename it")
        (site / "content" / name).unlink()


def test_chapters_with_spaces_and_accents_can_be_linked(site):
    write(site, {
        "content/my chapter.md": chapter("## Part one\n\nSee [the other](%C3%BCn%C3%AF.md#part-two).", "Spaces", 3),
        "content/ünï.md": chapter("## Part two\n\nBack to [spaces](<my chapter.md#part-one>) or [again](my%20chapter.md).", "Accents", 4),
    })
    rc, _, err = build(site)
    assert rc == 0, err
    assert 'href="%C3%BCn%C3%AF.html#part-two"' in (site / "dist" / "my chapter.html").read_text()
    assert 'href="my%20chapter.html#part-one"' in (site / "dist" / "ünï.html").read_text()
    result = subprocess.run([sys.executable, "-m", "site_builder", "check", "--root", str(site)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_chapter_saved_with_a_byte_order_mark(site):
    write(site, {"content/b.md": "\ufeff---\ntitle: Bee\norder: 2\n---\n\nText.\n"})
    rc, _, err = build(site)
    assert rc == 0, err
    assert "<title>Bee" in (site / "dist" / "b.html").read_text()


def panels(height: int, width: int, count: int = 1) -> str:
    row = [0.5] * width
    return json.dumps({"panels": [{"title": f"p{i}", "z": [row] * height} for i in range(count)]})


def test_panel_pixels_are_bounded(site):
    chart = chapter("```chart\ntype: panels\nsource: figures/p.json\n```", "B", 2)
    write(site, {"exports/figures/p.json": panels(256, 256), "content/b.md": chart})
    assert build(site)[0] == 0  # at the limit
    assert_rejected(site, {"exports/figures/p.json": panels(4000, 4000)}, "content/b.md:6", "4000×4000", "down-sample")
    assert_rejected(site, {"exports/figures/p.json": panels(200, 200, 30)}, "content/b.md:6", "pixels", "down-sample")


def test_table_size_is_bounded(site):
    rows = "\n".join(f"{i},{i / 7}" for i in range(200_000))
    table = chapter("```table\nsource: runs/r/big.csv\n```", "B", 2)
    line = assert_rejected(site, {"exports/runs/r/big.csv": f"step,value\n{rows}\n", "content/b.md": table}, "content/b.md:6", "200,000 rows")
    assert "at most 20,000 cells" in line


def test_heading_ids_are_those_of_the_anchors_plugin():
    """Our linear-time unique ids (content.heading_ids) equal mdit_py_plugins' quadratic ones, tricky cases included."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin

    from site_builder.content.markdown import _slugify, parse_markdown

    text = "".join(f"## {t}\n\n" for t in ["Same", "Same", "Same-1", "Same", "A `b`", "A b", "A-b", "", "", "Ünï σ", "Same-2", "Same"])
    text += "### Same\n\n#### Same\n\n" * 3
    plain = MarkdownIt("commonmark").use(anchors_plugin, min_level=2, max_level=3, slug_func=_slugify)
    expected = [t.attrGet("id") for t in plain.parse(text) if t.type == "heading_open" and t.tag in ("h2", "h3")]
    ours = [h.id for h in parse_markdown("---\ntitle: T\n---\n\n" + text, "t.md").headings]
    assert ours == expected and len(set(ours)) == len(ours)
    many = parse_markdown("---\ntitle: T\n---\n\n" + "## Same\n\n" * 10_000, "t.md").headings
    assert [h.id for h in many[:3]] == ["same", "same-1", "same-2"] and many[-1].id == "same-9999"


def test_a_social_card_reads_only_what_it_can_show():
    from site_builder.site.social import MAX_CARD_CHARS, social_card

    short = "Collapse is what happens when every image maps to the same point. " * 4
    assert social_card("T", summary=short + "x" * 500_000) == social_card("T", summary=(short + "x" * 500_000)[:MAX_CARD_CHARS])


def test_fetch_never_opens_a_fifo(tmp_path):
    import contextlib
    import io

    from site_builder import cli

    run = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    run.mkdir(parents=True)
    os.mkfifo(run / "run-abc.wandb")
    for args in ([str(run)], [str(run / "run-abc.wandb")], ["--all-offline", str(tmp_path / "wandb")]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(["fetch", *args, "--out", str(tmp_path / "runs")])  # before the fix: blocked forever
        lines = err.getvalue().strip().splitlines()
        assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert not (tmp_path / "runs").exists()
