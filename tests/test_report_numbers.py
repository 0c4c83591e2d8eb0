"""Each derived number against an independent computation (torch modules, Monte Carlo with the
training code's own SIGReg), and the command on the committed exports."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from site_builder import report_numbers as rn

torch = pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[1]


class StandardViT(torch.nn.Module):
    """A plain ViT backbone built from torch's own layers (no code shared with vit_params)."""

    def __init__(self, width: int, depth: int, patch: int, image: int, hidden: int, position: bool = True):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, width, patch, patch)
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, width))
        if position:
            self.pos = torch.nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, width))
        layer = torch.nn.TransformerEncoderLayer(width, 1, hidden, norm_first=True, batch_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", ["ViT-Tiny/8", "ViT-Small/16", "ViT-Tiny/16"])
def test_parameter_counts_match_a_torch_model(name):
    vit = rn.PAPER_VITS[name]
    model = StandardViT(vit.width, vit.depth, vit.patch, vit.image, int(vit.width * vit.mlp_ratio))
    assert rn.vit_params(vit) == count(model)


def test_vit_small_16_is_timms_published_size_less_its_head():
    # timm's vit_small_patch16_224 has 22,050,664 parameters including a 384 x 1000 + 1000 classifier
    assert rn.vit_params(rn.PAPER_VITS["ViT-Small/16"]) == 22_050_664 - (384 * 1000 + 1000)


def test_our_model_count_matches_the_trainers_own():
    from site_builder.train.model import ViT, ViTConfig, count_params

    config = json.loads((REPO / "exports/runs/lejepa-nano-c100/config.json").read_text())
    model = ViT(ViTConfig(patch_size=config["model/patch_size"], width=config["model/width"], depth=config["model/depth"],
                          heads=config["model/heads"], mlp_ratio=config["model/mlp_ratio"]))
    ours = rn.ViT(config["model/width"], config["model/depth"], config["model/patch_size"], 32, position_embedding=False)
    assert rn.vit_params(ours) == count_params(model)


def test_sigreg_null_level_matches_monte_carlo_with_the_training_code():
    from site_builder.train.objectives import random_directions, sigreg

    torch.manual_seed(0)
    values = []
    for step in range(200):
        z = torch.randn(1, 256, 64)
        values.append(float(sigreg(z, random_directions(64, 64, step, "cpu"), 17, 3.0)))
    mean, sem = np.mean(values), np.std(values) / math.sqrt(len(values))
    assert abs(mean - rn.sigreg_null(17, 3.0)) < 4 * sem


def test_collapsed_level_matches_the_training_code():
    from site_builder.train.objectives import random_directions, sigreg

    z = torch.zeros(1, 256, 64)
    assert float(sigreg(z, random_directions(64, 16, 0, "cpu"), 17, 3.0)) == pytest.approx(256 * rn.sigreg_collapsed(17, 3.0), rel=1e-5)


def test_cube_kurtosis_matches_sampling():
    rng = np.random.default_rng(0)
    k = 64
    a = rng.standard_normal((400, k))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    x = rng.choice([-1.0, 1.0], size=(20000, k))
    u = x @ a.T  # 20000 samples on each of 400 directions
    kurt = (u**4).mean(0) / (u**2).mean(0) ** 2 - 3
    assert kurt.mean() == pytest.approx(rn.cube_excess_kurtosis(k), abs=0.01)


def test_cosine_floor_holds_for_maps_meeting_the_constraints():
    n, heads, entropy, top = 64, 8, 4.08, 0.029
    floor, largest = rn.collapse_free_cosine_floor(n, heads, entropy, top)
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(3000):  # random maps with that entropy or more and that maximum or less
        p = rng.dirichlet(np.full(n, 40.0), size=heads)
        ok = [(-(q * np.log(q)).sum() >= entropy) and q.max() <= top for q in p]
        if not all(ok):
            continue
        found += 1
        assert ((p**2).sum(1) <= largest + 1e-12).all()
        u = p / np.linalg.norm(p, axis=1, keepdims=True)
        cos = (u @ u.T)[np.triu_indices(heads, 1)].mean()
        assert cos >= floor
    assert found > 100
    assert 0.756 < floor < 1


def test_the_command_writes_values_and_derivations(tmp_path):
    exports = tmp_path / "exports"
    shutil.copytree(REPO / "exports", exports)
    assert rn.main([str(exports)]) == 0
    values = json.loads((exports / "derived/report_numbers.json").read_text())
    assert values["params_vit_nano"] == json.loads((REPO / "exports/runs/lejepa-nano-c100/summary.json").read_text())["train/params_backbone"]
    assert values["lejepa-nano-c100_32_focus"] == pytest.approx(0.105621 * 64)
    committed = json.loads((REPO / "exports/derived/report_numbers.json").read_text())
    assert values == committed  # the committed file is what the command writes from the committed exports

    # the paper's table: quoted file untouched ("not stated"), the derived copy fills in the counted sizes
    quoted = {r["model"]: r for r in csv.DictReader(open(REPO / "exports/reference/lejepa_paper_results.csv"))}
    counted = {r["model"]: r for r in csv.DictReader(open(exports / "derived/lejepa_paper_results.csv"))}
    assert quoted["ViT-Small/8"]["params"] == "not stated" and quoted["ResNet-18"]["params"] == "11M"
    assert counted["ViT-Small/8"]["params"] == f"{values['params_ViT-Small/8'] / 1e6:.1f}M" and counted["ResNet-18"] == quoted["ResNet-18"]
    assert "counted by us" in counted["ViT-Small/8"]["source"]
    assert (exports / "derived/lejepa_paper_results.csv").read_bytes() == (REPO / "exports/derived/lejepa_paper_results.csv").read_bytes()
