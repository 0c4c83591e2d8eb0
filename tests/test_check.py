"""The link checker (`check_dist`) on a hand-written site with planted faults, and the `check` command."""

from __future__ import annotations

from pathlib import Path

from site_builder import cli
from site_builder.site.check import check_dist
from tests.conftest import FIXTURE_FILES, write_site

GOOD_PAGE = """<!doctype html><html><head>
<link rel="stylesheet" href="assets/site.css"><meta property="og:image" content="cards/{slug}.png">
</head><body><main id="main"><h2 id="intro">Intro</h2>
<a href="other.html#results">ok</a> <a href="#intro">ok</a> <a href="https://arxiv.org/abs/2511.08544">paper</a>
<a href="mailto:a@b.c">mail</a> <img src="img/fig.png" alt="A figure"> <a href="data/fig.csv" download>CSV</a>
<script type="application/json" class="chart-data">{{"type": "line", "traces": [{{"x": [1], "y": [2]}}]}}</script>
</main></body></html>"""

FILES = {
    "index.html": GOOD_PAGE.format(slug="index"),
    "other.html": GOOD_PAGE.format(slug="other").replace('id="intro"', 'id="results"').replace("#intro", "#results")
    .replace("other.html#results", "index.html#intro"),
    "404.html": '<html><head><base href="/report/"><link rel="stylesheet" href="assets/site.css"></head>'
    '<body><a href="index.html">home</a></body></html>',
    "assets/site.css": "body { color: red; }",
    "img/fig.png": "png",
    "data/fig.csv": "a,b\n",
    "cards/index.png": "png",
    "cards/other.png": "png",
    "pagefind/pagefind-entry.json": "{}",
    "sitemap.xml": "<urlset><url><loc>https://x.github.io/report/</loc></url>"
    "<url><loc>https://x.github.io/report/other.html</loc></url></urlset>",
}
BASE_URL = "https://x.github.io/report/"


def make_site(root: Path, changes: dict[str, str] | None = None) -> Path:
    files = dict(FILES, **(changes or {}))
    return write_site(root, {k: v for k, v in files.items() if v is not None})


def test_a_sound_site_has_no_problems(tmp_path):
    report = check_dist(make_site(tmp_path), BASE_URL)
    assert report.problems == []
    assert report.pages == 3 and report.external_links == 2  # the arXiv link on each page


def test_planted_faults_are_each_reported(tmp_path):
    broken_page = GOOD_PAGE.format(slug="index").replace(
        "</main>",
        '<a href="missing.html">1</a> <a href="other.html#nope">2</a> <a href="#nowhere">3</a>'
        '<img src="img/gone.png" alt="gone"> <img src="img/fig.png">'
        '<script src="https://cdn.example.com/lib.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.com/css">'
        '<a href="/index.html">root</a> <div style="background: url(https://example.com/bg.png)"></div>'
        '<script type="application/json" class="chart-data">{not json</script></main>',
    )
    site = make_site(tmp_path, {
        "index.html": broken_page,
        "assets/site.css": "@import 'https://fonts.example.com/x.css'; body { background: url(missing.png) }",
        "cards/other.png": None,
        "sitemap.xml": "<urlset><url><loc>https://x.github.io/report/</loc></url></urlset>",
    })
    problems = check_dist(site, BASE_URL).problems
    expected = [
        "index.html: broken link missing.html: no missing.html in the site",
        "index.html: link other.html#nope: no anchor #nope on other.html",
        "index.html: link #nowhere: no anchor #nowhere on index.html",
        "index.html: broken reference img/gone.png: no img/gone.png in the site",
        "index.html: loads https://cdn.example.com/lib.js from another host (<script>)",
        "index.html: loads //fonts.example.com/css from another host (<link>)",
        "index.html: root-absolute URL /index.html breaks under a sub-path; use a relative link",
        "index.html: loads https://example.com/bg.png from another host (<style>)",
        "index.html: 1 image(s) without alt text",
        "index.html: chart 2: its data is not valid JSON",
        "other.html: social card cards/other.png is missing",
        "assets/site.css: loads https://fonts.example.com/x.css from another host (<css>)",
        "assets/site.css: broken reference missing.png: no assets/missing.png in the site",
        "sitemap.xml: does not list other.html",
    ]
    assert sorted(problems) == sorted(expected)


def test_404_page_base_must_match_the_base_url(tmp_path):
    problems = check_dist(make_site(tmp_path), "https://x.github.io/elsewhere/").problems
    assert any(p.startswith("404.html: <base href='/report/'> does not match") for p in problems)


def test_check_command_passes_the_fixture_site_and_strict_fails_on_pending(fixture_site, capsys):
    assert cli.main(["check", "--root", str(fixture_site)]) == 0
    out, err = capsys.readouterr()
    assert "0 problems" in out
    assert "pending: exports/runs/not-yet/history.csv" in err  # the fixture's pending chart is listed
    assert not (fixture_site / "dist").exists()  # check builds elsewhere
    assert cli.main(["check", "--root", str(fixture_site), "--strict"]) == 1


def test_check_command_fails_on_an_image_from_another_host(tmp_path, capsys):
    files = dict(FIXTURE_FILES)
    files["content/index.md"] += "\n![A tracking pixel](https://example.com/pixel.png)\n"
    site = write_site(tmp_path / "site", files)
    assert cli.main(["check", "--root", str(site)]) == 1
    err = capsys.readouterr().err
    # images are published from the project's files, so the build itself refuses a remote one
    assert "content/index.md:" in err and "image https://example.com/pixel.png: only image files inside the project" in err


def test_the_real_site_passes_check(capsys):
    """The project's own chapters: no broken link, anchor or image, nothing loaded from another host."""
    root = Path(__file__).resolve().parents[1]
    code = cli.main(["check", "--root", str(root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert " 0 problems" in out


def test_chart_data_scripts_are_checked(tmp_path):
    charts = "".join(
        f'<div class="chart" data-chart="{i}" data-src="data/charts/{name}.js"></div>'
        for i, name in enumerate(["good", "empty", "mangled", "absent"])
    )
    site = make_site(tmp_path, {
        "index.html": GOOD_PAGE.format(slug="index").replace("</main>", charts + "</main>"),
        "data/charts/good.js": 'siteChartData("00112233aabbccdd", {"type": "line", "traces": [{"x": [1], "y": [2]}]});\n',
        "data/charts/empty.js": 'siteChartData("00112233aabbccdd", {"type": "line", "traces": []});\n',
        "data/charts/mangled.js": 'alert(1); siteChartData("00112233aabbccdd", {});\n',
    })
    assert sorted(check_dist(site, BASE_URL).problems) == [
        "index.html: broken reference data/charts/absent.js: no data/charts/absent.js in the site",
        "index.html: chart 3: nothing to draw (no traces or frames)",
        "index.html: chart 4: its data is not valid JSON",
    ]
