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
    assert values["final-lejepa-s1_32_focus"] == pytest.approx(0.147234 * 64)  # max_attention of its 32 px row
    assert not [name for name in values if "nano-c100" in name]  # the first runs' figures are retired
    spectra = [[float(r["singular_value"]) for r in csv.DictReader(open(REPO / f"exports/figures/{run}/spectrum.csv"))]
               for run in ("final-lejepa-s1", "final-infonce-s1")]
    ratio = [a / b for a, b in zip(spectra[1][25:500], spectra[0][25:500])]  # singular values 26 to 500
    assert (values["spectrum_infonce_over_lejepa_min"], values["spectrum_infonce_over_lejepa_max"]) == (
        pytest.approx(min(ratio)), pytest.approx(max(ratio)))
    committed = json.loads((REPO / "exports/derived/report_numbers.json").read_text())
    assert values == committed  # the committed file is what the command writes from the committed exports
    for name in ("final_runs.csv", "final_comparison.csv", "final_curves/lejepa.csv", "final_curves/infonce.csv",
                 "cost.csv", "attention_comparison.csv"):
        assert (exports / "derived" / name).read_bytes() == (REPO / "exports/derived" / name).read_bytes(), name

    # the paper's table: quoted file untouched ("not stated"), the derived copy fills in the counted sizes
    quoted = {r["model"]: r for r in csv.DictReader(open(REPO / "exports/reference/lejepa_paper_results.csv"))}
    counted = {r["model"]: r for r in csv.DictReader(open(exports / "derived/lejepa_paper_results.csv"))}
    assert quoted["ViT-Small/8"]["params"] == "not stated" and quoted["ResNet-18"]["params"] == "11M"
    assert counted["ViT-Small/8"]["params"] == f"{values['params_ViT-Small/8'] / 1e6:.1f}M" and counted["ResNet-18"] == quoted["ResNet-18"]
    assert "counted by us" in counted["ViT-Small/8"]["source"]
    assert (exports / "derived/lejepa_paper_results.csv").read_bytes() == (REPO / "exports/derived/lejepa_paper_results.csv").read_bytes()


# ---- the final comparison: fixture exports written here, expected values worked out by hand ----

def write_final_run(exports: Path, name: str, seed: int, top1: float, wall_s: float, curve: dict[int, float],
                    drop: str = "") -> None:
    """runs/<name>/ as fetch exports it: config, summary (with the --eval-test keys), a sparse history."""
    from site_builder.train.config import TrainConfig

    folder = exports / "runs" / name
    folder.mkdir(parents=True)
    config = {**TrainConfig(batch_size=100).flat(), "data/train_size": 1050,  # 10 full batches an epoch
              "train/seed": seed, "train/objective": "infonce" if "infonce" in name else "lejepa",
              "train/lam": 0.0 if "lam0" in name else 0.02, "train/temperature": 0.2, "train/epochs": 0 if "random" in name else 2,
              "code/git_commit": "abc123"}
    summary = {"final_probe/test_top1": top1, "final_probe/test_top5": top1 + 0.3, "knn/test_top1": top1 - 0.1,
               "final_probe/val_top1": top1 + 0.01, "knn/val_top1": top1 - 0.09, "repr/effective_rank": 100 * top1,
               "train/wall_s": wall_s, "train/params_backbone": 1000, "_runtime": 1.0}
    summary.pop(drop, None)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = ["_step,epoch,probe/val_acc,train/loss"]
    for epoch, acc in curve.items():
        rows += [f"{10 * epoch - 2},,,1.5", f"{10 * epoch - 1},{epoch},{acc},1.0"]  # per-step rows between epochs
    (folder / "history.csv").write_text("\n".join(rows if curve else ["_step"]) + "\n")


