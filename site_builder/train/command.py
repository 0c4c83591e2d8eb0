"""`python -m site_builder train`: pretrain a ViT on CIFAR-100 with LeJEPA or InfoNCE.

    python -m site_builder train --name lejepa-nano-c100          --data DIR   # LeJEPA, lambda 0.02
    python -m site_builder train --name lejepa-nano-c100-lambda0  --data DIR   # ablation, lambda 0
    python -m site_builder train --name infonce-nano-c100         --data DIR   # SimCLR-style InfoNCE
    python -m site_builder train --name my-run --objective lejepa --lam 0.05 --global-views 4 --local-views 0 ...

Every flag comes from a field of TrainConfig, ViTConfig or AugConfig (one place for each default); a
`--size` preset (tiny, nano, vit-s16-224) sets several at once and explicit flags override it. Writes
checkpoints/<run>/{last,final}/ and a wandb offline run under wandb/; the same command again resumes from
checkpoints/<run>/last. Under `torchrun --nproc-per-node N -m site_builder train ...` it trains with
DistributedDataParallel; --batch-size and --lr are for the global batch (all processes together).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from site_builder.errors import UserError

# Run-name presets: the report's runs pick their objective by name.
PRESETS = {
    "lejepa-nano-c100": {"objective": "lejepa", "lam": 0.02},
    "lejepa-nano-c100-lambda0": {"objective": "lejepa", "lam": 0.0},
    "infonce-nano-c100": {"objective": "infonce", "lam": 0.0},
}
# Size presets: overrides of the defaults, keyed like the config ("model.x", "aug.x", or a TrainConfig field).
SIZES = {
    "nano": {},
    "tiny": {"model.depth": 1, "model.width": 32, "model.heads": 2, "model.mlp_ratio": 2.0,
             "proj_hidden": 64, "proj_dim": 16, "num_slices": 32},
    # ViT-S/16 at 224 px (CIFAR images up-sampled by the crops): 14 x 14 patches, views as in LeJEPA's recipe.
    "vit-s16-224": {"model.patch_size": 16, "model.width": 384, "model.depth": 12, "model.heads": 6,
                    "aug.global_size": 224, "aug.local_size": 96},
}


def _config_fields():
    """(dest, section, field) for every configurable field: TrainConfig's, then ViTConfig's and AugConfig's."""
    from site_builder.train.config import AugConfig, TrainConfig, ViTConfig

    for section, cls in ((None, TrainConfig), ("model", ViTConfig), ("aug", AugConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if section is None and (f.name in ("model", "aug") or not f.metadata.get("flag", True)):
                continue
            yield f.name, section, f, hints[f.name]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help=f"run name (presets: {', '.join(PRESETS)})")
    p.add_argument("--data", required=True, help="CIFAR-100 folder: the npz shards or cifar-100-python.tar.gz")
    p.add_argument("--download", action="store_true", help="first download the official archive into --data")
    p.add_argument("--size", choices=list(SIZES), default="nano", help="model size preset (default: nano)")
    p.add_argument("--tiny", action="store_const", const="tiny", dest="size",
                   help="= --size tiny: a seconds-long CPU configuration for tests and smoke runs")
    p.add_argument("--md5", action="append", default=[], metavar="SPLIT=HEX",
                   help="expected md5 for a derived data set (default: the published checksums)")
    for name, section, f, hint in _config_fields():
        flag = "--" + name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{f.metadata.get('help', name)} (default: {default})"
        origin = typing.get_origin(hint)
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif origin is tuple:
            args = typing.get_args(hint)
            nargs = "+" if args[-1] is Ellipsis else len(args)
            p.add_argument(flag, type=args[0], nargs=nargs, default=None, metavar="X", help=help_)
        else:
            p.add_argument(flag, type=hint, default=None, choices=f.metadata.get("choices"), help=help_)


def _md5_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        split, sep, value = item.partition("=")
        if not sep or split not in ("train", "test") or len(value) != 32:
            raise UserError(f"--md5 {item!r}: expected train=<32 hex digits> or test=<32 hex digits>")
        out[split] = value.lower()
    return out


def build_config(args: argparse.Namespace):
    """Defaults (the dataclasses), then the run-name and size presets, then the flags given explicitly."""
    from site_builder.train.config import AugConfig, TrainConfig, ViTConfig

    preset = PRESETS.get(args.name, {})
    if args.objective is None and not preset:
        raise UserError(f"--name {args.name!r} is not a preset ({', '.join(PRESETS)}): give --objective")
    values: dict[tuple, object] = {(None, k): v for k, v in preset.items()}
    values.update({tuple(k.split(".")) if "." in k else (None, k): v for k, v in SIZES[args.size].items()})
    for name, section, _, _ in _config_fields():
        given = getattr(args, name)
        if given is not None:
            values[(section, name)] = tuple(given) if isinstance(given, list) else given
    sections = {s: {k: v for (sec, k), v in values.items() if sec == s} for s in (None, "model", "aug")}
    return TrainConfig(run=args.name, data=args.data, md5=_md5_overrides(args.md5), **sections[None],
                       model=ViTConfig(**sections["model"]), aug=AugConfig(**sections["aug"]))


def run(args: argparse.Namespace) -> int:
    from site_builder.train.data import download_cifar100
    from site_builder.train.trainer import Trainer

    cfg = build_config(args)
    if args.download:
        download_cifar100(args.data)
    try:
        Trainer(cfg).fit()
    finally:
        import torch.distributed as dist

        if dist.is_initialized():  # gloo/NCCL threads left running abort the process at exit
            dist.destroy_process_group()
    return 0
