"""Browser-test harness: serve a built site under a sub-path on 127.0.0.1 and open it in headless Chromium.

    def test_x(serve, browser_page):
        base = serve(dist)                          # http://127.0.0.1:PORT/lejepa-report/
        visit = browser_page(base + "index.html")   # a Visit: .page, .console_errors, .failed, .foreign

Chromium is Debian's (/usr/bin/chromium) driven by Playwright; `playwright install` is never run. The tests
are skipped, with the reason, only when that binary is missing (CI installs it).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SUB_PATH = "/lejepa-report/"

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(skip)


class _SubPathHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `directory` only under SUB_PATH, the way GitHub Pages serves a project site."""

    def translate_path(self, path):
        if not path.startswith(SUB_PATH):
            return str(Path(self.directory) / "__outside_the_sub_path__")
        return super().translate_path("/" + path[len(SUB_PATH):])

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_SubPathHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}{SUB_PATH}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API allows one running instance per thread, and
    tests elsewhere (e.g. tests/test_analyze_command.py) start their own after these modules finish."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Visit:
    page: object
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def assert_clean(self):
        assert self.console_errors == [], self.console_errors
        assert self.failed == [], self.failed
        assert self.foreign == [], self.foreign


@pytest.fixture
def browser_page(browser):
    """Open a URL in a fresh context; records console errors, failed requests and requests to other hosts."""
    contexts = []

    def open_url(url: str, viewport=(1200, 800)) -> Visit:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(context)
        page = context.new_page()
        visit = Visit(page)
        own = urlsplit(url)
        page.on("console", lambda m: m.type == "error" and visit.console_errors.append(m.text))
        page.on("pageerror", lambda e: visit.console_errors.append(str(e)))
        page.on("requestfailed", lambda r: visit.failed.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and visit.failed.append(f"{r.url}: HTTP {r.status}"))

        def check_host(request):
            parts = urlsplit(request.url)
            if parts.scheme in ("data", "blob", "about"):
                return
            if (parts.scheme, parts.netloc) != (own.scheme, own.netloc):
                visit.foreign.append(request.url)

        page.on("request", check_host)
        page.goto(url, wait_until="load")
        return visit

    yield open_url
    for context in contexts:
        context.close()
