"""`site_builder analyze` end to end on a tiny random-init checkpoint and fake CIFAR-shaped data (CPU)."""

import csv
import functools
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from site_builder import cli
from site_builder.charts.script import CHART_SCRIPT_RE
from site_builder.train import data
from site_builder.train.checkpoint import save_checkpoint
from site_builder.train.model import ViT, ViTConfig

TINY = ViTConfig(patch_size=4, width=32, depth=2, heads=2)
FILES = {"pca_32.json", "pca_64.json", "attention_32.json", "attention_64.json", "attention_metrics.csv",
         "attention_metrics_detail.csv", "spectrum.csv", "projections.csv", "meta.json"}


def _fake_split(folder, split, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(n) % 100).astype(np.uint8)
    np.savez_compressed(folder / f"{split}-00.npz", x=x, y_fine=y, y_coarse=y // 5)
    return hashlib.md5(x.tobytes()).hexdigest()


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setitem(data.SHARD_MD5, "test", _fake_split(data_dir, "test", 200, 0))
    monkeypatch.setitem(data.SHARD_MD5, "train", _fake_split(data_dir, "train", 300, 1))
    (data_dir / "classes.json").write_text(json.dumps([f"c{i}" for i in range(34)] + ["fox"] + [f"c{i}" for i in range(35, 100)]))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "checkpoints" / "tiny-run" / "final", ViT(TINY))
    out = tmp_path / "figures"
    args = ["analyze", "--checkpoint", str(ckpt), "--data", str(data_dir), "--out", str(out),
            "--device", "cpu", "--images", "34,121", "--embeddings", "100"]
    return args, out / "tiny-run", ckpt


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_analyze_writes_every_figure_file_in_the_documented_format(setup, capsys):
    args, target, _ = setup
    assert cli.main(args) == 0
    assert {p.name for p in target.iterdir()} == FILES

    pca = json.loads((target / "pca_64.json").read_text())
    assert [p["title"] for p in pca["panels"]] == ["fox · input", "fox · PCA", "c21 · input", "c21 · PCA"]
    image, pca_map = (np.array(p["rgb"]) for p in pca["panels"][:2])
    assert image.shape == (64, 64, 3) and pca_map.shape == (16, 16, 3)  # 64x64 input, 4x4 patches
    assert image.min() >= 0 and image.max() <= 255 and image.dtype.kind == "i"

    att = json.loads((target / "attention_32.json").read_text())
    assert att["frame_label"] == "layer"
    assert len(att["panels"]) == TINY.depth * 2 * (TINY.heads + 1)
    assert {p["frame"] for p in att["panels"]} == {"1", "2"}
    for panel in att["panels"]:  # each heat map is a distribution over the 8x8 patches
        z = np.array(panel["z"])
        assert z.shape == (8, 8) and z.sum() == pytest.approx(1, abs=1e-3)

    rows = _read_csv(target / "attention_metrics.csv")
    assert [r["resolution"] for r in rows] == ["32", "64"]
    assert list(rows[0])[:6] == ["resolution", "entropy", "sparsity", "max_attention", "head_diversity", "head_similarity"]
    for row, n in zip(rows, (64, 256)):
        assert 0 < float(row["entropy"]) <= np.log(n) + 1e-9
        assert float(row["head_diversity"]) == pytest.approx(1 - float(row["head_similarity"]), abs=1e-5)
        assert row["layer"] == str(TINY.depth)

    spectrum = _read_csv(target / "spectrum.csv")
    values = [float(r["singular_value"]) for r in spectrum]
    assert len(values) == TINY.width and values[0] == 1 and values == sorted(values, reverse=True)
    proj = _read_csv(target / "projections.csv")
    assert list(proj[0]) == ["x", "density", "normal_pdf"]

    meta = json.loads((target / "meta.json").read_text())
    info_sha = hashlib.sha256((setup[2] / "checkpoint.json").read_bytes()).hexdigest()
    assert meta["model_sha256"] == info_sha and meta["device"] == "cpu"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert meta["git_commit"] == head and isinstance(meta["git_dirty"], bool)  # as the training runs record it
    printed = capsys.readouterr().out
    assert "resolution" in printed and "effective rank" in printed  # the summary table


def test_rerun_is_cached_and_forced_rerun_is_byte_identical(setup, capsys):
    args, target, _ = setup
    assert cli.main(args) == 0
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli.main(args + ["--force"]) == 0
    after = {p.name: p.read_bytes() for p in target.iterdir()}
    assert after.keys() == before.keys()
    for name in before.keys() - {"meta.json"}:
        assert after[name] == before[name], name


