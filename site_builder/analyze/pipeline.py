"""The analyze pipeline as a library: checkpoint -> figure files (PCA, attention, spectra, probe).

`analyze(Options(...))` computes every file and writes `<out>/<name>/`, replaced atomically, unless the
cache key matches; `command.py` is its command line and `bench.py` times its stages. The files:
    pca_<res>.json                        panels: input image + top-3 PCA of its last-layer patch tokens as RGB
    attention_<res>.json                  panels: CLS->patch attention per layer (frame), head and head mean
    attention_metrics.csv                 last layer, mean over the panel images (see metrics.py)
    attention_metrics_detail.csv          every layer, for the panel mean and for each image alone
    spectrum.csv, projections.csv         embedding health of the backbone's CLS embedding, first
                                          `embeddings` test images; singular values / largest, and a
                                          histogram of 1-D random projections beside N(0, 1). The last
                                          singular value is ~0 for every model: the final LayerNorm
                                          subtracts each vector's mean, which puts every embedding in
                                          one hyperplane; only a drop well before the end is collapse
    projector_spectrum.csv, projector_projections.csv
                                          the same for the projector output (what SIGReg is applied to),
                                          when the checkpoint holds the projector (`last` checkpoints)
    probe.csv                             final offline linear probe (only with `probe`)
    meta.json                             provenance, timings, the cache key, the resolutions used

Every input is a 32x32 test image, up-sampled bilinearly where a larger size is asked for. The model is
fed at the resolution it was trained at (run_config "aug/global_size" in checkpoint.json; 32 for random
init and for checkpoints without it): the spectra, projections, probe and explorers (unless
`explorer_resolution` is given). The panels (<res> above, listed in meta.json "resolutions") are at that
resolution and, for a model trained at CIFAR's native 32 px or less, also at twice it (the nano's 64:
RoPE extrapolation to a size it never saw; `panel_resolutions`); a ViT-S/16 trained at 224 gets only 224.
The output is cached by a key over the checkpoint's content (its checkpoint.json, which holds the sha256
of every shard), the options and the analysis code: the same key again does nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import torch
import torch.nn.functional as F

from site_builder.analyze import explorers, figures, metrics
from site_builder.analyze.options import METRIC_COLUMNS, PANEL_INDICES, Options, Result  # noqa: F401 (re-exported)
from site_builder.errors import UserError
from site_builder.fsutil import check_output_dir, json_bytes, staged_dir

NATIVE_RESOLUTION = 32  # CIFAR-100's images; what a checkpoint without "aug/global_size" was trained at
PROJECTION_DIRECTIONS = 64
CACHE_VERSION = 1  # bump when the meaning of the outputs changes without a code change here
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # one folder under --out, never a path



def code_sha256() -> str:
    """Hash of the code whose change changes the outputs (this package and the model/probe/data code)."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.glob("analyze/*.py")) + [root / "train" / f for f in ("model.py", "probe.py", "data.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here (use --device cpu)")
    return device


def panel_resolutions(trained: int) -> tuple[int, ...]:
    """The trained resolution, plus twice it for a model trained at CIFAR's native 32 px (or less)."""
    return (trained, 2 * trained) if trained <= NATIVE_RESOLUTION else (trained,)


def trained_resolution(info: object, path: Path) -> int:
    """The input size a checkpoint was trained at: its run_config's "aug/global_size", else 32."""
    run_config = info.get("run_config") if isinstance(info, dict) else None
    size = run_config.get("aug/global_size", NATIVE_RESOLUTION) if isinstance(run_config, dict) else NATIVE_RESOLUTION
    if type(size) is not int or size <= 0:
        raise UserError(f"field 'run_config' 'aug/global_size': {size!r} is not a positive integer", path=path)
    return size


def check_resolution(resolution: int, patch: int, what: str) -> None:
    if resolution <= 0 or resolution % patch:
        raise UserError(f"{what} {resolution} is not a positive multiple of the patch size {patch}")


def model_source(opts: Options) -> tuple[str, str, dict, int]:
    """(output name, content sha256 of the model, provenance, trained resolution) without loading any weights."""
    from site_builder.train.checkpoint import INFO_FILE
    from site_builder.train.model import ViTConfig

    if opts.random_init:
        config = ViTConfig().to_dict()
        sha = hashlib.sha256(json_bytes({"random_init": config, "seed": opts.seed})).hexdigest()
        return opts.name or "random-init", sha, {"checkpoint": None, "random_init": True}, NATIVE_RESOLUTION
    folder = opts.checkpoint
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise UserError(f"not a checkpoint folder: {INFO_FILE} is missing", path=folder)
    raw = info_path.read_bytes()
    try:
        info = json.loads(raw)
    except ValueError:
        info = None  # load_model reports what is wrong with the file
    run_name = info.get("run") if isinstance(info, dict) else None
    name = opts.name or (run_name if isinstance(run_name, str) and run_name else folder.resolve().parent.name)
    if not OUTPUT_NAME.fullmatch(name):  # a foreign checkpoint.json must not steer writes out of --out
        where = "--name" if opts.name else "field 'run'"
        raise UserError(f"{where}: {name!r} is not a folder name (letters, digits, '.', '_', '-'; no '/')", path=info_path)
    trained = trained_resolution(info, info_path)
    return name, hashlib.sha256(raw).hexdigest(), {"checkpoint": folder.as_posix()}, trained


def load_models(opts, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    """(backbone, projector or None, checkpoint info). Resumable `last` checkpoints hold the projector."""
    from site_builder.train.checkpoint import load_model, read_checkpoint
    from site_builder.train.model import ViT, ViTConfig

    if opts.random_init:
        torch.manual_seed(opts.seed)
        return ViT(ViTConfig()).to(device).eval(), None, {"step": 0, "epoch": 0}
    model, info = load_model(opts.checkpoint, str(device))
    if not any(name.startswith("state-") for name in info["files"]):
        return model, None, info
    _, _, state = read_checkpoint(opts.checkpoint)  # read again: load_model keeps only the backbone
    return model, _projector(state, model.embed_dim, opts.checkpoint, device), info


def _projector(state: dict, width: int, path: Path, device: torch.device) -> torch.nn.Module | None:
    from site_builder.train.model import Projector

    weights = {k.removeprefix("projector."): v.float() for k, v in state.items() if k.startswith("projector.")}
    if not weights:
        return None
    try:
        projector = Projector(width, weights["net.0.weight"].shape[0], weights["net.6.weight"].shape[0])
        projector.load_state_dict(weights, strict=True)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"projector weights do not fit the projector ({first})", path=path) from None
    return projector.to(device).eval()


def class_names(data_dir: Path) -> list[str] | None:
    try:
        names = json.loads((data_dir / "classes.json").read_text())
    except (OSError, ValueError):
        return None
    return names if isinstance(names, list) and len(names) == 100 else None


def panel_names(indices, labels, class_names) -> list[str]:
    """Class names ("fox"), with the test index added where a class appears twice in the panel."""
    classes = [class_names[int(labels[i])] if class_names else f"class {int(labels[i])}" for i in indices]
    return [c if classes.count(c) == 1 else f"{c} #{i}" for c, i in zip(classes, indices)]


def model_inputs(images_u8: np.ndarray, resolution: int, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """(normalised model input, uint8 image as shown) at `resolution` (bilinear up-sampling above 32)."""
    from site_builder.train.data import normalize

    u8 = torch.from_numpy(images_u8).to(device)
    x = normalize(u8)
    shown = u8.permute(0, 3, 1, 2).float()
    if resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
        shown = F.interpolate(shown, size=(resolution, resolution), mode="bilinear", align_corners=False)
    shown = shown.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return x, shown


def compact_json(obj) -> bytes:
    """Panels files: sorted keys like fsutil.json_bytes but without indentation (3x smaller in git)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def csv_bytes(columns: list[str], rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in columns])
    return out.getvalue().encode()




@torch.inference_mode()
def panel_figures(model, images_u8, names, device,
                  resolutions: tuple[int, ...]) -> tuple[dict[str, bytes], list[dict], list[dict]]:
    """PCA and attention panels files, the metrics table and the per-layer/per-image detail rows."""
    files, table, detail = {}, [], []
    patch = model.cfg.patch_size
    for res in resolutions:
        check_resolution(res, patch, "panel resolution")
        x, shown = model_inputs(images_u8, res, device)
        num_patches = (res // patch) ** 2
        _, patches = model.forward_features(x)
        pca = figures.pca_rgb(patches.float())
        files[f"pca_{res}.json"] = compact_json({
            "title": f"PCA of each image's last-layer patch features, {res}x{res} input (top 3 components as RGB)",
            "columns": 6,  # three (input, PCA) pairs per row
            "panels": figures.image_panels(names, shown, pca, "PCA"),
        })
        p = metrics.cls_patch_attention(model.attention_maps(x), num_patches)  # [L, B, H, N]
        files[f"attention_{res}.json"] = compact_json({
            "title": f"CLS attention to the patches, {res}x{res} input",
            "frame_label": "layer",
            "columns": p.shape[2] + 1,  # one row per image: its heads, then their mean
            "panels": figures.attention_panels(names, p),
        })
        common = {"resolution": res, "patches": num_patches, "heads": p.shape[2],
                  "sparsity_threshold": metrics.SPARSITY_THRESHOLD}
        table.append({**common, "layer": p.shape[0], "images": len(names), **metrics.attention_metrics(p[-1])})
        for layer in range(p.shape[0]):
            detail.append({**common, "layer": layer + 1, "image": "all", **metrics.attention_metrics(p[layer])})
            for i, name in enumerate(names):
                detail.append({**common, "layer": layer + 1, "image": name,
                               **metrics.attention_metrics(p[layer, i : i + 1])})
    files["attention_metrics.csv"] = csv_bytes(
        ["resolution", *METRIC_COLUMNS, "sparsity_threshold", "layer", "images", "heads", "patches"], table)
    files["attention_metrics_detail.csv"] = csv_bytes(
        ["resolution", "layer", "image", *METRIC_COLUMNS, "sparsity_threshold", "heads", "patches"], detail)
    return files, table, detail


def _embedding_files(emb: torch.Tensor, seed: int, prefix: str) -> tuple[dict[str, bytes], dict]:
    spectrum = figures.singular_spectrum(emb)
    proj = figures.random_projections(emb, PROJECTION_DIRECTIONS, seed)
    hist = figures.projection_histogram(proj)
    files = {
        f"{prefix}spectrum.csv": csv_bytes(
            ["index", "singular_value"],
            [{"index": i + 1, "singular_value": float(s)} for i, s in enumerate(spectrum)]),
        f"{prefix}projections.csv": csv_bytes(["x", "density", "normal_pdf"], [
            {"x": float(a), "density": float(b), "normal_pdf": float(c)}
            for a, b, c in zip(hist["x"], hist["density"], hist["normal_pdf"])]),
    }
    summary = {"images": len(emb), "dim": emb.shape[1], "effective_rank": figures.effective_rank(spectrum),
               "projection_mean": proj.mean().item(), "projection_std": proj.std().item()}
    return files, summary


@torch.inference_mode()
def embedding_figures(model, projector, images_u8, device, seed, size: int) -> tuple[dict[str, bytes], dict]:
    """Spectrum and projection histogram of the backbone's CLS embedding (what the probes see) at input
    `size`, and, where the checkpoint holds it, of the projector's output (what SIGReg is applied to)."""
    from site_builder.train.probe import extract_features

    emb = extract_features(model, torch.from_numpy(images_u8), device, batch_size(device), size)
    emb = emb[:, : model.embed_dim]
    files, backbone = _embedding_files(emb.double(), seed, "")
    summary = {"backbone": backbone}
    if projector is not None:
        z = torch.cat([projector(batch.to(device)).float().cpu() for batch in emb.split(batch_size(device))])
        projector_files, summary["projector"] = _embedding_files(z.double(), seed, "projector_")
        files.update(projector_files)
    return files, summary


def batch_size(device: torch.device) -> int:
    """Small batches on CPU (big ones spend their time in memory traffic), large ones on a GPU."""
    return 64 if device.type == "cpu" else 1000


def probe_file(model, data_dir, device, size: int) -> tuple[bytes, dict]:
    """probe.csv: the fixed-recipe linear probe on features at input `size` (train split -> test split)."""
    from site_builder.train.data import load_cifar100
    from site_builder.train.probe import PROBE_RECIPE, extract_features, linear_probe

    train_x, train_y = load_cifar100(data_dir, "train")
    test_x, test_y = load_cifar100(data_dir, "test")
    feats = [extract_features(model, torch.from_numpy(x), device, batch_size(device), size) for x in (train_x, test_x)]
    result = linear_probe(feats[0], torch.from_numpy(train_y), feats[1], torch.from_numpy(test_y), device=device)
    row = {"split": "test", "top1": float(result["top1"]), "top5": float(result["top5"])}
    return csv_bytes(["split", "top1", "top5"], [row]), {**row, "recipe": PROBE_RECIPE}


@torch.inference_mode()
def cls_embeddings(model, images_u8: np.ndarray, resolution: int, device: torch.device) -> torch.Tensor:
    """`[N, D]` float32 CLS embeddings (CPU) of uint8 images at `resolution` (bfloat16 autocast on a GPU)."""
    out = []
    for start in range(0, len(images_u8), batch_size(device)):
        x, _ = model_inputs(images_u8[start : start + batch_size(device)], resolution, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            cls, _ = model.forward_features(x)
        out.append(cls.float().cpu())
    return torch.cat(out)


@torch.inference_mode()
def explorer_figures(model, test_x: np.ndarray, test_y: np.ndarray, opts: Options,
                     device: torch.device) -> tuple[dict[str, bytes], dict]:
    """embedding_map.json and attention_viewer.json (see explorers.py) at `opts.explorer_resolution`."""
    res = opts.explorer_resolution
    check_resolution(res, model.cfg.patch_size, "--explorer-resolution")
    coarse = explorers.coarse_labels(opts.data, len(test_x))
    fine_names = class_names(opts.data) or [f"class {i}" for i in range(100)]
    coarse_names = _names(opts.data / "coarse_classes.json", 20) or [f"superclass {i}" for i in range(20)]
    t = time.perf_counter()
    emb = cls_embeddings(model, test_x, res, device)
    forward_s = time.perf_counter() - t
    emb_map = {"resolution": res, "count": len(test_x), "fine": test_y.tolist(), "coarse": coarse.tolist(),
               "fine_names": fine_names, "coarse_names": coarse_names, **explorers.embedding_map(emb)}
    indices = explorers.explorer_images(opts.images, coarse)
    x, _ = model_inputs(test_x[indices], res, device)
    num_patches = (res // model.cfg.patch_size) ** 2
    p = metrics.cls_patch_attention(model.attention_maps(x).float(), num_patches)
    viewer = explorers.attention_viewer(
        p.cpu(), test_x[indices], indices, [fine_names[int(test_y[i])] for i in indices],
        [coarse_names[int(coarse[i])] for i in indices], res, model.cfg.patch_size)
    files = {"embedding_map.json": compact_json(emb_map), "attention_viewer.json": compact_json(viewer)}
    summary = {"resolution": res, "images": len(test_x), "attention_images": indices,
               "explained_variance_2d": emb_map["explained"], "spread": emb_map["spread"],
               "forward_seconds": round(forward_s, 3)}
    return files, summary


def _names(path: Path, count: int) -> list[str] | None:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return names if isinstance(names, list) and len(names) == count else None


def atlas_done(out: Path, count: int = 10_000) -> bool:
    """The atlas of `count` images exists (it depends on the test images only, so one check suffices)."""
    folder = out / explorers.ATLAS_FOLDER
    tiles = math.ceil(count / explorers.TILE**2)
    return len(list(folder.glob("atlas-*.jpg"))) == tiles and (folder / f"atlas-{tiles - 1:03d}.jpg").is_file()


def write_atlas(out: Path, test_x: np.ndarray) -> None:
    """The shared thumbnail atlas (explorers.py), written once for every model."""
    with staged_dir(out / explorers.ATLAS_FOLDER) as tmp:
        for filename, data in explorers.atlas_tiles(test_x).items():
            (tmp / filename).write_bytes(data)


def is_cached(target: Path, cache_key: str, need_probe: bool) -> bool:
    try:
        meta = json.loads((target / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if meta.get("explorers") and not atlas_done(target.parent, meta["explorers"]["images"]):
        return False
    return meta.get("cache_key") == cache_key and (not need_probe or bool(meta.get("probe")))




def analyze(opts: Options) -> Result:
    """Compute every figure file of one model and write `<out>/<name>/` (or nothing, when cached)."""
    from site_builder.train.checkpoint import INFO_FILE

    if opts.checkpoint is not None and opts.checkpoint.name == INFO_FILE:
        opts.checkpoint = opts.checkpoint.parent
    if opts.embeddings < 2:
        raise UserError("--embeddings must be at least 2")
    name, model_sha, provenance, trained = model_source(opts)
    if opts.explorers:
        return analyze_explorers(opts, name, model_sha, provenance, trained)
    target = (opts.out or Path("exports/figures")) / name
    _check_outputs(opts, opts.out or Path("exports/figures"), target)
    options = {"images": list(opts.images), "embeddings": opts.embeddings, "seed": opts.seed}
    cache_key = hashlib.sha256(json_bytes({"model": model_sha, "options": options, "code": code_sha256(),
                                           "version": CACHE_VERSION})).hexdigest()
    if not opts.force and is_cached(target, cache_key, opts.probe):
        return Result(target, cache_key, cached=True)

    device = select_device(opts.device)
    timings = {}
    start = time.perf_counter()
    model, projector, info, test_x, test_y = load_model_and_test_split(opts, device)
    names = panel_names(opts.images, test_y, class_names(opts.data))
    timings["load"] = time.perf_counter() - start

    t = time.perf_counter()
    resolutions = panel_resolutions(trained)
    files, table, _ = panel_figures(model, test_x[list(opts.images)], names, device, resolutions)
    timings["panel"] = time.perf_counter() - t
    t = time.perf_counter()
    emb_files, embedding_summary = embedding_figures(model, projector, test_x[: opts.embeddings], device,
                                                     opts.seed, trained)
    files.update(emb_files)
    timings["embeddings"] = time.perf_counter() - t
    probe_summary = None
    if opts.probe:
        t = time.perf_counter()
        files["probe.csv"], probe_summary = probe_file(model, opts.data, device, trained)
        timings["probe"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start

    write_model_folder(target, files, provenance, model_sha, model, info, cache_key, options, device, timings, {
        "trained_resolution": trained,
        "resolutions": list(resolutions),  # of the panels: pca_<res>.json, attention_<res>.json
        "panel": [{"index": i, "name": n} for i, n in zip(opts.images, names)],
        "probe": probe_summary,
        "embedding": embedding_summary,
        "metric_definitions": "site_builder/analyze/metrics.py (module docstring); table = last layer, "
                              "mean over heads (pairs) and panel images",
    })
    return Result(target, cache_key, cached=False, device=str(device), table=table, embedding=embedding_summary,
                  probe=probe_summary, seconds=timings)


def load_model_and_test_split(opts: Options, device):
    """(model, projector, checkpoint info, test images, test labels), with --images checked against the split."""
    from site_builder.train.data import load_cifar100

    model, projector, info = load_models(opts, device)
    test_x, test_y = load_cifar100(opts.data, "test")
    bad = [i for i in opts.images if i >= len(test_x)]
    if bad:
        raise UserError(f"--images: {bad} out of range (the test split has {len(test_x)} images)", path=opts.data)
    return model, projector, info, test_x, test_y


def write_model_folder(target: Path, files: dict[str, bytes], provenance: dict, model_sha: str, model, info: dict,
                       cache_key: str, options: dict, device, seconds: dict, extra: dict) -> None:
    """Write one model's output folder atomically: its files and a meta.json with the provenance every
    analyze output shares, plus `extra`."""
    from site_builder.train.trainer import source_version  # the same provenance as the training runs' configs

    commit, dirty = source_version()
    meta = {
        **provenance,
        "model_sha256": model_sha,
        "model_config": model.cfg.to_dict(),
        "step": info.get("step"),
        "epoch": info.get("epoch"),
        "cache_key": cache_key,
        "options": options,
        **extra,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with staged_dir(target) as tmp:
        for filename, data in files.items():
            (tmp / filename).write_bytes(data)
        (tmp / "meta.json").write_bytes(json_bytes(meta))


def _check_outputs(opts: Options, out: Path, target: Path) -> None:
    """Before anything is written: neither the output root nor the model's folder may be, hold or lie in
    an input or the project (issue 19); the model's folder is replaced whole, so it must be new, empty or an
    earlier output (it holds meta.json)."""
    inputs = [p for p in (opts.checkpoint, opts.data) if p is not None]
    check_output_dir(out, flag="--out", inputs=inputs, project=Path.cwd(), marker=None)
    check_output_dir(target, flag="--out", inputs=inputs, project=Path.cwd(), marker="meta.json")


def analyze_explorers(opts: Options, name: str, model_sha: str, provenance: dict, trained: int) -> Result:
    """The explorers' files of one model into `<out>/<name>/` (default out: exports/explorers) plus the
    shared atlas `<out>/cifar100-test/`; cached like `analyze` by a key over model, options and code.
    `opts.explorer_resolution` None means the `trained` resolution."""
    if opts.explorer_resolution is None:
        opts = dataclasses.replace(opts, explorer_resolution=trained)
    out = opts.out or Path("exports/explorers")
    target = out / name
    _check_outputs(opts, out, target)
    options = {"images": list(opts.images), "explorer_resolution": opts.explorer_resolution}
    cache_key = hashlib.sha256(json_bytes({"model": model_sha, "options": options, "code": code_sha256(),
                                           "version": CACHE_VERSION, "explorers": True})).hexdigest()
    if not opts.force and is_cached(target, cache_key, False):
        return Result(target, cache_key, cached=True)
    device = select_device(opts.device)
    start = time.perf_counter()
    model, _, info, test_x, test_y = load_model_and_test_split(opts, device)
    files, summary = explorer_figures(model, test_x, test_y, opts, device)
    seconds = {"total": time.perf_counter() - start}
    write_model_folder(target, files, provenance, model_sha, model, info, cache_key, options, device, seconds,
                       {"trained_resolution": trained, "explorers": summary})
    if not atlas_done(out, len(test_x)):
        write_atlas(out, test_x)
    return Result(target, cache_key, cached=False, device=str(device), explorers=summary, seconds=seconds)
