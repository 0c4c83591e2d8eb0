"""Numbers the report derives by calculation rather than by measurement, written with their derivation.

    python -m site_builder.report_numbers      # -> exports/derived/report_numbers.json and .csv

The JSON is a flat {name: value} file, so chapters print a value with
`{{ derived/report_numbers.json#sigreg_null | .2f }}`; the CSV beside it holds the same values with
the derivation of each (`name,value,derivation`). It also writes derived/lejepa_paper_results.csv: the
paper's results table (reference/, quoted) with the parameter counts the paper omits counted here. Inputs are
the committed exports (run configs, attention metrics, the draft's quoted table), so the file is
regenerated, never edited, when they change. Nothing here needs torch; tests check each number against
an independent computation (torch modules, Monte Carlo with the training code's own SIGReg, the GPU
benchmark's FLOP count). Also derived/cost.csv (compute and accuracy per trained model family) and
derived/attention_comparison.csv (the draft's attention table beside our measurements).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from site_builder.errors import UserError
from site_builder.fsutil import write_bytes_atomic
from site_builder.train.config import forward_flops_per_image, model_and_views  # torch-free
from site_builder.train.sweep import KNOB  # torch-free: each objective's own hyper-parameter

EXPORTS = Path("exports")
MID_RANGE = slice(25, 500)  # the middle of a 512-value spectrum: past the first few, before the LayerNorm's last
TABLE5_MODELS = ("ResNet-18", "ResNet-34", "ConvNeXtV2-Nano", "ResNeXt-26ts", "Swin-Tiny")
DRAFT_GAP = 6.0  # percentage points: the author's draft, "about 6 % lower" than the paper's ViT-L
OUTPUT = "derived/report_numbers"  # .json (values) and .csv (values with derivations)


@dataclass(frozen=True)
class ViT:
    """A standard ViT backbone (timm's VisionTransformer without its classifier head)."""

    width: int
    depth: int
    patch: int
    image: int
    mlp_ratio: float = 4.0
    position_embedding: bool = True  # learned, one per patch and one for CLS; ours uses RoPE instead


def vit_params(vit: ViT) -> int:
    """Parameters of patch embedding, CLS token, position embedding, blocks and final LayerNorm.

    A pre-norm block has two LayerNorms (4d), the qkv and output projections (4d² + 4d) and the MLP
    (2·r·d² + r·d + d)."""
    d, hidden = vit.width, int(vit.width * vit.mlp_ratio)
    tokens = (vit.image // vit.patch) ** 2 + 1
    block = 4 * d + (4 * d * d + 4 * d) + (2 * d * hidden + hidden + d)
    patch_embed = vit.patch * vit.patch * 3 * d + d
    position = tokens * d if vit.position_embedding else 0
    return patch_embed + d + position + vit.depth * block + 2 * d


# the paper's ViTs, at the configurations timm names them by (vit_tiny_patch8_224, ...); width, depth
PAPER_VITS = {
    "ViT-Tiny/8": ViT(192, 12, 8, 224),
    "ViT-Small/8": ViT(384, 12, 8, 224),
    "ViT-L/14": ViT(1024, 24, 14, 224),
    "ViT-H/14": ViT(1280, 32, 14, 224, mlp_ratio=5120 / 1280),
    "ViT-Tiny/16": ViT(192, 12, 16, 224),
    "ViT-Small/16": ViT(384, 12, 16, 224),
}


def collapse_free_cosine_floor(n: int, heads: int, entropy: float, max_attention: float) -> tuple[float, float]:
    """(lowest mean pairwise cosine similarity of `heads` attention maps over `n` patches, largest Σp²).

    For unit vectors u_h = p_h/‖p_h‖ with non-negative entries, the mean pairwise cosine is
    (‖Σu_h‖² − H)/(H(H−1)), and ‖Σu_h‖ ≥ Σ u_h·1/√n = Σ 1/(√n‖p_h‖). So the cosine is smallest when
    every ‖p_h‖² = Σp² is as large as a distribution with that entropy and that maximum allows. The
    largest Σp² is found among distributions with at most three distinct values (k entries at the
    maximum, a at u, the rest at v), which is where a Lagrangian stationary point lies."""
    best = 0.0
    for k in range(0, int(1 / max_attention) + 1):
        for a in range(1, n - k):
            rest = n - k - a
            mass = 1 - k * max_attention

            def dist(u: float) -> np.ndarray:
                v = (mass - a * u) / rest
                return np.array([max_attention] * k + [u] * a + [v] * rest)

            lo, hi = mass / (n - k), min(max_attention, mass / a)  # u from uniform to its largest
            if hi <= lo:
                continue
            if _entropy(dist(lo)) < entropy:
                continue
            if _entropy(dist(hi)) >= entropy:
                best = max(best, float((dist(hi) ** 2).sum()))
                continue
            for _ in range(60):  # entropy falls as u rises: bisect to the constraint
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if _entropy(dist(mid)) >= entropy else (lo, mid)
            best = max(best, float((dist(lo) ** 2).sum()))
    c = 1 / math.sqrt(n * best)
    return ((heads * c) ** 2 - heads) / (heads * (heads - 1)), best


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def sigreg_null(knots: int, t_max: float) -> float:
    """Expected SIGReg of a batch drawn from N(0, 1) with the training code's quadrature.

    For an i.i.d. sample of the target, E|φ̂_N(t) − φ₀(t)|² = (1 − e^{−t²})/N, so N·E|·|² does not
    depend on N: the sum is the quadrature of ∫(1 − e^{−t²})e^{−t²/2}dt (≈ 1.06 exactly)."""
    t = np.linspace(0, t_max, knots)
    weights = np.full(knots, t_max / (knots - 1))
    weights[0] = weights[-1] = weights[0] / 2
    return float((2 * weights * np.exp(-t**2 / 2) * (1 - np.exp(-t**2))).sum())


def sigreg_collapsed(knots: int, t_max: float) -> float:
    """SIGReg per image of a batch collapsed to the origin, with the same quadrature (times B)."""
    t = np.linspace(0, t_max, knots)
    weights = np.full(knots, t_max / (knots - 1))
    weights[0] = weights[-1] = weights[0] / 2
    return float((2 * weights * np.exp(-t**2 / 2) * (1 - np.exp(-t**2 / 2)) ** 2).sum())


def cube_excess_kurtosis(k: int) -> float:
    """Excess kurtosis of a·x for x uniform on {−1, 1}^K and a uniform on the unit sphere, averaged
    over a: −2Σa_i⁴, whose mean is −2·3/(K+2)."""
    return -6 / (k + 2)


def theorem5_factor(slices: int, k: int, alpha: float = 1.0) -> float:
    """The paper's Theorem 5 rate M^(−2α/(K−1)) at M slices in K dimensions (α: smoothness)."""
    return slices ** (-2 * alpha / (k - 1))


def focus(max_attention: float, patches: int) -> float:
    """Max attention over uniform attention 1/N: how many times more than uniform the top patch gets."""
    return max_attention * patches


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def compute(exports: Path = EXPORTS) -> list[tuple[str, float, str]]:
    config = json.loads((exports / "runs/lejepa-nano-c100/config.json").read_text())
    knots, t_max = int(config["train/knots"]), float(config["train/t_max"])
    dim, slices, batch = int(config["train/proj_dim"]), int(config["train/num_slices"]), int(config["train/batch_size"])
    rows: list[tuple[str, float, str]] = [
        ("sigreg_null", sigreg_null(knots, t_max),
         f"expected SIGReg of a batch drawn from N(0, I): {knots} knots on [0, {t_max:g}], any batch size"),
        ("sigreg_collapsed_per_image", sigreg_collapsed(knots, t_max), "SIGReg of a batch collapsed to the origin, divided by B"),
        ("sigreg_collapsed", batch * sigreg_collapsed(knots, t_max), f"the same times the batch of {batch}"),
        ("cube_excess_kurtosis", cube_excess_kurtosis(dim), f"mean excess kurtosis of random 1-D projections of the ±1 cube in K = {dim} dimensions"),
        ("theorem5_factor", theorem5_factor(slices, dim), f"M^(-2/(K-1)) at M = {slices} slices, K = {dim}, α = 1"),
        ("theorem5_slices_to_halve", 2 ** ((dim - 1) / 2), f"slices M for which M^(-2/(K-1)) = 1/2 at K = {dim}, α = 1"),
    ]
    draft = {r["input"]: r for r in _csv_rows(exports / "reference/draft_attention_metrics.csv") if r["model"] == "nano (author)"}
    nano = draft["32x32"]
    floor, sum_sq = collapse_free_cosine_floor(int(nano["patches"]), 8, float(nano["entropy"]), float(nano["max_attention"]))
    rows += [
        ("draft_cosine_floor", floor,
         "lowest mean pairwise cosine of 8 attention maps over 64 patches with the draft's entropy and max attention (32x32)"),
        ("draft_largest_sum_sq", sum_sq, "largest Σp² of one map under those two constraints"),
    ]
    for r in _csv_rows(exports / "reference/draft_attention_metrics.csv"):
        key = {"32x32": "draft_nano_32", "64x64 extrapolated": "draft_nano_64", "224x224": "draft_older_224"}[r["input"]]
        rows.append((f"{key}_focus", focus(float(r["max_attention"]), int(r["patches"])), f"max attention × N for the draft's {r['model']} at {r['input']}"))
    for run in ("random-init", "final-lejepa-s1", "final-infonce-s1", "final-lejepa-lam0-s1", "lejepa-vits16-224"):
        if not (exports / f"figures/{run}").is_dir():
            continue
        for r in _csv_rows(exports / f"figures/{run}/attention_metrics.csv"):
            rows.append((f"{run}_{r['resolution']}_focus", focus(float(r["max_attention"]), int(r["patches"])),
                         f"max attention × N, {run}, {r['resolution']}×{r['resolution']} input (attention_metrics.csv)"))
        meta = json.loads((exports / f"figures/{run}/meta.json").read_text())
        backbone = meta["embedding"]["backbone"]
        rows.append((f"{run}_effective_rank", float(backbone["effective_rank"]),
                     f"effective rank of the backbone CLS representation, {run} (figures/{run}/meta.json)"))
        for stat in ("mean", "std"):
            rows.append((f"{run}_projection_{stat}", float(backbone[f"projection_{stat}"]),
                         f"{stat} of the random 1-D projections of the CLS representation, {run} (figures/{run}/meta.json)"))
    spectra = {run: [float(r["singular_value"]) for r in _csv_rows(exports / f"figures/{run}/spectrum.csv")]
               for run in ("final-lejepa-s1", "final-infonce-s1")}
    ratio = np.array(spectra["final-infonce-s1"][MID_RANGE]) / np.array(spectra["final-lejepa-s1"][MID_RANGE])
    where = (f"singular values {MID_RANGE.start + 1} to {MID_RANGE.stop} of {len(spectra['final-lejepa-s1'])}, "
             "final-infonce-s1 over final-lejepa-s1 (figures/<run>/spectrum.csv)")
    rows += [("spectrum_infonce_over_lejepa_min", float(ratio.min()), f"smallest ratio InfoNCE / LeJEPA of the normalised spectra, {where}"),
             ("spectrum_infonce_over_lejepa_max", float(ratio.max()), f"largest ratio InfoNCE / LeJEPA of the normalised spectra, {where}")]
    vit_l, table5 = paper_references(exports)
    summary = json.loads((exports / "runs/lejepa-nano-c100/summary.json").read_text())
    rows.append(("draft_implied_top1", vit_l - DRAFT_GAP,
                 f"the paper's ViT-L on CIFAR-100 ({vit_l} %, Table 2) minus the draft's 'about {DRAFT_GAP:g} %' gap, in %"))
    rows += paper_gaps(vit_l, table5, 100 * float(summary["final_probe/test_top1"]), "", "our first LeJEPA run's final probe")
    rows += [
        ("table5_best", max(table5), "best in-domain CIFAR-100 top-1 of the paper's Table 5, %"),
        ("table5_worst", min(table5), "lowest in-domain CIFAR-100 top-1 of the paper's Table 5, %"),
    ]
    ours = vit_params(ViT(int(config["model/width"]), int(config["model/depth"]), int(config["model/patch_size"]), 32,
                          float(config["model/mlp_ratio"]), position_embedding=False))
    rows.append(("params_vit_nano", ours, "our ViT-nano backbone, counted with the same formula (RoPE: no position embedding)"))
    for name, vit in PAPER_VITS.items():
        rows.append((f"params_{name}", vit_params(vit), f"standard {name} at {vit.image} px: width {vit.width}, depth {vit.depth}, patch {vit.patch}, MLP ratio {vit.mlp_ratio:g}, learned position embedding, no head"))
    rows.append(("nano_over_tiny16", ours / vit_params(PAPER_VITS["ViT-Tiny/16"]), "ViT-nano parameters / ViT-Tiny parameters"))
    rows.append(("nano_over_small16", ours / vit_params(PAPER_VITS["ViT-Small/16"]), "ViT-nano parameters / ViT-Small parameters"))
    sweep = exports / "sweeps" / "sweep-20ep" / "sweep.csv"
    if sweep.exists():
        best = {}
        sweep_rows = _csv_rows(sweep)
        rows.append(("sweep_runs", len(sweep_rows), "runs in sweeps/sweep-20ep/sweep.csv (the sweep and its best combinations)"))
        for r in sweep_rows:
            best[r["objective"]] = max(best.get(r["objective"], 0.0), float(r["val_top1"]))
        if {"lejepa", "infonce"} <= best.keys():
            rows.append(("sweep_infonce_minus_lejepa_best", 100 * (best["infonce"] - best["lejepa"]),
                         "best InfoNCE minus best LeJEPA validation top-1 in sweeps/sweep-20ep, percentage points"))
    return rows


# ---- the final comparison ------------------------------------------------------------------------------

FINAL_GROUPS = {"lejepa": "LeJEPA", "infonce": "InfoNCE", "lejepa-lam0": "LeJEPA λ = 0", "random-init": "random init"}
GAP = ("lejepa", "infonce")  # final_gap_test_top1 = mean of the first − mean of the second
FINAL_METRICS = {  # column of final_runs.csv -> (summary.json key, factor)
    "test_top1": ("final_probe/test_top1", 1), "test_top5": ("final_probe/test_top5", 1),
    "knn_test_top1": ("knn/test_top1", 1), "val_top1": ("final_probe/val_top1", 1), "knn_val_top1": ("knn/val_top1", 1),
    "effective_rank": ("repr/effective_rank", 1), "wall_min": ("train/wall_s", 1 / 60),
}
CURVE = ("epoch", "probe/val_acc")  # history columns of final_curves/<group>.csv


def final_group(run: str) -> tuple[str, int | None] | None:
    """(group, seed in the name) of a final run's folder name, as sweep.py --final names them; None for
    other runs. `final-random-init` has no seed in its name."""
    if run == "final-random-init":
        return "random-init", None
    match = re.fullmatch(r"final-([a-z0-9]+(?:-lam0)?)-s(\d+)", run)
    return (match.group(1), int(match.group(2))) if match else None


@dataclass(frozen=True)
class FinalRun:
    run: str
    group: str
    seed: int
    config: dict
    metrics: dict[str, float]
    """FINAL_METRICS column -> value"""
    curve: dict[int, float]
    """epoch -> online probe validation accuracy (empty for the untrained reference)"""


def _field(mapping: dict, key: str, path: Path):
    if mapping.get(key) in (None, ""):
        raise UserError(f"no '{key}' (a final run is trained with --eval-test and exported by fetch)", path=path)
    return mapping[key]


def read_final_runs(exports: Path) -> list[FinalRun]:
    """The exported final runs, in group order (FINAL_GROUPS, then others by name), then by seed."""
    out = []
    for folder in sorted((exports / "runs").glob("final-*")):
        named = final_group(folder.name)
        if named is None:
            raise UserError("a final run is named final-<method>-s<seed>, final-lejepa-lam0-s<seed> or final-random-init", path=folder)
        try:
            config, summary = (json.loads((folder / f"{name}.json").read_text()) for name in ("config", "summary"))
            history = _csv_rows(folder / "history.csv")
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the exported run ({exc}); fetch it again", path=folder) from None
        seed = int(_field(config, "train/seed", folder / "config.json"))
        if named[1] is not None and named[1] != seed:
            raise UserError(f"the name says seed {named[1]}, config.json's 'train/seed' is {seed}", path=folder)
        metrics = {col: float(_field(summary, key, folder / "summary.json")) * factor for col, (key, factor) in FINAL_METRICS.items()}
        curve = {}
        for row in history:
            if row.get(CURVE[1]):
                curve[int(float(_field(row, CURVE[0], folder / "history.csv")))] = float(row[CURVE[1]])
        out.append(FinalRun(folder.name, named[0], seed, config, metrics, curve))
    order = {g: i for i, g in enumerate(FINAL_GROUPS)}
    return sorted(out, key=lambda r: (order.get(r.group, len(order)), r.group, r.seed))


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1); no sd for one value."""
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile for 0.5 < p < 1 at a real df > 0 (Welch's df is not a whole number; scipy is no
    dependency): bisection on the CDF 1/2 + ∫₀ᵗ density, integrated by Simpson's rule."""
    if not (0.5 < p < 1 and df > 0):
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float, n: int = 4000) -> float:
        x = np.linspace(0.0, t, n + 1)
        f = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        return 0.5 + t / n / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Welch:
    diff: float
    se: float
    df: float
    low: float
    high: float


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> Welch:
    """Difference of means a − b, its standard error sqrt(sd_a²/n_a + sd_b²/n_b), Welch–Satterthwaite df
    and the two-sided interval at `level` (each sample needs two values and some spread)."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = float(np.mean(a) - np.mean(b))
    half = t_quantile(0.5 + level / 2, df) * se
    return Welch(diff, se, float(df), diff - half, diff + half)


def paper_references(exports: Path) -> tuple[float, list[float]]:
    """(the paper's ViT-L linear probe on CIFAR-100, Table 2; its in-domain CIFAR-100 rows, Table 5), in %."""
    paper = {(r["model"], r["protocol"]): float(r["top1"]) for r in _csv_rows(exports / "reference/lejepa_paper_results.csv")}
    return paper[("ViT-L", "linear (frozen), all labels")], [v for (model, _), v in paper.items() if model in TABLE5_MODELS]


def paper_gaps(vit_l: float, table5: list[float], top1: float, prefix: str, ours: str) -> list[tuple[str, float, str]]:
    """The paper's ViT-L and the best and lowest in-domain CIFAR-100 rows (paper_references) minus our top-1
    (%), in points."""
    return [
        (f"{prefix}gap_to_vit_l", vit_l - top1, f"ViT-L transfer (Table 2) minus {ours}, percentage points"),
        (f"{prefix}gap_to_table5_best", max(table5) - top1, f"best in-domain CIFAR-100 row of Table 5 minus {ours}, percentage points"),
        (f"{prefix}gap_to_table5_worst", min(table5) - top1,
         f"lowest in-domain CIFAR-100 row of Table 5 (Swin-Tiny) minus {ours}, percentage points"),
    ]


def final_paper_gaps(exports: Path, runs: list[FinalRun]) -> list[tuple[str, float, str]]:
    """The paper's references minus the mean final LeJEPA probe over seeds (nothing without final LeJEPA runs)."""
    lejepa = _groups(runs).get("lejepa")
    if not lejepa:
        return []
    mean, _ = mean_sd([r.metrics["test_top1"] for r in lejepa])
    return paper_gaps(*paper_references(exports), 100 * mean, "final_lejepa_", f"the mean final LeJEPA probe over {len(lejepa)} seeds")


def _groups(runs: list[FinalRun]) -> dict[str, list[FinalRun]]:
    groups: dict[str, list[FinalRun]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return groups


def final_values(runs: list[FinalRun]) -> list[tuple[str, float, str]]:
    """Named values for the chapters: each group's n, mean and sd of every metric, and the gap's interval."""
    rows: list[tuple[str, float, str]] = []
    groups = _groups(runs)
    for group, members in groups.items():
        label = FINAL_GROUPS.get(group, group)
        rows.append((f"final_{group}_n", len(members), f"final runs of {label} (runs/final-*)"))
        for col, (key, factor) in FINAL_METRICS.items():
            mean, sd = mean_sd([r.metrics[col] for r in members])
            unit = " / 60 (minutes)" if factor != 1 else ""
            rows.append((f"final_{group}_{col}_mean", mean, f"mean of {key}{unit} over the {len(members)} final {label} run(s)"))
            if sd is not None:
                rows.append((f"final_{group}_{col}_sd", sd, f"sample standard deviation (n − 1) of {key}{unit} over the {len(members)} final {label} runs"))
    a, b = (groups.get(g, []) for g in GAP)
    if a and b:
        what = f"{FINAL_GROUPS[GAP[0]]} − {FINAL_GROUPS[GAP[1]]} final_probe/test_top1"
        top1 = [[r.metrics["test_top1"] for r in members] for members in (a, b)]
        rows.append(("final_gap_test_top1", float(np.mean(top1[0]) - np.mean(top1[1])), f"{what}, difference of the means over seeds"))
        if min(len(a), len(b)) > 1 and max(np.std(top1[0]), np.std(top1[1])) > 0:
            w = welch_interval(*top1)
            rows += [
                ("final_gap_test_top1_se", w.se, f"{what}: standard error sqrt(sd1²/n1 + sd2²/n2), n = {len(a)} and {len(b)}"),
                ("final_gap_test_top1_df", w.df, f"{what}: Welch–Satterthwaite degrees of freedom"),
                ("final_gap_test_top1_ci_low", w.low, f"{what}: lower end of the 95 % Welch interval"),
                ("final_gap_test_top1_ci_high", w.high, f"{what}: upper end of the 95 % Welch interval"),
            ]
    return rows


def _csv_bytes(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else f"{v:.10g}" if isinstance(v, float) else v for v in row] for row in rows])
    return out.getvalue().encode()


