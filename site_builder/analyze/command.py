"""`python -m site_builder analyze`: the command line of `analyze.pipeline` (which documents the files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from site_builder.analyze.options import METRIC_COLUMNS, PANEL_INDICES, Options, Result


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path,
                        help="checkpoint folder: checkpoints/<run>/last (float32, with the projector) or "
                             "checkpoints/<run>/final (bfloat16 backbone)")
    source.add_argument("--random-init", action="store_true",
                        help="analyze a freshly initialised ViT-nano (default config, seeded by --seed)")
    parser.add_argument("--name", help="output folder name (default: the checkpoint's run name, else the "
                                       "folder above the checkpoint; 'random-init' with --random-init)")
    parser.add_argument("--data", type=Path, default=Path("data/cifar100"),
                        help="CIFAR-100 folder (npz shards or the official archive; default: data/cifar100)")
    parser.add_argument("--out", type=Path, help="default: exports/figures (exports/explorers with --explorers)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--images", type=_indices, default=PANEL_INDICES,
                        help="comma-separated CIFAR-100 test indices of the panel "
                             f"(default: {','.join(map(str, PANEL_INDICES))})")
    parser.add_argument("--embeddings", type=int, default=1024,
                        help="test images for the spectrum and projections (default 1024: twice the width "
                             "of ViT-nano, so a healthy spectrum shows no false cliff)")
    parser.add_argument("--probe", action="store_true",
                        help="also run the final linear probe (features of all 60k images; slow on CPU)")
    parser.add_argument("--explorers", action="store_true",
                        help="instead of the figures: the site's explorer data (embedding map of all 10,000 test "
                             "images with nearest neighbours, attention of every layer and head, thumbnail atlas)")
    parser.add_argument("--explorer-resolution", type=int, default=None,
                        help="input size for the explorers (default: the resolution the model was trained at, "
                             "run_config 'aug/global_size'; 32 for --random-init and old checkpoints)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random init and projections")
    parser.add_argument("--force", action="store_true", help="recompute even when the cache key matches")


def _indices(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative indices, got {text!r}")
    return values


def run(args) -> int:
    from site_builder.analyze import pipeline  # torch: only when the command runs

    opts = Options(
        checkpoint=None if args.random_init else args.checkpoint, data=args.data, out=args.out, name=args.name,
        device=args.device, images=args.images, embeddings=args.embeddings, probe=args.probe, explorers=args.explorers,
        explorer_resolution=args.explorer_resolution, seed=args.seed,
        force=args.force)
    result = pipeline.analyze(opts)
    if result.cached:
        print(f"{result.target}: up to date (cache key {result.cache_key[:12]}), nothing to do")
    else:
        _print_summary(result)
    return 0


def _print_summary(r: Result) -> None:
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items() if k != "total")
    print(f"{r.target}: written on {r.device} in {r.seconds['total']:.1f} s" + (f" ({parts})" if parts else ""))
    header = ["resolution", *METRIC_COLUMNS[:5]]
    if r.table:
        print("  " + "  ".join(f"{h:>15}" for h in header))
    for row in r.table:
        print("  " + "  ".join(f"{row[h]:>15.4g}" for h in header))
    for part, e in r.embedding.items():
        print(f"  {part} embedding: {e['images']} test images, effective rank {e['effective_rank']:.1f} "
              f"of {e['dim']}; random projections mean {e['projection_mean']:.3f}, std "
              f"{e['projection_std']:.3f}")
    if r.explorers:
        e = r.explorers
        print(f"  explorers: {e['images']} test images at {e['resolution']} px (forward {e['forward_seconds']:.1f} s), "
              f"map spread {e['spread']:.3g}, 2-D PCA explains {sum(e['explained_variance_2d']):.1%}")
    if r.probe:
        print(f"  linear probe (test): top-1 {r.probe['top1']:.2%}, top-5 {r.probe['top5']:.2%}")