def final_fixture(exports: Path) -> None:
    for seed, top1, wall, curve in [(1, 0.40, 600, {1: 0.10, 2: 0.20}), (2, 0.42, 660, {1: 0.30, 2: 0.40}),
                                    (3, 0.44, 720, {1: 0.20})]:  # seed 3 cut short after one epoch
        write_final_run(exports, f"final-lejepa-s{seed}", seed, top1, wall, curve)
    for seed, top1 in [(1, 0.45), (2, 0.46), (3, 0.50)]:
        write_final_run(exports, f"final-infonce-s{seed}", seed, top1, 600, {1: 0.5, 2: 0.6})
    write_final_run(exports, "final-lejepa-lam0-s1", 1, 0.05, 300, {1: 0.02, 2: 0.03})
    write_final_run(exports, "final-random-init", 1, 0.08, 0.6, {})


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path, newline="", encoding="utf-8")))


@pytest.mark.parametrize("name,expected", [
    ("final-lejepa-s1", ("lejepa", 1)), ("final-infonce-s12", ("infonce", 12)), ("final-lejepa-lam0-s2", ("lejepa-lam0", 2)),
    ("final-random-init", ("random-init", None)), ("sw-lejepa-base", None), ("final-lejepa", None), ("lejepa-nano-c100", None),
])
def test_final_run_names_give_their_group(name, expected):
    assert rn.final_group(name) == expected


def test_t_quantile_matches_the_printed_t_table():
    # two-sided 95 % and 99 % critical values of any statistics textbook's t table
    table = {1: (12.706, 63.657), 2: (4.303, 9.925), 3: (3.182, 5.841), 4: (2.776, 4.604), 10: (2.228, 3.169), 30: (2.042, 2.750)}
    for df, (t95, t99) in table.items():
        assert rn.t_quantile(0.975, df) == pytest.approx(t95, abs=5e-4)
        assert rn.t_quantile(0.995, df) == pytest.approx(t99, abs=5e-4)
    assert rn.t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)  # the normal's limit
    assert rn.t_quantile(0.975, 3.5) < rn.t_quantile(0.975, 3) and rn.t_quantile(0.975, 3.5) > rn.t_quantile(0.975, 4)


def test_welch_interval_matches_r_on_the_sleep_data():
    # R: t.test(extra ~ group, data = sleep) prints "t = -1.8608, df = 17.776 ... 95 percent confidence
    # interval: -3.3654832 0.2054832" (Student's sleep data, 1908; R's datasets::sleep)
    group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    w = rn.welch_interval(group1, group2)
    assert w.diff == pytest.approx(0.75 - 2.33)
    assert w.diff / w.se == pytest.approx(-1.8608, abs=1e-4)
    assert w.df == pytest.approx(17.776, abs=1e-3)
    assert (w.low, w.high) == (pytest.approx(-3.3654832, abs=1e-6), pytest.approx(0.2054832, abs=1e-6))


