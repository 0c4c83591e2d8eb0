"""The explorers (issue 15) in headless Chromium, on a site built from real tiny checkpoints' exports:
the SIGReg explainer against site_builder.train.objectives, the embedding map (hover, click, picker),
the attention viewer, linked charts, lazy loading, file://, phone width and axe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from site_builder.site.build import build_site
from site_builder.train.objectives import sigreg
from tests.conftest import write_site
from tests.explorer_fixture import make_exports

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

FILLER = "\n\n".join(f"Paragraph {i} of text that pushes the explorers below the fold." for i in range(60))
PAGE = f"""---
title: Explorers
summary: Every explorer and a linked pair of charts.
---

{FILLER}

```explorer
kind: sigreg
title: SIGReg explainer
how: Choose a sample and move the sliders.
```

```explorer
id: fig:embedding
kind: embedding
models: {{LeJEPA: explorers/tiny-lejepa, lambda 0: explorers/tiny-lambda0, InfoNCE: explorers/pending-run}}
title: Embedding map
how: Hover a point to see its image, click it for its nearest neighbours.
```

```explorer
kind: attention
models: {{LeJEPA: explorers/tiny-lejepa, lambda 0: explorers/tiny-lambda0}}
title: Attention viewer
how: Pick an image, a layer and a head.
```

```chart
source: runs/run/history.csv
y: [train/loss]
group: training
title: Loss
```

```chart
source: runs/run/history.csv
y: [train/lr]
group: training
title: Learning rate
```
"""


@pytest.fixture(scope="module")
def explorer_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer-site")
    with pytest.MonkeyPatch.context() as mp:
        make_exports(root, mp)
    write_site(root, {"content/index.md": PAGE})
    (root / "exports/runs/run").mkdir(parents=True)
    with open(root / "exports/runs/run/history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["_step", "train/loss", "train/lr"])
        for step in range(0, 500, 5):
            w.writerow([step, 5 * np.exp(-step / 200), min(step / 100, 1) * 1e-3])
    build_site(root, root / "dist")
    return root / "dist"


def open_explorer(visit, kind: str):
    fig = visit.page.locator(f'figure[data-explorer="{kind}"]')
    fig.scroll_into_view_if_needed()
    visit.page.wait_for_function(
        f"document.querySelector('figure[data-explorer=\"{kind}\"]').dataset.firstDrawMs !== undefined", timeout=20000)
    return fig


def test_data_loads_only_when_scrolled_near(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    page = visit.page
    page.wait_for_timeout(300)
    loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert not [u for u in loaded if "data/explorers/" in u]
    assert page.evaluate("document.querySelector('figure[data-explorer=embedding]').dataset.started") is None
    open_explorer(visit, "embedding")
    loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in loaded if "data/explorers/embedding_map-" in u]
    visit.assert_clean()


@pytest.mark.parametrize("family, n", [("gaussian", 16), ("uniform", 256), ("bimodal", 1000), ("heavy", 4096),
                                       ("collapsed", 64)])
def test_sigreg_statistic_equals_the_training_code(explorer_site, serve, browser_page, family, n):
    visit = browser_page(serve(explorer_site) + "index.html")
    open_explorer(visit, "sigreg")
    page = visit.page
    # the explainer's own samples, and numpy's, give the training code's statistic to 1e-6
    samples = [page.evaluate(f"window.siteExplorers.sample('{family}', {n}, 0.3, 5)"),
               np.random.default_rng(n).standard_t(3, n).tolist()]
    for x in samples:
        js = page.evaluate("x => window.siteExplorers.eppsPulley(x).value", x)
        z = torch.tensor(x, dtype=torch.float64)[None, :, None]
        py = sigreg(z, torch.ones(1, 1, dtype=torch.float64)).item()
        assert js == pytest.approx(py, rel=1e-6, abs=1e-12), (family, n)
    visit.assert_clean()


def test_sigreg_sliders_change_the_statistic(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    fig = open_explorer(visit, "sigreg")
    page = visit.page
    stat = lambda: float(fig.get_attribute("data-statistic"))  # noqa: E731
    shown = lambda: fig.locator(".sigreg-statistic").inner_text()  # noqa: E731
    gaussian = stat()
    assert shown() == f"{gaussian:.4g}" or float(shown()) == pytest.approx(gaussian, rel=1e-3)
    sliders = fig.locator("input[type=range]")
    sliders.nth(1).fill("0.95")  # the shape: standard deviation 1.91 instead of 1
    assert stat() > 10 * gaussian
    sliders.nth(0).focus()
    page.keyboard.press("ArrowRight")  # N 512 -> 1024, by keyboard
    assert fig.locator("output").first.inner_text() == "1024"
    fig.locator("select").first.select_option("collapsed")
    assert stat() > 100
    # the slicing panel: a stretched cloud is caught, the cross passes on the axes
    fig.locator("select").nth(1).select_option("stretched")
    assert "exceed" in fig.locator(".explorer-result").nth(1).inner_text()
    fig.locator("select").nth(1).select_option("cross")
    fig.locator("input[type=checkbox]").check()
    assert "although it is not Gaussian" in fig.locator(".explorer-result").nth(1).inner_text()
    visit.assert_clean()


def point_position(page, index: int):
    """Page coordinates of test image `index` on the embedding map."""
    return page.evaluate("""i => {
        const plot = document.querySelector('figure[data-explorer=embedding] .js-plotly-plot');
        const t = plot.data.find(tr => tr.customdata && tr.customdata.includes(i));
        const k = t.customdata.indexOf(i), fl = plot._fullLayout, box = plot.getBoundingClientRect();
        return [box.left + fl.xaxis._offset + fl.xaxis.l2p(t.x[k]), box.top + fl.yaxis._offset + fl.yaxis.l2p(t.y[k])];
    }""", index)


def canvas_is_drawn(locator) -> bool:
    return locator.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; }""")


