"""The fixture site in real headless Chromium, served under a sub-path (as GitHub Pages does) and from file://."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pytest

from site_builder.charts.script import read_chart_script
from site_builder.site.build import build_site
from tests.conftest import FIXTURE_FILES, write_site

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser

PAGES = ["index.html", "chapter.html"]


def scroll_through(page):
    """Bring every chart into view in turn (they draw lazily), then wait until all have drawn. Each chart
    is held in view until its drawing has started: the observer's callback comes a frame later, and a chart
    already scrolled away by then (like a reader flicking past it) rightly waits to be seen again."""
    for chart in page.locator(".chart").all():
        chart.scroll_into_view_if_needed()
        page.wait_for_function("c => c.dataset.drawn === '1'", arg=chart.element_handle(), timeout=10000)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.chart')).every(c => c.querySelector('.js-plotly-plot, [data-panels=drawn]'))",
        timeout=10000,
    )


def chart_data(page, url: str) -> dict:
    """A chart's figure from its data/charts/<id>.js (over HTTP, or from the disk for file://)."""
    data = Path(url2pathname(urlsplit(url).path)).read_bytes() if url.startswith("file:") else page.request.get(url).body()
    return json.loads(read_chart_script(data)[1])


def expected_traces(page) -> list[int]:
    """Traces each chart must draw: line charts draw a raw + a smoothed trace per series and a filled one
    per band; a panels grid draws one canvas per model and image, plus a row of input pictures when it has them."""
    urls = page.eval_on_selector_all(".chart", "cs => cs.map(c => new URL(c.dataset.src, document.baseURI).href)")
    figures = [chart_data(page, url) for url in urls]
    per_series = {"line": 2, "scatter": 2, "bar": 1}
    def panels(f):
        return (len(f["rows"]) + (1 if f["inputs"] else 0)) * len(f["images"])

    def series(f):
        return per_series[f["type"]] * len(f["traces"]) + sum("band" in t for t in f["traces"])

    return [panels(f) if f["type"] == "panels" else series(f) for f in figures]


def drawn_traces(page) -> list[int]:
    return page.evaluate(
        "Array.from(document.querySelectorAll('.chart .chart-plot')).map(p => p.data ? p.data.length"
        " : p.dataset.panels ? p.querySelectorAll('.panel-cell canvas').length : -1)"
    )


def check_page(visit, base: str) -> None:
    """What every page must satisfy: all charts drawn, no errors, no TeX left over, links resolve."""
    page = visit.page
    if page.locator(".chart").count():
        scroll_through(page)
        assert drawn_traces(page) == expected_traces(page)
    visit.assert_clean()
    assert page.locator(".katex-error").count() == 0
    text = page.inner_text("body")
    assert "$$" not in text and "\\label" not in text and "{{" not in text
    # every internal link leads to an existing page and anchor
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    ids_on: dict[str, list[str]] = {}
    for href in sorted(set(hrefs)):
        if not href.startswith(base):
            continue
        target, _, anchor = href.partition("#")
        if target not in ids_on:
            response = page.request.get(target)
            assert response.ok, href
            ids_on[target] = re.findall(r'\sid="([^"]+)"', response.text())
        if anchor:
            assert unquote(anchor) in ids_on[target], href


@pytest.mark.parametrize("name", PAGES)
def test_page_is_clean_and_complete(built_fixture_site, serve, browser_page, name):
    base = serve(built_fixture_site)
    check_page(browser_page(base + name), base)


def test_the_real_site_is_clean(tmp_path, serve, browser_page):
    """The project's own content/ and exports/, built by the README's command, under a sub-path."""
    if not list((REPO / "content").glob("*.md")):
        pytest.skip("the project has no chapters yet")
    out = tmp_path / "dist"
    build_site(REPO, out, force=True)
    base = serve(out)
    for page in sorted(out.glob("*.html")):
        check_page(browser_page(base + page.name), base)