def test_probe_writes_top1_and_top5(setup, monkeypatch):
    from site_builder.train import probe

    # The recipe (100 epochs) is train's; here only the wiring matters, so 3 epochs keep the test fast.
    monkeypatch.setattr(probe, "linear_probe", functools.partial(probe.linear_probe, epochs=3))
    args, target, _ = setup
    assert cli.main(args + ["--probe"]) == 0
    (row,) = _read_csv(target / "probe.csv")
    assert row["split"] == "test"
    assert 0 <= float(row["top1"]) <= float(row["top5"]) <= 1


def test_corrupt_checkpoint_is_one_line_error_naming_the_file_and_keeps_old_output(setup, capsys):
    args, target, ckpt = setup
    assert cli.main(args) == 0
    old = (target / "meta.json").read_bytes()
    shard = next(ckpt.glob("model-*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:100])
    # Same checkpoint.json, so the cache would say "up to date": --force makes it load the weights.
    assert cli.main(args + ["--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(shard) in err and "Traceback" not in err
    assert (target / "meta.json").read_bytes() == old


@pytest.mark.parametrize("make", ["file", "foreign_json"])
def test_foreign_checkpoint_is_an_error_naming_it(setup, tmp_path, capsys, make):
    args, _, _ = setup
    if make == "file":
        bad = tmp_path / "last.pt"
        torch.save({"w": torch.zeros(2)}, bad)
    else:
        bad = tmp_path / "other"
        bad.mkdir()
        (bad / "checkpoint.json").write_text('{"format": "something-else/3"}')
    args = args[:]
    args[args.index("--checkpoint") + 1] = str(bad)
    assert cli.main(args) == 1
    assert str(bad) in capsys.readouterr().err


def test_panel_index_outside_the_test_split_is_an_error(setup, capsys):
    args, _, _ = setup
    args = args[:]
    args[args.index("--images") + 1] = "34,5000"
    assert cli.main(args) == 1
    assert "5000" in capsys.readouterr().err


def test_last_checkpoint_with_projector_adds_projector_figures_under_its_run_name(setup, tmp_path):
    from site_builder.train.model import Projector

    args, _, _ = setup
    torch.manual_seed(1)
    projector = Projector(TINY.width, hidden=16, out_dim=8)
    ckpt = save_checkpoint(tmp_path / "checkpoints" / "folder-name" / "last", ViT(TINY),
                           extra_tensors={f"projector.{k}": v for k, v in projector.state_dict().items()},
                           extra_info={"run": "named-run"})
    args = args[:]
    args[args.index("--checkpoint") + 1] = str(ckpt / "checkpoint.json")
    assert cli.main(args) == 0
    target = tmp_path / "figures" / "named-run"
    assert {p.name for p in target.iterdir()} == FILES | {"projector_spectrum.csv", "projector_projections.csv"}
    values = [float(r["singular_value"]) for r in _read_csv(target / "projector_spectrum.csv")]
    assert len(values) == 8 and values[0] == 1
    meta = json.loads((target / "meta.json").read_text())
    assert meta["embedding"]["projector"]["dim"] == 8 and meta["embedding"]["backbone"]["dim"] == TINY.width


def test_panel_resolutions_and_the_trained_resolution_of_a_checkpoint(tmp_path):
    from site_builder.analyze.pipeline import panel_resolutions, trained_resolution
    from site_builder.errors import UserError

    assert panel_resolutions(32) == (32, 64)  # the nano: also the up-sampling experiment
    assert panel_resolutions(64) == (64,) and panel_resolutions(224) == (224,)
    path = tmp_path / "checkpoint.json"
    assert trained_resolution({"run_config": {"aug/global_size": 224}}, path) == 224
    assert trained_resolution({"run_config": {}}, path) == 32 and trained_resolution({}, path) == 32  # old
    for bad in ("224", 0, True, 22.4):
        with pytest.raises(UserError) as err:
            trained_resolution({"run_config": {"aug/global_size": bad}}, path)
        assert "aug/global_size" in str(err.value) and str(path) in str(err.value)


def test_a_model_trained_at_64_px_is_analysed_at_64_px(setup, tmp_path, monkeypatch):
    """A /16 model trained by `train` at 64 px (a 4x4 grid, as a ViT-S/16 at 224 px gets 14x14): panels,
    embeddings, probe and explorers at 64 px only, and meta.json says so."""
    from site_builder.train import probe

    args, _, _ = setup
    data_dir = args[args.index("--data") + 1]
    md5 = [f"--md5={split}={data.SHARD_MD5[split]}" for split in ("train", "test")]
    assert cli.main(["train", "--name", "tiny-64", "--objective", "lejepa", "--data", data_dir, *md5, "--tiny",
                     "--patch-size", "16", "--global-size", "64", "--local-size", "32", "--depth", "2",
                     "--device", "cpu", "--batch-size", "64", "--epochs", "1", "--out", str(tmp_path / "checkpoints"),
                     "--no-wandb", "--no-compile", "--val-per-class", "1"]) == 0
    sizes, extract = [], probe.extract_features

    def recording(model, images_u8, device="cpu", batch_size=1000, size=None):
        sizes.append(size)
        return extract(model, images_u8, device, batch_size, size)

    monkeypatch.setattr(probe, "extract_features", recording)
    monkeypatch.setattr(probe, "linear_probe", functools.partial(probe.linear_probe, epochs=3))
    args = args[:]
    args[args.index("--checkpoint") + 1] = str(tmp_path / "checkpoints" / "tiny-64" / "final")
    assert cli.main(args + ["--probe"]) == 0
    target = tmp_path / "figures" / "tiny-64"
    panels = {"pca_64.json", "attention_64.json"}
    assert {p.name for p in target.iterdir()} == FILES - {"pca_32.json", "attention_32.json"} | {"probe.csv"}
    assert sizes == [64, 64, 64]  # spectrum/projections, then the probe's train and test features
    pca = json.loads((target / "pca_64.json").read_text())
    image, pca_map = (np.array(p["rgb"]) for p in pca["panels"][:2])
    assert image.shape == (64, 64, 3) and pca_map.shape == (4, 4, 3)
    for name in ("attention_metrics.csv", "attention_metrics_detail.csv"):
        assert {(r["resolution"], r["patches"]) for r in _read_csv(target / name)} == {("64", str((64 // 16) ** 2))}
    meta = json.loads((target / "meta.json").read_text())
    assert meta["resolutions"] == [64] and meta["trained_resolution"] == 64
    assert {f"{kind}_{res}.json" for kind in ("pca", "attention") for res in meta["resolutions"]} == panels

    explorers = tmp_path / "explorers"
    args[args.index("--out") + 1] = str(explorers)
    assert cli.main(args + ["--explorers"]) == 0  # default: the trained resolution
    viewer = json.loads((explorers / "tiny-64" / "attention_viewer.json").read_text())
    assert (viewer["resolution"], viewer["grid"], viewer["patch"]) == (64, 4, 16)
    assert json.loads((explorers / "tiny-64" / "embedding_map.json").read_text())["resolution"] == 64
    meta = json.loads((explorers / "tiny-64" / "meta.json").read_text())
    assert meta["explorers"]["resolution"] == 64 and meta["options"]["explorer_resolution"] == 64
    assert cli.main(args + ["--explorers", "--explorer-resolution", "32"]) == 0  # an explicit size still wins
    assert json.loads((explorers / "tiny-64" / "attention_viewer.json").read_text())["grid"] == 2


CHROMIUM = "/usr/bin/chromium"

SITE_PAGE = """---
title: Figures
summary: The analyze stage's files drawn by the builder.
---

```chart
id: fig:pca
source: figures/tiny-run/pca_64.json
type: panels
title: PCA
```

```chart
id: fig:attention
source: figures/tiny-run/attention_32.json
type: panels
title: Attention
```

```chart
source: figures/tiny-run/spectrum.csv
x: index
y: [singular_value]
log_y: true
```
"""


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}")
def test_built_site_draws_the_figures_in_chromium(setup, tmp_path):
    from playwright.sync_api import sync_playwright

    from site_builder.site.build import build_site

    args, target, _ = setup
    assert cli.main(args) == 0
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "content" / "index.md").write_text(SITE_PAGE)
    shutil.copytree(target, root / "exports" / "figures" / "tiny-run")
    build_site(root)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((root / "dist" / "index.html").as_uri())
        for chart in page.locator(".chart").all():
            chart.scroll_into_view_if_needed()
        page.wait_for_function("[...document.querySelectorAll('.chart')].every(c => c.querySelector('.js-plotly-plot, [data-panels=drawn]'))")
        canvases = "#fig\\:{} .panel-cell canvas"
        # comparison grids: a row of input pictures and the model's row, one column per image (fox, c21)
        assert page.locator(canvases.format("pca")).count() == 4
        assert page.locator(canvases.format("attention")).count() == 2  # no pictures file: the model's row
        src = page.locator("#fig\\:attention .chart").get_attribute("data-src")  # data/charts/<id>.js
        figure = json.loads(CHART_SCRIPT_RE.fullmatch((root / "dist" / src).read_bytes()).group(2))
        assert figure["images"] == ["fox", "c21"] and figure["views"] == ["h1", "h2", "mean"]
        cell = page.locator("#fig\\:attention .panel-cell").first
        assert cell.get_attribute("aria-label").startswith("Enlarge fox · layer 1 · mean: largest weight")
        page.locator("#fig\\:attention .js-frame").fill("1")  # the layer slider: layer 2
        assert cell.get_attribute("aria-label").startswith("Enlarge fox · layer 2 · mean: largest weight")
        browser.close()
    assert errors == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error(setup, capsys):
    args, target, _ = setup
    args = args[:]
    args[args.index("--device") + 1] = "cuda"
    assert cli.main(args) == 1
    assert "no CUDA device" in capsys.readouterr().err and not target.exists()
