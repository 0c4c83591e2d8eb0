"""The explorers' data (issue 15): `analyze --explorers` on real tiny checkpoints, and the `explorer`
directive of the build (no browser here; tests/browser/test_explorers_browser.py drives them in Chromium)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from site_builder.analyze import explorers
from site_builder.site.build import build_site
from site_builder.train.data import load_cifar100
from tests.conftest import write_site
from tests.explorer_fixture import RUNS, TEST_IMAGES, make_exports


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorers")
    with pytest.MonkeyPatch.context() as mp:
        data, md5 = make_exports(root, mp)
        test_x, test_y = load_cifar100(data, "test", md5)
    return root, test_x, test_y, md5


def test_embedding_map_has_every_test_image_and_true_cosine_neighbours(project):
    root, test_x, test_y, _ = project
    emb_map = json.loads((root / "exports/explorers/tiny-lejepa/embedding_map.json").read_text())
    n = TEST_IMAGES
    assert emb_map["count"] == n and len(emb_map["x"]) == len(emb_map["y"]) == n
    assert emb_map["fine"] == test_y.tolist() and emb_map["coarse"] == (test_y // 5).tolist()
    assert len(emb_map["coarse_names"]) == 20 and emb_map["k"] == 8
    neighbours = np.array(emb_map["neighbours"]).reshape(n, 8)
    assert all(i not in row for i, row in enumerate(neighbours))
    # independent check: the model's CLS embeddings, cosine similarity by numpy
    from site_builder.analyze.pipeline import cls_embeddings
    from site_builder.train.checkpoint import load_model

    model, _ = load_model(root / "checkpoints/tiny-lejepa/final")
    z = cls_embeddings(model, test_x, 32, torch.device("cpu")).double().numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    for i in range(0, n, 17):
        expected = np.sort(sims[i])[::-1][:8]
        np.testing.assert_allclose(np.sort(sims[i, neighbours[i]])[::-1], expected, rtol=1e-5)
    # the map is a PCA of the unit vectors: its coordinates' variance is at most the total variance
    xy = np.stack([emb_map["x"], emb_map["y"]], 1)
    assert (xy**2).sum(1).mean() <= emb_map["spread"] ** 2 * (1 + 1e-3)


def test_a_collapsed_embedding_maps_to_a_dot_and_a_spread_one_does_not():
    torch.manual_seed(0)
    spread = explorers.embedding_map(torch.randn(300, 16))
    collapsed = explorers.embedding_map(torch.ones(300, 16) + 1e-4 * torch.randn(300, 16))
    assert spread["spread"] > 0.9 and collapsed["spread"] < 1e-3
    assert max(map(abs, collapsed["x"])) < 1e-3 < max(map(abs, spread["x"]))


def test_atlas_tiles_hold_each_test_image_at_its_cell(project):
    root, test_x, _, _ = project
    folder = root / "exports/explorers/cifar100-test"
    assert sorted(p.name for p in folder.iterdir()) == ["atlas-000.jpg", "atlas-001.jpg"]
    for i in (0, 57, 199):
        tile = np.asarray(Image.open(io.BytesIO((folder / f"atlas-{i // 100:03d}.jpg").read_bytes())).convert("RGB"))
        r, c = divmod(i % 100, 10)
        cell = tile[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32].astype(int)
        other = test_x[(i + 1) % TEST_IMAGES].astype(int)
        err = np.abs(cell - test_x[i]).mean()
        assert err < 12 < np.abs(cell - other).mean(), (i, err)  # JPEG at quality 90 on random noise


def test_attention_viewer_holds_distributions_per_layer_and_head(project):
    root, _, test_y, _ = project
    viewer = json.loads((root / "exports/explorers/tiny-lambda0/attention_viewer.json").read_text())
    assert viewer["grid"] == 8 and viewer["layers"] == 1 and viewer["heads"] == 2 and viewer["patch"] == 4
    indices = [im["index"] for im in viewer["images"]]
    assert indices[:2] == [34, 121]  # the panel first, then one image per missing super-class
    assert sorted({int(test_y[i]) // 5 for i in indices}) == list(range(20))
    for im in viewer["images"]:
        a = np.array(im["attention"])
        assert a.shape == (1, 2, 64)
        np.testing.assert_allclose(a.sum(-1), viewer["scale"], atol=64)  # rounded to units of 1e-5
        assert im["png"].startswith("data:image/png;base64,") and im["label"] == f"fine{test_y[im['index']]}"


def test_rerun_with_explorers_is_cached(project, capsys, monkeypatch):
    from site_builder import cli
    from site_builder.train import data

    root, _, _, md5 = project
    monkeypatch.setitem(data.SHARD_MD5, "test", md5)
    assert cli.main(["analyze", "--checkpoint", str(root / "checkpoints/tiny-lejepa/final"), "--data", str(root / "data"),
                     "--out", str(root / "exports/explorers"), "--device", "cpu", "--images", "34,121",
                     "--explorers"]) == 0
    assert "up to date" in capsys.readouterr().out


EXPLORER_PAGE = """---
title: Explorers
summary: Explorer directives.
---

```explorer
kind: embedding
models: {LeJEPA: explorers/tiny-lejepa, lambda 0: explorers/tiny-lambda0, InfoNCE: explorers/not-yet}
title: Embedding map
how: Hover a point.
```