def final_files(runs: list[FinalRun]) -> dict[str, bytes]:
    """{path under exports/: bytes}: final_runs.csv, final_comparison.csv, final_curves/<group>.csv (nothing without runs)."""
    if not runs:
        return {}
    cols = list(FINAL_METRICS)
    def knob(r: FinalRun, name: str):  # the other objective's hyper-parameter did not act: blank, as in sweep.csv
        return r.config.get(f"train/{name}") if KNOB.get(r.config.get("train/objective")) == name else None

    per_run = [[r.run, r.group, FINAL_GROUPS.get(r.group, r.group), r.seed, r.config.get("train/objective"),
                knob(r, "lam"), knob(r, "temperature"), r.config.get("train/epochs"),
                *(r.metrics[c] for c in cols), r.config.get("code/git_commit")] for r in runs]
    files = {"derived/final_runs.csv": _csv_bytes(
        ["run", "group", "method", "seed", "objective", "lam", "temperature", "epochs", *cols, "git_commit"], per_run)}
    comparison = []
    for group, members in _groups(runs).items():
        stats = [v for c in cols for v in mean_sd([r.metrics[c] for r in members])]
        comparison.append([group, FINAL_GROUPS.get(group, group), len(members), *stats])
    files["derived/final_comparison.csv"] = _csv_bytes(
        ["group", "method", "n", *(f"{c}_{s}" for c in cols for s in ("mean", "sd"))], comparison)
    for group, members in _groups(runs).items():
        epochs = sorted({e for r in members for e in r.curve})
        if epochs:
            rows = []
            for epoch in epochs:
                values = [r.curve[epoch] for r in members if epoch in r.curve]
                rows.append([epoch, len(values), float(np.mean(values)), float(min(values)), float(max(values))])
            files[f"derived/final_curves/{group}.csv"] = _csv_bytes(["epoch", "seeds", "val_acc_mean", "val_acc_min", "val_acc_max"], rows)
    return files