def test_embedding_map_hover_click_and_model_picker(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    fig = open_explorer(visit, "embedding")
    page = visit.page
    assert page.evaluate("document.querySelector('figure[data-explorer=embedding] .js-plotly-plot').data[0].type") == "scattergl"
    assert fig.locator("option", has_text="InfoNCE (pending)").is_disabled()
    # hover a point whose neighbourhood is sparse enough to be the nearest under the mouse
    page.evaluate("document.querySelector('figure[data-explorer=embedding] .explorer-plot').scrollIntoView()")
    pos = point_position(page, 7)
    page.mouse.move(pos[0] + 40, pos[1] + 40)
    page.mouse.move(*pos)
    page.wait_for_function("document.querySelector('figure[data-explorer=embedding]').dataset.hovered !== undefined")
    hovered = int(fig.get_attribute("data-hovered"))
    assert f"test #{hovered}" in fig.locator(".explorer-caption").first.inner_text()
    page.wait_for_timeout(300)  # the atlas tile loads
    assert canvas_is_drawn(fig.locator(".explorer-thumb"))
    # click: the 8 nearest neighbours, as images
    page.mouse.click(*pos)
    page.wait_for_function("document.querySelector('figure[data-explorer=embedding]').dataset.selected !== undefined")
    selected = fig.get_attribute("data-selected")
    assert fig.locator(".explorer-neighbour canvas").count() == 8
    page.wait_for_timeout(300)
    assert all(canvas_is_drawn(c) for c in fig.locator(".explorer-neighbour canvas").all())
    before = page.evaluate("document.querySelector('figure[data-explorer=embedding] .js-plotly-plot').data.slice(0, 20).map(t => t.x).flat()")
    first_neighbours = fig.locator(".explorer-neighbour canvas").evaluate_all("cs => cs.map(c => c.getAttribute('aria-label'))")
    # the picker changes the map and keeps the selection
    fig.locator("select").first.select_option(label="lambda 0")
    page.wait_for_function("document.querySelector('figure[data-explorer=embedding]').dataset.model === 'lambda 0'")
    after = page.evaluate("document.querySelector('figure[data-explorer=embedding] .js-plotly-plot').data.slice(0, 20).map(t => t.x).flat()")
    assert len(after) == len(before) and after != before
    assert fig.get_attribute("data-selected") == selected and fig.locator(".explorer-neighbour canvas").count() == 8
    shown = fig.locator(".explorer-neighbour canvas").evaluate_all("cs => cs.map(c => c.getAttribute('aria-label'))")
    for run, labels in (("tiny-lejepa", first_neighbours), ("tiny-lambda0", shown)):  # each model's own neighbours
        emb_map = json.loads((explorer_site.parent / "exports/explorers" / run / "embedding_map.json").read_text())
        i, k = int(selected), emb_map["k"]
        assert [int(label.split("test image ")[1].split(",")[0]) for label in labels] == emb_map["neighbours"][i * k : (i + 1) * k]
    # keyboard: a test index typed in shows that image and its neighbours
    fig.locator("input.js-index").fill("150")
    fig.locator("input.js-index").press("Enter")
    assert fig.get_attribute("data-selected") == "150"
    print(f"embedding explorer: first draw {fig.get_attribute('data-first-draw-ms')} ms")
    visit.assert_clean()


def test_the_super_class_key_hides_shows_and_isolates_classes_across_models(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    fig = open_explorer(visit, "embedding")
    page = visit.page
    visible = "document.querySelector('figure[data-explorer=embedding] .js-plotly-plot').data.slice(0, 20).map(t => t.visible)"
    keys = fig.locator(".explorer-legend button[aria-pressed]")
    assert keys.count() == 20 and page.evaluate(visible) == [True] * 20
    keys.nth(3).focus()  # a button: the keyboard reaches it
    page.keyboard.press("Enter")
    assert keys.nth(3).get_attribute("aria-pressed") == "false"
    assert page.evaluate(visible) == [c != 3 for c in range(20)]
    fig.locator("select").first.select_option(label="lambda 0")  # another model keeps the hidden class hidden
    page.wait_for_function("document.querySelector('figure[data-explorer=embedding]').dataset.model === 'lambda 0'")
    assert page.evaluate(visible) == [c != 3 for c in range(20)]
    keys.nth(5).click(modifiers=["Shift"])  # only this one
    assert page.evaluate(visible) == [c == 5 for c in range(20)]
    fig.locator(".explorer-legend-all").click()
    assert page.evaluate(visible) == [True] * 20 and keys.nth(3).get_attribute("aria-pressed") == "true"
    visit.assert_clean()


def test_attention_viewer_draws_and_switches(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    fig = open_explorer(visit, "attention")
    canvas = fig.locator("canvas.explorer-attention")
    assert canvas_is_drawn(canvas) and canvas.bounding_box()["width"] >= 256  # readable size
    mean_entropy = float(fig.get_attribute("data-entropy"))
    assert 0 < mean_entropy <= np.log(64) + 1e-9
    assert "head similarity" in fig.locator("table").inner_text()
    fig.locator("select").nth(3).select_option("0")  # head 1
    visit.page.wait_for_function(f"document.querySelector('figure[data-explorer=attention]').dataset.entropy !== '{mean_entropy:.6f}'")
    assert "head 1" in fig.locator("table caption").inner_text()
    label = canvas.get_attribute("aria-label")
    fig.locator("select").nth(1).select_option(index=3)
    visit.page.wait_for_function(f"document.querySelector('canvas.explorer-attention').getAttribute('aria-label') !== {label!r}")
    fig.locator("select").first.select_option(label="lambda 0")
    visit.page.wait_for_function("document.querySelector('figure[data-explorer=attention]').dataset.model === 'lambda 0'")
    print(f"attention explorer: first draw {fig.get_attribute('data-first-draw-ms')} ms")
    visit.assert_clean()


def test_linked_charts_share_hover_and_zoom(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html")
    page = visit.page
    charts = page.locator(".chart[data-group=training]")
    assert charts.count() == 2
    charts.nth(1).scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.querySelectorAll('.chart[data-group] .js-plotly-plot')).length === 2 && "
                           "Array.from(document.querySelectorAll('.chart[data-group] .js-plotly-plot')).every(p => p.dataset.linked)")
    charts.nth(0).scroll_into_view_if_needed()
    box = charts.nth(0).locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("document.querySelectorAll('.chart[data-group]')[1].querySelector('.hoverlayer').children.length > 0")
    here, other = page.evaluate("Array.from(document.querySelectorAll('.chart[data-group] .hoverlayer')).map(h => h.textContent)")
    step = here.split("train/")[0].strip()  # the unified hover's title is the step under the mouse
    assert step and other.startswith(step) and "train/lr" in other
    page.evaluate("Plotly.relayout(document.querySelectorAll('.chart[data-group] .js-plotly-plot')[0], {'xaxis.range': [100, 200]})")
    page.wait_for_function("(r => r && Math.abs(r[0] - 100) < 1e-9 && Math.abs(r[1] - 200) < 1e-9)"
                           "(document.querySelectorAll('.chart[data-group] .js-plotly-plot')[1].layout.xaxis.range)")
    page.evaluate("Plotly.relayout(document.querySelectorAll('.chart[data-group] .js-plotly-plot')[1], {'xaxis.autorange': true})")
    page.wait_for_function("document.querySelectorAll('.chart[data-group] .js-plotly-plot')[0].layout.xaxis.autorange === true")
    visit.assert_clean()


def test_explorers_work_from_the_file_system(explorer_site, browser_page):
    visit = browser_page((explorer_site / "index.html").as_uri())
    for kind in ("sigreg", "embedding", "attention"):
        open_explorer(visit, kind)
        assert visit.page.locator(f'figure[data-explorer="{kind}"] .explorer-error').count() == 0
    assert visit.console_errors == [] and visit.failed == [] and visit.foreign == []


def test_phone_width_has_no_horizontal_scroll(explorer_site, serve, browser_page):
    visit = browser_page(serve(explorer_site) + "index.html", viewport=(375, 740))
    for kind in ("sigreg", "embedding", "attention"):
        open_explorer(visit, kind)
    assert visit.page.evaluate("document.documentElement.scrollWidth") <= 375
    visit.assert_clean()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core not installed (npm ci)")
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_explorers_have_no_serious_accessibility_violations(explorer_site, serve, browser_page, scheme):
    visit = browser_page(serve(explorer_site) + "index.html")
    page = visit.page
    page.emulate_media(color_scheme=scheme)
    for kind in ("sigreg", "embedding", "attention"):
        open_explorer(visit, kind)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document.querySelector('main'), {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))")
    assert violations == []


def test_a_foreign_attention_file_cannot_make_the_page_request_another_host(tmp_path, serve, browser_page):
    viewer = {"grid": 2, "patch": 16, "resolution": 32, "layers": 1, "heads": 1, "scale": 100000,
              "sparsity_threshold": 0.01,
              "images": [{"index": 0, "label": "x", "superclass": "y", "png": "http://example.invalid/x.png",
                          "attention": [[[25000, 25000, 25000, 25000]]]}]}
    write_site(tmp_path, {
        "content/index.md": "---\ntitle: T\n---\n\n```explorer\nkind: attention\nmodels: {A: explorers/a}\nhow: x\n```\n",
        "exports/explorers/a/attention_viewer.json": json.dumps(viewer)})
    build_site(tmp_path, tmp_path / "dist")
    visit = browser_page(serve(tmp_path / "dist") + "index.html")
    visit.page.locator("figure[data-explorer=attention]").scroll_into_view_if_needed()
    visit.page.wait_for_selector("figure[data-explorer=attention] .explorer-error")
    assert "not an embedded PNG" in visit.page.inner_text("figure[data-explorer=attention]")
    assert visit.foreign == []


def test_the_attention_viewer_keeps_the_last_layer_across_models_of_another_depth(tmp_path, serve, browser_page):
    """A 12-layer model after a 6-layer one: the last layer stays the last (the representation's), not layer 6;
    a layer picked in the middle stays that layer; a layer the new model lacks becomes its last."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 80, 40)).save(buf, format="PNG")
    png = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def viewer(layers):
        return {"grid": 2, "patch": 16, "resolution": 32, "layers": layers, "heads": 1, "scale": 100000,
                "sparsity_threshold": 0.01, "images": [{"index": 0, "label": "x", "superclass": "y", "png": png,
                                                        "attention": [[[25000, 25000, 25000, 25000]]] * layers}]}

    write_site(tmp_path, {
        "content/index.md": "---\ntitle: T\n---\n\n```explorer\nkind: attention\nmodels: {six: explorers/a, twelve: explorers/b}\nhow: x\n```\n",
        "exports/explorers/a/attention_viewer.json": json.dumps(viewer(6)),
        "exports/explorers/b/attention_viewer.json": json.dumps(viewer(12))})
    build_site(tmp_path, tmp_path / "dist")
    visit = browser_page(serve(tmp_path / "dist") + "index.html")
    fig = visit.page.locator("figure[data-explorer=attention]")
    fig.scroll_into_view_if_needed()
    visit.page.wait_for_function("document.querySelector('figure[data-explorer=attention]').dataset.ready === '1'")
    model, layer = fig.locator("select").nth(0), fig.locator("select").nth(2)
    assert layer.input_value() == "5"

    def switch(name):
        model.select_option(label=name)
        visit.page.wait_for_function(f"document.querySelector('figure[data-explorer=attention]').dataset.model === {name!r}")

    switch("twelve")
    assert layer.input_value() == "11"
    layer.select_option(index=3)
    assert layer.input_value() == "3"
    switch("six")
    assert layer.input_value() == "3"
    switch("twelve")
    layer.select_option(index=9)  # by index: a string matches labels too
    switch("six")
    assert layer.input_value() == "5"