def test_final_comparison_tables_curves_and_named_values(tmp_path):
    exports = tmp_path / "exports"
    final_fixture(exports)
    write_final_run(exports, "sw-lejepa-base", 0, 0.9, 1, {1: 0.9})  # not a final run: ignored
    runs = rn.read_final_runs(exports)
    files = rn.final_files(runs)
    assert sorted(files) == ["derived/final_comparison.csv", "derived/final_curves/infonce.csv", "derived/final_curves/lejepa-lam0.csv",
                             "derived/final_curves/lejepa.csv", "derived/final_runs.csv"]  # no curve for the untrained run
    for rel, data in files.items():
        (exports / rel).parent.mkdir(parents=True, exist_ok=True)
        (exports / rel).write_bytes(data)

    per_run = read_csv(exports / "derived/final_runs.csv")
    assert [r["run"] for r in per_run] == ["final-lejepa-s1", "final-lejepa-s2", "final-lejepa-s3", "final-infonce-s1",
                                           "final-infonce-s2", "final-infonce-s3", "final-lejepa-lam0-s1", "final-random-init"]
    first = per_run[0]
    assert (first["method"], first["seed"], first["objective"], first["lam"], first["git_commit"]) == ("LeJEPA", "1", "lejepa", "0.02", "abc123")
    assert float(first["test_top1"]) == 0.40 and float(first["test_top5"]) == pytest.approx(0.70) and float(first["wall_min"]) == 10
    assert per_run[-1]["method"] == "random init" and per_run[-1]["seed"] == "1"
    assert first["temperature"] == "" and (per_run[3]["lam"], per_run[3]["temperature"]) == ("", "0.2")  # only the knob that acted
    assert per_run[6]["lam"] == "0"

    comparison = {r["group"]: r for r in read_csv(exports / "derived/final_comparison.csv")}
    assert list(comparison) == ["lejepa", "infonce", "lejepa-lam0", "random-init"]
    lejepa, infonce = comparison["lejepa"], comparison["infonce"]
    # LeJEPA test top-1 0.40, 0.42, 0.44: mean 0.42, deviations ±0.02 -> sd sqrt(0.0008 / 2) = 0.02
    assert lejepa["n"] == "3" and float(lejepa["test_top1_mean"]) == pytest.approx(0.42) and float(lejepa["test_top1_sd"]) == pytest.approx(0.02)
    assert float(lejepa["test_top5_mean"]) == pytest.approx(0.72) and float(lejepa["knn_test_top1_sd"]) == pytest.approx(0.02)
    assert float(lejepa["wall_min_mean"]) == pytest.approx(11) and float(lejepa["wall_min_sd"]) == pytest.approx(1)  # 10, 11, 12 min
    # InfoNCE 0.45, 0.46, 0.50: mean 0.47, deviations -0.02, -0.01, 0.03 -> sd sqrt(0.0014 / 2)
    assert float(infonce["test_top1_mean"]) == pytest.approx(0.47) and float(infonce["test_top1_sd"]) == pytest.approx(math.sqrt(0.0007))
    lam0 = comparison["lejepa-lam0"]
    assert lam0["n"] == "1" and float(lam0["test_top1_mean"]) == pytest.approx(0.05) and lam0["test_top1_sd"] == ""

    curve = read_csv(exports / "derived/final_curves/lejepa.csv")
    # epoch 1: 0.10, 0.30, 0.20; epoch 2: 0.20, 0.40 (seed 3 stopped after epoch 1)
    assert [(r["epoch"], r["seeds"]) for r in curve] == [("1", "3"), ("2", "2")]
    assert [float(r["val_acc_mean"]) for r in curve] == pytest.approx([0.2, 0.3])
    assert [(float(r["val_acc_min"]), float(r["val_acc_max"])) for r in curve] == [(0.1, 0.3), (0.2, 0.4)]

    values = {name: value for name, value, _ in rn.final_values(runs)}
    assert values["final_lejepa_n"] == 3 and values["final_random-init_n"] == 1
    assert values["final_lejepa_test_top1_mean"] == pytest.approx(0.42) and values["final_lejepa_test_top1_sd"] == pytest.approx(0.02)
    assert "final_lejepa-lam0_test_top1_sd" not in values and values["final_lejepa-lam0_test_top1_mean"] == pytest.approx(0.05)
    # gap -0.05; se sqrt(0.02²/3 + 0.0007/3) = sqrt(0.0011/3); df = (0.0011/3)² / ((0.0004/3)²/2 + (0.0007/3)²/2) = 2·0.0011²/0.00000065
    se, df = math.sqrt(0.0011 / 3), 2 * 0.0011**2 / 6.5e-7
    assert values["final_gap_test_top1"] == pytest.approx(-0.05)
    assert values["final_gap_test_top1_se"] == pytest.approx(se) and values["final_gap_test_top1_df"] == pytest.approx(df)
    half = rn.t_quantile(0.975, df) * se
    assert 2.776 < rn.t_quantile(0.975, df) < 3.182  # df ≈ 3.72: between the table's rows for 4 and 3
    assert (values["final_gap_test_top1_ci_low"], values["final_gap_test_top1_ci_high"]) == (pytest.approx(-0.05 - half), pytest.approx(-0.05 + half))


def test_without_final_runs_nothing_is_derived_for_them(tmp_path):
    (tmp_path / "runs" / "lejepa-nano-c100").mkdir(parents=True)
    assert rn.read_final_runs(tmp_path) == [] and rn.final_files([]) == {} and rn.final_values([]) == []