# ---- cost: accuracy per unit of compute ------------------------------------------------------------------

COST_FAMILIES = (  # (key of the named values, model, runs/ folders): one cost.csv row each, left out without runs
    ("nano_lejepa", "ViT-nano, 32 px", "final-lejepa-s*"),
    ("nano_infonce", "ViT-nano, 32 px", "final-infonce-s*"),
    ("vit_s16_224", "ViT-S/16, 224 px", "lejepa-vits16-224"),
)
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward, as the GPU benchmark counts them


@dataclass(frozen=True)
class Recipe:
    """What one run of a family trained and what that cost in FLOPs (the same for every seed)."""

    method: str
    input_px: int
    patch: int
    tokens: int
    params_backbone: int
    train_gflop_per_image: float
    epochs: int
    images: int
    """source images trained on: epochs × (train_size // batch) × batch, the trainer's full batches"""


@dataclass(frozen=True)
class RunCost:
    recipe: Recipe
    wall_s: float
    test_top1: float
    knn_test_top1: float
    effective_rank: float


@dataclass(frozen=True)
class CostRow:
    """A row of cost.csv: a family's recipe and the means over its seeds."""

    model: str
    recipe: Recipe
    seeds: int
    gpu_min_per_run: float
    images_per_s: float
    train_pflop: float
    test_top1: float
    knn_test_top1: float
    effective_rank: float


