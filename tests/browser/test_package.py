"""The package as a new user gets it: a built wheel (not this checkout), `site-builder new`, `build` in a
folder outside the repository, and the result in headless Chromium: the chart draws and the math renders
with the KaTeX fonts that travel inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The wheel built from the repository, installed (without dependencies: this environment has them)
    into a folder of its own; returns that folder and an environment that imports site_builder from it."""
    tmp = tmp_path_factory.mktemp("package")
    run = lambda *cmd, **kw: subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # noqa: E731
    # pip builds in the source folder (build/): a copy keeps concurrent builds of the checkout apart
    source = tmp / "source"
    skip = ("build", "dist", ".cache", ".venv", "node_modules", "*.egg-info", ".git", "exports", "checkpoints", "wandb", "data", "__pycache__")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*skip))
    (source / "node_modules").symlink_to(REPO / "node_modules")  # what `npm ci` installed (else setup.py runs it)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "wheels"), str(source))
    wheel = next((tmp / "wheels").glob("site_builder-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "site_builder/theme/page.html" in names and "site_builder/starter/content/method.md" in names
    assert "site_builder/theme/vendor/katex/dist/katex.min.css" in names
    assert "site_builder/theme/vendor/katex/dist/fonts/KaTeX_Main-Regular.woff2" in names
    target = tmp / "installed"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    return target, env


def test_a_new_project_builds_from_the_wheel_and_draws_in_the_browser(installed, tmp_path, serve, browser_page):
    target, env = installed
    python = lambda *args, cwd: subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)  # noqa: E731
    where = python("-c", "import site_builder; print(site_builder.__file__)", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(target)), where  # the wheel's copy, not this checkout
    created = python("-m", "site_builder", "new", "mysite", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    built = python("-m", "site_builder", "build", cwd=tmp_path / "mysite")
    assert built.returncode == 0, built.stderr
    assert built.stderr == ""  # the starter has no warnings (alt text present, data present)
    dist = tmp_path / "mysite" / "dist"
    assert not (tmp_path / "mysite" / "node_modules").exists()

    base = serve(dist)
    visit = browser_page(base + "method.html")
    page = visit.page
    page.wait_for_selector(".chart-plot .main-svg", timeout=15000)  # Plotly drew the chart
    assert page.eval_on_selector_all(".chart-plot .scatterlayer .trace", "ts => ts.length") >= 1
    page.evaluate("document.fonts.ready")
    assert page.evaluate("document.querySelectorAll('.katex-display .katex-html').length") == 1
    assert page.evaluate("document.fonts.check('16px KaTeX_Main') && document.fonts.check('16px KaTeX_Math')")
    # the KaTeX fonts were fetched from the site itself
    fonts = page.evaluate("performance.getEntriesByType('resource').map(r => r.name).filter(n => n.endsWith('.woff2'))")
    assert fonts and all(f.startswith(base + "assets/katex-") for f in fonts), fonts
    # the starter's citation, cross-references and image work
    assert page.inner_text("a.citation") == "1"
    assert page.inner_text("#ref-balestriero2025lejepa").startswith("[1] Randall Balestriero, Yann LeCun.")
    assert page.eval_on_selector("img", "i => i.complete && i.naturalWidth") == 640
    visit.assert_clean()
