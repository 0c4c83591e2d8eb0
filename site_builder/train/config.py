"""The configuration of a training run, as plain dataclasses (no torch import), so that `train --help`
and anything that only reads a run's recipe works with the base install.

`train`'s flags and their defaults are generated from these fields (train/command.py): a default is
written once, here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PROBE_RECIPE = {
    "probe/features": "cls+mean_patch",
    "probe/lr": 1e-3,
    "probe/weight_decay": 1e-4,
    "probe/batch_size": 1024,
    "probe/epochs": 100,
    "probe/schedule": "cosine",
    "probe/seed": 0,
}


@dataclass
class ViTConfig:
    patch_size: int = 4
    width: int = 512
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    in_chans: int = 3
    rope_base: float = 100.0  # base of the rotary frequencies; grid coordinates are patch indices
    drop_path: float = 0.0  # stochastic depth: the last block drops its residual branches with this rate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AugConfig:
    global_views: int = 2
    local_views: int = 6
    global_size: int = 32
    local_size: int = 16
    global_scale: tuple[float, float] = (0.3, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.3)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    color_strength: float = 1.0  # multiplies brightness, contrast, saturation and hue together
    gray_p: float = 0.2
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    solarize_p: float = 0.2

    def to_dict(self) -> dict:
        return {f"aug/{k}": (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def model_and_views(flat: dict) -> tuple[ViTConfig, AugConfig]:
    """The ViTConfig and AugConfig of a logged run config (TrainConfig.flat(): `model/<field>`, `aug/<field>`,
    tuples logged as lists); KeyError names the first key missing."""
    def build(cls, prefix):
        values = {f.name: flat[f"{prefix}/{f.name}"] for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    return build(ViTConfig, "model"), build(AugConfig, "aug")


def forward_flops_per_image(cfg: ViTConfig, aug: AugConfig, proj_hidden: int, proj_dim: int) -> float:
    """Forward matmul FLOPs (2 per multiply-add) per source image over all its views: patch embedding,
    blocks (qkv, output projection, MLP, attention scores and values) and projector. Training is 3x this."""
    d, p = cfg.width, cfg.patch_size
    per_layer_token = 2 * (4 + 2 * cfg.mlp_ratio) * d * d
    total = 0.0
    for views, size in ((aug.global_views, aug.global_size), (aug.local_views, aug.local_size)):
        n = (size // p) ** 2
        t = n + 1
        backbone = cfg.depth * (t * per_layer_token + 2 * 2 * t * t * d) + n * 2 * 3 * p * p * d
        head = 2 * (d * proj_hidden + proj_hidden * proj_hidden + proj_hidden * proj_dim)
        total += views * (backbone + head)
    return total


def _opt(default, help: str, **kw):
    """A TrainConfig field with its command-line help (the flags of `train` are generated from these)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every choice of a training run; `train`'s flags and their defaults are generated from these fields
    (and from ViTConfig's and AugConfig's), so a default is written once, here."""

    run: str = _opt("", "run name (presets set the objective and lambda)", flag=False)
    data: str = _opt("", "CIFAR-100 folder: the npz shards or cifar-100-python.tar.gz", flag=False)
    objective: str = _opt("lejepa", "lejepa or infonce", choices=("lejepa", "infonce"))
    lam: float = _opt(0.02, "LeJEPA lambda: loss = lam * SIGReg + (1 - lam) * invariance")
    epochs: int = _opt(40, "epochs over the training images (the validation images held out)")
    batch_size: int = _opt(256, "images per step over all processes")
    lr: float = _opt(1e-3, "peak learning rate (AdamW), for the batch size given")
    weight_decay: float = _opt(0.05, "AdamW weight decay of backbone and projector")
    warmup_epochs: float = _opt(3.0, "linear warm-up, then cosine decay")
    min_lr_ratio: float = _opt(1e-3, "final learning rate / peak")
    proj_dim: int = _opt(64, "projector output size (the dimension SIGReg tests)")
    proj_hidden: int = _opt(2048, "projector hidden width")
    num_slices: int = _opt(1024, "SIGReg: random directions per step")
    knots: int = _opt(17, "SIGReg: quadrature knots on [0, t_max]")
    t_max: float = _opt(3.0, "SIGReg: upper end of the integration range")
    temperature: float = _opt(0.2, "InfoNCE temperature")
    probe_lr: float = _opt(1e-3, "online probe learning rate")
    probe_weight_decay: float = _opt(1e-7, "online probe weight decay")
    final_probe_weight_decays: tuple[float, ...] = _opt(
        (1e-4, 1e-3, 1e-2), "final linear probe: weight decays tried; the best on the validation split is kept")
    val_per_class: int = _opt(50, "validation images held out of the training set per class")
    val_seed: int = _opt(0, "seed of the validation hold-out (the same for every run of a comparison)")
    eval_test: bool = _opt(False, "a final model: score the test split (once, at the end); sweep runs never do")
    seed: int = _opt(0, "seed of initialisation, data order and augmentations")
    device: str = _opt("cuda", "cuda or cpu")
    compile: bool = _opt(True, "torch.compile the model and the loss (CUDA only)")
    log_every: int = _opt(50, "steps between metric flushes to wandb")
    ckpt_every: int = _opt(10, "epochs between resumable checkpoints")
    time_limit_min: float = _opt(0.0, "stop (resumably) after the epoch that passes this many minutes; 0 = none")
    out: str = _opt("checkpoints", "checkpoint root")
    wandb_dir: str = _opt(".", "folder in which wandb/ offline runs are written")
    wandb: bool = _opt(True, "log to wandb (offline)")
    md5: dict = _opt(None, "expected md5s of derived data sets", flag=False)
    limit_train: int = _opt(0, "use only the first N training images (tests); 0 = all")
    model: ViTConfig = field(default_factory=ViTConfig)
    aug: AugConfig = field(default_factory=AugConfig)

    def __post_init__(self):
        self.md5 = self.md5 or {}

    # Not part of what a run *is*: excluded from the logged config and from the resume check.
    RUNTIME = ("md5", "device", "compile", "out", "wandb_dir", "wandb", "log_every", "ckpt_every",
               "time_limit_min", "data")

    def flat(self) -> dict:
        """The run config as logged to wandb: flat, slash-named keys, every choice written down."""
        skip = {"model", "aug", *self.RUNTIME}
        out = {f"train/{k}": (list(v) if isinstance(v, tuple) else v)
               for k, v in asdict(self).items() if k not in skip}
        out.update({f"model/{k}": v for k, v in self.model.to_dict().items()})
        out.update(self.aug.to_dict())
        out.update(PROBE_RECIPE)
        out.update({
            "probe/weight_decay": "best on validation of train/final_probe_weight_decays",
            "model/name": f"ViT (width {self.model.width}, depth {self.model.depth}, patch {self.model.patch_size}), "
                          "2D RoPE, CLS token, pre-norm",
            "model/projector": f"{self.model.width}-{self.proj_hidden}-{self.proj_hidden}-{self.proj_dim} (BN, GELU)",
            "train/optimizer": "AdamW (fused), cosine schedule after linear warm-up, bf16 autocast",
            "train/loss": ("lam * SIGReg + (1 - lam) * invariance" if self.objective == "lejepa"
                           else "multi-view InfoNCE (SimCLR-style)"),
            "sigreg/slices": self.num_slices, "sigreg/knots": self.knots, "sigreg/t_range": [0.0, self.t_max],
            "online_probe": "LayerNorm + Linear on detached CLS of the global views, AdamW, validation top-1",
            "data/set": "CIFAR-100 (official 50,000 train / 10,000 test)",
        })
        return out