def test_charts_draw_only_when_scrolled_into_view(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")
    drawn = drawn_traces(page)
    assert drawn[0] > 0  # the first chart is in view
    assert drawn[-1] == -1  # the attention panels, far below, are not drawn yet
    loaded = "performance.getEntriesByType('resource').map(r => r.name)"
    sources = page.eval_on_selector_all(".chart", "cs => cs.map(c => new URL(c.dataset.src, document.baseURI).href)")
    assert sources[0] in page.evaluate(loaded) and sources[-1] not in page.evaluate(loaded)  # nor is its data loaded
    scroll_through(page)
    assert drawn_traces(page) == expected_traces(page)
    assert sources[-1] in page.evaluate(loaded)
    visit.assert_clean()


def test_plotly_loads_only_when_a_chart_nears_the_viewport(tmp_path, serve, browser_page):
    """A chapter whose only chart is far below the fold: no Plotly and no chart data until the reader scrolls."""
    files = dict(FIXTURE_FILES)
    filler = "\n\n".join(f"Paragraph {i}." for i in range(120))
    files["content/far.md"] = f"---\ntitle: Far\norder: 5\n---\n\n{filler}\n\n```chart\nsource: runs/a/history.csv\ny: train/loss\n```\n"
    out = tmp_path / "dist"
    build_site(write_site(tmp_path / "site", files), out)
    visit = browser_page(serve(out) + "far.html")
    page = visit.page
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    loaded = "performance.getEntriesByType('resource').map(r => r.name)"
    assert not [url for url in page.evaluate(loaded) if "plotly" in url or "/data/charts/" in url]
    scroll_through(page)
    assert [url for url in page.evaluate(loaded) if "plotly" in url]
    visit.assert_clean()


def test_hover_lists_every_series_and_nothing_uploads(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")
    plot = page.locator(".chart .chart-plot").first
    box = page.locator(".chart .nsewdrag").first.bounding_box()
    plot.hover(position={"x": box["x"] - plot.bounding_box()["x"] + box["width"] / 2, "y": box["y"] - plot.bounding_box()["y"] + box["height"] / 2})
    page.wait_for_function("document.querySelector('.chart .hoverlayer .legend') !== null", timeout=3000)
    label = page.evaluate("document.querySelector('.chart .hoverlayer .legend').textContent")
    assert label.index("train/loss") < label.index("train/sigreg")  # both series at that x, in legend order
    titles = page.eval_on_selector_all(".chart .modebar-btn", "bs => bs.map(b => b.getAttribute('data-title'))")
    assert "Download plot as a PNG" in titles or "Download plot as a png" in titles
    assert not [t for t in titles if re.search(r"cloud|studio|share|upload", t or "", re.I)], titles
    visit.assert_clean()


def wandb_ema(ys, weight):
    """wandb's EMA smoothing (TensorBoard's), written from its documented formula."""
    out, last = [], 0.0
    for n, y in enumerate(ys, start=1):
        last = last * weight + (1 - weight) * y
        out.append(last / (1 - weight**n))
    return out


def test_smoothing_slider_and_log_y(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")
    chart = "document.querySelector('.chart .chart-plot')"
    raw = page.evaluate(f"{chart}.data[0].y")
    assert len(raw) > 30 and page.evaluate(f"{chart}.data[1].mode") == "lines"  # a long history: no markers
    # starts at the chapter's smoothing: 0.6
    assert page.evaluate(f"{chart}.data[1].y") == pytest.approx(wandb_ema(raw, 0.6), rel=1e-9)
    page.locator(".js-smoothing").first.fill("0.9")
    assert page.evaluate(f"{chart}.data[1].y") == pytest.approx(wandb_ema(raw, 0.9), rel=1e-9)
    assert page.locator(".chart-controls output").first.inner_text() == "0.90"
    page.locator(".js-smoothing").first.fill("0")
    assert page.evaluate(f"{chart}.data[1].y") == raw
    page.locator(".js-log-y").first.check()
    assert page.evaluate(f"{chart}.layout.yaxis.type") == "log"
    # a click on the legend hides the series (Plotly waits out its double-click delay first)
    page.locator(".legend .traces .legendtoggle").first.click(force=True)
    page.wait_for_function(f"{chart}.data[1].visible === 'legendonly'", timeout=3000)
    visit.assert_clean()


def test_a_band_is_a_filled_area_behind_its_series_and_smoothing_moves_only_the_lines(tmp_path, serve, browser_page):
    files = dict(FIXTURE_FILES)
    files["exports/curves/a.csv"] = "epoch,mean,lo,hi\n1,0.2,0.1,0.3\n2,0.3,0.2,0.5\n3,0.5,0.4,0.6\n"
    files["content/band.md"] = ("---\ntitle: Band\norder: 6\n---\n\n```chart\nsource: {A: curves/a.csv, B: curves/b.csv}\n"
                                "x: epoch\ny: mean\nband: {mean: [lo, hi]}\nsmoothing: 0\nx_title: epoch\ny_title: accuracy\n```\n")
    files["exports/curves/b.csv"] = "_step,epoch,mean,lo,hi\n0,1,0.6,0.5,0.7\n1,2,0.7,0.6,0.8\n"
    out = tmp_path / "dist"
    build_site(write_site(tmp_path / "site", files), out)
    visit = browser_page(serve(out) + "band.html")
    page = visit.page
    scroll_through(page)
    chart = "document.querySelector('.chart .chart-plot')"
    data = page.evaluate(f"{chart}.data.map(t => ({{fill: t.fill || null, legend: t.showlegend !== false, "
                         "hover: t.hoverinfo || null, color: t.fillcolor || t.line.color, x: t.x, y: t.y}))")
    band_a, band_b, raw_a, line_a, raw_b, line_b = data
    assert band_a["fill"] == band_b["fill"] == "toself" and raw_a["fill"] is None
    assert not band_a["legend"] and not band_b["legend"] and band_a["hover"] == "skip"
    assert band_a["color"] == line_a["color"] != band_b["color"] == line_b["color"]  # each in its series' colour
    assert band_a["x"] == [1, 2, 3, 3, 2, 1] and band_a["y"] == [0.3, 0.5, 0.6, 0.4, 0.2, 0.1]  # along hi, back along lo
    # a line of a few points marks them (a sweep's points; a one-point series would draw nothing otherwise)
    assert page.evaluate(f"{chart}.data.map(t => t.mode)")[2:] == ["lines+markers"] * 4
    page.locator(".js-smoothing").first.fill("0.9")
    after = page.evaluate(f"{chart}.data.map(t => t.y)")
    assert after[0] == band_a["y"] and after[2] == raw_a["y"] and after[3] != line_a["y"]  # the smoothed line moved
    assert after[3][0] == pytest.approx(0.2) and after[3][1] == pytest.approx((0.9 * 0.02 + 0.03) / (1 - 0.81))
    visit.assert_clean()


def pixel(page, selector: str, fx: float, fy: float) -> list[int]:
    """RGB of a canvas at a fraction (fx, fy) of its width and height."""
    return page.evaluate(
        f"""(() => {{ const c = document.querySelector({selector!r});
        const d = c.getContext('2d').getImageData(Math.floor(c.width * {fx}), Math.floor(c.height * {fy}), 1, 1).data;
        return [d[0], d[1], d[2]]; }})()"""
    )


def test_panels_grid_slider_view_and_enlarge(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html", viewport=(390, 800))
    page = visit.page
    scroll_through(page)
    cell = "#fig\\:attention .panel-cell canvas"
    box = page.locator(cell).bounding_box()
    assert box["width"] >= 96 and box["height"] >= 96  # readable on a phone
    assert page.evaluate(f"getComputedStyle(document.querySelector({cell!r})).imageRendering") == "pixelated"
    # frame 1 of 'head 1' is [[0.1, 0.9], [0.5, 0.2]]: its own range, viridis from dark purple to yellow
    assert pixel(page, cell, 0.25, 0.25) == [68, 1, 84]
    assert pixel(page, cell, 0.75, 0.25) == [253, 231, 37]
    page.locator("#fig\\:attention .js-frame").fill("1")
    assert page.locator("#fig\\:attention .js-frame + output").inner_text() == "2"
    # frame 2 is [[0.3, 0.3], [0.1, 0.7]]: top left is a third of the way up its range
    assert pixel(page, cell, 0.25, 0.25) == [50, 103, 139]
    page.locator("#fig\\:attention .js-view").select_option("PCA")
    assert pixel(page, cell, 0.25, 0.75) == [1, 2, 3]  # the image of frame 2, drawn exactly
    page.locator("#fig\\:attention .panel-cell").click()
    dialog = page.locator("dialog.panel-dialog[open]")
    assert "layer 2" in dialog.inner_text() and "PCA" in dialog.inner_text()
    assert dialog.locator("canvas").bounding_box()["width"] >= 300
    page.keyboard.press("Escape")
    page.wait_for_function("!document.querySelector('dialog.panel-dialog')")
    visit.assert_clean()


def test_works_from_the_file_system(built_fixture_site, browser_page):
    visit = browser_page((built_fixture_site / "chapter.html").as_uri())
    scroll_through(visit.page)
    assert drawn_traces(visit.page) == expected_traces(visit.page)
    assert visit.console_errors == [] and visit.failed == [] and visit.foreign == []
    # KaTeX fonts load from dist/ itself
    assert visit.page.evaluate("document.fonts.check('16px KaTeX_Main')")


def test_phone_width_has_no_horizontal_scroll(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html", viewport=(375, 740))
    scroll_through(visit.page)
    assert visit.page.evaluate("document.documentElement.scrollWidth") <= 375
    width = visit.page.evaluate("document.querySelector('.chart .main-svg').getBoundingClientRect().width")
    assert 300 <= width <= 375
    visit.assert_clean()


def test_charts_follow_the_colour_scheme(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.emulate_media(color_scheme="light")
    page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")
    chart = "document.querySelector('.chart .chart-plot')"
    light = page.evaluate(f"[{chart}.layout.font.color, {chart}.layout.xaxis.gridcolor]")
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(f"{chart}.layout.font.color !== {light[0]!r}")
    dark = page.evaluate(f"[{chart}.layout.font.color, {chart}.layout.xaxis.gridcolor]")
    assert dark[0] == page.evaluate("getComputedStyle(document.body).color")
    assert dark[1] != light[1]
    visit.assert_clean()


def test_printing_draws_every_chart(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")
    assert drawn_traces(page)[-1] == -1  # far below, not drawn yet
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    page.wait_for_function("Array.from(document.querySelectorAll('.chart')).every(c => c.querySelector('.js-plotly-plot, [data-panels=drawn]'))")
    assert drawn_traces(page) == expected_traces(page)
    visit.assert_clean()


def test_charts_follow_the_window_width(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html", viewport=(1200, 800))
    page = visit.page
    page.wait_for_function("document.querySelector('.chart .main-svg') !== null")
    width = "document.querySelector('.chart .main-svg').getBoundingClientRect().width"
    wide = page.evaluate(width)
    page.set_viewport_size({"width": 480, "height": 800})
    page.wait_for_function(f"{width} <= 480")
    assert page.evaluate(width) < wide
    visit.assert_clean()
