"""reader.js in headless Chromium, on the starter project of `site-builder new` (plus a footnote):
hover and focus previews of citations, footnotes and equation / figure references; sortable data tables
with right-aligned numbers; the dark-mode toggle, remembered across pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from site_builder.new import create_project
from site_builder.site.build import build_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def starter_dist(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "site"
    create_project(root)
    method = root / "content" / "method.md"
    method.write_text(method.read_text() + "\nA claim with a footnote.[^why]\n\n[^why]: Because the footnote says so.\n")
    (root / "content" / "index.md").write_text((root / "content" / "index.md").read_text() + "\nThe objective is \\eqref{eq:loss}.\n")
    build_site(root)
    return root / "dist"


def preview_text(page) -> str:
    page.wait_for_selector(".preview:not([hidden])", timeout=5000)
    return page.inner_text(".preview")


def test_previews_on_hover_and_focus(starter_dist, serve, browser_page):
    base = serve(starter_dist)
    visit = browser_page(base + "method.html")
    page = visit.page
    page.hover("a.citation")
    assert "LeJEPA: Provable and Scalable Self-Supervised Learning" in preview_text(page)
    page.mouse.move(0, 0)
    page.wait_for_selector(".preview", state="hidden")
    page.hover(".footnote-ref a")
    assert "Because the footnote says so." in preview_text(page)
    page.mouse.move(0, 0)
    page.wait_for_selector(".preview", state="hidden")
    page.focus('a.xref[href="#fig:loss"]')  # keyboard focus shows it too, and the link is described by it
    assert preview_text(page).startswith("Figure 1.1")
    assert page.get_attribute('a.xref[href="#fig:loss"]', "aria-describedby") == "reference-preview"
    page.keyboard.press("Escape")
    page.wait_for_selector(".preview", state="hidden")
    visit.assert_clean()
    # an equation on another page is fetched and shown as rendered math
    home = browser_page(base + "index.html").page
    home.hover("a.xref")
    home.wait_for_selector(".preview .katex", timeout=5000)
    assert "(1.1)" in home.inner_text(".preview")


def test_data_tables_sort_by_a_header_click_and_align_numbers_right(starter_dist, serve, browser_page):
    page = browser_page(serve(starter_dist) + "method.html").page
    table = ".table-figure table.sortable"
    assert page.eval_on_selector(f"{table} td.num", "td => getComputedStyle(td).textAlign") == "right"
    values = lambda: page.eval_on_selector_all(f"{table} tbody tr td:last-child", "tds => tds.map(t => t.textContent)")  # noqa: E731
    assert values() == ["0.001", "128", "500", "0.05"]  # config order: lr, batch_size, steps, lambda
    page.click(f"{table} th.num button")
    assert values() == ["0.001", "0.05", "128", "500"]  # numerically, not as text
    assert page.get_attribute(f"{table} th.num", "aria-sort") == "ascending"
    page.click(f"{table} th.num button")
    assert values() == ["500", "128", "0.05", "0.001"]
    assert page.get_attribute(f"{table} th.num", "aria-sort") == "descending"


def test_dark_mode_toggle_is_remembered(starter_dist, serve, browser_page):
    base = serve(starter_dist)
    page = browser_page(base + "index.html").page  # the context prefers light (Playwright's default)
    background = lambda: page.evaluate("getComputedStyle(document.body).backgroundColor")  # noqa: E731
    light = background()
    assert page.inner_text(".theme-toggle") == "Dark"
    page.click(".theme-toggle")
    dark = background()
    assert dark != light and page.get_attribute(".theme-toggle", "aria-pressed") == "true"
    page.goto(base + "method.html")  # another page of the site: still dark, before any click
    assert background() == dark and page.inner_text(".theme-toggle") == "Light"
    page.wait_for_selector(".chart-plot .main-svg")  # a chart drawn in dark mode, then switched to light
    chart_text = lambda: page.eval_on_selector(".chart-plot", "p => p._fullLayout.font.color")  # noqa: E731
    body_text = lambda: page.evaluate("getComputedStyle(document.body).color")  # noqa: E731
    assert chart_text() == body_text()
    page.click(".theme-toggle")
    assert background() == light
    assert chart_text() == body_text()  # redrawn in the light theme's text colour