COST_RECIPE_COLUMNS = [f.name for f in fields(Recipe) if f.name != "images"]  # cost.csv shows the rest as rates


def train_gflop_per_image(config: dict) -> float:
    """Forward + backward GFLOP per source image at a run's own model, views and projector."""
    vit, aug = model_and_views(config)
    return TRAIN_FLOPS_PER_FORWARD * forward_flops_per_image(vit, aug, int(config["train/proj_hidden"]), int(config["train/proj_dim"])) / 1e9


def read_run_cost(folder: Path) -> RunCost:
    """One exported run's recipe (config.json) and results (summary.json, trained with --eval-test)."""
    config_path, summary_path = folder / "config.json", folder / "summary.json"
    try:
        config, summary = json.loads(config_path.read_text()), json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the exported run ({exc}); fetch it again", path=folder) from None
    try:
        gflop = train_gflop_per_image(config)
    except KeyError as exc:
        raise UserError(f"no {exc} (the FLOP count needs the run's whole recipe)", path=config_path) from None
    size, batch, epochs, px, patch = (int(_field(config, key, config_path)) for key in
                                      ("data/train_size", "train/batch_size", "train/epochs", "aug/global_size", "model/patch_size"))
    objective = _field(config, "train/objective", config_path)
    params, wall_s, *results = (float(_field(summary, key, summary_path)) for key in
                                ("train/params_backbone", "train/wall_s", "final_probe/test_top1", "knn/test_top1", "repr/effective_rank"))
    recipe = Recipe(FINAL_GROUPS.get(objective, objective), px, patch, (px // patch) ** 2, int(params), gflop, epochs,
                    epochs * (size // batch) * batch)
    return RunCost(recipe, wall_s, *results)


def cost_rows(exports: Path) -> dict[str, CostRow]:
    """{COST_FAMILIES key: row} for the families whose runs are exported; a family's runs share one recipe."""
    out = {}
    for key, model, pattern in COST_FAMILIES:
        runs = [read_run_cost(folder) for folder in sorted((exports / "runs").glob(pattern))]
        if not runs:
            continue
        recipes = {r.recipe for r in runs}
        if len(recipes) > 1:
            raise UserError(f"the runs {pattern} differ in their recipe, so their means are no one model's: {sorted(recipes, key=str)}",
                            path=exports / "runs")
        (recipe,) = recipes
        wall_s = float(np.mean([r.wall_s for r in runs]))
        out[key] = CostRow(model, recipe, len(runs), wall_s / 60, recipe.images / wall_s,
                           recipe.train_gflop_per_image * recipe.images / 1e6,
                           *(float(np.mean([getattr(r, m) for r in runs])) for m in ("test_top1", "knn_test_top1", "effective_rank")))
    return out


def cost_csv(rows: dict[str, CostRow]) -> bytes:
    measures = [f.name for f in fields(CostRow)][2:]  # after model and recipe
    return _csv_bytes(["model", *COST_RECIPE_COLUMNS, *measures],
                      [[r.model, *(getattr(r.recipe, c) for c in COST_RECIPE_COLUMNS), *(getattr(r, m) for m in measures)]
                       for r in rows.values()])


def cost_values(rows: dict[str, CostRow]) -> list[tuple[str, float, str]]:
    """Named values of the ViT-S/16 run and its ratios to the nano LeJEPA (final recipe, mean over seeds)."""
    out: list[tuple[str, float, str]] = []
    nano, vit = rows.get("nano_lejepa"), rows.get("vit_s16_224")
    if nano:
        out.append(("nano_train_gflop_per_image", nano.recipe.train_gflop_per_image,
                    f"forward + backward GFLOP per source image of ViT-nano LeJEPA at the final recipe's views, {nano.recipe.input_px} px (cost.csv)"))
    if vit:
        out += [("vit_s16_224_test_top1", vit.test_top1, "final_probe/test_top1 of lejepa-vits16-224 (one seed)"),
                ("vit_s16_224_knn_test_top1", vit.knn_test_top1, "knn/test_top1 of lejepa-vits16-224"),
                ("vit_s16_224_effective_rank", vit.effective_rank, "repr/effective_rank of lejepa-vits16-224"),
                ("vit_s16_224_gpu_min", vit.gpu_min_per_run, "train/wall_s / 60 of lejepa-vits16-224 (training only, one GPU)"),
                ("vit_s16_224_train_gflop_per_image", vit.recipe.train_gflop_per_image,
                 f"forward + backward GFLOP per source image of lejepa-vits16-224 at its own views, {vit.recipe.input_px} px (cost.csv)")]
    if nano and vit:
        what = f"lejepa-vits16-224 over the ViT-nano LeJEPA final runs (mean of {nano.seeds})"
        out += [("vit_s16_224_over_nano_flops", vit.recipe.train_gflop_per_image / nano.recipe.train_gflop_per_image, f"training FLOPs per image, {what}"),
                ("vit_s16_224_over_nano_gpu_min", vit.gpu_min_per_run / nano.gpu_min_per_run, f"GPU minutes per run, {what}"),
                ("vit_s16_224_minus_nano_test_top1", vit.test_top1 - nano.test_top1,
                 f"final_probe/test_top1 of lejepa-vits16-224 minus the mean of the {nano.seeds} ViT-nano LeJEPA final runs (a fraction)")]
    return out


# ---- attention: the draft's table beside our measurements -----------------------------------------------

DRAFT_SOURCE = "author's draft (fox image; metric definitions not given), reference/draft_attention_metrics.csv"
ATTENTION_RUNS = (  # (figures/ folder, model, resolutions): rows left out where the folder or resolution is missing
    ("final-lejepa-s1", "ViT-nano LeJEPA, final recipe, seed 1 (final-lejepa-s1), trained at 32 px", (32, 64)),
    ("lejepa-vits16-224", "ViT-S/16 LeJEPA (lejepa-vits16-224), trained at 224 px", (224,)),
    ("random-init", "ViT-nano, random init (random-init)", (32,)),
)


@dataclass(frozen=True)
class AttentionRow:
    """A row of attention_comparison.csv; normalized entropy and focus are computed here for every row."""

    source: str
    model: str
    input_px: int
    patches: int
    entropy: float
    sparsity: float
    max_attention: float
    head_similarity: float | None

    def csv_row(self) -> list:
        return [self.source, self.model, self.input_px, self.patches, self.entropy, self.entropy / math.log(self.patches),
                self.sparsity, self.max_attention, focus(self.max_attention, self.patches), self.head_similarity]


def attention_rows(exports: Path) -> list[AttentionRow]:
    """The draft's rows as quoted, then ours from figures/<run>/attention_metrics.csv (ATTENTION_RUNS)."""
    out = []
    for r in _csv_rows(exports / "reference/draft_attention_metrics.csv"):
        size, rest = re.fullmatch(r"(\d+)x\d+ ?(.*)", r["input"]).groups()
        out.append(AttentionRow(DRAFT_SOURCE, r["model"] + (f", {rest}" if rest else ""), int(size), int(r["patches"]),
                                float(r["entropy"]), float(r["sparsity"]), float(r["max_attention"]),
                                float(r["head_similarity"]) if r["head_similarity"] else None))
    for run, model, sizes in ATTENTION_RUNS:
        path = exports / f"figures/{run}/attention_metrics.csv"
        for r in _csv_rows(path) if path.exists() else []:
            if int(r["resolution"]) in sizes:
                source = (f"ours: figures/{run}/attention_metrics.csv (last layer, mean over {r['heads']} heads and "
                          f"{r['images']} images; definitions in site_builder/analyze/metrics.py)")
                out.append(AttentionRow(source, model, int(r["resolution"]), int(r["patches"]), float(r["entropy"]),
                                        float(r["sparsity"]), float(r["max_attention"]), float(r["head_similarity"])))
    return out


def attention_csv(rows: list[AttentionRow]) -> bytes:
    return _csv_bytes(["source", "model", "input_px", "patches", "entropy", "normalized_entropy", "sparsity",
                       "max_attention", "focus", "head_similarity"], [r.csv_row() for r in rows])


def to_csv(rows: list[tuple[str, float, str]]) -> bytes:
    return _csv_bytes(["name", "value", "derivation"], [[name, float(value), how] for name, value, how in rows])


PAPER_TABLE = "reference/lejepa_paper_results.csv"  # quoted from the paper, "not stated" where it is silent
PAPER_TABLE_COUNTED = "derived/lejepa_paper_results.csv"  # the same rows, sizes the paper omits counted here


def paper_table_with_counts(exports: Path) -> bytes:
    """The paper's results table with every 'not stated' parameter count of a standard ViT filled in by
    vit_params (marked as ours in the source column); the quoted file itself is never changed."""
    with open(exports / PAPER_TABLE, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    for row in rows:
        vit = PAPER_VITS.get(row["model"])
        if row["params"] == "not stated" and vit is not None:
            row["params"] = f"{vit_params(vit) / 1e6:.1f}M"
            row["source"] += (f"; params not stated in the paper: counted by us for the standard {row['model']} "
                              f"(timm's ViT without classifier head, {vit.image} px), python -m site_builder.report_numbers")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    exports = Path(argv[0]) if argv else EXPORTS
    try:
        final = read_final_runs(exports)
        cost = cost_rows(exports)
        rows = compute(exports) + final_values(final) + final_paper_gaps(exports, final) + cost_values(cost)
        attention = attention_rows(exports)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    files = {PAPER_TABLE_COUNTED: paper_table_with_counts(exports), **final_files(final),
             "derived/attention_comparison.csv": attention_csv(attention)}
    if cost:
        files["derived/cost.csv"] = cost_csv(cost)
    for rel, data in files.items():
        write_bytes_atomic(exports / rel, data)
    write_bytes_atomic(exports / f"{OUTPUT}.csv", to_csv(rows))
    values = {name: float(f"{value:.10g}") for name, value, _ in rows}
    write_bytes_atomic(exports / f"{OUTPUT}.json", (json.dumps(values, indent=1) + "\n").encode())
    print(f"wrote {exports / OUTPUT}.json and .csv, " + ", ".join(str(exports / rel) for rel in files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
