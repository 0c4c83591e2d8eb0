"""Chapter markdown -> HTML: math, cross-references, callouts, footnotes, anchors, code, links, errors."""

from __future__ import annotations

import re

import pytest

from site_builder.errors import UserError
from site_builder.site.build import build_site
from tests.conftest import write_site


def build_pages(tmp_path, chapters: dict[str, str], **files) -> dict[str, str]:
    """Build a site of the given chapters ({slug: markdown}); returns {slug: article html}."""
    site = {f"content/{slug}.md": text for slug, text in chapters.items()}
    site.update(files)
    root = write_site(tmp_path / "site", site)
    build_site(root)
    pages = {}
    for slug in chapters:
        html = (root / "dist" / f"{slug}.html").read_text()
        pages[slug] = html[html.index('<article class="article"') : html.index("</article>")]
    return pages


def chapter(title: str, body: str, order: int = 1) -> str:
    return f"---\ntitle: {title}\norder: {order}\n---\n\n{body}"


def test_math_inline_and_numbered_display_with_cross_chapter_eqref(tmp_path):
    pages = build_pages(
        tmp_path,
        {
            "index": "---\ntitle: Home\n---\n\nSee \\eqref{eq:two} and \\ref{eq:one}.\n",
            "first": chapter("First", "Inline $a^2$.\n\n$$\nx = 1 \\label{eq:one}\n$$\n\n$$\ny = 2\n$$\n", 1),
            "second": chapter("Second", "$$\n\\begin{aligned} z &= 3 \\end{aligned} \\label{eq:two}\n$$\n\nAs \\eqref{eq:one}.\n", 2),
        },
    )
    first, second, index = pages["first"], pages["second"], pages["index"]
    assert "$" not in re.sub(r"<[^>]+>", "", first)
    assert first.count('class="katex"') == 3
    assert '<div class="equation" id="eq:one">' in first
    assert "(1.1)" in re.sub(r"<[^>]+>", "", first.split('id="eq:one"')[1].split("</div>")[0])
    assert "eq:" not in first.split('id="eq:one"')[1]  # the unlabelled display gets no id and no number
    assert '<div class="equation" id="eq:two">' in second
    assert "(2.1)" in re.sub(r"<[^>]+>", "", second)
    assert '<a class="xref" href="first.html#eq:one">(1.1)</a>' in second
    assert '<a class="xref" href="second.html#eq:two">(2.1)</a>' in index
    assert '<a class="xref" href="first.html#eq:one">(1.1)</a>' in index


def test_tex_error_names_file_and_line(tmp_path):
    with pytest.raises(UserError) as err:
        build_pages(tmp_path, {"index": "---\ntitle: Home\n---\n\nFine $x$.\n\nBroken $\\frac{a$ here.\n"})
    assert str(err.value).startswith("content/index.md:7: TeX error")


def test_unknown_label_and_duplicate_label_are_errors(tmp_path):
    with pytest.raises(UserError, match=r"content/index.md:5: \\eqref\{eq:nope\}: no such label"):
        build_pages(tmp_path / "a", {"index": "---\ntitle: Home\n---\n\n\\eqref{eq:nope}\n"})
    twice = "$$\na \\label{eq:a}\n$$\n\n$$\nb \\label{eq:a}\n$$\n"
    with pytest.raises(UserError, match="label 'eq:a' is already defined"):
        build_pages(tmp_path / "b", {"index": chapter("Home", twice)})


def test_raw_html_is_shown_as_text(tmp_path):
    page = build_pages(tmp_path, {"index": chapter("Home", 'Hi <script>alert(1)</script> <b onclick="x">b</b>\n')})["index"]
    assert "<script>alert" not in page and "<b onclick" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_callouts_footnotes_anchors_and_code(tmp_path):
    body = (
        "## Epps–Pulley test\n\nText.[^n]\n\n::: warning Mind the gap\nCareful with $x$.\n:::\n\n"
        "::: tip\nPlain.\n:::\n\n```python\ndef f(x):\n    return x\n```\n\n[^n]: The footnote.\n"
    )
    page = build_pages(tmp_path, {"index": chapter("Home", body)})["index"]
    assert '<h2 id="eppspulley-test">' in page
    assert '<aside class="callout callout-warning">\n<p class="callout-title">Mind the gap</p>' in page
    assert '<aside class="callout callout-tip">\n<p class="callout-title">Tip</p>' in page
    assert '<li id="fn1" class="footnote-item"><p>The footnote.' in page
    assert '<a href="#fn1" id="fnref1">' in page
    assert '<span class="k">def</span>' in page and '<span class="nf">f</span>' in page


def test_links_to_chapters_are_rewritten_and_checked(tmp_path):
    pages = build_pages(
        tmp_path / "ok",
        {"index": chapter("Home", "[go](other.md#a-section) [ext](https://example.org/x.md)\n", 0), "other": chapter("Other", "## A section\n")},
    )
    assert '<a href="other.html#a-section">go</a>' in pages["index"]
    assert '<a href="https://example.org/x.md">ext</a>' in pages["index"]
    with pytest.raises(UserError, match=r"content/index.md:8: link to nope.md: no such chapter"):
        build_pages(tmp_path / "bad1", {"index": chapter("Home", "x\n\n[go](nope.md)\n")})
    with pytest.raises(UserError, match=r"content/index.md:6: link to other.html#missing: no anchor '#missing'"):
        build_pages(tmp_path / "bad2", {"index": chapter("Home", "[go](other.md#missing)\n", 0), "other": chapter("Other", "## A section\n")})


def test_links_to_accented_headings_resolve(tmp_path):
    # markdown-it percent-encodes the link; the heading id is not encoded, and both must still match
    pages = build_pages(
        tmp_path / "ok",
        {"index": chapter("Home", "[cite](other.md#cramér-and-wold-1936)\n", 0), "other": chapter("Other", "## Cramér and Wold (1936)\n")},
    )
    assert 'id="cramér-and-wold-1936"' in pages["other"]
    assert 'href="other.html#cram%C3%A9r-and-wold-1936"' in pages["index"]


def test_front_matter_errors(tmp_path):
    with pytest.raises(UserError, match=r"content/index.md:1: front matter: unknown key 'titel'"):
        build_pages(tmp_path / "a", {"index": "---\ntitel: Home\n---\n\nx\n"})
    with pytest.raises(UserError, match=r"content/index.md:3: front matter: invalid YAML"):
        build_pages(tmp_path / "b", {"index": "---\ntitle: Home\norder: [1\n---\n\nx\n"})


def test_formula_cache_makes_a_forced_rebuild_render_nothing(fixture_site):
    first = build_site(fixture_site)
    assert first.formulas_rendered == first.formulas_total > 0
    again = build_site(fixture_site, force=True)
    assert again.formulas_total == first.formulas_total
    assert again.formulas_rendered == 0


def test_errors_in_a_long_paragraph_name_the_exact_line(tmp_path):
    body = "First line $a$ of a paragraph,\nsecond line $b$,\nthird line with \\eqref{eq:missing} in it.\n"
    with pytest.raises(UserError, match=r"content/index.md:8: \\eqref\{eq:missing\}"):
        build_pages(tmp_path / "a", {"index": chapter("Home", body)})
    body = "One $a$,\ntwo [x](y.html),\nthree $\\frac{b$.\n"
    with pytest.raises(UserError, match=r"content/index.md:8: TeX error"):
        build_pages(tmp_path / "b", {"index": chapter("Home", body)})