```explorer
kind: sigreg
how: Move the sliders.
```
"""


def test_explorer_directive_copies_data_as_scripts_and_marks_pending_models(project, tmp_path):
    root, _, _, md5 = project
    site = tmp_path / "site"
    write_site(site, {"content/index.md": EXPLORER_PAGE})
    shutil.copytree(root / "exports", site / "exports")
    result = build_site(site, site / "dist")
    html = (site / "dist/index.html").read_text()
    assert html.count('data-explorer="embedding"') == 1 and html.count('data-explorer="sigreg"') == 1
    assert "How to read." in html and "explorers-" in html and "explorers-" in html
    assert any("not-yet/embedding_map.json" in w for w in result.warnings)
    scripts = sorted((site / "dist/data/explorers").glob("embedding_map-*.js"))
    assert len(scripts) == 2
    text = scripts[0].read_text()
    assert text.startswith('explorerData("data/explorers/embedding_map-')
    payload = json.loads(text[text.index(", ") + 2 : text.rindex(");")])
    assert payload["count"] == TEST_IMAGES
    assert len(list((site / "dist/data/explorers").glob("atlas-*.jpg"))) == 2


@pytest.mark.parametrize("body, message", [
    ("kind: embeding\nhow: x", "kind must be one of"),
    ("kind: sigreg", "'how' is required"),
    ("kind: attention\nhow: x", "models must be a mapping"),
    ("kind: sigreg\nhow: x\nmodels: {a: figures/a}", "takes no models"),
    ("kind: sigreg\nhow: x\ncolour: red", "unknown key 'colour'"),
])
def test_bad_explorer_block_is_a_one_line_error_with_file_and_line(tmp_path, body, message):
    from site_builder.errors import UserError

    write_site(tmp_path, {"content/index.md": f"---\ntitle: T\n---\n\ntext\n\n```explorer\n{body}\n```\n"})
    with pytest.raises(UserError) as err:
        build_site(tmp_path, tmp_path / "dist")
    assert message in str(err.value) and "index.md:7" in str(err.value)


def test_a_site_without_explorers_loads_no_explorer_code(built_fixture_site):
    for page in built_fixture_site.glob("*.html"):
        assert "explorers-" not in page.read_text()


def test_other_patch_sizes_and_resolutions_give_their_own_grid(project, tmp_path, monkeypatch):
    """A /8 model at 64 px (an 8x8 grid from a 64 px input, as a ViT-S/16 gets 14x14 from 224 px)."""
    from site_builder import cli
    from site_builder.train import data
    from site_builder.train.checkpoint import save_checkpoint
    from site_builder.train.model import ViT, ViTConfig

    root, _, _, md5 = project
    monkeypatch.setitem(data.SHARD_MD5, "test", md5)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "checkpoints" / "patch8" / "final", ViT(ViTConfig(patch_size=8, width=32, depth=2, heads=2)))
    out = tmp_path / "explorers"
    assert cli.main(["analyze", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--out", str(out), "--device", "cpu",
                     "--images", "34", "--embeddings", "20", "--explorers", "--explorer-resolution", "64"]) == 0
    viewer = json.loads((out / "patch8/attention_viewer.json").read_text())
    assert (viewer["grid"], viewer["patch"], viewer["resolution"], viewer["layers"]) == (8, 8, 64, 2)
    assert np.array(viewer["images"][0]["attention"]).shape == (2, 2, 64)
    assert json.loads((out / "patch8/embedding_map.json").read_text())["resolution"] == 64
    assert cli.main(["analyze", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--out", str(out), "--device", "cpu",
                     "--images", "34", "--explorers", "--explorer-resolution", "60"]) == 1


def test_the_map_axes_fit_every_model_and_are_shared(tmp_path):
    """The picker's models share one square range that no point leaves: a collapsed model whose
    coordinates reach past 1 widens it for all (rounded up to a quarter), pending models are skipped,
    and a broken map is a one-line error naming its file."""
    from site_builder.errors import UserError
    from site_builder.site.explorers import map_extent

    def map_file(name, coords):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"x": [c[0] for c in coords], "y": [c[1] for c in coords]}))
        return path

    small = map_file("small", [(0.3, -0.2), (-0.5, 0.4)])
    wide = map_file("wide", [(0.1, 1.21), (-1.05, 0.0)])
    assert map_extent([small]) == 1.0
    assert map_extent([small, None, wide]) == 1.25
    assert map_extent([map_file("far", [(-1.9, 0.2)])]) == 2.0
    broken = tmp_path / "broken.json"
    broken.write_text('{"x": [0.1]}')
    with pytest.raises(UserError) as err:
        map_extent([broken])
    assert "broken.json" in str(err.value) and "\n" not in str(err.value)


def test_the_built_map_config_carries_the_shared_extent(project, tmp_path):
    root, _, _, _ = project
    site = tmp_path / "site"
    write_site(site, {"content/index.md": EXPLORER_PAGE})
    shutil.copytree(root / "exports", site / "exports")
    build_site(site, site / "dist")
    html = (site / "dist/index.html").read_text()
    config = json.loads(html.split('<script type="application/json" class="explorer-config">')[1].split("</script>")[0])
    coords = [abs(v) for name in ("tiny-lejepa", "tiny-lambda0")
              for key in ("x", "y")
              for v in json.loads((root / f"exports/explorers/{name}/embedding_map.json").read_text())[key]]
    assert config["extent"] >= max(coords) and config["extent"] >= 1 and (config["extent"] * 4).is_integer()