def test_one_seed_per_method_gives_means_and_a_gap_without_an_interval(tmp_path):
    write_final_run(tmp_path, "final-lejepa-s1", 1, 0.40, 60, {1: 0.1})
    write_final_run(tmp_path, "final-infonce-s1", 1, 0.45, 60, {1: 0.1})
    values = {name: value for name, value, _ in rn.final_values(rn.read_final_runs(tmp_path))}
    assert values["final_gap_test_top1"] == pytest.approx(-0.05)
    assert not [name for name in values if name.startswith("final_gap_test_top1_") or name.endswith("_sd")]


@pytest.mark.parametrize("case,message", [
    ("no-test-split", r"final-lejepa-s1/summary.json: no 'final_probe/test_top1' \(a final run is trained with --eval-test"),
    ("wrong-seed", r"final-lejepa-s2: the name says seed 2, config.json's 'train/seed' is 7"),
    ("unknown-name", r"final-lejepa-best: a final run is named final-<method>-s<seed>"),
    ("no-summary", r"final-lejepa-s1: cannot read the exported run"),
])
def test_bad_final_runs_are_one_line_errors_naming_file_and_field(case, message, tmp_path, capsys):
    exports = tmp_path / "exports"
    if case == "wrong-seed":
        write_final_run(exports, "final-lejepa-s2", 7, 0.4, 60, {})
    elif case == "unknown-name":
        write_final_run(exports, "final-lejepa-best", 1, 0.4, 60, {})
    else:
        write_final_run(exports, "final-lejepa-s1", 1, 0.4, 60, {}, drop="final_probe/test_top1")
        if case == "no-summary":
            (exports / "runs/final-lejepa-s1/summary.json").unlink()
    with pytest.raises(rn.UserError, match=message):
        rn.read_final_runs(exports)
    assert rn.main([str(exports)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (exports / "derived").exists()


def test_the_command_writes_the_final_comparison_beside_the_other_numbers(tmp_path):
    exports = tmp_path / "exports"
    def exported_final_runs(folder, names):  # the fixture's final runs only (their figures stay)
        return [n for n in names if n.startswith("final-")] if Path(folder).name == "runs" else []

    shutil.copytree(REPO / "exports", exports, ignore=exported_final_runs)
    final_fixture(exports)
    assert rn.main([str(exports)]) == 0
    values = json.loads((exports / "derived/report_numbers.json").read_text())
    committed = json.loads((REPO / "exports/derived/report_numbers.json").read_text())
    from_final = ("final_", "nano_train_gflop_per_image", "vit_s16_224_over_nano_", "vit_s16_224_minus_nano_")  # the cost ratios too
    assert ({k: v for k, v in values.items() if not k.startswith(from_final)}
            == {k: v for k, v in committed.items() if not k.startswith(from_final)})
    assert values["final_infonce_test_top1_mean"] == pytest.approx(0.47) and values["final_gap_test_top1"] == pytest.approx(-0.05)
    # the paper's references against the mean of the fixture's LeJEPA seeds (40, 42, 44 %): ViT-L 83.71 %
    # (Table 2), in-domain CIFAR-100 rows from Swin-Tiny's 65.08 % to ResNet-34's 70.44 % (Table 5)
    assert (values["final_lejepa_gap_to_vit_l"], values["final_lejepa_gap_to_table5_worst"],
            values["final_lejepa_gap_to_table5_best"]) == (pytest.approx(41.71), pytest.approx(23.08), pytest.approx(28.44))
    derivations = {r["name"]: r["derivation"] for r in read_csv(exports / "derived/report_numbers.csv")}
    assert "95 % Welch interval" in derivations["final_gap_test_top1_ci_low"]
    assert [r["run"] for r in read_csv(exports / "derived/final_runs.csv")][-1] == "final-random-init"
    assert (exports / "derived/final_curves/lejepa.csv").is_file()


# ---- cost and attention comparison ----

BENCH = REPO / "site_builder/train/bench-results"


@pytest.mark.parametrize("family,bench", [("nano_lejepa", "h200-2026-12-01-final-recipe.json"),
                                          ("nano_infonce", "h200-2026-12-01-final-recipe.json"),
                                          ("vit_s16_224", "h200-2026-12-01-vits16-224-run-views.json")])
def test_flops_per_image_from_run_configs_match_the_gpu_benchmark(family, bench):
    # the benchmark counted its FLOPs from its --size preset and view flags; ours come from the runs' logged configs
    measured = json.loads((BENCH / bench).read_text())
    row = rn.cost_rows(REPO / "exports")[family]
    pattern = dict((k, p) for k, _, p in rn.COST_FAMILIES)[family]
    config = json.loads((sorted((REPO / "exports/runs").glob(pattern))[0] / "config.json").read_text())
    assert measured["views"] == [config[f"aug/{k}"] for k in ("global_views", "global_size", "local_views", "local_size")]
    assert (config["train/proj_hidden"], config["train/proj_dim"]) == (2048, 64)  # what bench.py assumes
    assert row.recipe.train_gflop_per_image == pytest.approx(measured["train_gflops_per_image"], abs=0.1)


def test_cost_rows_are_means_over_seeds(tmp_path):
    for method, tops, walls in [("lejepa", (0.40, 0.50), (100, 300)), ("infonce", (0.60, 0.62), (120, 120))]:
        for seed, (top1, wall) in enumerate(zip(tops, walls), 1):
            write_final_run(tmp_path, f"final-{method}-s{seed}", seed, top1, wall, {1: 0.1})
    write_final_run(tmp_path, "final-lejepa-lam0-s1", 1, 0.05, 50, {1: 0.1})  # not a cost family
    rows = rn.cost_rows(tmp_path)
    assert list(rows) == ["nano_lejepa", "nano_infonce"]
    lejepa = rows["nano_lejepa"]
    # 2 epochs x 10 full batches of 100 = 2000 images a run; wall 100 and 300 s -> 200 s mean
    assert (lejepa.model, lejepa.recipe.method, lejepa.recipe.input_px, lejepa.recipe.patch, lejepa.recipe.tokens, lejepa.seeds,
            lejepa.recipe.epochs) == \
        ("ViT-nano, 32 px", "LeJEPA", 32, 4, 64, 2, 2)
    assert lejepa.gpu_min_per_run == pytest.approx(200 / 60) and lejepa.images_per_s == pytest.approx(10)
    assert lejepa.test_top1 == pytest.approx(0.45) and lejepa.knn_test_top1 == pytest.approx(0.35) and lejepa.effective_rank == pytest.approx(45)
    assert lejepa.train_pflop == pytest.approx(lejepa.recipe.train_gflop_per_image * 2000 / 1e6)
    assert rows["nano_infonce"].test_top1 == pytest.approx(0.61) and rows["nano_infonce"].images_per_s == pytest.approx(2000 / 120)
    values = {name: value for name, value, _ in rn.cost_values(rows)}
    assert list(values) == ["nano_train_gflop_per_image"]  # no ViT run: no ViT values, no ratios


def test_runs_of_one_family_with_different_recipes_are_an_error(tmp_path):
    write_final_run(tmp_path, "final-lejepa-s1", 1, 0.4, 60, {})
    write_final_run(tmp_path, "final-lejepa-s2", 2, 0.4, 60, {})
    config = json.loads((tmp_path / "runs/final-lejepa-s2/config.json").read_text())
    (tmp_path / "runs/final-lejepa-s2/config.json").write_text(json.dumps({**config, "aug/local_views": 2}))
    with pytest.raises(rn.UserError, match="final-lejepa-s\\* differ in their recipe"):
        rn.cost_rows(tmp_path)


def test_a_project_without_the_vit_run_builds_without_its_row(tmp_path):
    exports = tmp_path / "exports"
    def without(folder, names):  # no final runs (the fixture's instead) and no ViT-S/16 run or figures
        return [n for n in names if n.startswith("final-") and Path(folder).name == "runs" or n == "lejepa-vits16-224"]

    shutil.copytree(REPO / "exports", exports, ignore=without)
    final_fixture(exports)
    assert rn.main([str(exports)]) == 0
    cost = read_csv(exports / "derived/cost.csv")
    assert [(r["model"], r["method"], r["seeds"]) for r in cost] == [("ViT-nano, 32 px", "LeJEPA", "3"), ("ViT-nano, 32 px", "InfoNCE", "3")]
    assert float(cost[0]["test_top1"]) == pytest.approx(0.42) and float(cost[0]["gpu_min_per_run"]) == pytest.approx(11)
    values = json.loads((exports / "derived/report_numbers.json").read_text())
    assert not [k for k in values if "vit_s16_224" in k or "vits16" in k] and "nano_train_gflop_per_image" in values
    assert "lejepa-vits16-224" not in (exports / "derived/attention_comparison.csv").read_text()


def test_the_vit_row_and_its_values_on_the_committed_exports():
    summary = json.loads((REPO / "exports/runs/lejepa-vits16-224/summary.json").read_text())
    rows = rn.cost_rows(REPO / "exports")
    vit, nano = rows["vit_s16_224"], rows["nano_lejepa"]
    assert (vit.recipe.input_px, vit.recipe.patch, vit.recipe.tokens, vit.seeds, vit.recipe.params_backbone) == (
        224, 16, 196, 1, summary["train/params_backbone"])
    assert vit.test_top1 == summary["final_probe/test_top1"] and vit.gpu_min_per_run == summary["train/wall_s"] / 60
    assert vit.images_per_s == pytest.approx(20 * (45000 // 128) * 128 / summary["train/wall_s"])
    nano_top1 = [json.loads((REPO / f"exports/runs/final-lejepa-s{s}/summary.json").read_text())["final_probe/test_top1"] for s in (1, 2, 3)]
    values = {name: value for name, value, _ in rn.cost_values(rows)}
    assert values["vit_s16_224_minus_nano_test_top1"] == pytest.approx(summary["final_probe/test_top1"] - sum(nano_top1) / 3)
    assert values["vit_s16_224_over_nano_flops"] == pytest.approx(109.800493056 / 32.229384192)  # the benchmark's counts


def test_attention_comparison_normalizes_entropy_and_focus(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference/draft_attention_metrics.csv").write_text(
        "model,input,patches,entropy,max_entropy,normalized_entropy,sparsity,max_attention,uniform_attention,head_diversity,head_similarity,source\n"
        "made-up (author),112x112 extrapolated,49,1.9459101091,9,9,0.5,0.2,9,9,,quoted\n")
    (tmp_path / "figures/random-init").mkdir(parents=True)
    (tmp_path / "figures/random-init/attention_metrics.csv").write_text(
        "resolution,entropy,sparsity,max_attention,head_diversity,head_similarity,uniform_entropy,sparsity_threshold,layer,images,heads,patches\n"
        "32,0.6931471806,0.25,0.5,0.1,0.9,9,0.01,6,6,8,16\n"
        "64,1,1,1,0,1,9,0.01,6,6,8,256\n")  # a resolution the table does not show
    rows = read_csv_bytes(rn.attention_csv(rn.attention_rows(tmp_path)))
    draft, ours = rows
    # ln 7 / ln 49 = 1/2; 0.2 x 49 = 9.8.  ln 2 / ln 16 = 1/4; 0.5 x 16 = 8
    assert (draft["model"], draft["input_px"], draft["head_similarity"]) == ("made-up (author), extrapolated", "112", "")
    assert float(draft["normalized_entropy"]) == pytest.approx(0.5) and float(draft["focus"]) == pytest.approx(9.8)
    assert "draft" in draft["source"] and ours["source"].startswith("ours: figures/random-init/")
    assert (ours["input_px"], ours["patches"], float(ours["head_similarity"])) == ("32", "16", 0.9)
    assert float(ours["normalized_entropy"]) == pytest.approx(0.25) and float(ours["focus"]) == pytest.approx(8)


def test_attention_comparison_focus_is_the_named_focus():
    values = {name: value for name, value, _ in rn.compute(REPO / "exports")}
    for row in rn.attention_rows(REPO / "exports"):
        run = row.source.partition("figures/")[2].partition("/")[0]
        if run:
            assert rn.focus(row.max_attention, row.patches) == values[f"{run}_{row.input_px}_focus"]


def read_csv_bytes(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(data.decode().splitlines()))
