"""Reader features in real headless Chromium: search, colour schemes and contrast, keyboard, the 404 page
under a Pages sub-path, accessibility (axe-core from npm), and the dev server's live reload."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tests.browser.conftest import SUB_PATH, _SubPathHandler
from tests.conftest import FIXTURE_FILES, write_site

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def search(page, term: str) -> list[str]:
    """Type `term` into the search box; the result links' hrefs."""
    page.wait_for_selector(".pagefind-ui__search-input")
    page.fill(".pagefind-ui__search-input", term)
    page.wait_for_selector(".pagefind-ui__result-link", timeout=10000)
    return page.eval_on_selector_all(".pagefind-ui__result-link", "as => as.map(a => a.href)")


def test_search_finds_a_chapter_under_the_sub_path(built_fixture_site, serve, browser_page):
    base = serve(built_fixture_site)
    visit = browser_page(base + "index.html")
    loaded = "() => performance.getEntriesByType('resource').filter(r => r.name.includes('pagefind-ui')).length"
    assert visit.page.evaluate(loaded) == 0  # Pagefind's UI loads only once the reader uses the box
    hrefs = search(visit.page, "callout")
    assert visit.page.evaluate(loaded) == 2  # its script and stylesheet  # a word only the chapter's article contains
    assert hrefs and all(h.startswith(base) for h in hrefs), hrefs
    assert {h.split("#")[0] for h in hrefs} == {base + "chapter.html"}
    visit.page.click(".pagefind-ui__result-link")
    visit.page.wait_for_url(re.compile(r".*/chapter\.html.*"))
    assert visit.page.title().startswith("The chapter")
    visit.page.wait_for_function("document.querySelector('.chart .js-plotly-plot') !== null")  # Plotly (lazy) is in
    # words outside the articles (navigation, footers) are not indexed
    visit.page.goto(base + "index.html")
    visit.page.fill(".pagefind-ui__search-input", "Skip")
    visit.page.wait_for_selector(".pagefind-ui__message")
    visit.page.wait_for_timeout(300)
    assert visit.page.locator(".pagefind-ui__result-link").count() == 0
    visit.assert_clean()


def test_search_from_the_file_system_says_it_needs_a_server(built_fixture_site, browser_page):
    visit = browser_page((built_fixture_site / "index.html").as_uri())
    assert "served over HTTP" in visit.page.inner_text(".site-search")
    assert visit.console_errors == [] and visit.failed == []


def luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colour_scheme_and_contrast(built_fixture_site, serve, browser_page, scheme):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.emulate_media(color_scheme=scheme)
    colors = page.evaluate(
        """() => {
        const c = s => getComputedStyle(document.querySelector(s)).color;
        return {bg: getComputedStyle(document.body).backgroundColor, text: c('.article > p'),
                muted: c('.summary'), link: c('.article a.xref'), caption: c('figcaption')};
    }"""
    )
    dark_background = luminance(colors["bg"]) < 0.05
    assert dark_background == (scheme == "dark"), colors
    assert contrast(colors["text"], colors["bg"]) >= 7, colors  # WCAG AAA for body text
    for role in ("muted", "link", "caption"):
        assert contrast(colors[role], colors["bg"]) >= 4.5, (role, colors)  # WCAG AA
    visit.assert_clean()


def test_keyboard_skip_link_and_search_shortcut(built_fixture_site, serve, browser_page):
    visit = browser_page(serve(built_fixture_site) + "chapter.html")
    page = visit.page
    page.wait_for_selector(".pagefind-ui__search-input")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    box = page.evaluate("document.activeElement.getBoundingClientRect().left")
    assert box >= 0  # visible when focused
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.classList.contains('pagefind-ui__search-input')")


class PagesHandler(_SubPathHandler):
    """The harness's sub-path server plus GitHub Pages' rule: a missing path gets 404.html, status 404."""

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.exists():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def pages_site(tmp_path_factory):
    """The fixture site built for its Pages sub-path (base_url = SUB_PATH), served like Pages serves it."""
    import functools
    import http.server

    from site_builder.site.build import build_site

    root = write_site(tmp_path_factory.mktemp("pages") / "site", FIXTURE_FILES)
    build_site(root, base_url=SUB_PATH)
    handler = functools.partial(PagesHandler, directory=str(root / "dist"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}{SUB_PATH}"
    server.shutdown()
    server.server_close()


def test_404_page_works_at_any_depth_under_the_sub_path(pages_site, browser_page):
    visit = browser_page(pages_site + "no/such/deep/page.html")
    page = visit.page
    assert page.locator("h1").inner_text() == "Page not found"
    # its stylesheet loaded although the URL is three folders deep (the <base> of the sub-path)
    assert page.evaluate("getComputedStyle(document.querySelector('.site-header')).display") == "flex"
    hrefs = page.eval_on_selector_all(".sidebar a, .article a", "as => as.map(a => a.href)")
    assert pages_site + "chapter.html" in hrefs and pages_site + "index.html" in hrefs
    page.click(".sidebar a >> text=The chapter")
    page.wait_for_url(pages_site + "chapter.html")
    assert page.title().startswith("The chapter")
    assert search(page, "callout")  # search works from the 404 page too
    # the only failed request is the missing page itself (Chromium also logs its 404 to the console)
    assert [f for f in visit.failed if "no/such/deep" not in f] == []
    assert [e for e in visit.console_errors if "status of 404" not in e] == [] and visit.foreign == []


@pytest.mark.skipif(not AXE.exists(), reason="axe-core not installed (npm ci)")
@pytest.mark.parametrize("scheme, viewport", [("light", (1280, 900)), ("dark", (390, 844))])
def test_no_serious_accessibility_violations(pages_site, browser_page, scheme, viewport):
    found = {}
    for name in ("index.html", "chapter.html", "missing.html"):
        visit = browser_page(pages_site + name, viewport=viewport)
        page = visit.page
        page.emulate_media(color_scheme=scheme)
        page.wait_for_selector(".pagefind-ui__search-input")
        page.evaluate("document.fonts.ready")
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
        )
        if violations:
            found[name] = violations
    assert found == {}


def test_serve_reloads_on_change_and_shows_build_errors(fixture_site, browser_page):
    from site_builder.site.serve import DevServer

    server = DevServer(fixture_site, port=0)
    url = server.start()
    watcher = threading.Thread(target=server.watch, daemon=True)
    watcher.start()
    try:
        visit = browser_page(url + "index.html")
        page = visit.page
        assert "Welcome." in page.inner_text("main")
        index = fixture_site / "content" / "index.md"
        original = index.read_text()
        page.wait_for_timeout(500)  # the watcher is up
        index.write_text(original.replace("Welcome.", "Welcome back."))
        page.wait_for_function("document.querySelector('main').innerText.includes('Welcome back.')", timeout=15000)
        # a broken chapter: the error shows in the page, the last good build stays
        index.write_text(original.replace("Welcome.", "Welcome back. See \\eqref{eq:nope}."))
        page.wait_for_selector("#serve-error", timeout=15000)
        error = page.inner_text("#serve-error")
        assert "content/index.md" in error and "eq:nope" in error
        assert "Welcome back." in page.inner_text("main")
        assert "eq:nope" in server.state.error
        # fixed: the error goes and the page shows the new text
        index.write_text(original.replace("Welcome.", "Welcome, third time."))
        page.wait_for_function("document.querySelector('main').innerText.includes('Welcome, third time.')", timeout=15000)
        assert page.locator("#serve-error").count() == 0
        assert visit.console_errors == [] and visit.foreign == []
    finally:
        server.close()
        watcher.join(timeout=5)
