"""`python -m site_builder train`: pretrain a ViT-nano on CIFAR-100 with LeJEPA or InfoNCE.

The three runs of the report (same backbone, views and budget; the run name picks the objective):

    python -m site_builder train --name lejepa-nano-c100          --data DIR   # LeJEPA, lambda 0.02
    python -m site_builder train --name lejepa-nano-c100-lambda0  --data DIR   # ablation, lambda 0
    python -m site_builder train --name infonce-nano-c100         --data DIR   # SimCLR-style InfoNCE

Writes checkpoints/<run>/{last,final}/ and a wandb offline run under wandb/. Running the same command
again resumes from checkpoints/<run>/last. Under `torchrun --nproc_per_node N -m site_builder train ...`
it trains with DistributedDataParallel (the batch size is the total over all processes).
"""

from __future__ import annotations

import argparse

from site_builder.errors import UserError

PRESETS = {
    "lejepa-nano-c100": {"objective": "lejepa", "lam": 0.02},
    "lejepa-nano-c100-lambda0": {"objective": "lejepa", "lam": 0.0},
    "infonce-nano-c100": {"objective": "infonce", "lam": 0.0},
}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help=f"run name (presets: {', '.join(PRESETS)})")
    p.add_argument("--data", required=True, help="CIFAR-100 folder: the npz shards or cifar-100-python.tar.gz")
    p.add_argument("--download", action="store_true", help="first download the official archive into --data")
    p.add_argument("--objective", choices=["lejepa", "infonce"], help="default: from the run's preset")
    p.add_argument("--lam", type=float, help="LeJEPA lambda (weight of SIGReg); default: from the preset")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=256, help="images per step over all processes")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=3.0)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--mlp-ratio", type=float, default=4.0)
    p.add_argument("--proj-dim", type=int, default=64)
    p.add_argument("--proj-hidden", type=int, default=2048)
    p.add_argument("--num-slices", type=int, default=1024)
    p.add_argument("--global-views", type=int, default=2)
    p.add_argument("--local-views", type=int, default=6)
    p.add_argument("--temperature", type=float, default=0.2, help="InfoNCE temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it is only used on CUDA)")
    p.add_argument("--no-wandb", action="store_true", help="do not log to wandb")
    p.add_argument("--out", default="checkpoints", help="checkpoint root (default: checkpoints/)")
    p.add_argument("--wandb-dir", default=".", help="folder in which wandb/ offline runs are written")
    p.add_argument("--time-limit-min", type=float, default=0.0,
                   help="stop after the epoch that passes this many minutes (resume with the same command)")
    p.add_argument("--ckpt-every", type=int, default=10, help="epochs between resumable checkpoints")
    p.add_argument("--log-every", type=int, default=50, help="steps between metric flushes to wandb")
    p.add_argument("--md5", action="append", default=[], metavar="SPLIT=HEX",
                   help="expected md5 for a derived data set (default: the published checksums)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N training images")
    p.add_argument("--tiny", action="store_true",
                   help="a seconds-long CPU configuration (depth 1, width 32) for tests and smoke runs")


def _md5_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        split, sep, value = item.partition("=")
        if not sep or split not in ("train", "test") or len(value) != 32:
            raise UserError(f"--md5 {item!r}: expected train=<32 hex digits> or test=<32 hex digits>")
        out[split] = value.lower()
    return out


def build_config(args: argparse.Namespace):
    from site_builder.train.augment import AugConfig
    from site_builder.train.model import ViTConfig
    from site_builder.train.trainer import TrainConfig

    preset = PRESETS.get(args.name, {})
    objective = args.objective or preset.get("objective")
    if objective is None:
        raise UserError(f"--name {args.name!r} is not a preset ({', '.join(PRESETS)}): give --objective")
    lam = args.lam if args.lam is not None else preset.get("lam", 0.02)
    model = ViTConfig(depth=args.depth, width=args.width, heads=args.heads, mlp_ratio=args.mlp_ratio)
    aug = AugConfig(global_views=args.global_views, local_views=args.local_views)
    extra = {}
    if args.tiny:
        model = ViTConfig(depth=1, width=32, heads=2, mlp_ratio=2.0)
        extra = {"proj_hidden": 64, "proj_dim": 16, "num_slices": 32}
    return TrainConfig(
        run=args.name, data=args.data, objective=objective, lam=lam, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, proj_dim=extra.get("proj_dim", args.proj_dim),
        proj_hidden=extra.get("proj_hidden", args.proj_hidden),
        num_slices=extra.get("num_slices", args.num_slices), temperature=args.temperature, seed=args.seed,
        device=args.device, compile=not args.no_compile, log_every=args.log_every, ckpt_every=args.ckpt_every,
        time_limit_min=args.time_limit_min, out=args.out, wandb_dir=args.wandb_dir, wandb=not args.no_wandb,
        md5=_md5_overrides(args.md5), limit_train=args.limit_train, model=model, aug=aug)


def run(args: argparse.Namespace) -> int:
    from site_builder.train.data import download_cifar100
    from site_builder.train.trainer import Trainer

    cfg = build_config(args)
    if args.download:
        download_cifar100(args.data)
    Trainer(cfg).fit()
    return 0
