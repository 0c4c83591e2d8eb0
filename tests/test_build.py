"""The build as a whole: dist/ layout, relative URLs, atomic replacement, determinism, no-op rebuilds, CLI."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from site_builder import cli
from site_builder.errors import UserError
from site_builder.site.build import build_site


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dist_layout_and_assets(built_fixture_site):
    files = snapshot(built_fixture_site)
    assert files[".nojekyll"] == b""
    assert {"index.html", "chapter.html"} <= set(files)
    plotly = [f for f in files if re.fullmatch(r"assets/plotly-[0-9a-f]{10}\.min\.js", f)]
    assert len(plotly) == 1  # written once, content-hashed name
    assert "assets/katex-0.16.22/katex.min.css" in files
    fonts = [f for f in files if f.startswith("assets/katex-0.16.22/fonts/")]
    assert fonts and all(f.endswith(".woff2") for f in fonts)
    css = files["assets/katex-0.16.22/katex.min.css"].decode()
    for font_url in re.findall(r"url\(([^)]+)\)", css):
        assert f"assets/katex-0.16.22/{font_url}" in files  # every font the CSS names is shipped
    chapter, index = files["chapter.html"].decode(), files["index.html"].decode()
    # Plotly is the cartesian bundle, loaded by site.js on first need, not by the page itself
    assert len(files[plotly[0]]) < 2_000_000 and b"plotly.js (cartesian - minified) v4.1.1" in files[plotly[0]][:200]
    (site_js,) = re.findall(r'<script src="(assets/site-[0-9a-f]{10}\.js)" data-plotly="([^"]+)" defer></script>', chapter)
    assert site_js[1] == plotly[0] and f'src="{plotly[0]}"' not in chapter
    assert "plotly" not in index and site_js[0] not in index  # pages without charts load no chart code


def test_all_urls_are_relative(built_fixture_site):
    for page in built_fixture_site.glob("*.html"):
        text = page.read_text()
        for url in re.findall(r'(?:href|src)="([^"]*)"', text):
            assert not url.startswith(("/", "http:", "https:")), (page.name, url)
    css = next(built_fixture_site.glob("assets/site-*.css")).read_text()
    assert "url(" not in css and "@import" not in css


def test_builds_are_deterministic(fixture_site, tmp_path):
    build_site(fixture_site, tmp_path / "one")
    build_site(fixture_site, tmp_path / "two", force=True)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")


def test_noop_rebuild_renders_nothing_and_a_data_change_rebuilds(fixture_site):
    first = build_site(fixture_site)
    dist = fixture_site / "dist"
    mtime = (dist / "index.html").stat().st_mtime_ns
    again = build_site(fixture_site)
    assert again.skipped and again.pages == []
    assert (dist / "index.html").stat().st_mtime_ns == mtime
    assert not first.skipped
    # an export a page reads changed: the value on the page follows
    (fixture_site / "exports/runs/a/summary.json").write_text('{"final_probe/test_top1": 0.5}')
    third = build_site(fixture_site)
    assert not third.skipped
    assert ">50.0%</span>" in (dist / "index.html").read_text()
    # a pending source that appears also triggers a rebuild
    (fixture_site / "exports/runs/not-yet").mkdir()
    (fixture_site / "exports/runs/not-yet/history.csv").write_text("_step,train/loss\n0,1.0\n")
    assert not build_site(fixture_site).skipped
    assert "pending-box" not in (dist / "chapter.html").read_text()
    # a deleted dist/ is rebuilt
    import shutil

    shutil.rmtree(dist)
    assert not build_site(fixture_site).skipped and (dist / "index.html").exists()


def test_a_failed_build_leaves_the_previous_dist_intact(fixture_site):
    build_site(fixture_site)
    before = snapshot(fixture_site / "dist")
    chapter = fixture_site / "content/chapter.md"
    chapter.write_text(chapter.read_text().replace("Inline $\\lambda", "Inline $\\frac{\\lambda"))
    with pytest.raises(UserError, match="TeX error"):
        build_site(fixture_site)
    assert snapshot(fixture_site / "dist") == before
    assert not list(fixture_site.glob("dist.tmp-*"))


def test_cli_build_summary_and_error(fixture_site, capsys):
    assert cli.main(["build", "--root", str(fixture_site), "--out", str(fixture_site / "public")]) == 0
    out = capsys.readouterr()
    assert re.match(r"built 2 pages, 4 charts, \d+ files, [\d.]+ MB in [\d.]+ s", out.out)
    assert "pending: exports/runs/not-yet/history.csv" in out.err
    assert (fixture_site / "public/index.html").exists()
    (fixture_site / "content/index.md").write_text("---\ntitle: Home\n---\n\n$\\nope$\n")
    assert cli.main(["build", "--root", str(fixture_site)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: content/index.md:5: TeX error") and err.count("\n") == 1


def test_config_errors(fixture_site):
    (fixture_site / "site.toml").write_text('titel = "x"\n')
    with pytest.raises(UserError, match=r"site.toml: Config value 'titel': unknown key. Did you mean 'title'\?"):
        build_site(fixture_site)


def test_the_same_site_in_two_folders_builds_byte_identical(fixture_site, tmp_path):
    import shutil

    copy = tmp_path / "elsewhere" / "site"
    shutil.copytree(fixture_site, copy)
    build_site(fixture_site)
    build_site(copy)
    assert snapshot(fixture_site / "dist") == snapshot(copy / "dist")


# -- render cache (issue 8): only pages whose inputs changed are rendered again


def test_one_changed_chapter_renders_one_page_and_matches_a_full_build(fixture_site, tmp_path, monkeypatch):
    from site_builder.content import markdown

    parsed = []
    real_parse = markdown.parse_markdown
    monkeypatch.setattr(markdown, "parse_markdown", lambda text, path: parsed.append(path) or real_parse(text, path))
    assert build_site(fixture_site).pages_rendered == 2
    assert build_site(fixture_site, force=True).pages_rendered == 2  # --force renders every page
    (fixture_site / "dist/.build-id").unlink()  # not up to date, but no input changed: every page from the cache
    assert build_site(fixture_site).pages_rendered == 0
    chapter = fixture_site / "content/chapter.md"
    chapter.write_text(chapter.read_text().replace("A footnote.", "An edited footnote."))
    parsed.clear()
    assert build_site(fixture_site).pages_rendered == 1
    assert parsed == ["content/chapter.md"]  # the unchanged home page's outline (title, labels) came from the cache
    assert "An edited footnote." in (fixture_site / "dist/chapter.html").read_text()
    fresh = shutil.copytree(fixture_site, tmp_path / "fresh", ignore=shutil.ignore_patterns(".cache", "dist"))
    assert build_site(fresh).pages_rendered == 2
    assert snapshot(fixture_site / "dist") == snapshot(fresh / "dist")


def test_numbers_titles_and_data_of_other_files_re_render_the_pages_that_show_them(fixture_site):
    build_site(fixture_site)
    chapter, index = fixture_site / "content/chapter.md", fixture_site / "content/index.md"
    # a new formula before eq:sigreg renumbers it, and the home page shows that number
    chapter.write_text(chapter.read_text().replace("## The loss\n", "## The loss\n\n$$\na = b \\label{eq:first}\n$$\n"))
    assert build_site(fixture_site).pages_rendered == 2
    assert '<a class="xref" href="chapter.html#eq:sigreg">(1.2)</a>' in (fixture_site / "dist/index.html").read_text()
    # a title is in every page's navigation
    index.write_text(index.read_text().replace("title: Home", "title: Start here"))
    assert build_site(fixture_site).pages_rendered == 2
    assert ">Start here</a>" in (fixture_site / "dist/chapter.html").read_text()
    # a data file: only the page that reads it
    (fixture_site / "exports/runs/a/summary.json").write_text('{"final_probe/test_top1": 0.5}')
    assert build_site(fixture_site).pages_rendered == 1
    assert ">50.0%</span>" in (fixture_site / "dist/index.html").read_text()


def test_damaged_cache_files_are_misses_and_the_site_is_the_same(fixture_site):
    """Cache files are not fsynced (site.cache_file): one torn by a crash must read as missing, never as data."""
    build_site(fixture_site)
    first = snapshot(fixture_site / "dist")
    cached = [p for p in (fixture_site / ".cache/build").rglob("*") if p.is_file() and p.name != "state.json"]
    kinds = {p.relative_to(fixture_site / ".cache/build").parts[0] for p in cached}
    assert {"cards", "charts", "pages"} <= kinds and any(p.name.startswith("katex-") for p in cached)
    for i, path in enumerate(cached):  # torn: cut short, emptied, or one byte changed
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if i % 3 == 0 else b"" if i % 3 == 1 else data[:-1] + bytes([data[-1] ^ 1]))
    shutil.rmtree(fixture_site / "dist")
    build_site(fixture_site)
    assert snapshot(fixture_site / "dist") == first
